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

from .._checks import SimkitInputError, require_positive
from ..ensemble._threads import check_threads
from ._fastpath import (
    FAST_CACHE_SIZE,
    NOT_REMEMBERED,
    IdentityCache,
    LastCall,
    _as_jax,
    _cache_put,
    checked_arrays,
    device_constant,
    device_save_times,
    input_key,
    is_concrete_array,
    known_finite,
    plain_options,
    require_finite_once,
    save_times_token,
    validate_problem_once,
)
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
    fast = (
        _solve_fast(problem, solver, stiff, dt0, fixed_step, rtol, atol, saveat, dense, max_steps)
        if validate and event is None and adjoint is None
        else None
    )
    if fast is not None:
        sol, solver = fast
        if throw:
            _raise_on_failure(sol.result, solver, max_steps)
        return sol
    if validate:
        _check_solve(problem, dt0, fixed_step, rtol, atol, max_steps)
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


# diffrax result codes that end a solve well (a terminating event is a successful end, not a
# failure), and the one that says the step limit was hit.
_OK_CODES = (int(diffrax.RESULTS.successful._value), int(diffrax.RESULTS.event_occurred._value))
MAX_STEPS_CODE = int(diffrax.RESULTS.max_steps_reached._value)


def result_traced(result) -> bool:
    """Whether a diffrax result (scalar or batched) is traced (inside the caller's jit)."""
    return isinstance(result._value, jax.core.Tracer)


def failed_codes(result) -> np.ndarray | None:
    """The integer codes `(n,)` of a scalar or batched diffrax result when some solve did not
    end well, else None (also when the result is traced: see `result_traced`).

    Compared on the host: `result != RESULTS.successful` dispatches a jax op (~30 us), a fifth
    of a small compiled solve (issue 13).
    """
    value = result._value
    if isinstance(value, jax.core.Tracer):
        return None
    codes = np.asarray(value)
    if codes.ndim == 0 and int(codes) in _OK_CODES:
        return None
    codes = codes.reshape(-1)
    return codes if failed_mask(codes).any() else None


def failed_mask(codes: np.ndarray) -> np.ndarray:
    """Which of `failed_codes`' codes `(n,)` are failures (bool `(n,)`)."""
    return (codes != _OK_CODES[0]) & (codes != _OK_CODES[1])  # np.isin: ~30 us


def _raise_on_failure(result, solver, max_steps: int) -> None:
    """Raise a `RuntimeError` if any (possibly batched) diffrax result is not successful."""
    codes = failed_codes(result)
    if codes is None:
        return
    n_failed = int(np.count_nonzero(failed_mask(codes)))
    if bool(np.any(codes == MAX_STEPS_CODE)):
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
    inputs = (problem.y0, problem.params, y0, params)
    last = _broadcast_last.repeat((), (), inputs)
    if last is not None:  # the very arrays of the last call, checked then (jax: immutable)
        return last
    out = _broadcast_ensemble(problem, y0, params)
    _broadcast_last.remember((), (), inputs, True, out)
    return out


def _broadcast_ensemble(problem: ODEProblem, y0, params):
    base_y0 = _as_jax(problem.y0)
    dim = base_y0.shape[-1]
    sizes: dict[str, int] = {}
    if y0 is not None:
        y0 = _as_jax(y0)
        if y0.ndim != 2 or y0.shape[1] != dim:
            raise SimkitInputError(
                f"ensemble y0 must have shape (n_members, {dim}), got {tuple(y0.shape)}."
            )
        sizes["y0"] = y0.shape[0]
        require_finite_once("ensemble y0", y0)
    if params is not None:
        leaves = jax.tree_util.tree_leaves(params)
        base_leaves = jax.tree_util.tree_leaves(problem.params)
        if len(leaves) != len(base_leaves):
            raise SimkitInputError(
                "ensemble params must have the same structure as problem.params."
            )
        for leaf, base in zip(leaves, base_leaves, strict=False):
            shape = leaf.shape if is_concrete_array(leaf) else jnp.shape(leaf)
            if len(shape) != np.ndim(base) + 1:
                raise SimkitInputError(
                    f"ensemble params leaves need one leading ensemble axis: got shape "
                    f"{tuple(shape)} for a parameter of shape {tuple(jnp.shape(base))}."
                )
            sizes.setdefault("params", shape[0])
            if shape[0] != sizes["params"]:
                raise SimkitInputError("ensemble params leaves disagree on the ensemble size.")
        require_finite_once("ensemble params", params)
    if not sizes:
        raise SimkitInputError("solve_ensemble needs batched y0 and/or params.")
    ns = set(sizes.values())
    if len(ns) > 1:
        raise SimkitInputError(f"ensemble inputs disagree on the number of members: {sizes}.")
    n = ns.pop()
    if n == 0:
        raise SimkitInputError("ensemble size must be >= 1, got 0 members.")
    y0s = y0 if y0 is not None else _broadcast(base_y0, n)
    if params is None:
        params = jax.tree_util.tree_map(lambda p: _broadcast(p, n), problem.params)
    return y0s, params, n


