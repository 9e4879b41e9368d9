"""simkit.fluids.lbm through the run driver: `simkit.run.run` with `FieldStore` writes HDF5 that
xarray opens with the grid's dims and an XDMF sidecar that lists every frame; the frames are the
simulation's; a run interrupted in process (Ctrl-C) or killed (SIGKILL of a worker) resumes from
its checkpoint, flags of walls and moving walls included, to a final state and file bitwise equal
to an uninterrupted run.

One run for all (`_lbm_worker.cavity`: a 32 x 32 lid-driven cavity, float32, 400 steps in chunks
of 100, fields every 100 steps, diagnostics every 20), so the driver's chunk program is compiled
once in this process (and once more in the worker)."""

import errno
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import h5py
import jax
import numpy as np
import pytest
import xarray as xr

from simkit.io import StoreWriteError, WriterLock, WriterLockedError, checkpoint_path, sidecar_path
from simkit.run import RunInterrupted

sys.path.insert(0, str(Path(__file__).parent))
from _lbm_worker import CHUNK, N_STEPS, N, cavity, run_cavity
from _procs import signal_when, spawn

WORKER = Path(__file__).parent / "_lbm_worker.py"
DATASETS = (
    "velocity",
    "density",
    "vorticity",
    "kinetic_energy",
    "mass",
    "max_mach",
    "obstacle_force",
    "step_fields",
    "time_fields",
    "step_diagnostics",
    "time_diagnostics",
)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """The uninterrupted run, written to a FieldStore."""
    out = tmp_path_factory.mktemp("lbm") / "cavity.h5"
    return run_cavity(out), out


def test_field_file_opens_in_xarray_with_grid_dims_and_the_simulation_frames(full_run):
    res, out = full_run
    stepper, state, params = cavity()
    assert res.steps_done == N_STEPS and res.frames_per_group == {"fields": 5, "diagnostics": 21}
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        assert ds.attrs["status"] == "finished"
        assert ds["velocity"].dims == ("time_fields", "y", "x", "component")
        assert ds["density"].dims == ds["vorticity"].dims == ("time_fields", "y", "x")
        assert ds["kinetic_energy"].dims == ("time_diagnostics",)
        assert ds["obstacle_force"].dims == ("time_diagnostics", "component")
        assert ds.sizes["x"] == ds.sizes["y"] == N
        np.testing.assert_array_equal(ds["x"].values, np.arange(N))
        assert list(ds["component"].values) == ["x", "y"]
        np.testing.assert_array_equal(ds["time_fields"].values, np.arange(0, N_STEPS + 1, 100))
        np.testing.assert_array_equal(ds["time_diagnostics"].values, np.arange(0, N_STEPS + 1, 20))
        assert ds["velocity"].dtype == np.float32  # the stepper's dtype, not upcast
        # the first frame is the initial state, the last the final state (x, y) -> (y, x)
        _, u_final = stepper.macroscopic(res.state, params)
        u = ds["velocity"].transpose("time_fields", "x", "y", "component").values
        np.testing.assert_array_equal(u[-1], np.asarray(u_final))
        np.testing.assert_array_equal(u[0], np.asarray(stepper.macroscopic(state, params)[1]))
        # solid cells report their wall's velocity: the lid moves, the other walls do not
        lid = ds["velocity"].sel(y=N - 1, x=slice(1, N - 2)).values
        np.testing.assert_array_equal(lid[..., 0], np.float32(0.1))
        np.testing.assert_array_equal(ds["velocity"].sel(y=0).values, 0.0)
        # the flow: energy grows from rest as the lid drags the fluid; mass is conserved
        energy = ds["kinetic_energy"].values
        assert energy[0] == 0 and np.all(np.diff(energy) > 0)
        mass = ds["mass"].values
        np.testing.assert_allclose(mass, (N - 2) ** 2, rtol=1e-5)
        np.testing.assert_array_equal(ds["obstacle_force"].values, 0.0)  # no obstacle


def test_xdmf_sidecar_lists_every_field_frame_with_its_time_and_slab(full_run):
    _, out = full_run
    root = ET.parse(sidecar_path(out)).getroot()
    (series,) = root.findall("./Domain/Grid[@CollectionType='Temporal']")
    frames = series.findall("./Grid")
    assert [float(g.find("Time").get("Value")) for g in frames] == [
        float(t) for t in range(0, N_STEPS + 1, 100)
    ]
    for i, grid in enumerate(frames):
        assert grid.find("Topology").get("Dimensions") == f"1 {N} {N}"
        attrs = {a.get("Name"): a for a in grid.findall("Attribute")}
        assert set(attrs) == {"velocity", "density", "vorticity"}
        assert attrs["velocity"].get("AttributeType") == "Vector"
        slab, source = attrs["velocity"].find("DataItem").findall("DataItem")
        assert slab.text.split()[0] == str(i)  # this frame's hyperslab of the time axis
        assert source.text.strip() == f"{out.name}:/velocity"
        assert source.get("Dimensions") == f"5 {N} {N} 2"


