"""Run driver: chunking, NaN stop, capacity regrowth, resume, kill -9, Ctrl-C, bad input."""

import signal
import sys
from pathlib import Path

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simkit import SimkitInputError
from simkit.io import StoreError, checkpoint_path
from simkit.ode import ODEStepper
from simkit.run import SimulationBlowUp, run, simulate

sys.path.insert(0, str(Path(__file__).parent))
from _procs import killed_on_exit, spawn, wait_chunks  # noqa: E402
from _toy import Buffer, Decay, RandomWalk  # noqa: E402

HERE = Path(__file__).parent
WORKER = HERE / "_run_worker.py"


def lorenz(t, y, p):
    return jnp.stack(
        [
            p["sigma"] * (y[1] - y[0]),
            y[0] * (p["rho"] - y[2]) - y[1],
            y[0] * y[1] - p["beta"] * y[2],
        ]
    )


PARAMS = {"sigma": jnp.asarray(10.0), "rho": jnp.asarray(28.0), "beta": jnp.asarray(8 / 3)}


@pytest.fixture(scope="module")
def lorenz_setup():
    stepper = ODEStepper(lorenz, dt=1e-3)
    y0 = jnp.asarray(np.random.default_rng(0).normal(size=(16, 3))) + jnp.asarray(
        [[1.0, 1.0, 20.0]]
    )
    return stepper, stepper.init(y0, PARAMS)


def test_chunked_run_equals_one_long_scan_bitwise(lorenz_setup, tmp_h5):
    stepper, state = lorenz_setup
    final_ref, frames_ref = jax.jit(simulate, static_argnums=(0, 3, 4))(
        stepper, state, PARAMS, 3000, 100
    )
    res = run(
        stepper,
        state,
        PARAMS,
        n_steps=3000,
        save_every=100,
        chunk_steps=700 // 100 * 100,
        out=tmp_h5,
        progress=False,
    )
    # 3000 steps in chunks of 700 (last chunk shorter) must equal the single scan bit for bit.
    np.testing.assert_array_equal(np.asarray(res.state.y), np.asarray(final_ref.y))
    with h5py.File(tmp_h5, "r") as f:
        np.testing.assert_array_equal(f["y"][1:], np.asarray(frames_ref["y"]))
        np.testing.assert_array_equal(f["y"][0], np.asarray(state.y))
        np.testing.assert_array_equal(f["step"][:], np.arange(0, 3001, 100))
        np.testing.assert_allclose(f["time"][:], np.arange(0, 3001, 100) * 1e-3, rtol=1e-12)
        assert f.attrs["status"] == "finished"


def test_in_memory_run_matches_file_run(lorenz_setup, tmp_h5):
    stepper, state = lorenz_setup
    a = run(stepper, state, PARAMS, n_steps=1000, save_every=250, progress=False)
    b = run(stepper, state, PARAMS, n_steps=1000, save_every=250, out=tmp_h5, progress=False)
    with h5py.File(tmp_h5, "r") as f:
        np.testing.assert_array_equal(a.frames["y"], f["y"][:])
    np.testing.assert_array_equal(np.asarray(a.state.y), np.asarray(b.state.y))


def test_nan_stops_run_names_first_bad_step_and_keeps_prior_frames(tmp_h5):
    stepper = Decay(dt=0.1, nan_at=437)
    state = {"step": jnp.asarray(0), "x": jnp.ones(3)}
    params = {"k": jnp.asarray(0.5)}
    with pytest.raises(SimulationBlowUp, match="step 437") as info:
        run(
            stepper,
            state,
            params,
            n_steps=1000,
            save_every=10,
            chunk_steps=100,
            out=tmp_h5,
            progress=False,
        )
    assert info.value.step == 437
    assert info.value.time == pytest.approx(43.7)
    with h5py.File(tmp_h5, "r") as f:
        steps = f["step"][:]
        x = f["x"][:]
        # every frame before the bad step is there (last good frame: step 430), none after
        np.testing.assert_array_equal(steps, np.arange(0, 431, 10))
        np.testing.assert_allclose(x[:, 0], np.exp(-0.5 * 0.1 * steps), rtol=1e-12)
        assert np.isfinite(x).all()
        assert "step 437" in f.attrs["status"]