_broadcasts = IdentityCache()


def _broadcast(x, n: int):
    """`x` repeated along a new leading axis of size `n`; cached for jax arrays (immutable), so
    a repeated ensemble call does not dispatch a broadcast per shared input."""
    if not isinstance(x, jax.Array) or isinstance(x, jax.core.Tracer):
        return jnp.broadcast_to(x, (n, *jnp.shape(x)))
    out = _broadcasts.get(x, (n,))
    if out is None:
        with jax.ensure_compile_time_eval():  # concrete even inside the caller's jit
            out = jnp.broadcast_to(x, (n, *x.shape))
        _broadcasts.put(x, out, (n,))
    return out


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
    threads: int | None = None,
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
        threads: fused engine on one CPU device: split the members over this many host
            threads, one core each (default None: one per core when each keeps 2048 members;
            1: none). See `solve_ensemble_fused`.

    The other arguments are as in `solve` (rtol, atol > 0; max_steps <= 2**31 - 1; fixed-step
    fused solves need `t1 - t0` and the save times to be whole multiples of `dt0`).

    Returns:
        (ts `(n_save,)`, ys `(n_members, n_save, dim)`).

    Example:
        >>> prob = ODEProblem(lambda t, y, p: -p * y, jnp.ones(1), jnp.array(1.0), 0.0, 1.0)
        >>> ts, ys = solve_ensemble(prob, params=jnp.linspace(0.5, 2.0, 8))  # fused Tsit5
    """
    check_threads(threads)
    fast = _ensemble_fast(
        problem, y0, params, solver, stiff, dt0, fixed_step, rtol, atol, saveat, max_steps, shard,
        throw, method, threads,
    )  # fmt: skip
    if fast is not None:
        return fast

    engine, solver = _ensemble_plan(
        problem, y0, params, solver, stiff, fixed_step, rtol, atol, max_steps, method
    )
    if engine == "fused":
        return _fused_ts_ys(
            problem,
            y0,
            params,
            solver,
            dt0,
            fixed_step,
            rtol,
            atol,
            saveat,
            max_steps,
            shard,
            throw,
            threads,
        )
    validate_problem_once(problem)
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


def _ensemble_plan(problem, y0, params, solver, stiff, fixed_step, rtol, atol, max_steps, method):
    """`solve_ensemble`'s checks of its options and its choice of engine: ("fused" or
    "diffrax", the solver; a name for the fused engine, a diffrax solver for diffrax)."""
    from ._fused import _is_traced
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
        return "fused", solver
    if isinstance(solver, str):
        named = {"tsit5": diffrax.Tsit5, "dopri5": diffrax.Dopri5}
        if solver.lower() not in named:
            raise SimkitInputError(
                f"{solver!r} runs only in the fused engine (diffrax has no such solver); use "
                "method='fused' (fixed_step=True) or a diffrax solver."
            )
        solver = named[solver.lower()]()
    return "diffrax", solver


def _fused_ts_ys(
    problem, y0, params, solver, dt0, fixed_step, rtol, atol, saveat, max_steps, shard, throw,
    threads,
):  # fmt: skip
    """`solve_ensemble`'s fused engine: `(ts, ys)` of `solve_ensemble_fused`."""
    from ._fused import solve_ensemble_fused

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
        threads=threads,
    )
    return sol.ts, sol.ys


@functools.lru_cache(maxsize=64)
def _vmapped_diffrax(
    vector_field,
    solver,
    fixed_step,
    rtol,
    atol,
    dt0,
    max_steps,
    t0,
    t1,
    with_ts,
    y0_axis=0,
    params_axis=0,
):
    """`vmap` of one diffrax solve, built once per configuration so jit caches hit on repeated
    `solve_ensemble` calls (a fresh closure per call would recompile every time). An axis None
    shares that input between members (no broadcast copy per call)."""
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

    return jax.vmap(one, in_axes=(y0_axis, params_axis) + ((None,) if with_ts else ()))


@functools.lru_cache(maxsize=64)
def _jit(fn):
    return jax.jit(fn)


# ---------------------------------------------------------------------------------------------
# Repeat-call fast paths (issue 13: every entry point within 1.2x of the bare jitted call it
# wraps). What depends only on a call's static configuration (vector field, time span, solver,
# options, and the shapes and dtypes of y0 and params) is checked once per configuration; what
# depends on the values is checked on every call: y0 and params finite (skipped only for the
# very jax arrays checked before: they are immutable) and the save times (cached per immutable
# jax array, or per content of a NumPy array, which may be mutated between calls).


