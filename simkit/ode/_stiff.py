"""Stiff ODE solves with Rosenbrock methods on diffrax: one problem, or an ensemble.

`solve_stiff` and `solve_stiff_ensemble` run `diffrax.diffeqsolve` with a Rodas solver (`Rodas5`
by default, or `Rodas5P`; see `_rosenbrock.py`) and diffrax's PID step-size controller, after
host-side input checks. Compiled code is cached per vector-field object, time span and static
options, so a second call with new `y0`, `params`, tolerances or save times does not recompile.

Why not Kvaerno5 (diffrax's stiff default)? On Robertson's problem at rtol 1e-8 on CPU, Kvaerno5
spends its time in per-stage Newton iterations and rejects about half of its steps when the
Newton iteration fails to converge; a Rosenbrock method needs no iteration at all (one LU per
step). Numbers: `benchmarks/bench_robertson.py`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PyTree

from .._checks import SimkitInputError, require_positive
from ._fastpath import (
    FAST_CACHE_SIZE,
    NOT_REMEMBERED,
    LastCall,
    check_save_times,
    checked_arrays,
    device_constant,
    device_save_times,
    input_key,
    known_finite,
    plain_options,
    save_times_token,
    validate_problem_once,
)
from ._problem import ODEProblem
from ._rosenbrock import AbstractRodas, Rodas5
from ._solve import (
    MAX_STEPS_CODE,
    broadcast_ensemble,
    check_max_steps,
    check_tolerances,
    failed_codes,
    failed_mask,
)


def _save_times(problem: ODEProblem, saveat: ArrayLike | None, dtype) -> np.ndarray:
    """Validated save times `(n_save,)`; default `[t1]`."""
    if saveat is None:
        return np.asarray([problem.t1], dtype=dtype)
    return check_save_times(problem.t0, problem.t1, saveat, dtype)


def _diffeqsolve(
    vector_field, solver, t0, t1, max_steps, y0, params, rtol, atol, ts, dt0, adjoint=None
):
    kwargs = {} if adjoint is None else {"adjoint": adjoint}
    return diffrax.diffeqsolve(
        diffrax.ODETerm(vector_field),
        solver,
        t0,
        t1,
        dt0,
        y0,
        args=params,
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=max_steps,
        throw=False,
        **kwargs,
    )


@functools.partial(jax.jit, static_argnames=("vector_field", "solver", "t0", "t1", "max_steps"))
def _solve_jit(y0, params, rtol, atol, ts, dt0, *, vector_field, solver, t0, t1, max_steps):
    return _diffeqsolve(vector_field, solver, t0, t1, max_steps, y0, params, rtol, atol, ts, dt0)


@eqx.filter_jit
def _solve_jit_adjoint(y0, params, rtol, atol, ts, dt0, static):
    """As `_solve_jit` with a user-chosen adjoint (some, e.g. `BacksolveAdjoint`, hold dicts
    and are not hashable, so everything static goes through `filter_jit`'s partitioning)."""
    vector_field, solver, t0, t1, max_steps, adjoint = static
    return _diffeqsolve(
        vector_field, solver, t0, t1, max_steps, y0, params, rtol, atol, ts, dt0, adjoint=adjoint
    )


_ensemble_fns: dict[tuple, Callable] = {}


def _ensemble_fn(vector_field, solver, t0, t1, max_steps, with_dt0: bool) -> Callable:
    """The batched solve for one static configuration, built once (so jit caches hit)."""
    key = (vector_field, solver, t0, t1, max_steps, with_dt0)
    fn = _ensemble_fns.get(key)
    if fn is None:

        def one(y0, params, rtol, atol, ts, dt0):
            sol = _diffeqsolve(
                vector_field,
                solver,
                t0,
                t1,
                max_steps,
                y0,
                params,
                rtol,
                atol,
                ts,
                dt0 if with_dt0 else None,
            )
            return sol.ys, sol.result

        fn = jax.vmap(one, in_axes=(0, 0, None, None, None, None))
        if len(_ensemble_fns) > 64:
            _ensemble_fns.clear()
        _ensemble_fns[key] = fn
    return fn


_jit_ensemble = jax.jit(lambda fn, *a: fn(*a), static_argnums=0)


def _traced(tree) -> bool:
    return any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(tree))