def _assert_same_run(res, out, full, full_out):
    """Final state (every leaf: populations, flags, step) and every dataset bitwise equal."""
    for a, b in zip(jax.tree.leaves(res.state), jax.tree.leaves(full.state), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with h5py.File(out, "r") as f, h5py.File(full_out, "r") as g:
        assert f.attrs["status"] == "finished"
        for name in DATASETS:
            np.testing.assert_array_equal(f[name][:], g[name][:], err_msg=name)
    assert sidecar_path(out).read_text().replace(out.name, "") == sidecar_path(
        full_out
    ).read_text().replace(full_out.name, "")


def test_resume_after_ctrl_c_with_walls_and_a_moving_wall_is_bitwise(full_run, tmp_path):
    full, full_out = full_run
    out = tmp_path / "interrupted.h5"

    def ctrl_c(step, n_frames):
        if step == 2 * CHUNK:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_cavity(out, callback=ctrl_c)
    with h5py.File(out, "r") as f:
        assert f.attrs["status"] == "interrupted"
        assert f["step_fields"][-1] == 2 * CHUNK
    with h5py.File(checkpoint_path(out), "r") as ck:
        assert int(ck.attrs["step"]) == 2 * CHUNK
    res = run_cavity(out, resume=True)
    assert res.state.flags is not None and int(res.state.flags.max()) == 3  # the lid's id
    _assert_same_run(res, out, full, full_out)


def test_full_disk_during_a_field_append_keeps_whole_chunks_and_resumes_bitwise(
    full_run, tmp_path, monkeypatch
):
    """ENOSPC injected into h5py in the middle of the third chunk's append: the run stops with
    StoreWriteError, the file (and its sidecar) hold exactly the two whole chunks before, and
    resume, once writes succeed again, finishes bitwise equal to the uninterrupted run."""
    full, full_out = full_run
    out = tmp_path / "full_disk.h5"
    real, calls = h5py.Dataset.__setitem__, {"n": 0, "fail_from": None}

    def setitem(ds, key, value):
        calls["n"] += 1
        if calls["fail_from"] is not None and calls["n"] >= calls["fail_from"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(ds, key, value)

    def arm(step, n_frames):  # after chunk 2 is on disk: fail a few writes into the next append
        if step == 2 * CHUNK:
            calls["fail_from"] = calls["n"] + 5

    monkeypatch.setattr(h5py.Dataset, "__setitem__", setitem)
    with pytest.raises(StoreWriteError, match="No space left on device"):
        run_cavity(out, callback=arm)
    monkeypatch.undo()
    with h5py.File(out, "r") as f, h5py.File(full_out, "r") as g:
        assert f.attrs["status"].startswith("failed: No space left on device")
        assert list(f["step_fields"][:]) == [0, CHUNK, 2 * CHUNK]  # whole chunks only
        for name in DATASETS:
            n = len(f[name])
            np.testing.assert_array_equal(f[name][:], g[name][:n], err_msg=name)
    root = ET.parse(sidecar_path(out)).getroot()
    assert len(root.findall("./Domain/Grid/Grid")) == 3  # only the frames in the file
    _assert_same_run(run_cavity(out, resume=True), out, full, full_out)


def test_sigterm_checkpoints_at_the_current_chunk_and_resumes_bitwise(full_run, tmp_path):
    full, full_out = full_run
    out = tmp_path / "sigterm.h5"

    def term(step, n_frames):
        if step == 2 * CHUNK:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(RunInterrupted) as info:
        run_cavity(out, callback=term)
    assert info.value.signum == signal.SIGTERM and info.value.exit_code == 143
    with h5py.File(checkpoint_path(out), "r") as ck:
        assert int(ck.attrs["step"]) == 2 * CHUNK
    _assert_same_run(run_cavity(out, resume=True), out, full, full_out)


def test_second_writer_on_a_field_file_is_refused_and_the_file_is_untouched(full_run, tmp_path):
    _, full_out = full_run
    out = tmp_path / "locked.h5"
    out.write_bytes(full_out.read_bytes())
    before = out.read_bytes()
    with WriterLock(out):
        with pytest.raises(WriterLockedError, match=f"PID {os.getpid()}"):
            run_cavity(out, overwrite=True)
        with pytest.raises(WriterLockedError):
            run_cavity(out, resume=True)
    assert out.read_bytes() == before


@pytest.mark.slow  # a second process: JAX start-up and the chunk's compilation again
def test_resume_after_sigkill_of_worker_is_bitwise(full_run, tmp_path):
    full, full_out = full_run
    out = tmp_path / "killed.h5"
    proc = spawn(WORKER, out, "--hold-at", 2 * CHUNK, stdin=subprocess.PIPE)
    signal_when(proc, lambda line: line == f"chunk {2 * CHUNK}", sig=signal.SIGKILL)
    with h5py.File(out, "r") as f:
        assert f.attrs["status"] == "running"  # killed: no chance to mark it
    with h5py.File(checkpoint_path(out), "r") as ck:
        assert int(ck.attrs["step"]) == 2 * CHUNK
    res = run_cavity(out, resume=True)
    _assert_same_run(res, out, full, full_out)
