"""Verlet neighbor lists built from cell lists, with fixed capacity and an overflow flag.

Format (chosen by measurement, see `benchmarks/bench_md.py`): a dense *full* list, one row of
`capacity` neighbor indices per particle (both i->j and j->i stored), empty slots holding `N`.
The force loop is then a gather and a row sum with no scatter, which XLA compiles to one fused
loop on CPU and GPU; a half list halves the pair count but needs a scatter-add of the reaction
forces, which measured slower here.

Build: particles are binned into cells of side >= `cutoff + skin`; each particle's candidates
are the members of its 3^D neighboring cells (periodic), compacted into its row. O(N) work and
memory `N x capacity`. Boxes with fewer than 3 cells along an axis, and free space, use an
O(N^2) blocked all-pairs build instead (small systems only).

The list is rebuilt inside the jitted step only when some particle has moved more than skin / 2
since the last build (then no pair can have come from outside `cutoff + skin` to inside
`cutoff`). Capacities (neighbors per particle, particles per cell) are the shapes of arrays in
the state; an overflow sets a sticky flag, the run driver recomputes the chunk after `grow`.
"""

from __future__ import annotations

import itertools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from .._checks import SimkitInputError
from ._space import displacement, wrap


class NeighborList(eqx.Module):
    """Neighbor list state (a pytree; lives in the MD state).

    Attributes:
        idx: `(N, capacity)` int32 neighbor indices; empty slots hold N.
        reference: `(N, D)` positions at the last build (rebuild test).
        cell_slots: `(cell_capacity,)` int8 zeros; its length is the particles-per-cell capacity.
        max_neighbors: largest neighbor count of a row seen at a build (int32).
        max_occupancy: largest cell occupancy seen at a build (int32).
        overflow: True once a build needed more room than the capacities (sticky): results
            computed since then are wrong and must be recomputed after `grow`.
        n_builds: builds so far (int32), for the rebuild rate.
    """

    idx: Int[Array, "N K"]
    reference: Float[Array, "N D"]
    cell_slots: Int[Array, " C"]
    max_neighbors: Int[Array, ""]
    max_occupancy: Int[Array, ""]
    overflow: Bool[Array, ""]
    n_builds: Int[Array, ""]

    @property
    def capacity(self) -> int:
        return self.idx.shape[-1]

    @property
    def cell_capacity(self) -> int:
        return self.cell_slots.shape[-1]


def cell_grid(box, r_list: float) -> tuple[int, ...] | None:
    """Cells per axis (each side >= r_list), or None when some axis fits fewer than 3 cells or
    the space is free (then the all-pairs build is used)."""
    if box is None:
        return None
    n = tuple(int(math.floor(float(L) / r_list)) for L in box)
    return n if min(n) >= 3 else None


def check_box(box, cutoff: float, skin: float) -> None:
    """Refuse a box shorter than 2 (cutoff + skin) along any axis (the minimum image would miss
    pairs)."""
    if box is None:
        return
    r_list = cutoff + skin
    for axis, L in enumerate(box):
        if not (math.isfinite(L) and L > 0):
            raise SimkitInputError(f"box edge {axis} must be finite and > 0, got {L}.")
        if L < 2 * r_list:
            raise SimkitInputError(
                f"box edge {axis} ({L:.6g}) is shorter than 2 x (cutoff + skin) = {2 * r_list:.6g}"
                f": the minimum image convention would miss interacting pairs. Use a larger box "
                f"(more particles) or a smaller cutoff/skin.")


def estimate_capacities(n: int, box, r_list: float, grid, safety: float = 1.3
                        ) -> tuple[int, int]:
    """(neighbors per particle, particles per cell) from the mean density, with headroom."""
    if box is None:
        return max(8, n), 1
    density = n / float(np.prod(box))
    dim = len(box)
    ball = (math.pi * r_list**2) if dim == 2 else (4.0 / 3.0 * math.pi * r_list**3)
    k = int(math.ceil(density * ball * safety)) + 8
    if grid is None:
        return min(max(k, 8), n), 1
    per_cell = n / float(np.prod(grid))
    c = int(math.ceil(per_cell + 2.0 * math.sqrt(per_cell) + 3))
    return min(k, n), min(c, n)


