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
from ..ode._fused import _power, _rk_step, clip_factor, initial_step
from ..ode._solve import default_solver, diffeqsolve_problem
from ..ode._tableau import RK4, ButcherTableau, tableau_for
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


# diffrax's PIDController defaults (an integral controller): the adaptive method's step control.
_SAFETY, _FACTORMIN, _FACTORMAX = 0.9, 0.2, 10.0


def _rms(x: Float[Array, " dim"]) -> Float[Array, ""]:
    return jnp.sqrt(jnp.mean(x * x))


def _first_step(vector_field, tab, y0, k1, params, t0, rtol, atol):
    """Initial step (Hairer-Norsett-Wanner, as diffrax) from values without tangents (the step
    size is a control decision, not a function of the parameters)."""
    sg = jax.lax.stop_gradient
    return initial_step(
        vector_field,
        tab.error_order,
        t0,
        sg(y0),
        sg(k1),
        sg(params),
        rtol,
        atol,
        _rms,
        lambda h: h,
    )


def adaptive_saveat(
    vector_field,
    tab: ButcherTableau,
    y0: Float[Array, " dim"],
    params: PyTree,
    t0: float,
    ts: Float[Array, " n"],
    *,
    rtol: float,
    atol: float,
    dt0: float | None,
    max_steps: int,
) -> Float[Array, "n dim"]:
    """Adaptive explicit Runge-Kutta solve of one member, saving at `ts` (forward-mode only).

    A `lax.scan` over the gaps between consecutive save times, each a `lax.while_loop` of
    attempted steps, the last one clipped to land on the save time (no dense interpolation);
    the step after it resumes from the unclipped proposal. Step control as diffrax's default
    `PIDController` (integral: factor `0.9 * err^(-1/k)` clipped to [1, 10] after an accepted
    step and [0.2, 0.9] after a rejected one, `err = rms(e / (atol + rtol max(|y0|, |y1|)))`,
    k = 5 for the 5(4) pairs). Step sizes and accept decisions carry no tangents, so `jacfwd`
    differentiates the discrete solution along the primal's steps: one solve per member
    carrying the p tangents. Under `vmap` the members step together within each gap (the gap
    takes as many iterations as its slowest member), with none of `diffeqsolve`'s general
    machinery per step: on Lotka-Volterra (Tsit5, rtol 1e-8, 1000 members) a vmapped Jacobian
    per member measured 4-10x cheaper than one jitted single-member Jacobian, where
    `vmap(diffeqsolve)`'s was 1-2x (benchmarks/bench_fit.py). Not reverse-differentiable.

    Returns:
        `ys` `(n, dim)`; all NaN if the solve failed (`max_steps` attempted steps, or the step
        size fell below 100 ulp of the time: a singular or stiff problem, or a NaN state).

    Example:
        >>> ts = jnp.linspace(0.0, 1.0, 11)
        >>> from simkit.ode._tableau import TSIT5
        >>> ys = adaptive_saveat(lambda t, y, p: -p * y, TSIT5, jnp.ones(1), 2.0, 0.0, ts,
        ...                      rtol=1e-8, atol=1e-8, dt0=None, max_steps=10_000)  # (11, 1)
    """
    sg = jax.lax.stop_gradient
    dtype = y0.dtype
    t_start = jnp.asarray(t0, dtype)
    k1 = vector_field(t_start, y0, params)
    if dt0 is None:
        h = _first_step(vector_field, tab, y0, k1, params, t_start, rtol, atol).astype(dtype)
    else:
        h = jnp.asarray(dt0, dtype)
    eps = jnp.finfo(dtype).eps
    inv_k = 1.0 / tab.error_order

    def gap(carry, t_b):
        floor = t_b - 100 * eps * jnp.abs(t_b)  # a step ending this close lands on t_b

        def cond(c):
            _, _, t, _, _, ok = c
            return (t < t_b) & ok

        def body(c):
            y, f, t, h, n, _ = c
            land = t + h >= floor
            h_try = jnp.where(land, t_b - t, h)
            y1, err, f1 = _rk_step(vector_field, tab, t, y, h_try, f, params, with_error=True)
            assert err is not None and f1 is not None  # the adaptive tableaus are FSAL
            scale = atol + rtol * jnp.maximum(jnp.abs(sg(y)), jnp.abs(sg(y1)))
            e = _rms(sg(err) / scale)
            e = jnp.where(jnp.isnan(e), jnp.inf, e)
            keep = e < 1
            # e = 0 gives factor inf, clipped to factormax.
            factor = clip_factor(
                _SAFETY * _power(1 / e, inv_k), keep, _SAFETY, _FACTORMIN, _FACTORMAX
            )
            h_new = h_try * factor
            h_new = jnp.where(keep & land, jnp.maximum(h_new, h), h_new)
            t_new = jnp.where(keep, jnp.where(land, t_b, t + h_try), t)
            n = n + 1
            progress = h_new > 100 * eps * jnp.maximum(jnp.abs(t), jnp.abs(t_b))
            return (
                jnp.where(keep, y1, y),
                jnp.where(keep, f1, f),
                t_new,
                h_new,
                n,
                (n < max_steps) & progress,
            )

        c = jax.lax.while_loop(cond, body, carry)
        return c, c[0]

    carry = (y0, k1, t_start, h, jnp.zeros((), jnp.int32), jnp.asarray(True))
    (_, _, _, _, _, ok), ys = jax.lax.scan(gap, carry, ts)
    return jnp.where(ok, ys, jnp.nan)


