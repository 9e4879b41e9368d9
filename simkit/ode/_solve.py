"""Single and ensemble ODE solves on diffrax, with simkit's defaults and input checks."""

from __future__ import annotations

import functools
from typing import Any

import diffrax
import jax
import jax.core
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PyTree

from .._checks import SimkitInputError, require_finite, require_positive
from ._problem import ODEProblem, validate_problem

# A relative tolerance below this many machine epsilons of the state's dtype cannot be met:
# the step-size controller would shrink steps into round-off and never reach t1.
_RTOL_MIN_EPS = 100
# `solve`/`solve_ensemble` take any diffrax solver and keep their historical rtol default (1e-6,
# which float32 explicit solves reach): they refuse only what no solver can meet, an rtol below
# one machine epsilon (e.g. 1e-12 with a float32 state).
_RTOL_MIN_EPS_EXPLICIT = 1


def check_tolerances(rtol: Any, atol: Any, y0: Any, min_eps: float = _RTOL_MIN_EPS) -> None:
    """Host-side check of adaptive-step tolerances for a state like `y0` `(dim,)` (an array or
    anything with `shape` and `dtype`): rtol a number > 0 and at least `min_eps` machine
    epsilons of y0's dtype; atol a number or one per component, all > 0."""
    if any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves((rtol, atol))):
        return  # traced tolerances (inside the caller's jit): nothing to check on the host
    require_positive("rtol", rtol)
    try:
        atol_arr = np.asarray(atol, dtype=float)
    except (TypeError, ValueError):
        msg = f"atol must be a number or an array of numbers, got {atol!r}."
        raise SimkitInputError(msg) from None
    if atol_arr.ndim not in (0, 1) or (atol_arr.ndim == 1 and atol_arr.shape != y0.shape):
        raise SimkitInputError(
            f"atol must be a number or an array of shape {tuple(y0.shape)} (one per state "
            f"component), got shape {atol_arr.shape}."
        )
    if not np.all(np.isfinite(atol_arr)) or not np.all(atol_arr > 0):
        raise SimkitInputError(f"atol must be finite and > 0, got {atol!r}.")
    eps = float(jnp.finfo(y0.dtype).eps)
    if float(rtol) < min_eps * eps:
        fix = (
            (
                "enable float64 (jax.config.update('jax_enable_x64', True)) and pass a float64 "
                "y0, or raise rtol"
            )
            if y0.dtype != jnp.float64
            else "raise rtol"
        )
        raise SimkitInputError(
            f"rtol={rtol!r} is below what {y0.dtype} can resolve ({min_eps:g} x eps = "
            f"{min_eps * eps:.2g}): {fix}."
        )


# Step counters in diffrax and in the fused kernels are 32-bit integers.
_MAX_STEPS_LIMIT = 2**31 - 1


def check_max_steps(max_steps: Any) -> None:
    """`max_steps` must be a positive integer that fits the 32-bit step counters."""
    require_positive("max_steps", max_steps, integer=True)
    if max_steps > _MAX_STEPS_LIMIT:
        raise SimkitInputError(
            f"max_steps={max_steps} is above {_MAX_STEPS_LIMIT} (2**31 - 1), the largest step "
            "count the 32-bit step counters hold; pass at most that (a solve needing more steps "
            "wants a looser tolerance, a stiff solver or a shorter time span)."
        )


def default_solver(stiff: bool) -> diffrax.AbstractSolver:
    """Tsit5 for non-stiff problems (5th order, FSAL, good error estimate); Rodas5 for stiff ones.

    Rodas5 (simkit's L-stable 5th-order Rosenbrock method, `simkit.ode.Rodas5`) needs one
    Jacobian and one LU per step and no Newton iterations; on Robertson at rtol 1e-8 it measured
    ~100x faster than diffrax's Kvaerno5 (benchmarks/bench_robertson.py). Pass
    `solver=diffrax.Kvaerno5()` for an ESDIRK method instead (e.g. very large systems, where
    Kvaerno5's Newton iterations with a reused Jacobian can be cheaper than fresh LUs).

    Example:
        >>> default_solver(stiff=True)  # Rodas5()
    """
    from ._rosenbrock import Rodas5

    return Rodas5() if stiff else diffrax.Tsit5()