def _raise_on_failure(result, solver, max_steps: int, where: str) -> None:
    codes = failed_codes(result)  # on the host: no jax op on the fast path
    if codes is None:
        return
    failed = failed_mask(codes)
    idx = np.flatnonzero(failed)
    name = type(solver).__name__
    which = (
        ""
        if failed.size == 1
        else (f" in {idx.size} of {failed.size} members (first: {idx[:5].tolist()})")
    )
    if np.any(codes == MAX_STEPS_CODE):
        raise RuntimeError(
            f"{where}: {name} reached max_steps={max_steps} before t1{which}. {name} is already "
            "a stiff (L-stable) solver, so stiffness is not the cause: raise max_steps, loosen "
            "rtol/atol, or check the vector field and parameters for a solution that blows up "
            "or turns NaN (the step size then shrinks until the step limit)."
        )
    raise RuntimeError(f"{where}: {name} failed{which} (diffrax result {result}).")


def _check_common(problem: ODEProblem, solver, rtol, atol, max_steps, dt0, saveat):
    """Host-side checks shared by both entry points; returns the validated save times."""
    if not isinstance(solver, AbstractRodas):
        raise SimkitInputError(
            f"solver must be a simkit Rosenbrock solver (Rodas5() or Rodas5P()), got "
            f"{type(solver).__name__}; for other diffrax solvers use simkit.ode.solve."
        )
    y0 = jnp.asarray(problem.y0)
    check_tolerances(rtol, atol, y0)
    check_max_steps(max_steps)
    if dt0 is not None:
        require_positive("dt0", dt0)
    return _save_times(problem, saveat, y0.dtype)


# Host-side cost per call must stay small next to a compiled solve of ~0.1 ms (issue 13: every
# entry point within 1.2x of the bare jitted call it wraps). What depends only on a call's
# static configuration (vector field, time span, solver, max_steps, tolerances, dt0, and the
# shapes and dtypes of y0 and params: `_solve.input_key`) is checked once; the entry keeps the
# tolerances as device arrays and a jitted function of arrays only, so jax dispatches it as fast
# as a bare jit. Per call only values are checked: y0 and params finite, and the save times
# (`_solve.device_save_times`).
_fast_entries: dict[tuple, list] = {}
_fast_fns: dict[tuple, Callable] = {}
_last_call = LastCall()


def _fast_call(problem: ODEProblem, solver, rtol, atol, saveat, dt0, max_steps):
    """A thunk running the solve with per-call checks only, or None for the checked path
    (array or traced tolerances or inputs, an unhashable vector field or solver)."""
    if not plain_options(rtol, atol, dt0, max_steps):
        return None
    options = (rtol, atol, dt0, max_steps, save_times_token(saveat))
    remembered = _last_call.repeat((problem, solver, saveat), options, (problem.y0, problem.params))
    if remembered is not None:
        return remembered
    vector_field, y0, params = problem.vector_field, problem.y0, problem.params
    t0, t1 = problem.t0, problem.t1
    base, leaves, concrete = input_key(vector_field, t0, t1, y0, params)
    if not concrete:
        return None
    key = (base, solver, max_steps, rtol, atol, dt0)
    try:
        entry = _fast_entries.get(key)
    except TypeError:  # an unhashable vector field or solver
        return None
    arrays = (y0, *leaves)
    if entry is None:
        # First call of this configuration: every check, then remember that it passed.
        validate_problem_once(problem)
        default_ts = device_constant(
            _check_common(problem, solver, rtol, atol, max_steps, dt0, None)
        )
        fn_key = (vector_field, solver, t0, t1, max_steps)
        fn = _fast_fns.get(fn_key)
        if fn is None:
            fn = jax.jit(functools.partial(_diffeqsolve, *fn_key))
            if len(_fast_fns) >= FAST_CACHE_SIZE:
                _fast_fns.clear()
            _fast_fns[fn_key] = fn
        dtype = y0.dtype
        entry = [
            fn,
            device_constant(rtol, dtype),
            device_constant(atol, dtype),
            None if dt0 is None else device_constant(dt0, dtype),
            default_ts,
            checked_arrays(arrays),
        ]
        if len(_fast_entries) >= FAST_CACHE_SIZE:
            _fast_entries.clear()
        _fast_entries[key] = entry
    elif any(x is not c for x, c in zip(arrays, entry[5], strict=True)):
        if not known_finite(arrays, entry[5]):
            validate_problem_once(problem)  # raises, naming the leaf
        entry[5] = checked_arrays(arrays)
    fn, rtol_a, atol_a, dt0_a, default_ts, _ = entry
    ts = default_ts if saveat is None else device_save_times(t0, t1, saveat, y0.dtype)

    def thunk():
        return fn(y0, params, rtol_a, atol_a, ts, dt0_a)

    immutable = options[-1] is not NOT_REMEMBERED
    _last_call.remember((problem, solver, saveat), options, (y0, params), immutable, thunk)
    return thunk


