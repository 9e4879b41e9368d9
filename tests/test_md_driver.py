"""simkit.md through the run driver: H5MD output (particles at the trajectory rate, thermo
observables at their own rate) compared with the simulation's frames, recovery from a
neighbor-list overflow, and resume after an interruption (Ctrl-C in process, SIGKILL of a
worker) including a checkpoint whose neighbor list has grown.

One system for the default tests (256 particles, all-pairs list build, see
`_md_common.driver_system`), so the driver's chunk program is compiled once per capacity; the
cell-list build's two capacities (neighbors, particles per cell) are grown in a slow test."""

import signal
import sys
from pathlib import Path

import h5py
import jax
import numpy as np
import pytest

from simkit.io import checkpoint_path

sys.path.insert(0, str(Path(__file__).parent))
from _md_common import (
    DRIVER_CHUNK,
    DRIVER_STEPS,
    driver_system,
    run_driver,
)
from _procs import signal_when, spawn

WORKER = Path(__file__).parent / "_md_worker.py"


def _particles(f):
    """The file's one particle group (its name is the writer's choice)."""
    (name,) = f["particles"]
    return f"particles/{name}"


@pytest.fixture(scope="module")
def system():
    return driver_system()


@pytest.fixture(scope="module")
def tight_run(system, tmp_path_factory):
    """The uninterrupted run from tight capacities, written to H5MD."""
    stepper, tight, _, params = system
    out = tmp_path_factory.mktemp("md") / "tight.h5"
    return run_driver(stepper, tight, params, out), out


@pytest.fixture(scope="module")
def ample_run(system, tight_run):
    """The same run, in memory, started with the capacities the tight run grew to."""
    stepper, tight, _, params = system
    grown = tight_run[0].state.neighbors
    state = stepper.init(
        tight.positions,
        params,
        tight.velocities,
        capacity=grown.capacity,
        cell_capacity=grown.cell_capacity,
    )
    return run_driver(stepper, state, params, None)


def test_driver_recovers_from_neighbor_list_overflow_and_frames_equal_ample_capacity_run(
    system, tight_run, ample_run
):
    tight = system[1]
    res, out = tight_run
    assert not bool(tight.neighbors.overflow)
    assert res.chunks_recomputed > 0
    grown = res.state.neighbors
    assert grown.capacity > tight.neighbors.capacity
    assert not bool(grown.overflow)
    _assert_frames_equal_ample_run(res, out, ample_run)


def _assert_frames_equal_ample_run(res, out, ample_run):
    # The overflowing first chunk is recomputed from step 0 with the grown list, which is then
    # the very list an ample run started with those capacities builds: same shapes, same
    # compiled chunk, same summation order, so every saved frame is bitwise equal.
    assert res.chunks_recomputed == 1
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(
            f[f"{_particles(f)}/position/value"][:], ample_run.frames["position"]
        )
        np.testing.assert_array_equal(
            f[f"{_particles(f)}/velocity/value"][:], ample_run.frames["velocity"]
        )
        # from frame 1 on; frame 0 is the initial state observed with each run's own initial
        # list, whose row sums differ in length (capacity): float32 rounding, ~1 ulp.
        e = f["observables/total_energy/value"][:]
        np.testing.assert_array_equal(e[1:], ample_run.frames["total_energy"][1:])
        np.testing.assert_allclose(e[0], ample_run.frames["total_energy"][0], rtol=1e-6)
    np.testing.assert_array_equal(
        np.asarray(res.state.positions), np.asarray(ample_run.state.positions)
    )