def _saveat(problem: ODEProblem, ts, dense: bool) -> diffrax.SaveAt:
    if ts is None:
        return diffrax.SaveAt(t1=True, dense=dense)
    ts = jnp.asarray(ts)
    dtype = _state_time_dtype(problem.y0)
    if dtype is not None and jnp.issubdtype(ts.dtype, jnp.floating):
        ts = ts.astype(dtype)  # save times in the state's precision, as t0 and t1
    if ts.ndim != 1:
        raise SimkitInputError(f"saveat times must be 1-D, got shape {tuple(ts.shape)}.")
    lo, hi = float(jnp.min(ts)), float(jnp.max(ts))
    if lo < problem.t0 or hi > problem.t1:
        raise SimkitInputError(
            f"saveat times must lie inside [t0, t1] = [{problem.t0}, {problem.t1}], got "
            f"min {lo}, max {hi}."
        )
    if ts.shape[0] > 1 and not bool(jnp.all(jnp.diff(ts) >= 0)):
        raise SimkitInputError("saveat times must be non-decreasing.")
    return diffrax.SaveAt(ts=ts, dense=dense)


def solve(
    problem: ODEProblem,
    *,
    solver: diffrax.AbstractSolver | None = None,
    stiff: bool = False,
    dt0: float | None = None,
    fixed_step: bool = False,
    rtol: float = 1e-6,
    atol: float = 1e-6,
    saveat: Float[Array, " n_save"] | None = None,
    dense: bool = False,
    event: diffrax.Event | None = None,
    max_steps: int = 100_000,
    adjoint: diffrax.AbstractAdjoint | None = None,
    throw: bool = True,
    validate: bool = True,
) -> diffrax.Solution:
    """Solve one ODE problem with diffrax.

    Args:
        problem: the `ODEProblem` (one member).
        solver: any diffrax solver; default `Tsit5()` or, if `stiff`, `simkit.ode.Rodas5()`.
        dt0: initial (or, with `fixed_step`, constant) step in model time units; must be > 0.
            Default: chosen by diffrax's step-size controller.
        fixed_step: constant steps of `dt0` (no error control).
        rtol: relative tolerance of the PID step-size controller, > 0 and at least one
            machine epsilon of `y0`'s dtype (float32: ~1.2e-7). Unused with `fixed_step`.
        atol: absolute tolerance of the PID step-size controller, > 0. Unused with
            `fixed_step`.
        saveat: times at which to save, shape `(n_save,)`, inside `[t0, t1]`; default `t1` only.
            Times (t0, t1, dt0, saveat) are cast to `y0`'s precision, so a float32 state is
            solved in float32.
        dense: also return dense output (`sol.evaluate(t)`).
        event: a `diffrax.Event` to stop the solve at a root / condition.
        max_steps: step limit, at most 2**31 - 1; reaching it raises an error that suggests a
            stiff solver (for an explicit one).
        adjoint: diffrax adjoint for reverse-mode gradients (default `RecursiveCheckpointAdjoint`).
        throw: raise on solver failure (default) rather than returning `sol.result`.
        validate: run host-side input checks (turn off only inside your own `jit`).

    Returns:
        `diffrax.Solution` with `ts` `(n_save,)` and `ys` `(n_save, dim)`.

    Raises:
        SimkitInputError: (with `validate`) bad problem, dt0, max_steps, tolerances or save
            times, before anything is compiled.
        RuntimeError: the solve failed or reached `max_steps` (with `throw`).

    Example:
        >>> prob = ODEProblem(lambda t, y, p: -p * y, jnp.ones(1), jnp.array(2.0), 0.0, 1.0)
        >>> sol = solve(prob, rtol=1e-8, atol=1e-8, saveat=jnp.linspace(0.0, 1.0, 11))
        >>> sol.ys[-1]  # ~exp(-2), shape (1,)
    """
    if validate:
        validate_problem(problem)
        if dt0 is not None:
            require_positive("dt0", dt0)
        check_max_steps(max_steps)
        if fixed_step and dt0 is None:
            raise SimkitInputError("fixed_step=True needs dt0 (the constant step size).")
        if not fixed_step:
            check_tolerances(rtol, atol, jnp.asarray(problem.y0), min_eps=_RTOL_MIN_EPS_EXPLICIT)
    solver = default_solver(stiff) if solver is None else solver
    if fixed_step:
        controller = diffrax.ConstantStepSize()
    else:
        controller = diffrax.PIDController(rtol=rtol, atol=atol)
    sol = diffeqsolve_problem(
        problem.vector_field,
        problem.y0,
        problem.params,
        problem.t0,
        problem.t1,
        solver=solver,
        controller=controller,
        dt0=dt0,
        saveat=_saveat(problem, saveat, dense),
        event=event,
        max_steps=max_steps,
        adjoint=adjoint,
        throw=False,
    )
    if throw:
        _raise_on_failure(sol.result, solver, max_steps)
    return sol