def _stencil(grid: tuple[int, ...]) -> np.ndarray:
    """For each cell (flat index), the flat indices of its 3^D periodic neighbours (itself
    included): `(n_cells, 3^D)` int32, computed on the host (grid is static)."""
    dim = len(grid)
    coords = np.stack(np.meshgrid(*[np.arange(g) for g in grid], indexing="ij"), -1).reshape(-1, dim)
    offsets = np.array(list(itertools.product((-1, 0, 1), repeat=dim)))
    nb = (coords[:, None, :] + offsets[None, :, :]) % np.array(grid)
    return np.ravel_multi_index(tuple(nb[..., d] for d in range(dim)), grid).astype(np.int32)


def _compact_into(rows, count, cand, mask, capacity, n):
    """Append the masked candidates of each row to `rows` (N, capacity+1) after `count`."""
    pos = count[:, None] + jnp.cumsum(mask, axis=1, dtype=jnp.int32) - 1
    col = jnp.where(mask & (pos < capacity), pos, capacity)  # column `capacity` is a dump slot
    r = jnp.broadcast_to(jnp.arange(rows.shape[0], dtype=jnp.int32)[:, None], col.shape)
    rows = rows.at[r, col].set(jnp.where(mask, cand, n), mode="drop")
    return rows, count + jnp.sum(mask, axis=1, dtype=jnp.int32)


def _squared_distances(xi, xj, box_a):
    """|xi - xj|^2 (minimum image) with coordinates first: xi `(D, ...)`, xj `(D, ...)`.

    Coordinates-first (structure of arrays) keeps every operation a wide elementwise loop; the
    `(..., D)` layout with a reduction over a length-3 axis measured 5x slower on CPU."""
    r2 = 0.0
    for d in range(xi.shape[0]):
        dd = xi[d] - xj[d]
        if box_a is not None:
            dd = dd - box_a[d] * jnp.round(dd / box_a[d])
        r2 = r2 + dd * dd
    return r2