def solve_stiff(
    problem: ODEProblem,
    *,
    solver: AbstractRodas = Rodas5(),
    rtol: float = 1e-6,
    atol: float | Float[ArrayLike, " dim"] = 1e-6,
    saveat: Float[ArrayLike, " n_save"] | None = None,
    dt0: float | None = None,
    max_steps: int = 100_000,
    throw: bool = True,
    adjoint: diffrax.AbstractAdjoint | None = None,
) -> diffrax.Solution:
    """Solve one stiff ODE problem with a Rosenbrock method (diffrax underneath).

    Error control is diffrax's `PIDController`: a step is accepted when the RMS over components
    of `err / (atol + rtol * max(|y0|, |y1|))` is at most 1. Save times are served by the
    method's 4th-order dense output, so they do not shorten steps.

    Args:
        problem: the `ODEProblem`; `y0` of shape `(dim,)`, float64 for tight tolerances.
        solver: `Rodas5()` (default; most accurate per step on chemical kinetics such as
            Robertson) or `Rodas5P()` (no order loss on stiff problems driven by a fast
            time-dependent forcing, e.g. y' = -1000 (y - cos t): there it takes ~10x fewer steps).
        rtol: relative tolerance, > 100 machine epsilons of `y0`'s dtype.
        atol: absolute tolerance (units of y), a number or one per component `(dim,)`; pick it
            below the smallest magnitude you need resolved (e.g. 1e-12 for Robertson's y2).
        saveat: save times `(n_save,)` inside `[t0, t1]`, non-decreasing; default `[t1]`.
        dt0: first step (time units); default chosen by diffrax from the vector field.
        max_steps: step limit (accepted + rejected).
        throw: raise `RuntimeError` on failure (default); otherwise inspect `sol.result`.
            Under the caller's `jit`/`vmap`/`grad` a failure raises through `eqx.error_if`.
        adjoint: diffrax adjoint for gradients: default `RecursiveCheckpointAdjoint` (reverse
            mode); `diffrax.ForwardMode()` for `jax.jacfwd`, `diffrax.BacksolveAdjoint()`, ...

    Returns:
        `diffrax.Solution` with `ts` `(n_save,)`, `ys` `(n_save, dim)`, `stats`, `result`.

    Raises:
        SimkitInputError: bad problem, solver, tolerances (e.g. rtol < 0 or below float32
            resolution), save times, dt0 or max_steps, before anything is compiled.
        RuntimeError: the solve hit `max_steps` or failed (with `throw=True`).

    Example:
        >>> prob = ODEProblem(robertson, jnp.array([1.0, 0.0, 0.0]), k, 0.0, 1e5)
        >>> sol = solve_stiff(prob, rtol=1e-8, atol=1e-12, saveat=jnp.logspace(-5, 5, 11))
    """
    fast = (
        None
        if adjoint is not None
        else _fast_call(problem, solver, rtol, atol, saveat, dt0, max_steps)
    )
    if fast is not None:
        sol = fast()
    else:
        sol = _checked_solve(problem, solver, rtol, atol, saveat, dt0, max_steps, adjoint)
    if throw:
        result = sol.result
        if isinstance(result._value, jax.core.Tracer):  # under the caller's jit/vmap/grad
            return eqx.error_if(
                sol,
                sol.result != diffrax.RESULTS.successful,
                f"solve_stiff: {type(solver).__name__} failed or reached max_steps={max_steps} "
                "before t1 (pass throw=False and read sol.result to handle it yourself).",
            )
        _raise_on_failure(result, solver, max_steps, "solve_stiff")
    return sol


