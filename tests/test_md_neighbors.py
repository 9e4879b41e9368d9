"""simkit.md neighbor lists: the list equals the brute-force pair set (uniform, dense fcc,
clustered; 2D and 3D; all-pairs path, cell path, free space), the overflow flag, forces of a
running stepper against the direct pair sum, and the skin/2 rebuild rule."""

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simkit import md

sys.path.insert(0, str(Path(__file__).parent))
from _md_common import (
    lj_reference,
    min_image,
    pair_distances,
    pairs_of,
    reference_pairs,
    trajectory,
)

CUTOFF, SKIN = 2.5, 0.3
R_LIST = CUTOFF + SKIN
_build = jax.jit(md.build_neighbor_list, static_argnums=(1, 2, 3, 4, 5))


def _grid(box):
    """The cell grid a stepper with this box uses (None: the all-pairs build)."""
    return (
        md.VelocityVerlet(md.LennardJones(cutoff=CUTOFF), box=box, dt=0.005, skin=SKIN).grid
        if box is not None
        else None
    )


def _uniform(seed, n, box):
    return jnp.asarray(np.random.default_rng(seed).uniform(0, 1, (n, len(box))) * box, jnp.float32)


def _clustered(seed, n, box, n_blobs=6, spread=0.6):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 1, (n_blobs, len(box))) * box
    x = centres[rng.integers(0, n_blobs, n)] + rng.normal(0, spread, (n, len(box)))
    return jnp.asarray(np.mod(x, box), jnp.float32)


def _configs():
    fcc, fcc_box = md.lattice("fcc", 6, density=1.2)
    fcc = np.mod(np.asarray(fcc) + np.random.default_rng(4).normal(0, 0.02, fcc.shape), fcc_box)
    free = _clustered(5, 200, (12.0, 12.0, 12.0)) - 6.0
    return {
        "3d-uniform-all-pairs": (_uniform(0, 200, (6.5,) * 3), (6.5,) * 3),
        "3d-fcc-rho1.2-cells": (jnp.asarray(fcc, jnp.float32), fcc_box),
        "3d-clustered-cells": (_clustered(1, 400, (12.0,) * 3), (12.0,) * 3),
        "3d-clustered-free-space": (free, None),
        "2d-uniform-cells": (_uniform(2, 400, (20.0, 17.0)), (20.0, 17.0)),
        "2d-clustered-all-pairs": (_clustered(3, 150, (7.0, 8.0)), (7.0, 8.0)),
    }


CONFIGS = _configs()


def _host_capacities(x, box, grid):
    """Capacities that certainly suffice: the largest brute-force row, and the largest
    occupancy of the grid's cells (side L / n), each plus a margin."""
    pairs = md.brute_force_pairs(x, box, R_LIST)
    k = int(np.bincount(pairs[:, 0], minlength=len(x)).max()) + 4
    if grid is None:
        return k, 1
    cell = np.floor(np.asarray(x, np.float64) / (np.asarray(box) / np.asarray(grid))).astype(int)
    cell = np.clip(cell, 0, np.asarray(grid) - 1)
    occ = np.unique(cell, axis=0, return_counts=True)[1].max()
    return k, int(occ) + 4


def _assert_list_equals_brute_force(idx, x, box):
    """Set equality with the float64 brute force at r_list, except pairs whose float64
    distance lies within 1e-5 relative of r_list, where float32 rounding of |dr|^2 (a few eps
    of r_list^2) may decide either way."""
    got, ref = pairs_of(idx), reference_pairs(x, box, R_LIST)
    diff = got ^ ref
    if diff:
        r = pair_distances(x, box, diff)
        assert np.all(np.abs(r - R_LIST) < 1e-5 * R_LIST), (
            f"{len(got - ref)} extra and {len(ref - got)} missing pairs, e.g. "
            f"{sorted(diff)[:5]} at r = {r[:5]}"
        )
    rows = np.asarray(idx)
    n = rows.shape[0]
    for i in range(n):  # no duplicates, no self pairs
        row = rows[i][rows[i] < n]
        assert len(np.unique(row)) == len(row) and i not in row
    return ref


@pytest.mark.parametrize("name", list(CONFIGS))
def test_neighbor_list_build_equals_brute_force_pairs(name):
    x, box = CONFIGS[name]
    grid = _grid(box)
    # each configuration exercises the path its name says
    assert (grid is None) == ("all-pairs" in name or "free" in name)
    k, c = _host_capacities(x, box, grid)
    idx, kmax, _, overflow = _build(x, box, grid, R_LIST, k, c)
    assert not bool(overflow)
    ref = _assert_list_equals_brute_force(idx, x, box)
    degree = np.bincount(np.asarray(sorted(ref))[:, 0], minlength=len(x))
    assert abs(int(kmax) - degree.max()) <= 1  # the largest row count it reports
    assert len(ref) > 5 * len(x)  # a non-trivial pair set


