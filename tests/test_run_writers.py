"""The H5MD and field writers driven by the run driver: per-group rates, readers (MDAnalysis,
xarray, VTK), Ctrl-C and resume, refusal rules, `simkit info` for both kinds of file."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from simkit import SimkitInputError
from simkit.cli import main as cli_main
from simkit.io import FieldStore, H5MDStore, StoreError, sidecar_path
from simkit.run import run

sys.path.insert(0, str(Path(__file__).parent))
from _toy import Diffusion, Walkers  # noqa: E402

PARAMS = {"D": jnp.asarray(0.5)}
RATES = {"thermo": 10, "trajectory": 50}
BOX = {"box": np.full(3, 10.0), "boundary": "periodic"}


def _md(out, **kw):
    kw = {
        "n_steps": 600,
        "save_every": RATES,
        "chunk_steps": 100,
        "progress": False,
        "store_type": H5MDStore,
        "store_options": BOX,
        **kw,
    }
    return run(Walkers(), Walkers.initial(dim=3), PARAMS, out=out, **kw)


def _ctrl_c_at(at_step):
    """A driver callback that acts like the user's Ctrl-C once `at_step` is on disk."""

    def callback(step, n_frames):
        if step == at_step:
            raise KeyboardInterrupt

    return callback


def _field_state():
    u0 = jax.random.uniform(jax.random.key(3), (12, 7), jnp.float64)
    return {"n": jnp.asarray(0), "u": u0}


def _fields(out, **kw):
    kw = {
        "n_steps": 200,
        "save_every": {"fields": 20, "diagnostics": 5},
        "chunk_steps": 40,
        "progress": False,
        "store_type": FieldStore,
        **kw,
    }
    return run(Diffusion(), _field_state(), {}, out=out, **kw)


def test_h5md_run_reads_back_in_mdanalysis_every_frame(tmp_path):
    mda = pytest.importorskip("MDAnalysis")
    out = tmp_path / "walk.h5"
    _md(out)
    ref = run(
        Walkers(),
        Walkers.initial(dim=3),
        PARAMS,
        n_steps=600,
        save_every=RATES,
        chunk_steps=100,
        progress=False,
    )
    u = mda.Universe(str(out), format="H5MD", topology_format="MINIMAL", n_atoms=64)
    assert len(u.atoms) == 64 and len(u.trajectory) == 13
    for i, ts in enumerate(u.trajectory):
        # MDAnalysis converts nm to Angstrom (x10) and nm/ps to A/ps (x10).
        np.testing.assert_allclose(ts.positions, 10 * ref.frames["position"][i], rtol=1e-6)
        np.testing.assert_allclose(ts.velocities, 10 * ref.frames["velocity"][i], rtol=1e-6)
        np.testing.assert_allclose(ts.dimensions[:3], 100.0)
        assert ts.time == pytest.approx(i * 50 * 0.01)
    with h5py.File(out, "r") as f:  # thermo at its own rate, with its own step axis
        np.testing.assert_array_equal(f["observables/msd/step"][:], np.arange(0, 601, 10))
        np.testing.assert_array_equal(f["observables/msd/value"][:], ref.frames["msd"])


def test_h5md_ctrl_c_then_resume_is_bitwise(tmp_path):
    full = _md(tmp_path / "full.h5")

    part = tmp_path / "part.h5"
    with pytest.raises(KeyboardInterrupt):
        _md(part, callback=_ctrl_c_at(300))
    with h5py.File(part, "r") as f:
        assert f.attrs["status"] == "interrupted"
        assert f["particles/all/position/step"][-1] == 300
    res = _md(part, resume=True)
    np.testing.assert_array_equal(np.asarray(res.state["x"]), np.asarray(full.state["x"]))
    with h5py.File(part, "r") as f, h5py.File(tmp_path / "full.h5", "r") as g:
        for name in (
            "particles/all/position/value",
            "particles/all/velocity/value",
            "observables/msd/value",
            "observables/msd/step",
        ):
            np.testing.assert_array_equal(f[name][:], g[name][:])


