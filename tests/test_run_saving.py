"""Per-quantity save rates: groups at their own rates, each with its own time axis, and every
driver guarantee (bitwise chunking, NaN stop, regrowth, resume, interrupts) for every group."""

import sys
from pathlib import Path

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from simkit import SimkitInputError
from simkit.io import StoreError
from simkit.run import SimulationBlowUp, resolve_save_plan, run, simulate

sys.path.insert(0, str(Path(__file__).parent))
from _toy import Buffer, Walkers  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _procs import signal_when, spawn  # noqa: E402

PARAMS = {"D": jnp.asarray(0.5)}
RATES = {"thermo": 10, "trajectory": 50}


def _run(out, stepper=None, **kw):
    kw = {"n_steps": 600, "save_every": RATES, "chunk_steps": 100, "progress": False, **kw}
    return run(stepper or Walkers(), Walkers.initial(), PARAMS, out=out, **kw)


def test_groups_saved_at_their_rates_with_own_time_axes(tmp_h5):
    _run(tmp_h5)
    with h5py.File(tmp_h5, "r") as f:
        np.testing.assert_array_equal(f["step_thermo"][:], np.arange(0, 601, 10))
        np.testing.assert_array_equal(f["step_trajectory"][:], np.arange(0, 601, 50))
        np.testing.assert_allclose(f["time_thermo"][:], np.arange(0, 601, 10) * 0.01)
        assert f["msd"].shape == (61,) and f["position"].shape == (13, 64, 2)
        assert f.attrs["status"] == "finished"
    ds = xr.open_dataset(tmp_h5, engine="h5netcdf")
    assert ds["position"].dims == ("time_trajectory", "particle", "spatial")
    assert ds["msd"].dims == ("time_thermo",)
    assert ds["time_thermo"].attrs["units"] == "ps" and ds["position"].attrs["units"] == "nm"
    # The frames of both groups at a common step are the same state: msd from positions.
    np.testing.assert_allclose(ds["time_trajectory"].values, ds["time_thermo"].values[::5])
    ds.close()


def test_chunked_multi_rate_run_equals_one_scan_and_simulate_bitwise(tmp_path):
    a = _run(tmp_path / "a.h5", chunk_steps=100)
    b = _run(tmp_path / "b.h5", chunk_steps=600)
    final, frames = jax.jit(lambda s: simulate(Walkers(), s, PARAMS, 600, RATES))(Walkers.initial())
    np.testing.assert_array_equal(np.asarray(a.state["x"]), np.asarray(b.state["x"]))
    np.testing.assert_array_equal(np.asarray(a.state["x"]), np.asarray(final["x"]))
    with h5py.File(tmp_path / "a.h5", "r") as f, h5py.File(tmp_path / "b.h5", "r") as g:
        for name in ("position", "velocity", "msd", "mean_x", "time_thermo", "step_trajectory"):
            np.testing.assert_array_equal(f[name][:], g[name][:])
        np.testing.assert_array_equal(f["position"][1:], np.asarray(frames["position"]))
        np.testing.assert_array_equal(f["msd"][1:], np.asarray(frames["msd"]))
    # Physics sanity (Einstein relation, 2D): msd = 4 D t; 64 walkers -> ~18% sd at t = 6.
    disp = b.state["unwrapped"] - Walkers.initial()["unwrapped"]
    assert float(jnp.mean(jnp.sum(disp**2, axis=1))) == pytest.approx(4 * 0.5 * 6, rel=0.5)


def test_in_memory_multi_rate_frames(tmp_path):
    res = _run(None)
    assert res.frames["msd"].shape == (61,) and res.frames["position"].shape == (13, 64, 2)
    assert res.frames_per_group == {"thermo": 61, "trajectory": 13} and res.n_frames == 74


def test_rates_by_quantity_name_and_groups_argument(tmp_h5):
    res = _run(None, save_every={"msd": 10, "mean_x": 20, "trajectory": 100})
    assert res.frames["msd"].shape == (61,) and res.frames["mean_x"].shape == (31,)
    res = _run(
        None,
        save_every={"all_scalars": 5, "fields": 25},
        groups={"all_scalars": ("msd", "mean_x"), "fields": ("position", "velocity")},
    )
    assert res.frames["mean_x"].shape == (121,) and res.frames["velocity"].shape == (25, 64, 2)


def test_nan_stop_keeps_every_earlier_frame_of_every_group(tmp_h5):
    with pytest.raises(SimulationBlowUp, match="step 437") as info:
        _run(tmp_h5, stepper=Walkers(nan_at=437))
    assert info.value.step == 437
    with h5py.File(tmp_h5, "r") as f:
        np.testing.assert_array_equal(f["step_thermo"][:], np.arange(0, 431, 10))
        np.testing.assert_array_equal(f["step_trajectory"][:], np.arange(0, 401, 50))
        assert np.isfinite(f["position"][:]).all() and np.isfinite(f["msd"][:]).all()
        assert "step 437" in f.attrs["status"]


def test_overflow_regrowth_with_two_rates(tmp_h5):
    res = run(
        Buffer(capacity=4),
        {"n": jnp.asarray(0), "items": jnp.zeros(4)},
        {},
        n_steps=100,
        save_every={"total": 5},
        chunk_steps=20,
        out=tmp_h5,
        progress=False,
    )
    assert res.chunks_recomputed >= 3
    with h5py.File(tmp_h5, "r") as f:
        steps = f["step_total"][:]
        np.testing.assert_array_equal(f["total"][:], steps * (steps + 1) / 2)


