"""FIRE energy minimisation (Bitzek, Koskinen, Gahler, Moseler & Gumbsch, Phys. Rev. Lett. 97,
170201 (2006)), as a stepper for the run driver and as a jitted `minimise` loop."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from .._checks import SimkitInputError, require_positive
from ._stepper import MDState, MDStepper


class FIRE(MDStepper):
    """Fast inertial relaxation engine: damped dynamics that steers the velocity toward the force
    and adapts its time step. `dt` is the initial step; the published defaults otherwise.

    Attributes:
        dt_max: largest time step (default 10 dt).
        n_min: steps with power F.v > 0 before the step may grow (5).
        f_inc, f_dec: time-step growth (1.1) and cut (0.5) factors.
        alpha_start, f_alpha: initial velocity mixing (0.1) and its decay (0.99).
        max_step: largest displacement of any particle in one iteration (length, default 0.1):
            keeps the first steps from strongly overlapping starts from flying apart.
        ftol: once the largest force is below this (energy / length), the state stays put
            (sticky convergence, so a driver run of fixed length ends at the minimum found);
            0 never stops.

    Example (relax a random packing before dynamics):
        >>> fire = FIRE(SoftSphere(), box=box, dt=0.01)
        >>> state = fire.init(random_packing(jax.random.key(0), 500, box), SoftSphere().params())
        >>> state, converged = minimise(fire, state, SoftSphere().params(), ftol=1e-6)
    """

    dt_max: float | None = eqx.field(static=True, default=None, kw_only=True)
    n_min: int = eqx.field(static=True, default=5, kw_only=True)
    f_inc: float = eqx.field(static=True, default=1.1, kw_only=True)
    f_dec: float = eqx.field(static=True, default=0.5, kw_only=True)
    alpha_start: float = eqx.field(static=True, default=0.1, kw_only=True)
    f_alpha: float = eqx.field(static=True, default=0.99, kw_only=True)
    max_step: float = eqx.field(static=True, default=0.1, kw_only=True)
    ftol: float = eqx.field(static=True, default=0.0, kw_only=True)

    def __check_init__(self):
        if self.dt_max is not None:
            require_positive("dt_max", self.dt_max)
        require_positive("max_step", self.max_step)
        if not self.ftol >= 0:
            raise SimkitInputError(f"ftol must be >= 0, got {self.ftol!r}.")
        if not (
            0 < self.f_dec < 1 < self.f_inc and 0 < self.f_alpha <= 1 and 0 <= self.alpha_start < 1
        ):
            raise SimkitInputError(
                "FIRE needs 0 < f_dec < 1 < f_inc, 0 < f_alpha <= 1 and 0 <= alpha_start < 1."
            )

    def init_extra(self, state, params):
        dtype = state.positions.dtype
        return eqx.tree_at(
            lambda s: (s.velocities, s.extra),
            state,
            (
                jnp.zeros_like(state.velocities),
                {
                    "dt": jnp.asarray(self.dt, dtype),
                    "alpha": jnp.asarray(self.alpha_start, dtype),
                    "n_pos": jnp.asarray(0, jnp.int32),
                },
            ),
        )

    def step(self, state: MDState, params) -> MDState:
        dtype = state.positions.dtype
        e = state.extra
        dt, alpha, n_pos = e["dt"], e["alpha"], e["n_pos"]
        dt_max = jnp.asarray(self.dt_max if self.dt_max is not None else 10 * self.dt, dtype)
        f, v = state.forces, state.velocities
        # The power is taken before the kick: after it, F.v > 0 almost always and FIRE would
        # never detect that it is going uphill.
        power = jnp.sum(f * v)
        f_norm = jnp.sqrt(jnp.sum(f * f))
        v_norm = jnp.sqrt(jnp.sum(v * v))
        uphill = power <= 0
        grow = (~uphill) & (n_pos > self.n_min)
        v = (1 - alpha) * v + alpha * v_norm * f / jnp.where(f_norm > 0, f_norm, 1.0)
        v = jnp.where(uphill, 0.0, v)
        n_pos = jnp.where(uphill, 0, n_pos + 1)
        dt_new = jnp.where(
            uphill, dt * self.f_dec, jnp.where(grow, jnp.minimum(dt * self.f_inc, dt_max), dt)
        )
        alpha = jnp.where(
            uphill,
            jnp.asarray(self.alpha_start, dtype),
            jnp.where(grow, alpha * self.f_alpha, alpha),
        )
        v = v + dt_new * f / state.mass[:, None]  # semi-implicit Euler step
        converged = jnp.sqrt(jnp.max(jnp.sum(f * f, -1))) < self.ftol
        v = jnp.where(converged, 0.0, v)
        dx = dt_new * v
        longest = jnp.sqrt(jnp.max(jnp.sum(dx * dx, -1)))
        dx = dx * jnp.minimum(1.0, self.max_step / jnp.where(longest > 0, longest, 1.0))
        x, image = self.move(state, dx)
        f, nbrs = self.compute_forces(state, params, x)
        keep = {"dt": dt, "alpha": e["alpha"], "n_pos": e["n_pos"]}
        extra = jax.tree.map(
            lambda a, b: jnp.where(converged, a, b),
            keep,
            {"dt": dt_new, "alpha": alpha, "n_pos": n_pos},
        )
        return eqx.tree_at(
            lambda s: (s.positions, s.velocities, s.forces, s.image, s.neighbors, s.step, s.extra),
            state,
            (x, v, f, image, nbrs, state.step + 1, extra),
        )

    def extra_observables(self, state, params, potential_energy):
        return {"max_force": jnp.sqrt(jnp.max(jnp.sum(state.forces**2, -1)))}

    def extra_names(self):
        return ("max_force",)

    def time(self, state):
        # FIRE's clock is not physical time: report the iteration count.
        return state.step.astype(state.positions.dtype)

    def time_units(self):
        return "iteration"


def minimise(
    stepper: FIRE, state: MDState, params, *, ftol: float = 1e-4, max_steps: int = 100_000
) -> tuple[MDState, Array]:
    """Run FIRE until the largest force on any particle is below `ftol` (energy / length), or
    `max_steps`. Pure and jittable (a `while_loop`) with `stepper`, `ftol` and `max_steps`
    static: `jax.jit(minimise, static_argnums=0, static_argnames=("ftol", "max_steps"))`, or
    call it inside a jitted function. The driver's overflow handling does not apply here: the
    loop stops on a neighbor-list overflow and `converged` is then False (grow the capacity,
    e.g. `stepper.init(..., capacity=...)`, and call again).

    Returns:
        (state, converged) with `converged` a boolean scalar.

    Example:
        >>> state, converged = minimise(FIRE(lj, box=box, dt=0.005), state, lj.params())
    """
    require_positive("ftol", ftol)
    require_positive("max_steps", max_steps, integer=True)

    def fmax(s):
        return jnp.sqrt(jnp.max(jnp.sum(s.forces**2, -1)))

    def cond(c):
        s, i = c
        return (fmax(s) >= ftol) & (i < max_steps) & ~s.neighbors.overflow

    def body(c):
        s, i = c
        return stepper.step(s, params), i + 1

    state, _ = jax.lax.while_loop(cond, body, (state, jnp.asarray(0, jnp.int32)))
    return state, (fmax(state) < ftol) & ~state.neighbors.overflow