def test_h5md_refusals(tmp_path):
    out = tmp_path / "walk.h5"
    _md(out, n_steps=100)
    with pytest.raises(SimkitInputError, match="already exists"):
        _md(out, n_steps=100)
    with pytest.raises(StoreError, match="save_every"):
        _md(out, n_steps=100, resume=True, save_every={"thermo": 5, "trajectory": 50})
    with pytest.raises(StoreError, match="'frames' file|'h5md' file"):
        run(
            Walkers(),
            Walkers.initial(dim=3),
            PARAMS,
            n_steps=100,
            save_every=RATES,
            chunk_steps=100,
            out=out,
            resume=True,
            progress=False,
        )
    with pytest.raises(SimkitInputError, match="periodic"):  # periodic without a box
        _md(tmp_path / "nobox.h5", store_options={})


def test_field_run_reads_back_in_xarray_and_vtk(tmp_path):
    out = tmp_path / "diff.h5"
    ref = _fields(None)
    _fields(out)
    ds = xr.open_dataset(out, engine="h5netcdf")
    assert set(ds["u"].dims) == {"time_fields", "x", "y"}
    np.testing.assert_array_equal(
        ds["u"].transpose("time_fields", "x", "y").values, ref.frames["u"]
    )
    np.testing.assert_allclose(ds["x"].values, 1.0 + 0.5 * np.arange(12))
    assert ds["x"].attrs["units"] == "m" and ds["u"].attrs["units"] == "K"
    np.testing.assert_array_equal(ds["mass"].values, ref.frames["mass"])
    assert ds.sizes["time_diagnostics"] == 41 and ds.sizes["time_fields"] == 11
    ds.close()
    vtk = pytest.importorskip("vtk")
    from vtk.util.numpy_support import vtk_to_numpy

    reader = vtk.vtkXdmfReader()
    reader.SetFileName(str(sidecar_path(out)))
    reader.UpdateInformation()
    times = reader.GetOutputInformation(0).Get(vtk.vtkStreamingDemandDrivenPipeline.TIME_STEPS())
    np.testing.assert_allclose(times, np.arange(0, 201, 20) * 0.1)
    reader.UpdateTimeStep(times[-1])
    grid = reader.GetOutputDataObject(0)
    while not hasattr(grid, "GetPointData"):  # unwrap a multiblock if the reader gives one
        grid = grid.GetBlock(0)
    values = vtk_to_numpy(grid.GetPointData().GetArray("u"))
    # VTK orders points x fastest: (y, x) in C order.
    np.testing.assert_array_equal(values.reshape(7, 12), ref.frames["u"][-1].T)


def test_field_ctrl_c_then_resume_is_bitwise_and_sidecar_follows(tmp_path):
    full = _fields(tmp_path / "full.h5")

    part = tmp_path / "part.h5"
    with pytest.raises(KeyboardInterrupt):
        _fields(part, callback=_ctrl_c_at(80), checkpoint_interval=0)
    assert sidecar_path(part).read_text().count("<Grid ") >= 5
    res = _fields(part, resume=True)
    np.testing.assert_array_equal(np.asarray(res.state["u"]), np.asarray(full.state["u"]))
    assert sidecar_path(part).read_text() == sidecar_path(tmp_path / "full.h5").read_text().replace(
        "full.h5", "part.h5"
    )
    with h5py.File(part, "r") as f, h5py.File(tmp_path / "full.h5", "r") as g:
        np.testing.assert_array_equal(f["u"][:], g["u"][:])
        np.testing.assert_array_equal(f["mass"][:], g["mass"][:])


def test_field_shape_change_is_refused(tmp_path):
    from simkit.io import SaveGroup, Variable

    store = FieldStore.create(
        tmp_path / "f.h5",
        [SaveGroup("fields", 1, {"u": Variable(("x", "y"), (4, 3), "float32")})],
        config={},
        coords={"x": (np.arange(4.0), "m"), "y": (np.arange(3.0), "m")},
    )
    with pytest.raises(SimkitInputError, match="may not change"):
        store.append({"fields": ([0], [0.0], {"u": np.zeros((1, 4, 4), np.float32)})})
    store.close()