_broadcast_last = LastCall()


_solve_entries: dict[tuple, list] = {}
_solve_last = LastCall()


@functools.lru_cache(maxsize=FAST_CACHE_SIZE)
def _solve_fn(vector_field, solver, t0, t1, fixed_step, dense, max_steps, with_ts):
    """`solve`'s jitted diffrax call for one static configuration; tolerances, dt0 and the save
    times are arguments (new values do not recompile)."""

    def run(y0, params, rtol, atol, dt0, ts):
        controller = (
            diffrax.ConstantStepSize()
            if fixed_step
            else diffrax.PIDController(rtol=rtol, atol=atol)
        )
        saveat = (
            diffrax.SaveAt(ts=ts, dense=dense) if with_ts else diffrax.SaveAt(t1=True, dense=dense)
        )
        return diffeqsolve_problem(
            vector_field,
            y0,
            params,
            t0,
            t1,
            solver=solver,
            controller=controller,
            dt0=dt0,
            saveat=saveat,
            max_steps=max_steps,
        )

    return jax.jit(run)


def _solve_fast(problem, solver, stiff, dt0, fixed_step, rtol, atol, saveat, dense, max_steps):
    """`solve` on its fast path: (solution, solver), or None when the call is not plain
    (array/traced options or inputs, unhashable vector field or solver): the checked path."""
    if not plain_options(rtol, atol, dt0, max_steps):
        return None
    options = (stiff, fixed_step, dense, rtol, atol, dt0, max_steps, save_times_token(saveat))
    hit = _solve_last.repeat((problem, solver, saveat), options, (problem.y0, problem.params))
    if hit is not None:
        return hit[0](), hit[1]
    vf, y0, params = problem.vector_field, problem.y0, problem.params
    t0, t1 = problem.t0, problem.t1
    base, leaves, concrete = input_key(vf, t0, t1, y0, params)
    if not concrete:
        return None
    with_ts = saveat is not None
    key = (base, solver, stiff, bool(fixed_step), bool(dense), rtol, atol, dt0, max_steps, with_ts)
    try:
        entry = _solve_entries.get(key)
    except TypeError:
        return None
    arrays = (y0, *leaves)
    if entry is None:
        # First call of this configuration: every check, then remember that it passed.
        _check_solve(problem, dt0, fixed_step, rtol, atol, max_steps)
        resolved = default_solver(stiff) if solver is None else solver
        dtype = y0.dtype
        fn = _solve_fn(vf, resolved, t0, t1, bool(fixed_step), bool(dense), max_steps, with_ts)
        entry = [
            resolved,
            fn,
            device_constant(rtol, dtype),
            device_constant(atol, dtype),
            None if dt0 is None else device_constant(dt0, dtype),
            checked_arrays(arrays),
        ]
        _cache_put(_solve_entries, key, entry)
    elif any(x is not c for x, c in zip(arrays, entry[5], strict=True)):
        if not known_finite(arrays, entry[5]):
            validate_problem(problem)  # raises, naming the leaf
        entry[5] = checked_arrays(arrays)
    resolved, fn, rtol_a, atol_a, dt0_a, _ = entry
    ts = device_save_times(t0, t1, saveat, y0.dtype) if with_ts else None

    def thunk():
        return fn(y0, params, rtol_a, atol_a, dt0_a, ts)

    immutable = save_times_token(saveat) is not NOT_REMEMBERED
    _solve_last.remember(
        (problem, solver, saveat), options, (y0, params), immutable, (thunk, resolved)
    )
    return thunk(), resolved


def _check_solve(problem, dt0, fixed_step, rtol, atol, max_steps) -> None:
    """`solve`'s host-side checks of the problem and its options."""
    validate_problem_once(problem)
    if dt0 is not None:
        require_positive("dt0", dt0)
    check_max_steps(max_steps)
    if fixed_step and dt0 is None:
        raise SimkitInputError("fixed_step=True needs dt0 (the constant step size).")
    if not fixed_step:
        check_tolerances(rtol, atol, jnp.asarray(problem.y0), min_eps=_RTOL_MIN_EPS_EXPLICIT)


_ensemble_entries: dict[tuple, list] = {}
_ensemble_last = LastCall()
_local_devices: list[int] = []


def _local_device_count() -> int:
    if not _local_devices:
        _local_devices.append(jax.local_device_count())
    return _local_devices[0]