def test_neighbor_list_overflow_flag_is_set_exactly_when_capacity_is_too_small():
    x, box = CONFIGS["3d-uniform-all-pairs"]
    degree = np.bincount(md.brute_force_pairs(x, box, R_LIST)[:, 0], minlength=len(x))
    kmax = int(degree.max())
    assert not bool(_build(x, box, None, R_LIST, kmax, 1)[3])  # exactly enough room
    assert bool(_build(x, box, None, R_LIST, kmax - 1, 1)[3])  # one slot short


def test_neighbor_list_overflow_flag_is_set_when_cell_capacity_is_too_small():
    x, box = CONFIGS["3d-fcc-rho1.2-cells"]
    grid = _grid(box)
    k, c = _host_capacities(x, box, grid)
    assert bool(_build(x, box, grid, R_LIST, k, 2)[3])
    assert bool(_build(x, box, grid, R_LIST, 8, c)[3])


# ------------------------------------------------------------------ lists inside a stepper


@pytest.fixture(scope="module")
def lattice_stepper():
    positions, box = md.lattice("fcc", 4, density=0.8442)
    lj = md.LennardJones(cutoff=CUTOFF, shift="energy")
    stepper = md.VelocityVerlet(lj, box=box, dt=0.005, skin=SKIN)
    return stepper, positions, lj.params(), box


def _run_every_step(lattice_stepper, velocities):
    """200 steps saving every step (one compiled program for every test here)."""
    stepper, positions, params, _ = lattice_stepper
    state = stepper.init(positions, params, velocities)
    return trajectory(stepper, 200, 1)(state, params)


@pytest.fixture(scope="module")
def thermal_run(lattice_stepper):
    """256 LJ particles at rho 0.8442 from a lattice at kT = 1.44 (float32), 200 steps."""
    positions = lattice_stepper[1]
    return _run_every_step(
        lattice_stepper, md.maxwell_boltzmann(jax.random.key(3), positions.shape, kT=1.44)
    )


def test_neighbor_list_stepper_forces_equal_brute_force_after_many_steps(
    lattice_stepper, thermal_run
):
    state, _ = thermal_run
    box = lattice_stepper[3]
    assert int(state.neighbors.n_builds) > 5  # many rebuilds happened on the way
    assert not bool(state.neighbors.overflow)
    x = np.asarray(state.positions, np.float64)
    _, f_ref, _ = lj_reference(x, box, shift="energy")
    # float32 row sums of ~80 pair forces, each up to ~100 near contact: rounding
    # K eps max|f| ~ 80 * 6e-8 * 100 = 5e-4; a pair missing from the list would be off by at
    # least |F(rc)| = 0.039. Tolerance 2e-3 separates the two.
    np.testing.assert_allclose(np.asarray(state.forces), f_ref, atol=2e-3)
    # and the current list still holds every pair within the cutoff
    inside = reference_pairs(x, box, CUTOFF)
    assert inside <= pairs_of(state.neighbors.idx)


def test_neighbor_list_not_rebuilt_when_nothing_moves(lattice_stepper):
    # perfect lattice, zero velocity: forces cancel by symmetry, nobody moves, no rebuild
    final, frames = _run_every_step(lattice_stepper, None)
    assert int(final.neighbors.n_builds) == 1
    assert float(np.max(np.abs(frames["position"][-1] - np.asarray(lattice_stepper[1])))) < 1e-4


def test_neighbor_list_rebuilt_exactly_when_a_particle_moved_more_than_half_the_skin(
    lattice_stepper,
):
    positions = lattice_stepper[1]
    # uniform drift 0.7 along x: the lattice stays perfect (zero forces); a particle has moved
    # 0.0035 k after k steps, > skin / 2 = 0.15 first at k = 43: rebuilds at steps 43, 86,
    # 129, 172 -> 1 + 4 builds in 200 steps
    v = jnp.zeros_like(positions).at[:, 0].set(0.7)
    final, _ = _run_every_step(lattice_stepper, v)
    assert int(final.neighbors.n_builds) == 5


def test_neighbor_list_rebuild_count_follows_the_skin_rule_in_thermal_motion(
    lattice_stepper, thermal_run
):
    # replay the rule on the host from the saved positions of every step
    positions, box = lattice_stepper[1], lattice_stepper[3]
    final, frames = thermal_run
    reference, builds = np.asarray(positions, np.float64), 1
    for x in frames["position"]:
        d = min_image(np.asarray(x, np.float64) - reference, box)
        if np.max(np.sum(d * d, -1)) > (SKIN / 2) ** 2:
            reference, builds = np.asarray(x, np.float64), builds + 1
    assert builds > 3
    assert int(final.neighbors.n_builds) == builds