def diffeqsolve_problem(
    vector_field,
    y0,
    params,
    t0,
    t1,
    *,
    solver,
    controller,
    dt0,
    saveat,
    event=None,
    max_steps=100_000,
    adjoint=None,
    throw=False,
):
    """Thin jittable call to `diffrax.diffeqsolve` (no host checks); used by `solve` and
    ensembles."""
    kwargs: dict[str, Any] = {}
    # Times in the state's precision: diffrax promotes y0 to the time dtype, so float64 times
    # would silently run a float32 state in float64 (and mix dtypes in the vector field).
    dtype = _state_time_dtype(y0)
    if dtype is not None:
        t0, t1 = jnp.asarray(t0, dtype), jnp.asarray(t1, dtype)
        dt0 = None if dt0 is None else jnp.asarray(dt0, dtype)
    if adjoint is not None:
        kwargs["adjoint"] = adjoint
    if event is not None:
        kwargs["event"] = event
    return diffrax.diffeqsolve(
        # The user's function itself (not a fresh lambda) goes into the term, so diffeqsolve's
        # compile cache hits on repeated calls with the same vector field.
        diffrax.ODETerm(vector_field),
        solver,
        t0,
        t1,
        dt0,
        y0,
        args=params,
        saveat=saveat,
        stepsize_controller=controller,
        max_steps=max_steps,
        throw=throw,
        **kwargs,
    )


def _state_time_dtype(y0):
    """The real floating dtype of the state's leaves (None if they are not all one inexact
    dtype): the dtype simkit gives the times, so that diffrax keeps the state's precision."""
    dtypes = {jnp.result_type(x) for x in jax.tree_util.tree_leaves(y0)}
    if len(dtypes) != 1:
        return None
    (dtype,) = dtypes
    return jnp.finfo(dtype).dtype if jnp.issubdtype(dtype, jnp.inexact) else None


def _raise_on_failure(result, solver, max_steps: int) -> None:
    """Raise a `RuntimeError` if any (possibly batched) diffrax result is not successful."""
    # A terminating event is a successful end of the solve, not a failure.
    failed = ~diffrax.is_okay(result)
    if isinstance(failed, jax.core.Tracer) or not bool(jnp.any(failed)):
        return
    n_failed = int(jnp.sum(failed))
    if bool(jnp.any(result == diffrax.RESULTS.max_steps_reached)):
        hint = ""
        from ._rosenbrock import AbstractRodas

        if not isinstance(solver, (diffrax.AbstractImplicitSolver, AbstractRodas)):
            hint = (
                f" {type(solver).__name__} is explicit; if the problem is stiff use a stiff "
                "solver (stiff=True / solve_stiff, i.e. simkit.ode.Rodas5) instead of "
                "raising max_steps."
            )
        raise RuntimeError(
            f"ODE solve reached max_steps={max_steps} before t1 in {n_failed} solve(s).{hint}"
        )
    raise RuntimeError(f"ODE solve failed in {n_failed} solve(s) (diffrax result {result}).")