def test_non_finite_observed_quantity_with_finite_state_is_caught(tmp_h5):
    class LogObserved(Decay):
        def observe(self, state, params):  # log(x - 0.5) is NaN once x < 0.5 (step 14)
            return {"x": jnp.log(state["x"] - 0.5)}

    state = {"step": jnp.asarray(0), "x": jnp.ones(2)}
    with pytest.raises(SimulationBlowUp, match=r"observed quantity \(x\).*step 20") as info:
        run(
            LogObserved(dt=0.1),
            state,
            {"k": jnp.asarray(0.5)},
            n_steps=100,
            save_every=10,
            chunk_steps=50,
            out=tmp_h5,
            progress=False,
        )
    assert info.value.step == 20
    with h5py.File(tmp_h5, "r") as f:
        np.testing.assert_array_equal(f["step"][:], [0, 10])
        assert np.isfinite(f["x"][:]).all()


def test_nan_in_first_frame_of_chunk(tmp_h5):
    stepper = Decay(dt=0.1, nan_at=201)
    state = {"step": jnp.asarray(0), "x": jnp.ones(2)}
    with pytest.raises(SimulationBlowUp) as info:
        run(
            stepper,
            state,
            {"k": jnp.asarray(1.0)},
            n_steps=400,
            save_every=10,
            chunk_steps=100,
            out=tmp_h5,
            progress=False,
        )
    assert info.value.step == 201
    with h5py.File(tmp_h5, "r") as f:
        assert f["step"][-1] == 200


def test_blow_up_seen_only_at_the_compiled_chunk_end_names_its_last_step(tmp_h5, monkeypatch):
    # The step-by-step replay that looks for the first bad step may stay finite where the
    # compiled chunk did not (the two can round differently): the run then names the chunk's
    # last step (it failed with a TypeError on `None - int` before).
    import simkit.run._driver as driver

    class HiddenNaN(Decay):
        def step(self, state, params):  # NaN in an unobserved leaf from step 95 on
            new = super().step(state, params)
            return {**new, "h": jnp.where(new["step"] >= 95, jnp.nan, state["h"])}

    monkeypatch.setattr(driver, "_state_finite", lambda state: True)  # the replay stays finite
    state = {"step": jnp.asarray(0), "x": jnp.ones(2), "h": jnp.zeros(2)}
    with pytest.raises(SimulationBlowUp, match="state became NaN/inf at step 100") as info:
        run(
            HiddenNaN(dt=0.1),
            state,
            {"k": jnp.asarray(0.5)},
            n_steps=200,
            save_every=10,
            chunk_steps=100,
            out=tmp_h5,
            progress=False,
        )
    assert info.value.step == 100
    with h5py.File(tmp_h5, "r") as f:
        np.testing.assert_array_equal(f["step"][:], np.arange(0, 91, 10))


def test_overflow_regrows_and_recomputes_so_no_wrong_frame_is_written(tmp_h5):
    stepper = Buffer(capacity=4)
    state = {"n": jnp.asarray(0), "items": jnp.zeros(4)}
    res = run(
        stepper, state, {}, n_steps=100, save_every=5, chunk_steps=20, out=tmp_h5, progress=False
    )
    assert res.chunks_recomputed >= 3  # 4 -> 8 -> 16 -> 32 -> 64 -> 128
    assert res.stepper.capacity >= 100
    with h5py.File(tmp_h5, "r") as f:
        steps = f["step"][:]
        np.testing.assert_array_equal(f["total"][:], steps * (steps + 1) / 2)


def test_resume_after_partial_run_is_bitwise(lorenz_setup, tmp_path):
    stepper, state = lorenz_setup
    full = run(
        stepper,
        state,
        PARAMS,
        n_steps=2000,
        save_every=100,
        chunk_steps=500,
        out=tmp_path / "full.h5",
        progress=False,
    )
    part = tmp_path / "part.h5"

    class Stop(Exception):
        pass

    def stop_after_two(step, n):
        if step >= 1000:
            raise Stop

    with pytest.raises(Stop):
        run(
            stepper,
            state,
            PARAMS,
            n_steps=2000,
            save_every=100,
            chunk_steps=500,
            out=part,
            progress=False,
            callback=stop_after_two,
        )
    with h5py.File(part, "r") as f:
        assert f.attrs["status"].startswith("failed")
        assert f["step"][-1] == 1000
    res = run(
        stepper,
        state,
        PARAMS,
        n_steps=2000,
        save_every=100,
        chunk_steps=500,
        out=part,
        resume=True,
        progress=False,
    )
    np.testing.assert_array_equal(np.asarray(res.state.y), np.asarray(full.state.y))
    with h5py.File(part, "r") as f, h5py.File(tmp_path / "full.h5", "r") as g:
        np.testing.assert_array_equal(f["y"][:], g["y"][:])
        assert f.attrs["status"] == "finished"