def test_simkit_info_summarises_h5md_and_field_files(tmp_path, capsys):
    _md(tmp_path / "walk.h5")
    _fields(tmp_path / "diff.h5")
    capsys.readouterr()
    assert cli_main(["info", str(tmp_path / "walk.h5")]) == 0
    text = capsys.readouterr().out
    assert "status: finished" in text
    assert "thermo           every 10 steps: 61 frames, last step 600" in text
    assert "trajectory       every 50 steps: 13 frames, last step 600" in text
    assert cli_main(["info", str(tmp_path / "diff.h5")]) == 0
    text = capsys.readouterr().out
    assert "fields           every 20 steps: 11 frames, last step 200" in text
    assert "diagnostics      every 5 steps: 41 frames" in text


@pytest.mark.skipif(
    shutil.which("pvpython") is None,
    reason="ParaView's pvpython is not installed (Debian: apt-get install "
    "paraview python3-paraview)",
)
def test_paraview_opens_the_sidecar_with_its_xdmf_reader(tmp_path):
    """ParaView itself (not only VTK's reader) sees every frame on the right grid."""
    out = tmp_path / "diff.h5"
    ref = _fields(None)
    _fields(out)
    r = subprocess.run(
        [
            "pvpython",
            "--force-offscreen-rendering",
            str(Path(__file__).parent / "_paraview_read.py"),
            str(sidecar_path(out)),
            "u",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    seen = json.loads(r.stdout.strip().splitlines()[-1])
    # ParaView passes times through float32; the grid is x = 1 + 0.5 i, y = -2 + 0.5 j, z = 0.
    np.testing.assert_allclose(seen["times"], np.arange(0, 201, 20) * 0.1, rtol=1e-6)
    np.testing.assert_allclose(seen["bounds"], [1.0, 6.5, -2.0, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(
        np.reshape(seen["values"], (7, 12)), ref.frames["u"][-1].T, rtol=1e-12
    )


def test_blow_up_keeps_every_earlier_frame_in_both_writers(tmp_path):
    from simkit.run import SimulationBlowUp

    with pytest.raises(SimulationBlowUp, match="step 437"):
        run(
            Walkers(nan_at=437),
            Walkers.initial(dim=3),
            PARAMS,
            n_steps=600,
            save_every=RATES,
            chunk_steps=100,
            progress=False,
            out=tmp_path / "w.h5",
            store_type=H5MDStore,
            store_options=BOX,
        )
    with h5py.File(tmp_path / "w.h5", "r") as f:
        np.testing.assert_array_equal(f["particles/all/position/step"][:], np.arange(0, 401, 50))
        np.testing.assert_array_equal(f["observables/msd/step"][:], np.arange(0, 431, 10))
        assert np.isfinite(f["particles/all/position/value"][:]).all()
        assert "step 437" in f.attrs["status"]

    class Explodes(Diffusion):
        def step(self, state, params):
            new = super().step(state, params)
            return {**new, "u": jnp.where(new["n"] >= 57, jnp.inf, new["u"])}

    out = tmp_path / "f.h5"
    with pytest.raises(SimulationBlowUp, match="step 57"):
        run(
            Explodes(),
            _field_state(),
            {},
            n_steps=200,
            save_every={"fields": 20, "diagnostics": 5},
            chunk_steps=40,
            progress=False,
            out=out,
            store_type=FieldStore,
        )
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["step_fields"][:], [0, 20, 40])
        np.testing.assert_array_equal(f["step_diagnostics"][:], np.arange(0, 56, 5))
        assert np.isfinite(f["u"][:]).all()
    assert sidecar_path(out).read_text().count("<Time ") == 3  # ParaView sees the kept frames
