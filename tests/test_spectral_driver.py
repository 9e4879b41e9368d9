"""simkit.fluids.spectral through the run driver: `simkit.run.run` with `FieldStore` writes HDF5
that xarray opens with the grid's dims and coordinates (x, y, shells k) and an XDMF sidecar that
VTK reads frame by frame; the frames are `simulate`'s; a run interrupted in process (Ctrl-C,
SIGTERM), killed (SIGKILL of a worker) or stopped by a full disk resumes from its checkpoint,
whose complex spectral state round-trips exactly, to a final state and file bitwise equal to an
uninterrupted run; a second writer is refused; a run that blows up names the step and keeps
every earlier frame.

One stepper for all (`_spectral_worker.kolmogorov`: Kolmogorov flow on 32 x 32, float32, 400
steps in chunks of 100, fields every 100, diagnostics every 10, spectra every 50), so the
driver's chunk program is compiled once in this process (and once more in the worker); the
blow-up run only changes parameter values (array leaves), not the compiled chunk."""

import errno
import json
import os
import shutil
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

from simkit.fluids import spectral as sp
from simkit.io import (
    FieldStore,
    StoreWriteError,
    WriterLock,
    WriterLockedError,
    checkpoint_path,
    load_checkpoint,
    save_checkpoint,
    sidecar_path,
)
from simkit.run import RunInterrupted, SimulationBlowUp, run, simulate

sys.path.insert(0, str(Path(__file__).parent))
from _procs import signal_when, spawn
from _spectral_worker import CHUNK, DT, N_STEPS, SAVE_EVERY, N, kolmogorov, run_kolmogorov

WORKER = Path(__file__).parent / "_spectral_worker.py"
QUANTITIES = (
    "velocity",
    "vorticity",
    "energy",
    "enstrophy",
    "dissipation",
    "injection",
    "cfl",
    "energy_spectrum",
)
DATASETS = QUANTITIES + tuple(
    f"{a}_{g}" for g in ("fields", "diagnostics", "spectrum") for a in ("step", "time")
)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """The uninterrupted run, written to a FieldStore."""
    out = tmp_path_factory.mktemp("spectral") / "kolmogorov.h5"
    return run_kolmogorov(out), out


def test_field_file_opens_in_xarray_with_named_dims_and_the_simulate_frames(full_run):
    res, out = full_run
    ns, state, params = kolmogorov()
    assert res.steps_done == N_STEPS
    assert res.frames_per_group == {"fields": 5, "diagnostics": 41, "spectrum": 9}
    k = sp.shell_wavenumbers(ns.grid)
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        assert ds.attrs["status"] == "finished"
        assert ds["velocity"].dims == ("time_fields", "y", "x", "component")
        assert ds["vorticity"].dims == ("time_fields", "y", "x")
        assert ds["energy_spectrum"].dims == ("time_spectrum", "k")
        for q in ("energy", "enstrophy", "dissipation", "injection", "cfl"):
            assert ds[q].dims == ("time_diagnostics",)
        x, y = ns.grid.points()  # nodes from 0: x_i = i 2 pi / 32
        np.testing.assert_array_equal(ds["x"].values, x)
        np.testing.assert_array_equal(ds["y"].values, y)
        np.testing.assert_array_equal(ds["k"].values, k)
        assert list(ds["component"].values) == ["x", "y"]  # (u, v) along x and y
        np.testing.assert_allclose(ds["time_fields"].values, np.arange(0, 401, 100) * DT, rtol=1e-6)
        np.testing.assert_allclose(
            ds["time_spectrum"].values, np.arange(0, 401, 50) * DT, rtol=1e-6
        )
        np.testing.assert_array_equal(ds["step_diagnostics"].values, np.arange(0, 401, 10))
        assert ds["velocity"].dtype == ds["energy_spectrum"].dtype == np.float32  # not upcast
        frames = {q: ds[q].values for q in QUANTITIES}
        u = ds["velocity"].transpose("time_fields", "x", "y", "component").values
        w = ds["vorticity"].transpose("time_fields", "x", "y").values
    # Frame 0 is the initial state's observation, the others are those of `simulate` on the
    # same stepper, state and params: bitwise (the same step program, run in 400 steps of a
    # scan instead of four chunks of 100; measured identical on XLA:CPU).
    first = ns.observe(state, params)
    _, sim = jax.jit(lambda s, p: simulate(ns, s, p, N_STEPS, SAVE_EVERY))(state, params)
    np.testing.assert_array_equal(u[0], np.asarray(first["velocity"]))
    np.testing.assert_array_equal(u[1:], np.asarray(sim["velocity"]))
    np.testing.assert_array_equal(w[1:], np.asarray(sim["vorticity"]))
    for q in QUANTITIES[2:]:
        np.testing.assert_array_equal(frames[q][1:], np.asarray(sim[q]), err_msg=q)
    np.testing.assert_array_equal(u[-1], np.asarray(ns.grid.velocity(res.state.vorticity_hat)))
    # The file's own consistency: sum(E(k)) dk is the energy (Parseval; float32 sums: rtol 1e-5)
    # at the spectrum frames (every 5th diagnostics frame), and <u> is zero.
    dk = k[1] - k[0]
    np.testing.assert_allclose(
        frames["energy_spectrum"].sum(axis=1) * dk, frames["energy"][::5], rtol=1e-5
    )
    np.testing.assert_allclose(u.mean(axis=(1, 2)), 0.0, atol=1e-6)
    # The flow: forced at Re = 6.25 > sqrt(2), it leaves the initial random field for a
    # forced state; energy stays bounded (A / (nu k_f^2) = 1.25 is the laminar amplitude) and the
    # CFL number stays well below the limit.
    assert np.all(np.isfinite(frames["energy"])) and frames["energy"].max() < 1.0
    assert frames["cfl"].max() < 0.2


