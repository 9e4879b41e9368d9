"""The fused lattice Boltzmann update: collide, stream (pull), bounce-back, Zou-He faces.

Written once for the plain, the cache-blocked and the sharded step: streaming goes through a
`shift` function, `shift(a, c)[x] = a[x - c]`, which is `jnp.roll` on one device, static slices
of a strip with halo rows in the blocked step, and a halo exchange along the sharded axis
(`_sharded.py`). Populations travel as lists of Q grid arrays, so no stacked temporary is
formed inside the step. XLA:CPU still compiles one loop per output population, each re-reading
the Q inputs (no multi-output fusion); the blocked step below keeps those re-reads in cache.
`benchmarks/bench_lbm.py` prints the compiled HLO's fusion and copy counts.
"""

from __future__ import annotations

from typing import cast

import jax.numpy as jnp
from jax import lax
from jaxtyping import Array

from ._collision import collide, equilibrium, moments
from ._geometry import parse_side

FLUID, WALL, OBSTACLE, MOVING = 0, 1, 2, 3  # node types in `flags`; MOVING + k is moving wall k


def roll_shift(a, c):
    """Pull shift on a periodic grid: out[x] = a[x - c] (c: integer vector)."""
    shifts = [int(s) for s in c]
    axes = [a_ for a_, s in enumerate(shifts) if s]
    if not axes:
        return a
    return jnp.roll(a, [shifts[a_] for a_ in axes], axis=axes)


def update(stepper, f, flags, params, shift=roll_shift):
    """One step on populations `f` (list of Q grid arrays) -> new list. See `LBMStepper.step`."""
    return _faces(stepper, _interior(stepper, f, flags, params, shift), flags, params)


def _interior(stepper, f, flags, params, shift, crop=None):
    """Collide, stream and bounce back (everything but the Zou-He faces).

    `f` and `flags` may cover more cells than the result: `shift(a, c)` then returns the pulled
    array on the result's cells and `crop(a)` the unshifted one (the blocked step passes a strip
    plus its halo rows). Without `crop` the two cover the same cells.
    """
    lat = stepper.lattice
    c = lat.velocities
    if crop is None:
        crop = _identity
    force = _force(stepper, params)
    tau = 3.0 * params["viscosity"] + 0.5
    post, rho, _ = collide(lat, stepper.collision, f, tau, force)
    new = [shift(post[i], c[i]) for i in range(lat.q)]
    if flags is not None:
        fluid = crop(flags) == FLUID
        rho = crop(rho)
        for i in range(1, lat.q):
            source = shift(flags, c[i])
            bounced = crop(post[lat.opposite[i]])
            if stepper.moving_walls:
                # A moving wall adds 2 w_i rho c_i.u_w / cs2 to the bounced population
                # (Ladd 1994, J. Fluid Mech. 271:285), rho the fluid density at the node.
                cu = 0.0
                for k, name in enumerate(stepper.moving_walls):
                    uw = params[name]
                    cu_k = sum(float(ca) * uw[a] for a, ca in enumerate(c[i]) if ca)
                    cu = cu + jnp.where(source == MOVING + k, cu_k, 0.0)
                bounced = bounced + 6.0 * lat.w[i] * rho * cu
            new[i] = jnp.where(source != FLUID, bounced, new[i])
        # Solid cells hold the rest equilibrium (deviation 0): they never feed the fluid (every
        # population pulled from them is replaced above) but must stay finite for the blow-up
        # check.
        new = [jnp.where(fluid, new[i], jnp.zeros((), new[i].dtype)) for i in range(lat.q)]
    return new


def _identity(a):
    return a


# ---- cache-blocked step ------------------------------------------------------------------------
#
# XLA:CPU compiles the fused step above into one loop per output population, each re-reading all
# Q inputs, so a step streams about Q * Q grid arrays through memory. Blocked, the step walks the
# grid in strips of `rows` cells along x: each strip plus one halo row on each side (and one
# periodic halo cell on each side of the other axes) is copied out, collided, streamed and bounced
# back by the same `_interior` as above, with static slices as its `shift`, and written back with
# dynamic_update_slice. The Q * Q re-reads then hit a strip that stays in cache. The sweep writes
# into the input's buffer (see `update_blocked`), so a loop of steps keeps one grid-sized buffer
# and writes no second one. The first and last strips wrap around the x ends (as `jnp.roll` does)
# and are peeled; the others run in a `lax.fori_loop`. Zou-He faces follow on the whole grid.
# D2Q9 1024^2 float32 on a 2-core CPU: 22 -> 65 million cell updates per second (bench_lbm.py).

BLOCK_MIN_BYTES = 256 * 1024  # "auto" blocks grids whose populations exceed this many bytes each
BLOCK_CACHE_BYTES = 64 * 1024  # "auto" strip size per population (rows = this / row bytes)
BLOCK_MAX_ROWS = 8