def _checked_solve(problem, solver, rtol, atol, saveat, dt0, max_steps, adjoint):
    """`solve_stiff` with every host-side check, for calls the fast path does not take
    (array or traced tolerances, a user-chosen adjoint, ...)."""
    validate_problem_once(problem)
    ts = _check_common(problem, solver, rtol, atol, max_steps, dt0, saveat)
    y0 = jnp.asarray(problem.y0)
    inputs = (
        y0,
        problem.params,
        np.asarray(rtol, y0.dtype),
        np.asarray(atol, y0.dtype),
        ts,
        None if dt0 is None else np.asarray(dt0, y0.dtype),
    )
    if adjoint is None:
        sol = _solve_jit(
            *inputs,
            vector_field=problem.vector_field,
            solver=solver,
            t0=problem.t0,
            t1=problem.t1,
            max_steps=max_steps,
        )
    else:
        static = (problem.vector_field, solver, problem.t0, problem.t1, max_steps, adjoint)
        sol = _solve_jit_adjoint(*inputs, static)
    return sol


def solve_stiff_ensemble(
    problem: ODEProblem,
    *,
    y0: Float[ArrayLike, "n dim"] | None = None,
    params: PyTree | None = None,
    solver: AbstractRodas = Rodas5(),
    rtol: float = 1e-6,
    atol: float | Float[ArrayLike, " dim"] = 1e-6,
    saveat: Float[ArrayLike, " n_save"] | None = None,
    dt0: float | None = None,
    max_steps: int = 100_000,
    shard: bool = True,
    throw: bool = True,
) -> tuple[Float[np.ndarray, " n_save"], Float[Array, "n n_save dim"]]:
    """Solve many members of a stiff problem at once (vmap of `solve_stiff`, one compile).

    Each member keeps its own step size; members that reach t1 first are masked (they stay at
    their final state) while the others keep stepping, so the cost is that of the slowest member.

    Args:
        problem: the `ODEProblem` describing one member (unbatched `y0`, `params`).
        y0: batched initial states `(n_members, dim)`; default `problem.y0` for every member.
        params: pytree like `problem.params` with a leading `(n_members, ...)` axis on every
            leaf (e.g. a sweep over rate constants); default `problem.params` for every member.
        shard: spread members over all local devices (`simkit.ensemble.sharded_call`). With
            several devices the step loop runs until the slowest member of all devices is done.
        solver: as in `solve_stiff` (shared by all members, as are the next five).
        rtol: as in `solve_stiff`.
        atol: as in `solve_stiff`.
        saveat: as in `solve_stiff`.
        dt0: as in `solve_stiff`.
        max_steps: as in `solve_stiff`.
        throw: as in `solve_stiff`.

    Returns:
        (ts `(n_save,)` (a host NumPy array), ys `(n_members, n_save, dim)`). With
        `throw=False`, a member that failed holds `inf` at the save times it did not reach.

    Raises:
        SimkitInputError: as `solve_stiff`, plus batched inputs of the wrong shape or size.
        RuntimeError: some member hit `max_steps` or failed (the message lists which).

    Example:
        >>> ks = jnp.stack([k1_grid, jnp.full(n, 3e7), jnp.full(n, 1e4)], axis=1)
        >>> ts, ys = solve_stiff_ensemble(prob, params=ks, rtol=1e-8, atol=1e-12)
    """
    validate_problem_once(problem)
    y0s, batched_params, _ = broadcast_ensemble(problem, y0, params)
    dtype = jnp.asarray(problem.y0).dtype
    if y0s.dtype != dtype:
        raise SimkitInputError(
            f"ensemble y0 has dtype {y0s.dtype} but problem.y0 has {dtype}; use one dtype "
            "(simkit never converts silently)."
        )
    ts = _check_common(problem, solver, rtol, atol, max_steps, dt0, saveat)
    fn = _ensemble_fn(
        problem.vector_field, solver, problem.t0, problem.t1, max_steps, dt0 is not None
    )
    shared = (
        np.asarray(rtol, dtype),
        np.asarray(atol, dtype),
        ts,
        np.asarray(0.0 if dt0 is None else dt0, dtype),
    )
    if shard and jax.local_device_count() > 1:
        from ..ensemble import sharded_call

        ys, result = sharded_call(fn, y0s, batched_params, broadcast=shared)
    else:
        ys, result = _jit_ensemble(fn, y0s, batched_params, *shared)
    if throw:
        if _traced(result):  # under the caller's jit/vmap/grad
            ys = eqx.error_if(
                ys,
                result != diffrax.RESULTS.successful,
                f"solve_stiff_ensemble: {type(solver).__name__} failed or reached "
                f"max_steps={max_steps} before t1 in some member (pass throw=False to get inf "
                "there instead).",
            )
        else:
            _raise_on_failure(result, solver, max_steps, "solve_stiff_ensemble")
    return ts, ys
