"""The fused lattice Boltzmann update: collide, stream (pull), bounce-back, Zou-He faces.

Written once for the single-device and the sharded step: streaming goes through a `shift`
function, `shift(a, c)[x] = a[x - c]`, which is `jnp.roll` on one device and a halo exchange
along the sharded axis (`_sharded.py`). Populations travel as lists of Q grid arrays so that XLA
fuses collision, streaming and boundaries into one loop over the grid that reads each population
once and writes it once (look at the compiled HLO: `benchmarks/bench_lbm.py` prints it).
"""

from __future__ import annotations

import jax.numpy as jnp

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
    lat = stepper.lattice
    c = lat.velocities
    force = _force(stepper, params)
    tau = 3.0 * params["viscosity"] + 0.5
    post, rho, _ = collide(lat, stepper.collision, f, tau, force)
    new = [shift(post[i], c[i]) for i in range(lat.q)]
    if flags is not None:
        fluid = flags == FLUID
        walls = [None] * len(stepper.moving_walls)
        for i in range(1, lat.q):
            source = shift(flags, c[i])
            bounced = post[lat.opposite[i]]
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
    if stepper.inlet is not None:
        new = _zou_he(stepper, new, flags, stepper.inlet, params, velocity=True)
    if stepper.outlet is not None:
        new = _zou_he(stepper, new, flags, stepper.outlet, params, velocity=False)
    return new


def _force(stepper, params):
    if not stepper.body_force:
        return None
    g = params["force"]
    return [g[a] for a in range(stepper.lattice.d)]


def _zou_he(stepper, f, flags, side, params, *, velocity: bool):
    """Velocity (or pressure) boundary on a domain face, on the face's fluid nodes.

    Zou & He (1997), Phys. Fluids 9:1591, in its general form: the unknown populations (those
    entering the domain) are the bounced-back non-equilibrium parts of the known ones,
    f_i = f_opp(i) + f_i^eq - f_opp(i)^eq, with the density (velocity inlet) or the normal velocity
    (pressure outlet) from mass and normal momentum, then a transverse correction that makes the
    tangential momentum exact. The tangential velocity at a pressure outlet is zero.
    """
    lat = stepper.lattice
    c = lat.velocities
    axis, end = parse_side(side, lat.d)
    n_in = -end  # inward normal component along `axis`
    index = [slice(None)] * lat.d
    index[axis] = 0 if end < 0 else stepper.shape[axis] - 1
    index = tuple(index)
    g = [fi[index] for fi in f]
    face_shape = g[0].shape
    cn = c[:, axis] * n_in
    unknown = [i for i in range(lat.q) if cn[i] > 0]
    # With deviations g = f - w: sum_T w + 2 sum_O w = 1 (the lattice is symmetric), hence the 1.
    known = 1.0 + sum(g[i] for i in range(lat.q) if cn[i] == 0) \
        + 2.0 * sum(g[i] for i in range(lat.q) if cn[i] < 0)
    if velocity:
        uvec = jnp.broadcast_to(params["inlet_velocity"], face_shape + (lat.d,))
        u = [uvec[..., a] for a in range(lat.d)]
        un = n_in * u[axis]
        rho = known / (1.0 - un)
    else:
        rho = jnp.broadcast_to(params["outlet_density"], face_shape)
        un = 1.0 - known / rho
        u = [jnp.zeros(face_shape, g[0].dtype) for _ in range(lat.d)]
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
    if flags is not None:
        fluid = flags[index] == FLUID
        out = [jnp.where(fluid, o, gi) for o, gi in zip(out, g)]
    return [fi.at[index].set(o) for fi, o in zip(f, out)]