def _read_vtk(xdmf: Path):
    """(times, [{array name: values in VTK point order}]) of every frame, via vtkXdmfReader."""
    vtk = pytest.importorskip("vtk")
    from vtkmodules.util.numpy_support import vtk_to_numpy

    reader = vtk.vtkXdmfReader()
    reader.SetFileName(str(xdmf))
    errors = []
    reader.AddObserver("ErrorEvent", lambda obj, event: errors.append(event))
    reader.UpdateInformation()
    times = reader.GetOutputInformation(0).Get(vtk.vtkStreamingDemandDrivenPipeline.TIME_STEPS())
    frames = []
    for t in times:
        reader.UpdateTimeStep(t)
        pd = reader.GetOutputDataObject(0).GetPointData()
        frames.append(
            {
                pd.GetArrayName(i): vtk_to_numpy(pd.GetArray(i)).copy()
                for i in range(pd.GetNumberOfArrays())
            }
        )
    assert not errors
    return list(times), frames


def test_xdmf_sidecar_lists_every_field_frame_and_vtk_reads_them(full_run):
    _, out = full_run
    root = ET.parse(sidecar_path(out)).getroot()
    (series,) = root.findall("./Domain/Grid[@CollectionType='Temporal']")
    frames = series.findall("./Grid")
    np.testing.assert_allclose(
        [float(g.find("Time").get("Value")) for g in frames],
        np.arange(0, N_STEPS + 1, 100) * DT,
        rtol=1e-12,
    )
    for i, grid in enumerate(frames):
        assert grid.find("Topology").get("Dimensions") == f"1 {N} {N}"
        attrs = {a.get("Name"): a for a in grid.findall("Attribute")}
        assert set(attrs) == {"velocity", "vorticity"}  # the field group only
        assert attrs["velocity"].get("AttributeType") == "Vector"
        slab, source = attrs["velocity"].find("DataItem").findall("DataItem")
        assert slab.text.split()[0] == str(i)  # this frame's hyperslab of the time axis
        assert source.text.strip() == f"{out.name}:/velocity"
        assert source.get("Dimensions") == f"5 {N} {N} 2"
    times, vtk_frames = _read_vtk(sidecar_path(out))
    np.testing.assert_allclose(times, np.arange(0, N_STEPS + 1, 100) * DT, rtol=1e-12)
    with h5py.File(out, "r") as f:
        w = f["vorticity"][:]  # (time, y, x): VTK's point order is x fastest, i.e. this ravel
        u = f["velocity"][:]
    for i, frame in enumerate(vtk_frames):
        np.testing.assert_array_equal(frame["vorticity"], w[i].ravel())
        np.testing.assert_array_equal(frame["velocity"][:, :2], u[i].reshape(-1, 2))