def _build_all_pairs(positions, box_a, rl2, capacity):
    n = positions.shape[0]
    xs = positions.T
    me = jnp.arange(n, dtype=jnp.int32)
    block = min(n, 256)
    n_blocks = -(-n // block)

    def body(carry, b):
        rows, count = carry
        cand = b * block + jnp.arange(block, dtype=jnp.int32)
        cand = jnp.where(cand < n, cand, n)
        r2 = _squared_distances(xs[:, :, None], xs[:, jnp.minimum(cand, n - 1)][:, None, :], box_a)
        mask = (cand[None, :] < n) & (cand[None, :] != me[:, None]) & (r2 < rl2)
        return _compact_into(rows, count, jnp.broadcast_to(cand, mask.shape), mask, capacity,
                             n), None

    rows = jnp.full((n, capacity + 1), n, jnp.int32)
    (rows, count), _ = jax.lax.scan(body, (rows, jnp.zeros(n, jnp.int32)), jnp.arange(n_blocks))
    return rows[:, :capacity], jnp.max(count)


def build(positions: Float[Array, "N D"], box, grid, r_list: float, capacity: int,
          cell_capacity: int) -> tuple[Int[Array, "N K"], Array, Array, Array]:
    """Build a full neighbor list of pairs closer than `r_list`.

    Cell-list path: particles are binned and each cell's members are padded to `cell_capacity`
    slots; a batch of cells at a time, the distances between every member and the members of
    its 3^D neighbor cells are computed as dense arrays, and the hits are compacted into rows
    by a prefix count (two small matrix products: a cumulative sum that XLA's CPU backend runs
    as a matmul far faster than as a scan) and one scatter.

    Returns:
        (idx (N, capacity), largest row count, largest cell occupancy, overflowed)
    """
    n, dim = positions.shape
    rl2 = jnp.asarray(r_list * r_list, positions.dtype)
    box_a = None if box is None else jnp.asarray(box, positions.dtype)
    if grid is None:
        idx, kmax = _build_all_pairs(positions, box_a, rl2, capacity)
        return idx, kmax, jnp.asarray(1, jnp.int32), kmax > capacity

    c_cap = cell_capacity
    grid_a = jnp.asarray(grid, jnp.int32)
    wrapped, _ = wrap(positions, box_a)
    cell = jnp.clip(jnp.floor(wrapped / (box_a / grid_a)).astype(jnp.int32), 0, grid_a - 1)
    flat = cell[:, 0]
    for d in range(1, dim):
        flat = flat * grid[d] + cell[:, d]
    n_cells = int(np.prod(grid))
    order = jnp.argsort(flat).astype(jnp.int32)
    sorted_flat = flat[order]
    cells = jnp.arange(n_cells, dtype=jnp.int32)
    start = jnp.searchsorted(sorted_flat, cells, side="left").astype(jnp.int32)
    occupancy = jnp.searchsorted(sorted_flat, cells, side="right").astype(jnp.int32) - start
    slot = jnp.arange(c_cap, dtype=jnp.int32)
    members = jnp.where(slot[None, :] < occupancy[:, None],
                        order[jnp.minimum(start[:, None] + slot[None, :], n - 1)], n)  # (cells, C)
    cell_x = wrapped.T[:, jnp.minimum(members, n - 1)]  # (D, cells, C)
    stencil = jnp.asarray(_stencil(grid))  # (cells, S)
    n_sten = stencil.shape[1]
    width = n_sten * c_cap
    within_tri = jnp.triu(jnp.ones((c_cap, c_cap), jnp.float32))  # inclusive prefix sum
    block_tri = jnp.triu(jnp.ones((n_sten, n_sten), jnp.float32), 1)  # exclusive prefix sum

    def rows_of(cell_ids):  # (B,) cells -> (B, C, capacity) neighbor rows, (B, C) counts
        b = cell_ids.shape[0]
        mine = members[cell_ids]  # (B, C)
        nbr = members[stencil[cell_ids]]  # (B, S, C)
        xi = cell_x[:, cell_ids][:, :, :, None, None]  # (D, B, C, 1, 1)
        xj = cell_x[:, stencil[cell_ids]][:, :, None, :, :]  # (D, B, 1, S, C)
        r2 = _squared_distances(xi, xj, box_a)  # (B, C, S, C)
        hit = (r2 < rl2) & (nbr[:, None] < n) & (nbr[:, None] != mine[:, :, None, None])
        within = hit.astype(jnp.float32) @ within_tri  # (B, C, S, C)
        before = within[..., -1] @ block_tri  # (B, C, S)
        pos = (within + before[..., None]).astype(jnp.int32).reshape(b, c_cap, width)
        count = pos[..., -1]
        hit = hit.reshape(b, c_cap, width)
        row = jnp.arange(b * c_cap, dtype=jnp.int32).reshape(b, c_cap, 1)
        target = jnp.where(hit & (pos <= capacity), row * capacity + pos - 1, b * c_cap * capacity)
        cand = jnp.broadcast_to(nbr.reshape(b, 1, width), hit.shape)
        out = jnp.full(b * c_cap * capacity, n, jnp.int32).at[target.ravel()].set(
            cand.ravel(), mode="drop")
        return out.reshape(b, c_cap, capacity), count

    batch = max(1, min(n_cells, (1 << 22) // max(1, c_cap * width)))  # ~4M pairs per batch
    pad = (-n_cells) % batch
    ids = jnp.concatenate([cells, jnp.zeros(pad, jnp.int32)]).reshape(-1, batch)
    rows, counts = jax.lax.map(rows_of, ids)
    rows = rows.reshape(-1, c_cap, capacity)[:n_cells]
    counts = counts.reshape(-1, c_cap)[:n_cells]
    rank = jnp.zeros(n, jnp.int32).at[order].set(jnp.arange(n, dtype=jnp.int32) - start[sorted_flat])
    idx = rows[flat, rank]
    kmax = jnp.max(jnp.where(slot[None, :] < occupancy[:, None], counts, 0))
    max_occ = jnp.max(occupancy)
    return idx, kmax, max_occ, (kmax > capacity) | (max_occ > c_cap)


def allocate(positions, box, grid, r_list: float, capacity: int, cell_capacity: int
             ) -> NeighborList:
    """A fresh list built at `positions` with the given capacities."""
    idx, k, occ, over = build(positions, box, grid, r_list, capacity, cell_capacity)
    return NeighborList(idx=idx, reference=positions, cell_slots=jnp.zeros(cell_capacity, jnp.int8),
                        max_neighbors=k, max_occupancy=occ, overflow=over,
                        n_builds=jnp.asarray(1, jnp.int32))


def needs_rebuild(nbrs: NeighborList, positions, box, skin: float) -> Bool[Array, ""]:
    """True if some particle moved more than skin / 2 since the last build."""
    box_a = None if box is None else jnp.asarray(box, positions.dtype)
    d = displacement(positions, nbrs.reference, box_a)
    return jnp.max(jnp.sum(d * d, -1)) > jnp.asarray((0.5 * skin) ** 2, positions.dtype)


def update(nbrs: NeighborList, positions, box, grid, r_list: float, skin: float
           ) -> NeighborList:
    """Rebuild the list if needed (decided on device, inside jit), else return it unchanged."""

    def rebuild(nbrs):
        idx, k, occ, over = build(positions, box, grid, r_list, nbrs.capacity, nbrs.cell_capacity)
        return NeighborList(idx=idx, reference=positions, cell_slots=nbrs.cell_slots,
                            max_neighbors=jnp.maximum(nbrs.max_neighbors, k),
                            max_occupancy=jnp.maximum(nbrs.max_occupancy, occ),
                            overflow=nbrs.overflow | over, n_builds=nbrs.n_builds + 1)

    return jax.lax.cond(needs_rebuild(nbrs, positions, box, skin), rebuild, lambda n: n, nbrs)


def grown(nbrs: NeighborList, positions, box, grid, r_list: float) -> NeighborList:
    """A list with room for the largest counts seen (plus 25 %), rebuilt at `positions`."""
    n = positions.shape[0]
    # The chunk-start state may not have seen the count that overflowed: grow geometrically too.
    k = min(n, max(int(nbrs.max_neighbors) * 5 // 4 + 4, nbrs.capacity * 3 // 2))
    c = nbrs.cell_capacity
    if int(nbrs.max_occupancy) >= c:
        c = min(n, max(int(nbrs.max_occupancy) * 5 // 4 + 2, c * 3 // 2))
    fresh = allocate(positions, box, grid, r_list, k, c)
    if bool(fresh.overflow):  # the configuration itself needs more: size to it
        return grown(fresh, positions, box, grid, r_list)
    return eqx.tree_at(lambda x: x.n_builds, fresh, nbrs.n_builds + 1)


def brute_force_pairs(positions, box, r: float) -> np.ndarray:
    """All pairs (i, j), i != j, closer than `r`: O(N^2) reference on the host, for tests."""
    x = np.asarray(positions, np.float64)
    d = x[:, None, :] - x[None, :, :]
    if box is not None:
        b = np.asarray(box, np.float64)
        d -= b * np.round(d / b)
    r2 = np.sum(d * d, -1)
    np.fill_diagonal(r2, np.inf)
    return np.argwhere(r2 < r * r)