def _batched_struct(tree) -> tuple | None:
    """(tree structure, shape and dtype of every leaf) of a batched input, or None when some
    leaf is not a concrete array."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    if not all(is_concrete_array(x) for x in leaves):
        return None
    return (treedef, *((x.shape, x.dtype) for x in leaves))


def _ensemble_fast(
    problem, y0, params, solver, stiff, dt0, fixed_step, rtol, atol, saveat, max_steps, shard,
    throw, method, threads,
):  # fmt: skip
    """`solve_ensemble` on its fast path: (ts, ys), or None for the checked path (array or
    traced options or inputs, several devices to shard over, unhashable configuration)."""
    if (
        not plain_options(rtol, atol, dt0, max_steps)
        or type(fixed_step) is not bool
        or (shard and _local_device_count() > 1)
    ):
        return None
    options = (
        stiff, fixed_step, rtol, atol, dt0, max_steps, method, threads, save_times_token(saveat)
    )  # fmt: skip
    same = (problem, solver, saveat, y0, params)
    tree = (problem.y0, problem.params, y0, params)
    remembered = _ensemble_last.repeat(same, options, tree)
    if remembered is not None:
        return remembered(throw)
    base, leaves, concrete = input_key(
        problem.vector_field, problem.t0, problem.t1, problem.y0, problem.params
    )
    y0_struct = None if y0 is None else _batched_struct(y0)
    params_struct = None if params is None else _batched_struct(params)
    if (
        not concrete
        or (y0 is not None and y0_struct is None)
        or (params is not None and params_struct is None)
    ):
        return None
    key = (base, y0_struct, params_struct, solver, options, saveat is None)
    try:
        entry = _ensemble_entries.get(key)
    except TypeError:
        return None
    arrays = tuple(jax.tree_util.tree_leaves(tree))
    if entry is None:
        entry = _ensemble_entry(
            problem, y0, params, solver, stiff, dt0, fixed_step, rtol, atol, saveat, max_steps,
            method, arrays,
        )  # fmt: skip
        _cache_put(_ensemble_entries, key, entry)
    elif entry[0] == "diffrax" and any(x is not c for x, c in zip(arrays, entry[4], strict=True)):
        if not known_finite(arrays, entry[4]):
            broadcast_ensemble(problem, y0, params)  # raises, naming the input
            validate_problem(problem)
        entry[4] = checked_arrays(arrays)
    if entry[0] == "fused":
        fused_solver = entry[1]

        def run_fused(throw):
            return _fused_ts_ys(
                problem,
                y0,
                params,
                fused_solver,
                dt0,
                fixed_step,
                rtol,
                atol,
                saveat,
                max_steps,
                shard,
                throw,
                threads,
            )

        # The fused solve checks its inputs' values itself, on every call.
        _ensemble_last.remember(same, options, tree, True, run_fused)
        return run_fused(throw)
    _, resolved, fn, t1_ts, _ = entry
    ts = t1_ts if saveat is None else device_save_times(problem.t0, problem.t1, saveat, t1_ts.dtype)
    y0_in = problem.y0 if y0 is None else y0
    params_in = problem.params if params is None else params
    extra = () if saveat is None else (ts,)

    def run(throw):
        _, ys, res = fn(y0_in, params_in, *extra)
        if throw:
            _raise_on_failure(res, resolved, max_steps)
        return ts, ys

    immutable = save_times_token(saveat) is not NOT_REMEMBERED
    _ensemble_last.remember(same, options, tree, immutable, run)
    return run(throw)


def _ensemble_entry(
    problem, y0, params, solver, stiff, dt0, fixed_step, rtol, atol, saveat, max_steps, method,
    arrays,
):  # fmt: skip
    """First call of a `solve_ensemble` configuration: every check, and what the next calls
    need: ["fused", solver] or ["diffrax", solver, jitted fn, [t1] on the device, the arrays
    found finite]."""
    engine, resolved = _ensemble_plan(
        problem, y0, params, solver, stiff, fixed_step, rtol, atol, max_steps, method
    )
    if engine == "fused":
        return ["fused", resolved]
    validate_problem_once(problem)
    broadcast_ensemble(problem, y0, params)  # shapes, sizes, finite values
    if dt0 is not None:
        require_positive("dt0", dt0)
    if fixed_step and dt0 is None:
        raise SimkitInputError("fixed_step=True needs dt0 (the constant step size).")
    dtype = _state_time_dtype(problem.y0)
    if saveat is not None:
        device_save_times(problem.t0, problem.t1, saveat, dtype)
    batched = _vmapped_diffrax(
        problem.vector_field,
        resolved,
        bool(fixed_step),
        float(rtol),
        float(atol),
        dt0,
        int(max_steps),
        problem.t0,
        problem.t1,
        saveat is not None,
        None if y0 is None else 0,
        None if params is None else 0,
    )
    t1_ts = device_constant(np.asarray([problem.t1], dtype))
    return ["diffrax", resolved, _jit(batched), t1_ts, checked_arrays(arrays)]