def broadcast_ensemble(problem: ODEProblem, y0: ArrayLike | None, params: PyTree | None):
    """Leading-axis batch of (y0, params) for an ensemble; validates shapes and agreement.

    Returns:
        (y0s `(n, dim)`, params with every leaf batched `(n, ...)`, n)
    """
    base_y0 = jnp.asarray(problem.y0)
    dim = base_y0.shape[-1]
    sizes: dict[str, int] = {}
    if y0 is not None:
        y0 = jnp.asarray(y0)
        if y0.ndim != 2 or y0.shape[1] != dim:
            raise SimkitInputError(
                f"ensemble y0 must have shape (n_members, {dim}), got {tuple(y0.shape)}."
            )
        sizes["y0"] = y0.shape[0]
        require_finite("ensemble y0", y0)
    if params is not None:
        leaves = jax.tree_util.tree_leaves(params)
        base_leaves = jax.tree_util.tree_leaves(problem.params)
        if len(leaves) != len(base_leaves):
            raise SimkitInputError(
                "ensemble params must have the same structure as problem.params."
            )
        for leaf, base in zip(leaves, base_leaves, strict=False):
            leaf = jnp.asarray(leaf)
            if leaf.ndim != jnp.ndim(base) + 1:
                raise SimkitInputError(
                    f"ensemble params leaves need one leading ensemble axis: got shape "
                    f"{tuple(leaf.shape)} for a parameter of shape {tuple(jnp.shape(base))}."
                )
            sizes.setdefault("params", leaf.shape[0])
            if leaf.shape[0] != sizes["params"]:
                raise SimkitInputError("ensemble params leaves disagree on the ensemble size.")
        require_finite("ensemble params", params)
    if not sizes:
        raise SimkitInputError("solve_ensemble needs batched y0 and/or params.")
    ns = set(sizes.values())
    if len(ns) > 1:
        raise SimkitInputError(f"ensemble inputs disagree on the number of members: {sizes}.")
    n = ns.pop()
    if n == 0:
        raise SimkitInputError("ensemble size must be >= 1, got 0 members.")
    y0s = y0 if y0 is not None else jnp.broadcast_to(base_y0, (n, dim))
    if params is None:
        params = jax.tree_util.tree_map(
            lambda p: jnp.broadcast_to(p, (n, *jnp.shape(p))), problem.params
        )
    return y0s, params, n