@pytest.mark.parametrize("how", ["error", "ctrl-c"])
def test_resume_multi_rate_is_bitwise(tmp_path, how):
    full = _run(tmp_path / "full.h5")
    part = tmp_path / "part.h5"

    def stop(step, n):
        if step == 300:
            raise KeyboardInterrupt if how == "ctrl-c" else RuntimeError("stop")

    with pytest.raises((KeyboardInterrupt, RuntimeError)):
        _run(part, callback=stop, checkpoint_interval=3600)
    with h5py.File(part, "r") as f:
        assert f.attrs["status"] == "interrupted" if how == "ctrl-c" else "failed"
        assert f["step_thermo"][-1] == 300 and f["step_trajectory"][-1] == 300
    res = _run(part, resume=True)
    np.testing.assert_array_equal(np.asarray(res.state["x"]), np.asarray(full.state["x"]))
    with h5py.File(part, "r") as f, h5py.File(tmp_path / "full.h5", "r") as g:
        for name in ("position", "msd", "step_thermo", "time_trajectory"):
            np.testing.assert_array_equal(f[name][:], g[name][:])


def test_resume_with_other_rates_is_refused(tmp_h5):
    _run(tmp_h5, n_steps=100)
    with pytest.raises(StoreError, match="save_every"):
        _run(tmp_h5, n_steps=100, save_every={"thermo": 25, "trajectory": 50}, resume=True)


def test_bad_save_rates_are_named():
    observed = ("position", "velocity", "mean_x", "msd")
    groups = Walkers().save_groups()
    with pytest.raises(SimkitInputError, match=r"save_every\['thermo'\] must be > 0"):
        resolve_save_plan({"thermo": 0, "trajectory": 10}, observed, groups)
    with pytest.raises(SimkitInputError, match=r"save_every\['thermo'\] must be a positive"):
        resolve_save_plan({"thermo": 2.5, "trajectory": 10}, observed, groups)
    with pytest.raises(SimkitInputError, match="'energy', which is neither a save group"):
        resolve_save_plan({"energy": 10, "trajectory": 10, "thermo": 5}, observed, groups)
    with pytest.raises(SimkitInputError, match="'msd' is claimed by two save groups"):
        resolve_save_plan({"thermo": 10, "msd": 10, "trajectory": 10}, observed, groups)
    with pytest.raises(SimkitInputError, match=r"\['position', 'velocity'\] have no save rate"):
        resolve_save_plan({"thermo": 10}, observed, groups)
    with pytest.raises(SimkitInputError, match="must divide one another.*got 10 and 15"):
        resolve_save_plan({"thermo": 10, "trajectory": 15}, observed, groups)
    with pytest.raises(SimkitInputError, match="lists \\['temperature'\\]"):
        resolve_save_plan(
            {"t": 10, "trajectory": 10, "thermo": 10}, observed, {**groups, "t": ("temperature",)}
        )
    with pytest.raises(
        SimkitInputError, match="n_steps \\(120\\) must be a multiple of save_every \\(50\\)"
    ):
        _run(None, n_steps=120)
    with pytest.raises(SimkitInputError, match="chunk_steps \\(120\\) must be a multiple"):
        _run(None, chunk_steps=120)


@pytest.mark.slow  # default-suite time; SIGKILL resume: test_run_driver
def test_sigkill_then_resume_is_bitwise_for_every_group(tmp_path):
    worker = Path(__file__).parent / "_run_worker.py"

    def start(*extra):
        return spawn(
            worker,
            tmp_path / "run.h5",
            tmp_path / "final.npy",
            "--walkers",
            "--n-steps",
            "20000",
            *extra,
        )

    signal_when(start(), lambda line: line.startswith("chunk") and int(line.split()[1]) >= 2000)
    with h5py.File(tmp_path / "run.h5", "r") as f:  # flushed frames of both groups read back
        n_thermo, n_traj = f["time_thermo"].shape[0], f["time_trajectory"].shape[0]
        assert n_thermo >= 201 and n_traj >= 41
        assert np.isfinite(f["msd"][:n_thermo]).all() and np.isfinite(f["position"][:]).all()
    res = start("--resume")
    assert res.wait(timeout=300) == 0, res.stderr.read()[-2000:]
    resumed = np.load(tmp_path / "final.npy")
    ref = spawn(
        worker,
        tmp_path / "x.h5",
        tmp_path / "ref.npy",
        "--walkers",
        "--n-steps",
        "20000",
        "--no-out",
    )
    assert ref.wait(timeout=300) == 0, ref.stderr.read()[-2000:]
    np.testing.assert_array_equal(resumed, np.load(tmp_path / "ref.npy"))
    with h5py.File(tmp_path / "run.h5", "r") as f:
        np.testing.assert_array_equal(f["step_thermo"][:], np.arange(0, 20001, 10))
        np.testing.assert_array_equal(f["step_trajectory"][:], np.arange(0, 20001, 50))
        np.testing.assert_array_equal(f["position"][-1], resumed)