@pytest.mark.slow  # ParaView's start-up (~10 s)
@pytest.mark.skipif(
    shutil.which("pvpython") is None,
    reason="ParaView's pvpython is not installed (Debian: apt-get install "
    "paraview python3-paraview)",
)
def test_paraview_opens_the_sidecar_with_its_xdmf_reader(full_run):
    _, out = full_run
    r = subprocess.run(
        [
            "pvpython",
            "--force-offscreen-rendering",
            str(Path(__file__).parent / "_paraview_read.py"),
            str(sidecar_path(out)),
            "vorticity",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    seen = json.loads(r.stdout.strip().splitlines()[-1])
    # ParaView passes times through float32 (rtol 1e-6); nodes x_i = i 2 pi / 32 from 0, z = 0
    np.testing.assert_allclose(seen["times"], np.arange(0, N_STEPS + 1, 100) * DT, rtol=1e-6)
    h = 2 * np.pi / N
    np.testing.assert_allclose(
        seen["bounds"], [0.0, (N - 1) * h, 0.0, (N - 1) * h, 0.0, 0.0], rtol=1e-12, atol=1e-12
    )
    with h5py.File(out, "r") as f:
        last = f["vorticity"][-1]  # (y, x): ParaView's point order is x fastest
    np.testing.assert_array_equal(seen["values"], last.ravel().astype(float))


def _assert_same_run(res, out, full, full_out):
    """Final state (vorticity_hat and step) and every dataset and the sidecar bitwise equal."""
    for a, b in zip(jax.tree.leaves(res.state), jax.tree.leaves(full.state), strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with h5py.File(out, "r") as f, h5py.File(full_out, "r") as g:
        assert f.attrs["status"] == "finished"
        for name in DATASETS:
            np.testing.assert_array_equal(f[name][:], g[name][:], err_msg=name)
    assert sidecar_path(out).read_text().replace(out.name, "") == sidecar_path(
        full_out
    ).read_text().replace(full_out.name, "")


def test_resume_after_ctrl_c_is_bitwise_and_the_complex_checkpoint_is_exact(full_run, tmp_path):
    full, full_out = full_run
    out = tmp_path / "interrupted.h5"

    def ctrl_c(step, n_frames):
        if step == 2 * CHUNK:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_kolmogorov(out, callback=ctrl_c)
    with h5py.File(out, "r") as f:
        assert f.attrs["status"] == "interrupted"
        assert f["step_fields"][-1] == 2 * CHUNK
    # The checkpoint holds the complex64 spectral vorticity at step 200 exactly: that of a run
    # that stops there (written to a file too, so that the compiled chunk is the same).
    ns, state, params = kolmogorov()
    at_200 = run(
        ns,
        state,
        params,
        n_steps=2 * CHUNK,
        save_every=SAVE_EVERY,
        chunk_steps=CHUNK,
        out=tmp_path / "to_200.h5",
        store_type=FieldStore,
        progress=False,
    ).state
    with h5py.File(checkpoint_path(out), "r") as ck:
        assert int(ck.attrs["step"]) == 2 * CHUNK
        fingerprint = ck.attrs["fingerprint"]
        stored = ck["leaf_0000"][()]
    assert stored.dtype == np.complex64 and stored.shape == (N, N // 2 + 1)
    np.testing.assert_array_equal(stored, np.asarray(at_200.vorticity_hat))
    loaded, step, _ = load_checkpoint(checkpoint_path(out), state, fingerprint=fingerprint)
    assert step == 2 * CHUNK and loaded.vorticity_hat.dtype == np.complex64
    np.testing.assert_array_equal(
        np.asarray(loaded.vorticity_hat), np.asarray(at_200.vorticity_hat)
    )
    res = run_kolmogorov(out, resume=True)
    _assert_same_run(res, out, full, full_out)


def test_float64_complex128_state_round_trips_through_a_checkpoint_exactly(tmp_path):
    # complex128 with values at full precision (no float32-representable shortcut)
    ns = sp.NavierStokes2D((N, N), DT, forcing=sp.Kolmogorov(4), dtype="float64")
    params = ns.params(0.05, forcing_amplitude=1.0)
    state = ns.init(params, vorticity=sp.random_vorticity(ns.grid, seed=3))
    assert state.vorticity_hat.dtype == np.complex128
    path = tmp_path / "state.h5.ckpt"
    save_checkpoint(path, state, step=7, n_frames={"fields": 1}, fingerprint="f64")
    loaded, step, n_frames = load_checkpoint(path, state, fingerprint="f64")
    assert (step, n_frames) == (7, {"fields": 1})
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(state), strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


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
        run_kolmogorov(out, callback=arm)
    monkeypatch.undo()
    with h5py.File(out, "r") as f, h5py.File(full_out, "r") as g:
        assert f.attrs["status"].startswith("failed: No space left on device")
        assert list(f["step_fields"][:]) == [0, CHUNK, 2 * CHUNK]  # whole chunks only
        assert list(f["step_spectrum"][:]) == list(range(0, 2 * CHUNK + 1, 50))
        assert f["step_diagnostics"][-1] == 2 * CHUNK
        for name in DATASETS:
            n = len(f[name])
            np.testing.assert_array_equal(f[name][:], g[name][:n], err_msg=name)
    root = ET.parse(sidecar_path(out)).getroot()
    assert len(root.findall("./Domain/Grid/Grid")) == 3  # only the frames in the file
    _assert_same_run(run_kolmogorov(out, resume=True), out, full, full_out)


def test_sigterm_checkpoints_at_the_current_chunk_and_resumes_bitwise(full_run, tmp_path):
    full, full_out = full_run
    out = tmp_path / "sigterm.h5"

    def term(step, n_frames):
        if step == 2 * CHUNK:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(RunInterrupted) as info:
        run_kolmogorov(out, callback=term)
    assert info.value.signum == signal.SIGTERM and info.value.exit_code == 143
    with h5py.File(checkpoint_path(out), "r") as ck:
        assert int(ck.attrs["step"]) == 2 * CHUNK
    _assert_same_run(run_kolmogorov(out, resume=True), out, full, full_out)


def test_second_writer_on_a_field_file_is_refused_and_the_file_is_untouched(full_run, tmp_path):
    _, full_out = full_run
    out = tmp_path / "locked.h5"
    out.write_bytes(full_out.read_bytes())
    before = out.read_bytes()
    with WriterLock(out):
        with pytest.raises(WriterLockedError, match=f"PID {os.getpid()}"):
            run_kolmogorov(out, overwrite=True)
        with pytest.raises(WriterLockedError):
            run_kolmogorov(out, resume=True)
    assert out.read_bytes() == before


def test_blow_up_names_the_step_with_the_hint_and_keeps_every_earlier_frame(tmp_path):
    # Strong forcing and little viscosity (A = 70, nu = 1e-3: laminar amplitude A / (nu k_f^2)
    # = 4375): the initial field passes init's CFL check (CFL 0.15), then the forcing speeds the
    # flow up and RK4 goes unstable in the second chunk (measured: NaN at step 126, CFL ~3 before).
    ns, state, params = kolmogorov(viscosity=1e-3, forcing_amplitude=70.0)
    assert float(ns.cfl(state)) < 0.5 * sp.MAX_CFL
    kw = {
        "save_every": SAVE_EVERY,
        "chunk_steps": CHUNK,
        "store_type": FieldStore,
        "progress": False,
    }
    out = tmp_path / "blow.h5"
    with pytest.raises(SimulationBlowUp, match=r"NaN/inf at step \d+") as info:
        run(ns, state, params, n_steps=N_STEPS, out=out, **kw)
    bad = info.value.step
    assert CHUNK < bad <= 2 * CHUNK and f"step {bad}" in str(info.value)
    assert info.value.time == pytest.approx(bad * DT)
    assert ns.blow_up_hint() in str(info.value)
    # every frame before the bad step is on disk and finite; the first chunk's frames are those
    # of a run that stops before the blow-up
    ref = run(ns, state, params, n_steps=CHUNK, out=tmp_path / "ref.h5", **kw)
    with h5py.File(out, "r") as f, h5py.File(ref.path, "r") as g:
        assert (
            f.attrs["status"].startswith("failed: non-finite")
            and f"step {bad}" in f.attrs["status"]
        )
        np.testing.assert_array_equal(f["step_diagnostics"][:], np.arange(0, bad, 10))
        np.testing.assert_array_equal(f["step_spectrum"][:], np.arange(0, bad, 50))
        np.testing.assert_array_equal(f["step_fields"][:], np.arange(0, bad, 100))
        for q in QUANTITIES:
            assert np.all(np.isfinite(f[q][:])), q
            n = len(g[q])
            np.testing.assert_array_equal(f[q][:n], g[q][:], err_msg=q)
        assert f["cfl"][0] < 0.2 and f["cfl"][:].max() > 1.35  # it did speed up past the limit
    root = ET.parse(sidecar_path(out)).getroot()
    assert len(root.findall("./Domain/Grid/Grid")) == 2  # frames 0 and 100


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
    res = run_kolmogorov(out, resume=True)
    _assert_same_run(res, out, full, full_out)