def test_resume_with_prng_key_in_state_is_bitwise(tmp_path):
    """The checkpoint stores the typed PRNG key, so the resumed random stream continues exactly."""
    stepper = RandomWalk()
    state = {"key": jax.random.key(7), "n": jnp.asarray(0), "x": jnp.zeros(50)}
    params = {"D": jnp.asarray(0.5)}
    full = run(
        stepper,
        state,
        params,
        n_steps=600,
        save_every=20,
        chunk_steps=100,
        out=tmp_path / "full.h5",
        progress=False,
    )

    class Stop(Exception):
        pass

    def stop(step, n):
        if step == 300:
            raise Stop

    part = tmp_path / "part.h5"
    with pytest.raises(Stop):
        run(
            stepper,
            state,
            params,
            n_steps=600,
            save_every=20,
            chunk_steps=100,
            out=part,
            progress=False,
            callback=stop,
        )
    res = run(
        stepper,
        state,
        params,
        n_steps=600,
        save_every=20,
        chunk_steps=100,
        out=part,
        resume=True,
        progress=False,
    )
    np.testing.assert_array_equal(np.asarray(res.state["x"]), np.asarray(full.state["x"]))
    np.testing.assert_array_equal(
        jax.random.key_data(res.state["key"]), jax.random.key_data(full.state["key"])
    )
    # diffusion check: <x^2> = 2 D t (t = 6), 50 walkers -> relative sd sqrt(2/50) = 0.2
    assert float(jnp.mean(res.state["x"] ** 2)) == pytest.approx(2 * 0.5 * 6.0, rel=0.6)


def _worker(args, **kw):
    return spawn(WORKER, *args, **kw)


def _reference_final(tmp_path):
    ref = _worker([tmp_path / "unused.h5", tmp_path / "ref.npy", "--no-out"])
    assert ref.wait(timeout=300) == 0, ref.stderr.read()[-2000:]
    return np.load(tmp_path / "ref.npy")


@pytest.mark.parametrize(
    "sig", [signal.SIGKILL, pytest.param(signal.SIGINT, marks=pytest.mark.slow)]
)  # SIGINT: the Ctrl-C resume tests of each solver
def test_killed_run_keeps_flushed_frames_and_resumes_bitwise(tmp_path, sig):
    out = tmp_path / "run.h5"
    proc = _worker([out, tmp_path / "final.npy"])
    with killed_on_exit(proc):
        seen = wait_chunks(proc, 5)
        proc.send_signal(sig)
        rc = proc.wait(timeout=120)
    assert rc != 0
    # Every frame flushed before the signal reads back, with sane values.
    with h5py.File(out, "r") as f:
        n = f["time"].shape[0]
        assert n >= 1 + seen[-1] // 100
        assert np.isfinite(f["y"][:n]).all()
        np.testing.assert_array_equal(f["step"][:n], np.arange(n) * 100)
        if sig == signal.SIGINT:
            assert f.attrs["status"] == "interrupted"
    assert checkpoint_path(out).exists()
    res = _worker([out, tmp_path / "final.npy", "--resume"])
    assert res.wait(timeout=300) == 0, res.stderr.read()[-3000:]
    np.testing.assert_array_equal(np.load(tmp_path / "final.npy"), _reference_final(tmp_path))
    with h5py.File(out, "r") as f:
        assert f["step"][-1] == 40_000 and f["time"].shape[0] == 401
        assert f.attrs["status"] == "finished"


# ---------------------------------------------------------------- bad input, before compute