def ode_model(
    problem: ODEProblem,
    ts: Float[Array, " n_times"],
    *,
    to_problem: Callable[[PyTree], tuple[Float[Array, " dim"], PyTree]] | None = None,
    observe: Callable[[Float[Array, "n_times dim"], PyTree], PyTree] | None = None,
    method: Literal["diffrax", "adaptive", "rk4"] = "diffrax",
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
        method: "diffrax" (adaptive solve with `solver`, `rtol`, `atol`; default Tsit5),
            "adaptive" (simkit's own adaptive Tsit5 or Dopri5 with the same `rtol`, `atol` and
            step control, stepping onto the data times: no diffrax machinery per step, so
            under `fit_batch` ~2.7x faster than "diffrax", single fits 1.3-1.7x; forward mode
            only, explicit methods only, see `adaptive_saveat`) or "rk4" (fixed-step RK4 with
            `substeps` steps between consecutive data times: a `lax.scan`, much faster under
            `vmap`/`fit_batch`; check its accuracy).
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
    if method not in ("diffrax", "adaptive", "rk4"):
        raise SimkitInputError(f"method must be 'diffrax', 'adaptive' or 'rk4', got {method!r}.")
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

    if method == "adaptive":
        tab = tableau_for(diffrax.Tsit5() if solver is None else solver)
        if stiff or tab is None or not tab.adaptive:
            raise SimkitInputError(
                "method='adaptive' runs the explicit Tsit5 or Dopri5 (solver=None, "
                f"diffrax.Tsit5() or diffrax.Dopri5()), got solver={solver!r}, stiff={stiff}; "
                "use method='diffrax' for other solvers."
            )
        if jac != "fwd":
            raise SimkitInputError(
                "method='adaptive' is differentiable in forward mode only (jac='fwd'); use "
                "method='diffrax' for jac='bwd'."
            )
        t_first = float(problem.t0)

        def model_adaptive(params):
            y0, p = split(params)
            ys = adaptive_saveat(
                vf,
                tab,
                y0,
                p,
                t_first,
                ts_j,
                rtol=rtol,
                atol=atol,
                dt0=dt0,
                max_steps=max_steps,
            )
            return finish(ys, params)

        return model_adaptive

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
