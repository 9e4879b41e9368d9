"""Fit models built from simkit ODE problems: the solution at the data times as a prediction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PyTree

from .._checks import SimkitInputError, require_positive
from ..ode import ODEProblem, validate_problem
from ..ode._fused import _rk_step
from ..ode._solve import default_solver, diffeqsolve_problem
from ..ode._tableau import RK4
from ._problem import require_step_limit


def rk4_saveat(
    vector_field, y0: Float[Array, " dim"], params: PyTree, ts: Float[Array, " n"], substeps: int
) -> Float[Array, "n dim"]:
    """Classical fixed-step RK4 from `ts[0]`, saving at every `ts` (`substeps` steps per gap).

    A `lax.scan` with no step-size control: its cost is the same for every parameter value,
    so a vmapped batch of fits does no wasted work, and forward- and reverse-mode
    differentiation both work. Global error is O(h^4); check it against an adaptive solve.

    Returns:
        `ys` `(n, dim)`, the state at each of `ts` (`ys[0] == y0`).

    Example:
        >>> ts = jnp.linspace(0.0, 1.0, 11)
        >>> ys = rk4_saveat(lambda t, y, p: -p * y, jnp.ones(1), 2.0, ts, substeps=4)  # (11, 1)
    """

    def gap(y, t_pair):
        t_a, t_b = t_pair
        h = (t_b - t_a) / substeps

        def rk4(k, y_):
            # The same RK4 step as simkit.ode's fused kernels (one member: y_ is (dim,)).
            t = t_a + k * h
            y1, _, _ = _rk_step(
                vector_field, RK4, t, y_, h, vector_field(t, y_, params), params, with_error=False
            )
            return y1

        y = jax.lax.fori_loop(0, substeps, rk4, y)
        return y, y

    _, ys = jax.lax.scan(gap, y0, (ts[:-1], ts[1:]))
    return jnp.concatenate([y0[None, :], ys], axis=0)


def ode_model(
    problem: ODEProblem,
    ts: Float[Array, " n_times"],
    *,
    to_problem: Callable[[PyTree], tuple[Float[Array, " dim"], PyTree]] | None = None,
    observe: Callable[[Float[Array, "n_times dim"], PyTree], PyTree] | None = None,
    method: Literal["diffrax", "rk4"] = "diffrax",
    solver: diffrax.AbstractSolver | None = None,
    stiff: bool = False,
    rtol: float = 1e-8,
    atol: float = 1e-8,
    dt0: float | None = None,
    max_steps: int = 100_000,
    substeps: int = 4,
    jac: Literal["fwd", "bwd"] = "fwd",
) -> Callable[[PyTree], PyTree]:
    """`model(params) -> prediction` from an `ODEProblem`, solved at the data times `ts`.

    Args:
        problem: the ODE (`vector_field`, `y0`, `params`, `t0`); integration starts at `t0`.
        ts: data times `(n_times,)`, non-decreasing, inside `[t0, t1]`. With `method="rk4"`,
            `ts[0]` must equal `t0`.
        to_problem: maps the fitted parameters to `(y0, ode_params)`; default: the fitted
            parameters *are* the ODE parameters and `y0 = problem.y0` (fit initial conditions
            by returning them from here).
        observe: maps `(ys (n_times, dim), fitted params)` to the prediction compared with the
            data (e.g. one component, a sum, a scaled signal); default: all of `ys`.
        method: "diffrax" (adaptive solve with `solver`, `rtol`, `atol`; default Tsit5) or
            "rk4" (fixed-step RK4 with `substeps` steps between consecutive data times: a
            `lax.scan`, much faster under `vmap`/`fit_batch`; check its accuracy).
        jac: the Jacobian mode the fit will use. "fwd" solves with `diffrax.ForwardMode()`
            (diffrax's default adjoint is a `custom_vjp`, which forward mode cannot enter);
            "bwd" with `diffrax.RecursiveCheckpointAdjoint()`.

    Returns:
        `model(params)`, pure and jittable. A failed ODE solve makes the prediction NaN, which the
        fit rejects as a step (or reports as non-finite at the start).

    Example (fit the rate k of y' = -k y, observed at `ts`):
        >>> prob = ODEProblem(lambda t, y, p: -p["k"] * y, jnp.ones(1), {"k": 1.0}, 0.0, 2.0)
        >>> model = ode_model(prob, ts, observe=lambda ys, p: ys[:, 0])
        >>> res = fit(model, {"k": 0.5}, y_obs, sigma=0.01)
    """
    validate_problem(problem)
    ts_np = np.asarray(ts, dtype=np.float64)
    if ts_np.ndim != 1 or ts_np.size < 1:
        raise SimkitInputError(f"ts must be a 1-D array of data times, got shape {ts_np.shape}.")
    if not np.all(np.isfinite(ts_np)) or np.any(np.diff(ts_np) < 0):
        raise SimkitInputError("ts must be finite and non-decreasing.")
    if ts_np[0] < problem.t0 or ts_np[-1] > problem.t1:
        raise SimkitInputError(
            f"ts must lie inside [t0, t1] = [{problem.t0}, {problem.t1}], got "
            f"[{ts_np[0]}, {ts_np[-1]}]."
        )
    if method not in ("diffrax", "rk4"):
        raise SimkitInputError(f"method must be 'diffrax' or 'rk4', got {method!r}.")
    if jac not in ("fwd", "bwd"):
        raise SimkitInputError(f"jac must be 'fwd' or 'bwd', got {jac!r}.")
    require_step_limit("max_steps", max_steps)
    require_positive("substeps", substeps, integer=True)
    require_positive("rtol", rtol)
    require_positive("atol", atol)
    if dt0 is not None:
        require_positive("dt0", dt0)
    if method == "rk4" and ts_np[0] != problem.t0:
        raise SimkitInputError(
            f"method='rk4' integrates from ts[0]; ts[0] = {ts_np[0]} must equal t0 = "
            f"{problem.t0} (prepend t0 to ts and drop it in `observe`)."
        )
    ts_j = jnp.asarray(ts_np)
    vf = problem.vector_field
    base_y0 = problem.y0

    def split(params):
        if to_problem is None:
            return base_y0, params
        return to_problem(params)

    def finish(ys, params):
        return ys if observe is None else observe(ys, params)

    if method == "rk4":

        def model(params):
            y0, p = split(params)
            return finish(rk4_saveat(vf, y0, p, ts_j, substeps), params)

        return model

    ode_solver = default_solver(stiff) if solver is None else solver
    adjoint = diffrax.ForwardMode() if jac == "fwd" else diffrax.RecursiveCheckpointAdjoint()
    controller = diffrax.PIDController(rtol=rtol, atol=atol)
    saveat = diffrax.SaveAt(ts=ts_j)
    t_end = float(ts_np[-1]) if ts_np[-1] > problem.t0 else problem.t1  # no work past the data

    def model(params):
        y0, p = split(params)
        sol = diffeqsolve_problem(
            vf,
            y0,
            p,
            problem.t0,
            t_end,
            solver=ode_solver,
            controller=controller,
            dt0=dt0,
            saveat=saveat,
            max_steps=max_steps,
            adjoint=adjoint,
            throw=False,
        )
        ok = sol.result == diffrax.RESULTS.successful
        assert sol.ys is not None  # saveat has ts
        ys = jnp.where(ok, sol.ys, jnp.nan)
        return finish(ys, params)

    return model