def test_bad_input_errors(lorenz_setup, tmp_path):
    stepper, state = lorenz_setup
    kw = dict(progress=False)
    with pytest.raises(SimkitInputError, match="n_steps must be > 0"):
        run(stepper, state, PARAMS, n_steps=0, save_every=1, **kw)
    with pytest.raises(SimkitInputError, match="n_steps must be a positive integer"):
        run(stepper, state, PARAMS, n_steps=10.5, save_every=1, **kw)
    with pytest.raises(SimkitInputError, match="multiple of save_every"):
        run(stepper, state, PARAMS, n_steps=10, save_every=3, **kw)
    with pytest.raises(SimkitInputError, match="larger than the run"):
        run(stepper, state, PARAMS, n_steps=100, save_every=10, chunk_steps=200, **kw)
    with pytest.raises(SimkitInputError, match="does not exist"):
        run(
            stepper, state, PARAMS, n_steps=100, save_every=10, out=tmp_path / "nope" / "x.h5", **kw
        )
    bad_state = stepper.init(state.y.at[3, 1].set(jnp.nan), PARAMS)
    with pytest.raises(SimkitInputError, match="initial state.*NaN"):
        run(stepper, bad_state, PARAMS, n_steps=100, save_every=10, **kw)
    with pytest.raises(SimkitInputError, match=r"params\['rho'\].*NaN"):
        run(
            stepper,
            state,
            {**PARAMS, "rho": jnp.asarray(jnp.nan)},
            n_steps=100,
            save_every=10,
            **kw,
        )
    with pytest.raises(SimkitInputError, match="dt must be > 0"):
        ODEStepper(lorenz, dt=-1e-3)
    with pytest.raises(SimkitInputError, match="dt must be > 0"):
        ODEStepper(lorenz, dt=0.0)
    with pytest.raises(SimkitInputError, match=r"shape \(n_members, dim\)"):
        stepper.init(jnp.ones(3), PARAMS)
    with pytest.raises(SimkitInputError, match="ensemble size must be >= 1"):
        stepper.init(jnp.ones((0, 3)), PARAMS)


def test_existing_output_is_refused_and_untouched(lorenz_setup, tmp_h5):
    stepper, state = lorenz_setup
    run(stepper, state, PARAMS, n_steps=200, save_every=100, out=tmp_h5, progress=False)
    before = tmp_h5.read_bytes()
    with pytest.raises(SimkitInputError, match="already exists.*overwrite"):
        run(stepper, state, PARAMS, n_steps=200, save_every=100, out=tmp_h5, progress=False)
    assert tmp_h5.read_bytes() == before
    run(
        stepper,
        state,
        PARAMS,
        n_steps=400,
        save_every=100,
        out=tmp_h5,
        overwrite=True,
        progress=False,
    )
    with h5py.File(tmp_h5, "r") as f:
        assert f["step"][-1] == 400


def test_resume_with_changed_configuration_names_the_setting(lorenz_setup, tmp_h5):
    stepper, state = lorenz_setup
    run(
        stepper,
        state,
        PARAMS,
        n_steps=200,
        save_every=100,
        out=tmp_h5,
        progress=False,
        config={"problem": "x", "dt": 1e-3},
    )
    with pytest.raises(StoreError, match="dt: file has 0.001, this run has 0.002"):
        run(
            stepper,
            state,
            PARAMS,
            n_steps=200,
            save_every=100,
            out=tmp_h5,
            resume=True,
            progress=False,
            config={"problem": "x", "dt": 2e-3},
        )
    with pytest.raises(StoreError, match="save_every"):
        run(
            stepper,
            state,
            PARAMS,
            n_steps=200,
            save_every=50,
            out=tmp_h5,
            resume=True,
            progress=False,
            config={"problem": "x", "dt": 1e-3},
        )
    other = {**PARAMS, "rho": jnp.asarray(30.0)}
    with pytest.raises(StoreError, match="params"):
        run(
            stepper,
            state,
            other,
            n_steps=200,
            save_every=100,
            out=tmp_h5,
            resume=True,
            progress=False,
            config={"problem": "x", "dt": 1e-3},
        )


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_resume_into_corrupt_or_truncated_file_is_refused(lorenz_setup, tmp_h5, damage):
    stepper, state = lorenz_setup
    run(stepper, state, PARAMS, n_steps=1000, save_every=100, out=tmp_h5, progress=False)
    data = tmp_h5.read_bytes()
    tmp_h5.write_bytes(b"not an hdf5 file" * 100 if damage == "garbage" else data[: len(data) // 3])
    with pytest.raises(StoreError, match="corrupt or truncated|not a readable HDF5"):
        run(
            stepper,
            state,
            PARAMS,
            n_steps=1000,
            save_every=100,
            out=tmp_h5,
            resume=True,
            progress=False,
        )


def test_resume_needs_existing_file(lorenz_setup, tmp_h5):
    stepper, state = lorenz_setup
    with pytest.raises(SimkitInputError, match="does not exist"):
        run(
            stepper,
            state,
            PARAMS,
            n_steps=200,
            save_every=100,
            out=tmp_h5,
            resume=True,
            progress=False,
        )