def test_h5md_file_holds_the_simulation_frames_at_each_groups_rate(system, tight_run, ample_run):
    stepper, tight, _, _ = system
    res, out = tight_run
    frames = ample_run.frames
    n, dim = tight.positions.shape
    with h5py.File(out, "r") as f:
        assert f.attrs["status"] == "finished"
        pos = f[f"{_particles(f)}/position"]
        np.testing.assert_array_equal(pos["step"][:], np.arange(0, DRIVER_STEPS + 1, 50))
        np.testing.assert_allclose(
            pos["time"][:], np.arange(0, DRIVER_STEPS + 1, 50) * 0.005, rtol=1e-6
        )
        assert pos["value"].shape == (DRIVER_STEPS // 50 + 1, n, dim)
        np.testing.assert_array_equal(pos["value"][0], np.asarray(tight.positions))
        np.testing.assert_array_equal(
            f[f"{_particles(f)}/velocity/value"][0], np.asarray(tight.velocities)
        )
        np.testing.assert_array_equal(f[f"{_particles(f)}/image/value"][:], frames["image"])
        np.testing.assert_array_equal(
            f[f"{_particles(f)}/box/edges/value"][-1], np.asarray(stepper.box)
        )
        boundary = f[f"{_particles(f)}/box"].attrs["boundary"]
        assert [b.decode() if isinstance(b, bytes) else str(b) for b in boundary] == [
            "periodic"
        ] * 3
        for name in (
            "kinetic_energy",
            "potential_energy",
            "total_energy",
            "temperature",
            "pressure",
            "msd",
        ):
            obs = f[f"observables/{name}"]
            np.testing.assert_array_equal(obs["step"][:], np.arange(0, DRIVER_STEPS + 1, 10))
            # frame 0: the tight initial list vs the ample one, float32 rounding (see above)
            np.testing.assert_array_equal(obs["value"][1:], frames[name][1:])
            np.testing.assert_allclose(obs["value"][0], frames[name][0], rtol=1e-6)
        np.testing.assert_array_equal(np.asarray(res.state.positions), pos["value"][-1])


def test_h5md_file_opens_in_mdanalysis_with_the_simulation_frames(system, tight_run, ample_run):
    mda = pytest.importorskip("MDAnalysis")
    stepper, tight, _, _ = system
    _, out = tight_run
    n = tight.positions.shape[0]
    u = mda.Universe(
        str(out), format="H5MD", topology_format="MINIMAL", n_atoms=n, convert_units=False
    )
    assert len(u.trajectory) == DRIVER_STEPS // 50 + 1
    for i, ts in enumerate(u.trajectory):
        np.testing.assert_allclose(ts.positions, ample_run.frames["position"][i], rtol=1e-6)
        np.testing.assert_allclose(ts.velocities, ample_run.frames["velocity"][i], rtol=1e-6)
        np.testing.assert_allclose(ts.dimensions[:3], stepper.box, rtol=1e-6)
        assert ts.time == pytest.approx(i * 50 * 0.005)


def _assert_same_file_data(a, b):
    with h5py.File(a, "r") as f, h5py.File(b, "r") as g:
        for name in (
            f"{_particles(f)}/position/value",
            f"{_particles(f)}/velocity/value",
            f"{_particles(f)}/position/step",
            "observables/total_energy/value",
            "observables/msd/step",
        ):
            np.testing.assert_array_equal(f[name][:], g[name][:])
        assert f.attrs["status"] == "finished"


def test_resume_after_ctrl_c_with_grown_neighbor_list_is_bitwise(system, tight_run, tmp_path):
    stepper, tight, _, params = system
    full, full_out = tight_run
    part = tmp_path / "part.h5"

    def ctrl_c(step, n_frames):
        if step == 2 * DRIVER_CHUNK:  # after the overflow and grow of the first chunk
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_driver(stepper, tight, params, part, callback=ctrl_c)
    with h5py.File(checkpoint_path(part), "r") as ck:
        assert int(ck.attrs["step"]) == 2 * DRIVER_CHUNK
    # The checkpoint holds the grown list; the template (the tight initial state) does not:
    # the stepper's `resizable` hook lets the larger arrays in.
    res = run_driver(stepper, tight, params, part, resume=True)
    assert res.state.neighbors.capacity == full.state.neighbors.capacity > tight.neighbors.capacity
    for a, b in zip(jax.tree.leaves(res.state), jax.tree.leaves(full.state), strict=False):
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    _assert_same_file_data(part, full_out)


@pytest.mark.slow  # a second process: JAX start-up, initialisation and compilation again
def test_resume_after_sigkill_of_worker_with_grown_neighbor_list_is_bitwise(
    system, tight_run, tmp_path
):
    stepper, tight, _, params = system
    full, full_out = tight_run
    out = tmp_path / "killed.h5"
    proc = spawn(WORKER, out)
    signal_when(proc, lambda line: line == f"chunk {2 * DRIVER_CHUNK}", sig=signal.SIGKILL)
    with h5py.File(out, "r") as f:
        assert f.attrs["status"] == "running"  # killed: no chance to mark it
    res = run_driver(stepper, tight, params, out, resume=True)
    np.testing.assert_array_equal(np.asarray(res.state.positions), np.asarray(full.state.positions))
    np.testing.assert_array_equal(
        np.asarray(res.state.velocities), np.asarray(full.state.velocities)
    )
    _assert_same_file_data(out, full_out)


@pytest.mark.slow  # the cell-list build at two more capacities: several more compilations
def test_driver_recovers_from_neighbor_and_cell_capacity_overflow_on_the_cell_path(tmp_path):
    stepper, tight, _, params = driver_system(cells=True)
    assert stepper.grid is not None
    res = run_driver(stepper, tight, params, tmp_path / "cells.h5")
    grown = res.state.neighbors
    assert res.chunks_recomputed > 0 and not bool(grown.overflow)
    assert grown.capacity > tight.neighbors.capacity
    assert grown.cell_capacity > tight.neighbors.cell_capacity
    state = stepper.init(
        tight.positions,
        params,
        tight.velocities,
        capacity=grown.capacity,
        cell_capacity=grown.cell_capacity,
    )
    _assert_frames_equal_ample_run(
        res, tmp_path / "cells.h5", run_driver(stepper, state, params, None)
    )
