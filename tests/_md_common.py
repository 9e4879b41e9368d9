"""Shared helpers of the MD tests: independent numpy references (pair sums, neighbor pairs),
cached jitted trajectories, and block averages for statistical tolerances."""

from __future__ import annotations

import functools

import jax
import numpy as np

from simkit import md
from simkit.run import simulate


def min_image(d: np.ndarray, box) -> np.ndarray:
    """Minimum-image displacement on the host (float64)."""
    if box is None:
        return d
    b = np.asarray(box, np.float64)
    return d - b * np.round(d / b)


def lj_reference(positions, box, epsilon=1.0, sigma=1.0, cutoff=2.5, shift="none", species=None):
    """Lennard-Jones energy and forces by the direct O(N^2) pair sum in float64 numpy, from the
    textbook formulas (Allen & Tildesley 2017, eqs. 1.6 and 2.136-2.137), written out here
    independently of simkit. `epsilon`/`sigma` are scalars or (S, S) tables indexed by
    `species`. Returns (U, F (N, D), W) with W = sum over pairs r_ij . F_ij."""
    x = np.asarray(positions, np.float64)
    n = len(x)
    sp = np.zeros(n, int) if species is None else np.asarray(species)
    eps = np.broadcast_to(np.asarray(epsilon, np.float64), (sp.max() + 1,) * 2)[sp[:, None], sp]
    sig = np.broadcast_to(np.asarray(sigma, np.float64), (sp.max() + 1,) * 2)[sp[:, None], sp]
    d = min_image(x[:, None, :] - x[None, :, :], box)
    r = np.sqrt(np.sum(d * d, -1))
    np.fill_diagonal(r, np.inf)
    inside = r < cutoff
    rs = np.where(inside, r, cutoff)

    def u(r):
        s6 = (sig / r) ** 6
        return 4 * eps * (s6 * s6 - s6)

    def du(r):  # dU/dr
        s6 = (sig / r) ** 6
        return -24 * eps * (2 * s6 * s6 - s6) / r

    pair_u = u(rs)
    pair_du = du(rs)
    if shift in ("energy", "force"):
        pair_u = pair_u - u(np.full_like(rs, cutoff))
    if shift == "force":
        pair_u = pair_u - du(np.full_like(rs, cutoff)) * (rs - cutoff)
        pair_du = pair_du - du(np.full_like(rs, cutoff))
    pair_u = np.where(inside, pair_u, 0.0)
    pair_du = np.where(inside, pair_du, 0.0)
    energy = 0.5 * pair_u.sum()
    # F_i = -sum_j dU/dr * (r_i - r_j) / r
    coef = np.where(inside, -pair_du / np.where(inside, r, 1.0), 0.0)
    forces = np.sum(coef[:, :, None] * d, axis=1)
    virial = 0.5 * np.sum(-pair_du * np.where(inside, r, 0.0))
    return energy, forces, virial


def pairs_of(idx) -> set[tuple[int, int]]:
    """The (i, j) pairs of a full neighbor list (empty slots hold N)."""
    idx = np.asarray(idx)
    n = idx.shape[0]
    i, k = np.nonzero(idx < n)
    return set(zip(i.tolist(), idx[i, k].tolist(), strict=False))


def reference_pairs(positions, box, r) -> set[tuple[int, int]]:
    return set(map(tuple, md.brute_force_pairs(positions, box, r).tolist()))


def pair_distances(positions, box, pairs) -> np.ndarray:
    x = np.asarray(positions, np.float64)
    p = np.asarray(sorted(pairs), int).reshape(-1, 2)
    d = min_image(x[p[:, 0]] - x[p[:, 1]], box)
    return np.sqrt(np.sum(d * d, -1))


@functools.cache
def trajectory(stepper, n_steps: int, save_every: tuple[tuple[str, int], ...] | int):
    """A jitted `simulate(stepper, ., ., n_steps, save_every)` (cached: one compile per
    configuration and shapes). `save_every` is an int or a tuple of (group, rate) items."""
    rates = save_every if isinstance(save_every, int) else dict(save_every)
    return jax.jit(lambda state, params: simulate(stepper, state, params, n_steps, rates))


def block_mean_se(x, n_blocks: int = 10) -> tuple[float, float]:
    """Mean of a time series and its standard error from `n_blocks` block means (Flyvbjerg &
    Petersen, J. Chem. Phys. 91, 461 (1989)); blocks longer than the correlation time make
    the block means nearly independent."""
    x = np.asarray(x, np.float64)
    m = len(x) // n_blocks
    blocks = x[: m * n_blocks].reshape(n_blocks, m).mean(1)
    return float(x.mean()), float(blocks.std(ddof=1) / np.sqrt(n_blocks))


# --------------------------------------------------------------- the driver tests' system

DRIVER_RATES = (("thermo", 10), ("trajectory", 50))
DRIVER_STEPS, DRIVER_CHUNK = 400, 100


def driver_system(cells: bool = False):
    """(stepper, tight_state, ample_state, params) for LJ particles from an fcc lattice at
    kT = 1.44: 256 at rho 0.8442 (all-pairs build), or with `cells` 500 at rho 0.7 (cell-list
    build, 3 x 3 x 3 cells). `tight_state` has neighbor-list capacities equal to the lattice's
    exact needs (largest row, fullest cell), so the first rebuild in thermal motion overflows;
    `ample_state` has the default (estimated) capacities."""
    positions, box = (
        md.lattice("fcc", 5, density=0.7) if cells else md.lattice("fcc", 4, density=0.8442)
    )
    lj = md.LennardJones(cutoff=2.5, shift="energy")
    params = lj.params()
    stepper = md.VelocityVerlet(lj, box=box, dt=0.005, skin=0.3)
    v = md.maxwell_boltzmann(jax.random.key(11), positions.shape, kT=1.44)
    ample = stepper.init(positions, params, v)
    tight = stepper.init(
        positions,
        params,
        v,
        capacity=int(ample.neighbors.max_neighbors),
        cell_capacity=int(ample.neighbors.max_occupancy),
    )
    return stepper, tight, ample, params


def run_driver(stepper, state, params, out, **kw):
    from simkit.io import H5MDStore
    from simkit.run import run

    kw = {
        "n_steps": DRIVER_STEPS,
        "save_every": dict(DRIVER_RATES),
        "chunk_steps": DRIVER_CHUNK,
        "progress": False,
        "checkpoint_interval": 0,
        **kw,
    }
    if out is not None:
        kw.update(store_type=H5MDStore, store_options=stepper.h5md_options())
    return run(stepper, state, params, out=out, **kw)