def solve_ensemble(
    problem: ODEProblem,
    *,
    y0: Float[Array, "n dim"] | None = None,
    params: PyTree | None = None,
    solver: diffrax.AbstractSolver | str | None = None,
    stiff: bool = False,
    dt0: float | None = None,
    fixed_step: bool = False,
    rtol: float = 1e-6,
    atol: float = 1e-6,
    saveat: Float[Array, " n_save"] | None = None,
    max_steps: int = 100_000,
    shard: bool = True,
    throw: bool = True,
    method: str = "auto",
) -> tuple[Float[Array, " n_save"], Float[Array, "n n_save dim"]]:
    """Solve many members of `problem` at once, sharded over local devices.

    Two engines:

    - "fused" (`simkit.ode.solve_ensemble_fused`): explicit Runge-Kutta methods (Tsit5, Dopri5,
      RK4) run as one batched kernel; adaptive solves give every member its own time and step
      size and regroup the still-running members, so stragglers do not hold the rest.
      Fixed-step results equal diffrax's to rounding; adaptive ones use diffrax's
      `PIDController` error control (Tsit5 with saves at `t1` and the same `dt0`: exactly
      diffrax's steps; saves at other times are reached by clipping steps, not interpolation).
    - "diffrax": `jax.vmap` of `diffrax.diffeqsolve`, for every other solver (implicit/stiff
      ones, ...) and for gradients through adaptive solves.

    Args:
        problem: the `ODEProblem` describing one member (unbatched `y0`, `params`).
        y0: batched initial states `(n_members, dim)`; default: `problem.y0` for every member.
        params: pytree like `problem.params` with a leading `(n_members, ...)` axis on every leaf.
        solver: a diffrax solver, or a name: "tsit5", "dopri5", "rk4" (fused only, fixed step).
            Default `Tsit5()` or, if `stiff`, `simkit.ode.Rodas5()`.
        method: "auto" (fused when the solver is Tsit5/Dopri5/RK4 and, for adaptive steps, the
            inputs are concrete; diffrax otherwise), "fused", or "diffrax". Adaptive fused solves
            run a host loop, so under `jax.grad`/`jit` "auto" picks diffrax.
        shard: spread members over all local devices with `simkit.ensemble` (padding handled).

    The other arguments are as in `solve` (rtol, atol > 0; max_steps <= 2**31 - 1; fixed-step
    fused solves need `t1 - t0` and the save times to be whole multiples of `dt0`).

    Returns:
        (ts `(n_save,)`, ys `(n_members, n_save, dim)`).

    Example:
        >>> prob = ODEProblem(lambda t, y, p: -p * y, jnp.ones(1), jnp.array(1.0), 0.0, 1.0)
        >>> ts, ys = solve_ensemble(prob, params=jnp.linspace(0.5, 2.0, 8))  # fused Tsit5
    """
    from ._fused import _is_traced, solve_ensemble_fused
    from ._tableau import TABLEAUS, tableau_for

    if method not in ("auto", "fused", "diffrax"):
        raise SimkitInputError(f"method must be 'auto', 'fused' or 'diffrax', got {method!r}.")
    if isinstance(solver, str):
        if solver.lower() not in TABLEAUS:
            raise SimkitInputError(
                f"solver names are {sorted(TABLEAUS)}, got {solver!r}; pass a diffrax solver "
                "instance for anything else."
            )
        if stiff:
            raise SimkitInputError(
                f"stiff=True needs an implicit solver, got the explicit {solver!r}; leave solver "
                "unset (simkit.ode.Rodas5) or pass e.g. diffrax.Kvaerno5()."
            )
    check_max_steps(max_steps)
    if not fixed_step:
        dtype = jnp.result_type(problem.y0 if y0 is None else y0)
        check_tolerances(
            rtol,
            atol,
            jax.ShapeDtypeStruct(jnp.shape(problem.y0), dtype),
            min_eps=_RTOL_MIN_EPS_EXPLICIT,
        )
    solver = default_solver(stiff) if solver is None else solver
    tab = tableau_for(solver)
    traced = _is_traced(y0, params, problem.y0, problem.params)
    fusable = tab is not None and (fixed_step or (tab.adaptive and not traced))
    if method == "fused" and not fusable:
        why = (
            f"solver {solver!r} has no fused kernel (Tsit5, Dopri5, RK4 only)"
            if tab is None
            else f"{tab.name} has no error estimate for adaptive steps"
            if not tab.adaptive
            else "adaptive fused solves cannot run under jit/grad (traced inputs)"
        )
        raise SimkitInputError(f"method='fused' is not possible: {why}; use method='diffrax'.")
    if fusable and method != "diffrax":
        sol = solve_ensemble_fused(
            problem,
            y0=y0,
            params=params,
            solver=solver,
            dt0=dt0,
            fixed_step=fixed_step,
            rtol=rtol,
            atol=atol,
            saveat=saveat,
            max_steps=max_steps,
            shard=shard,
            throw=throw,
        )
        return sol.ts, sol.ys
    if isinstance(solver, str):
        named = {"tsit5": diffrax.Tsit5, "dopri5": diffrax.Dopri5}
        if solver.lower() not in named:
            raise SimkitInputError(
                f"{solver!r} runs only in the fused engine (diffrax has no such solver); use "
                "method='fused' (fixed_step=True) or a diffrax solver."
            )
        solver = named[solver.lower()]()

    validate_problem(problem)
    y0s, batched_params, n = broadcast_ensemble(problem, y0, params)
    if dt0 is not None:
        require_positive("dt0", dt0)
    if fixed_step and dt0 is None:
        raise SimkitInputError("fixed_step=True needs dt0 (the constant step size).")
    save = _saveat(problem, saveat, False)  # validates the save times
    save_ts = None if saveat is None else save.subs.ts
    batched = _vmapped_diffrax(
        problem.vector_field,
        solver,
        bool(fixed_step),
        float(rtol),
        float(atol),
        dt0,
        int(max_steps),
        problem.t0,
        problem.t1,
        save_ts is not None,
    )
    extra = () if save_ts is None else (save_ts,)
    del save
    if shard:
        from ..ensemble import sharded_call

        ts, ys, res = sharded_call(batched, y0s, batched_params, broadcast=extra)
    else:
        ts, ys, res = _jit(batched)(y0s, batched_params, *extra)
    if throw:
        _raise_on_failure(res, solver, max_steps)
    return ts[0], ys


@functools.lru_cache(maxsize=64)
def _vmapped_diffrax(vector_field, solver, fixed_step, rtol, atol, dt0, max_steps, t0, t1, with_ts):
    """`vmap` of one diffrax solve, built once per configuration so jit caches hit on repeated
    `solve_ensemble` calls (a fresh closure per call would recompile every time)."""
    controller = (
        diffrax.ConstantStepSize() if fixed_step else diffrax.PIDController(rtol=rtol, atol=atol)
    )

    def one(y0_i, p_i, *ts):
        saveat = diffrax.SaveAt(ts=ts[0]) if with_ts else diffrax.SaveAt(t1=True)
        sol = diffeqsolve_problem(
            vector_field,
            y0_i,
            p_i,
            t0,
            t1,
            solver=solver,
            controller=controller,
            dt0=dt0,
            saveat=saveat,
            max_steps=max_steps,
        )
        return sol.ts, sol.ys, sol.result

    return jax.vmap(one, in_axes=(0, 0) + ((None,) if with_ts else ()))


@functools.lru_cache(maxsize=64)
def _jit(fn):
    return jax.jit(fn)