def block_rows(stepper) -> int:
    """Strip height (cells along x) of the blocked step for `stepper`, 0 for the plain step.

    `stepper.blocking`: "auto" (block when one population exceeds `BLOCK_MIN_BYTES`), "off", or
    an int number of rows (forced, if the grid has room for two strips with their halos)."""
    mode = getattr(stepper, "blocking", "auto")
    nx = stepper.shape[0]
    if mode == "off" or mode == 0:
        return 0
    if mode == "auto":
        itemsize = 4 if stepper.dtype == "float32" else 8
        cells = 1
        for n in stepper.shape:
            cells *= n
        if cells * itemsize <= BLOCK_MIN_BYTES:
            return 0
        rows = min(BLOCK_MAX_ROWS, BLOCK_CACHE_BYTES // (cells // nx * itemsize))
        if rows < 2:
            # Strips of one row recollide 3 rows per row written: D3Q19 128^3 (64 KiB
            # cross-sections) measured no faster than the plain step, so do not block.
            return 0
    else:
        rows = int(mode)
    return rows if nx >= 2 * rows + 1 else 0


def _rows(a, start, n, axis):
    """Rows start .. start + n - 1 (static, wrapping periodically) of `a` along `axis`."""
    size = a.shape[axis]
    pieces, x = [], start
    while x < start + n:
        lo = x % size
        hi = min(size, lo + start + n - x)
        pieces.append(lax.slice_in_dim(a, lo, hi, axis=axis))
        x += hi - lo
    return pieces[0] if len(pieces) == 1 else jnp.concatenate(pieces, axis=axis)


def _wrap_pad(a, first_axis):
    """`a` with one periodic halo cell on each side of every axis from `first_axis` on."""
    for axis in range(first_axis, a.ndim):
        n = a.shape[axis]
        a = jnp.concatenate(
            [lax.slice_in_dim(a, n - 1, n, axis=axis), a, lax.slice_in_dim(a, 0, 1, axis=axis)],
            axis=axis,
        )
    return a


def _strip_shift(rows, shape):
    """shift on a strip of rows + 2 halo rows, padded by one halo cell along the other axes:
    the pulled values on the cells inside the halos (static slices, no wrap-around)."""

    def shift(a, c):
        start = [1 - int(cb) for cb in c]
        limit = [s + n for s, n in zip(start, (rows,) + tuple(shape[1:]), strict=False)]
        return lax.slice(a, start, limit)

    return shift


def update_blocked(stepper, f, flags, params, rows: int) -> Array:
    """`update` on stacked populations `f` (Q, *shape) -> (Q, *shape), in strips of `rows`.

    The strips overwrite `f`'s buffer in place (inside a loop of steps XLA reuses it, so no
    second grid-sized buffer is written): a strip reads its rows and the next row before
    writing them, and carries its last original row to the next strip as that strip's lower
    halo; the first and last strips wrap around the x ends with rows saved before the sweep.
    """
    q = stepper.lattice.q
    shape = stepper.shape
    nx = shape[0]
    zeros = (0,) * (f.ndim - 2)

    def strip(buf, below, x0, n, above=None):
        """Rows x0 .. x0 + n - 1 of the result into `buf`; `below` is the original row x0 - 1,
        `above` the original row x0 + n (None: still in `buf`). Returns (buf, original last row)."""
        static = isinstance(x0, int)
        m = n if above is not None else n + 1
        mid = (
            lax.slice_in_dim(buf, x0, x0 + m, axis=1)
            if static
            else lax.dynamic_slice_in_dim(buf, x0, m, axis=1)
        )
        parts = [below, mid] + ([above] if above is not None else [])
        ext_f = jnp.concatenate(parts, axis=1)
        # The strip's inputs are read (into a small copy) before the writes below.
        ext_f, buf = lax.optimization_barrier((ext_f, buf))
        last_row = lax.slice_in_dim(ext_f, n, n + 1, axis=1)
        ext_flags = None
        if flags is not None:
            ext_flags = (
                _rows(flags, x0 - 1, n + 2, 0)
                if static
                else lax.dynamic_slice_in_dim(flags, x0 - 1, n + 2, 0)
            )
            ext_flags = _wrap_pad(ext_flags, 1)
        ext_f = _wrap_pad(ext_f, 2)
        shift = _strip_shift(n, shape)

        def crop(a):
            return shift(a, (0,) * len(shape))

        new = _interior(stepper, [ext_f[i] for i in range(q)], ext_flags, params, shift, crop)
        for i in range(q):
            buf = lax.dynamic_update_slice(buf, new[i][None].astype(buf.dtype), (i, x0) + zeros)
        return buf, last_row

    row_first = lax.slice_in_dim(f, 0, 1, axis=1)
    row_last = lax.slice_in_dim(f, nx - 1, nx, axis=1)
    # Saved (small copies) before the sweep overwrites them: else XLA keeps all of `f`.
    row_first, row_last, f = lax.optimization_barrier((row_first, row_last, f))
    buf, below = strip(f, row_last, 0, rows)
    # Interior strips s * rows .. (s + 1) * rows - 1, the row above each still original.
    n_full = (nx - 1) // rows  # strips 0 .. n_full - 1 have a row above them
    if n_full > 1:

        def body(s, carry):
            return strip(carry[0], carry[1], s * rows, rows)

        buf, below = lax.fori_loop(1, n_full, body, (buf, below))
    x0 = n_full * rows
    buf, _ = strip(buf, below, x0, nx - x0, above=row_first)
    return cast(Array, _faces(stepper, buf, flags, params))  # stacked in, stacked out


def _force(stepper, params):
    if not stepper.body_force:
        return None
    g = params["force"]
    return [g[a] for a in range(stepper.lattice.d)]


def _face_index(stepper, side, depth: int = 0):
    """Index of the cell layer `depth` cells inside the face `side`."""
    axis, end = parse_side(side, stepper.lattice.d)
    index = [slice(None)] * stepper.lattice.d
    index[axis] = depth if end < 0 else stepper.shape[axis] - 1 - depth
    return tuple(index)


def _faces(stepper, f, flags, params):
    """The inlet and outlet (`_zou_he_face`) applied to populations `f`: a list of Q grid arrays,
    or one stacked `(Q, *shape)` array (the blocked step), returned in the same form."""
    q = stepper.lattice.q
    for side, velocity in ((stepper.inlet, True), (stepper.outlet, False)):
        if side is None:
            continue
        index, inner = _face_index(stepper, side), _face_index(stepper, side, 1)
        out = _zou_he_face(
            stepper,
            [f[i][index] for i in range(q)],
            None if flags is None else flags[index],
            side,
            params,
            velocity=velocity,
            inner=[f[i][inner] for i in range(q)],
        )
        if isinstance(f, list):
            f = [fi.at[index].set(o) for fi, o in zip(f, out, strict=False)]
        else:
            f = f.at[(slice(None),) + index].set(jnp.stack(out))
    return f


def _zou_he_face(stepper, g, face_flags, side, params, *, velocity: bool, inner=None):
    """Velocity (or pressure) boundary on a domain face, on the face's fluid nodes.

    Zou & He (1997), Phys. Fluids 9:1591, in its general form: the unknown populations (those
    entering the domain) are the bounced-back non-equilibrium parts of the known ones,
    f_i = f_opp(i) + f_i^eq - f_opp(i)^eq, with the density (velocity inlet) or the normal velocity
    (pressure outlet) from mass and normal momentum, then a transverse correction that makes the
    tangential momentum exact. At a pressure outlet the tangential velocity is copied from the
    neighbouring interior cells (`inner`, populations one layer inside): imposing zero there,
    Zou & He's choice, reflects the vortices of a wake and made a Schafer-Turek cylinder run at
    tau = 0.515 blow up within 3 000 steps; with the copy it stays stable.
    """
    lat = stepper.lattice
    c = lat.velocities
    axis, end = parse_side(side, lat.d)
    n_in = -end  # inward normal component along `axis`
    face_shape = g[0].shape
    cn = c[:, axis] * n_in
    unknown = [i for i in range(lat.q) if cn[i] > 0]
    # With deviations g = f - w: sum_T w + 2 sum_O w = 1 (the lattice is symmetric), hence the 1.
    known = (
        1.0
        + sum(g[i] for i in range(lat.q) if cn[i] == 0)
        + 2.0 * sum(g[i] for i in range(lat.q) if cn[i] < 0)
    )
    if velocity:
        uvec = jnp.broadcast_to(params["inlet_velocity"], face_shape + (lat.d,))
        u = [uvec[..., a] for a in range(lat.d)]
        un = n_in * u[axis]
        rho = known / (1.0 - un)
    else:
        rho = jnp.broadcast_to(params["outlet_density"], face_shape)
        un = 1.0 - known / rho
        _, u_inner = moments(lat, inner)
        u = [u_inner[a] for a in range(lat.d)]
        u[axis] = n_in * un
    feq = equilibrium(lat, rho, u, deviation=True)
    out = list(g)
    for i in unknown:
        j = lat.opposite[i]
        out[i] = g[j] + feq[i] - feq[j]
    for t in range(lat.d):
        if t == axis:
            continue
        # Tangential momentum mismatch after the bounce-back, spread over the unknowns that
        # move along t (equal and opposite, so mass and normal momentum are unchanged).
        _, u_now = moments(lat, out)
        mismatch = rho * (u[t] - u_now[t])
        movers = [i for i in unknown if c[i, t] != 0]
        for i in movers:
            out[i] = out[i] + float(c[i, t]) * mismatch / len(movers)
    if face_flags is not None:
        fluid = face_flags == FLUID
        out = [jnp.where(fluid, o, gi) for o, gi in zip(out, g, strict=False)]
    return out
