"""Many independent fits as one batch, without lockstep; multi-start fits.

`vmap` of an iterative solver runs every member until the slowest one has converged (the while
loop's condition becomes "any member still running"), and every iteration costs the full batch.
Here the batch is advanced by a vectorised Levenberg-Marquardt (simkit's, see `_lm`) in
*segments*; a segment ends as soon as the running members fit a batch a quarter of the current
size or smaller. They then get a few more iterations in place (a short tail costs no new
compilation), and whatever still runs is gathered into that smaller batch. Batch sizes come
from a ladder (the full size, then 16 * 4^j), so at most a handful of shapes are compiled, each
only when a long tail makes it worth a compilation. (A finer ladder, 16 * 2^j compacting at
half, measured the same on a quiet machine for 1000 Lotka-Volterra fits, RK4 97 vs 99 ms and
simkit's adaptive model 475 vs 480 ms, at the cost of more compiled shapes.)
"""

from __future__ import annotations

import functools
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import ArrayLike, PyTree

from .._checks import SimkitInputError, require_positive
from .._compile import with_cpu_options
from ..ensemble._threads import (
    check_threads,
    chunk_count,
    join_members,
    run_chunks,
    split_members,
)
from ._least_squares import (
    Jac,
    _check_jac,
    _fit_core,
    finalise_lm,
    jacobian_x,
    jacobian_x_from_state,
    prepare,
)
from ._lm import lm_init, lm_step
from ._problem import Model, require_step_limit
from ._result import FitError, FitResult, FitStatus
from ._transforms import ParamTransform

_MIN_BUCKET = 16
_GROWTH = 4  # buckets 16 * 4^j ...
_COMPACT = 0.25  # ... compacted when the running members fit a batch <= 1/4 of the current
_GRACE = 4  # iterations run in place first: a short tail never compiles a new shape
# Fewest fits per host thread (`simkit.ensemble._threads`): a thread's start-up and host loop
# cost well under a millisecond, ~10 single Lotka-Volterra fits' worth of batched work. 1000 LV
# fits on the 2-core EPYC (benchmarks/bench_fit.py): two threads 1.5x (RK4 model, 32 vs 47 ms)
# to 2.2x (adaptive diffrax model) one thread.
_MIN_CHUNK = 64


@functools.partial(with_cpu_options, eqx.filter_jit)
def _batch_init(model, has_args, transform, jac, x0s, batched, shared, axes):
    def one(x0, b):
        data, inv_sigma, args = _merge(b, shared, axes)
        return lm_init(
            model, has_args, transform, jac, transform.from_flat(x0), data, inv_sigma, args
        )

    return jax.vmap(one)(x0s, batched)


@functools.partial(with_cpu_options, eqx.filter_jit)
def _batch_segment(
    model,
    has_args,
    transform,
    jac,
    rtol,
    atol,
    max_steps,
    n_iter,
    n_stop,
    states,
    batched,
    shared,
    axes,
):
    """Advance every running member by up to `n_iter` iterations; stop early once at most
    `n_stop` members are still running (0: when all have finished)."""

    def step_all(st):
        def one(s, b):
            data, inv_sigma, args = _merge(b, shared, axes)
            return lm_step(
                model, has_args, transform, jac, rtol, atol, max_steps, s, data, inv_sigma, args
            )

        return jax.vmap(one)(st, batched)

    def cond(carry):
        k, st = carry
        return (k < n_iter) & (jnp.sum(st.status == FitStatus.RUNNING) > n_stop)

    def body(carry):
        k, st = carry
        return k + 1, step_all(st)

    _, states = jax.lax.while_loop(cond, body, (jnp.zeros((), jnp.int32), states))
    return states


@functools.partial(with_cpu_options, eqx.filter_jit)
def _batch_finalise(
    model,
    has_args,
    transform,
    jac,
    absolute_sigma,
    states,
    batched,
    shared,
    axes,
    rtol: ArrayLike = 1e-8,
    atol: ArrayLike = 1e-8,
    cost0=None,
):
    """Covariances from the states' Jacobians (`J_x = J_u / D`); the Jacobians are evaluated
    afresh for the whole batch only if some member's transform is saturated."""
    J_fast, usable = jax.vmap(lambda s: jacobian_x_from_state(transform, s))(states)

    def slow(b):
        def one(s, bb):
            data, inv_sigma, args = _merge(bb, shared, axes)
            return jacobian_x(
                model, has_args, transform, transform.to_flat(s.u), data, inv_sigma, args, jac
            )

        return jax.vmap(one)(states, b)

    J_xs = jax.lax.cond(jnp.all(usable), lambda b: J_fast, slow, batched)

    def one(s, J_x, b, c0):
        data, inv_sigma, args = _merge(b, shared, axes)
        return finalise_lm(
            model,
            has_args,
            transform,
            s,
            data,
            inv_sigma,
            args,
            jac=jac,
            absolute_sigma=absolute_sigma,
            J_x=J_x,
            rtol=rtol,
            atol=atol,
            method="simkit batched LevenbergMarquardt",
            r0_norm=None if c0 is None else jnp.sqrt(2.0 * c0),
        )

    return jax.vmap(one)(states, J_xs, batched, cost0)


def _merge(b, shared, axes):
    """(data, inv_sigma, args) for one member from its batched slice and the shared parts (for
    batched `args`, the shared part holds its non-array leaves, e.g. functions)."""
    out = []
    for i, ax in enumerate(axes):
        if ax and shared[i] is not None:
            out.append(eqx.combine(b[i], shared[i]))
        else:
            out.append(b[i] if ax else shared[i])
    return tuple(out)


def _bucket(n_active: int, n_total: int) -> int:
    """Batch size for `n_active` running members: the next of 16, 64, 256, ... (at most n)."""
    size = _MIN_BUCKET
    while size < n_active:
        size *= _GROWTH
    return min(size, n_total)


def _stop_below(size: int) -> int:
    """Running count at which a batch of `size` is worth compacting: the largest bucket of at
    most `_COMPACT * size` (0 when there is none: run until every member is done)."""
    b = 0
    while max(_GROWTH * b, _MIN_BUCKET) <= _COMPACT * size:
        b = max(_GROWTH * b, _MIN_BUCKET)
    return b


@eqx.filter_jit
def _take(tree, idx):
    """Gather members `idx` of every leaf (one compiled call per bucket size, not per leaf)."""
    return jax.tree_util.tree_map(lambda x: x[idx], tree)


@eqx.filter_jit
def _put(tree, idx, part):
    return jax.tree_util.tree_map(lambda full, p: full.at[idx].set(p), tree, part)


def run_batched_lm(
    model,
    has_args,
    transform,
    x0s,
    batched,
    shared,
    axes,
    *,
    jac,
    rtol,
    atol,
    max_steps,
    segment_steps,
    absolute_sigma,
) -> FitResult:
    """Host driver: segments that end when compacting pays, compaction in between.

    The working batch is either the whole batch in place (`idx` None) or a gathered sub-batch
    `cur` of the members `idx` (padded to a bucket size by repeating a running member; the
    copies compute identical values, so the duplicate writes in `_put` agree). Each segment
    costs one host round trip (the running count).
    """
    n = int(x0s.shape[0])
    states = _batch_init(model, has_args, transform, jac, x0s, batched, shared, axes)
    cost0 = states.cost
    n_iter = jnp.asarray(segment_steps, jnp.int32)
    rtol_a, atol_a = jnp.asarray(rtol), jnp.asarray(atol)
    max_a = jnp.asarray(max_steps, jnp.int32)
    idx = None  # None: the whole batch in place; else the (padded) members being advanced
    members = np.arange(n)
    cur, cur_batched = states, batched
    size = n
    running = np.asarray(cur.status) == FitStatus.RUNNING
    stop = _stop_below(size)
    while running.any():
        active = np.unique(members[running])
        k = active.size
        if _bucket(k, n) <= _COMPACT * size and stop > 0:
            # Few members left: first give them a few iterations in place (no new shape to
            # compile if the tail is short), then compact what is still running.
            stop = 0
            cur = _batch_segment(
                model,
                has_args,
                transform,
                jac,
                rtol_a,
                atol_a,
                max_a,
                jnp.asarray(_GRACE, jnp.int32),
                jnp.asarray(0, jnp.int32),
                cur,
                cur_batched,
                shared,
                axes,
            )
            running = np.asarray(cur.status) == FitStatus.RUNNING
            continue
        if _bucket(k, n) <= _COMPACT * size:
            states = cur if idx is None else _put(states, idx, cur)
            size = _bucket(k, n)
            members = np.concatenate([active, np.full(size - k, active[-1])])
            idx = jnp.asarray(members)
            cur, cur_batched = _take((states, batched), idx)
            stop = _stop_below(size)
        cur = _batch_segment(
            model,
            has_args,
            transform,
            jac,
            rtol_a,
            atol_a,
            max_a,
            n_iter,
            jnp.asarray(stop, jnp.int32),
            cur,
            cur_batched,
            shared,
            axes,
        )
        running = np.asarray(cur.status) == FitStatus.RUNNING
    states = cur if idx is None else _put(states, idx, cur)
    return _batch_finalise(
        model,
        has_args,
        transform,
        jac,
        absolute_sigma,
        states,
        batched,
        shared,
        axes,
        rtol_a,
        atol_a,
        cost0,
    )


def _leading(tree, name: str) -> int:
    sizes = {int(np.shape(x)[0]) if np.ndim(x) else -1 for x in jax.tree_util.tree_leaves(tree)}
    if -1 in sizes or len(sizes) != 1:
        raise SimkitInputError(
            f"{name} needs one leading batch axis of the same length on every leaf, got leaf "
            f"shapes {[tuple(np.shape(x)) for x in jax.tree_util.tree_leaves(tree)]}."
        )
    return sizes.pop()


def _check_common(jac, max_steps, rtol, atol, segment_steps):
    _check_jac(jac)
    require_step_limit("max_steps", max_steps)
    require_step_limit("segment_steps", segment_steps)
    require_positive("rtol", rtol)
    require_positive("atol", atol)


def fit_batch(
    model: Model,
    params0: PyTree,
    data: PyTree,
    *,
    sigma: PyTree | float | None = None,
    absolute_sigma: bool = True,
    args: Any = None,
    bounds: PyTree | None = None,
    solver: optx.AbstractLeastSquaresSolver | optx.AbstractMinimiser | None = None,
    rtol: float = 1e-8,
    atol: float = 1e-8,
    max_steps: int = 256,
    jac: Jac = "fwd",
    segment_steps: int = 64,
    throw: bool = True,
    threads: int | None = None,
) -> FitResult:
    """Many independent least-squares fits (e.g. one per experiment) solved as one batch.

    Fit `i` minimises `sum(((data[i] - model(params_i[, args[i]])) / sigma[i])^2)`. The batch
    is advanced in segments of Levenberg-Marquardt iterations; finished members are dropped
    between segments, so the cost follows the total work, not `n * slowest`.

    Args:
        model: as in `fit`, for ONE member.
        params0: starting parameters with a leading batch axis `(n, ...)` on every leaf (for
            one start shared by all: `jax.tree.map(lambda x: jnp.broadcast_to(x, (n,) +
            jnp.shape(x)), p0)`).
        data: observations with a leading batch axis `(n, ...)` on every leaf.
        sigma: None, a scalar, one member's shape (shared), or the batched data's shape.
        absolute_sigma: as in `fit`.
        bounds: as in `fit` (shared by all members).
        rtol: as in `fit`.
        atol: as in `fit`.
        max_steps: as in `fit`.
        jac: as in `fit`.
        args: extra model input with a leading batch axis `(n, ...)` on every leaf, or None.
        solver: None (simkit's batched Levenberg-Marquardt, not lockstep), or an optimistix
            solver, which is then `vmap`ped over the batch (lockstep: every member iterates
            until the slowest converges).
        segment_steps: at most this many iterations between host checks; a segment ends
            earlier once the running members fit a batch of a quarter of the working batch's
            size (then, if they still run after a few more iterations, the finished members
            are dropped).
        throw: raise `FitError` if any member failed (the error carries the whole result).
        threads: split the fits over this many host threads, each driving its own batch on
            one core (one CPU device, concrete inputs). Default None: one per core this
            process may use, when each thread keeps at least 64 fits; 1: no threads. A fit's
            result does not depend on it.

    Returns:
        A batched `FitResult` (leading axis `n` on every array; `result.member(i)` for one).

    Example (one decay constant per experiment, 50 experiments):
        >>> t = jnp.linspace(0.0, 1.0, 20)
        >>> res = fit_batch(lambda p: p["a"] * jnp.exp(-p["k"] * t),
        ...                 {"a": jnp.ones(50), "k": jnp.ones(50)}, ys)  # ys: (50, 20)
        >>> res.params["k"].shape, res.member(3).stderr["k"]  # (50,), one fit's error
    """
    _check_common(jac, max_steps, rtol, atol, segment_steps)
    check_threads(threads)
    n = _leading(data, "data")
    n_p = _leading(params0, "params0")
    if n_p != n:
        raise SimkitInputError(
            f"params0 has {n_p} starts but data has {n} members; give one "
            "start per member (a leading batch axis on every leaf)."
        )
    # Array leaves of args are batched (one per member); the others (functions, static
    # configuration) are shared by every member.
    args_dyn, args_static = eqx.partition(args, eqx.is_array)
    if args is not None and _leading(args_dyn, "args") != n:
        raise SimkitInputError(f"args has {_leading(args_dyn, 'args')} members but data has {n}.")
    transform, data, inv_sigma, has_args = prepare(
        model,
        params0,
        data,
        sigma=sigma,
        args=args,
        bounds=bounds,
        batch_axes_params=1,
        batch_axes_data=1,
    )
    x0s = _starts(transform, params0, n)
    sigma_batched = inv_sigma is not None and all(
        np.ndim(w) > 0 and np.shape(w) == np.shape(d)
        for w, d in zip(
            jax.tree_util.tree_leaves(inv_sigma), jax.tree_util.tree_leaves(data), strict=False
        )
    )
    axes = (True, sigma_batched, args is not None)
    batched = (data, inv_sigma if sigma_batched else None, args_dyn)
    shared = (
        None,
        None if sigma_batched else inv_sigma,
        args_static if jax.tree_util.tree_leaves(args_static) else None,
    )
    result = _run(
        model,
        has_args,
        transform,
        x0s,
        batched,
        shared,
        axes,
        solver=solver,
        jac=jac,
        rtol=rtol,
        atol=atol,
        max_steps=max_steps,
        segment_steps=segment_steps,
        absolute_sigma=absolute_sigma,
        threads=threads,
    )
    if throw:
        result.raise_if_failed()
    return result


def _starts(transform: ParamTransform, params0, n: int) -> np.ndarray:
    """Flat starting points `(n, p)` (validated against the bounds, member by member)."""
    leaves, treedef = jax.tree_util.tree_flatten(params0)
    if treedef != transform.treedef:
        raise SimkitInputError("params0 structure changed between members.")
    flat = np.concatenate([np.reshape(np.asarray(x), (n, -1)) for x in leaves], axis=1)
    lo, hi = np.asarray(transform.lower), np.asarray(transform.upper)
    bad = ~((flat > lo) & (flat < hi))
    if np.any(bad):
        i, j = np.argwhere(bad)[0]
        raise SimkitInputError(
            f"parameter {transform.names[j]} of start {i} is {float(flat[i, j])!r}, outside its "
            "open "
            f"bounds ({lo[j]}, {hi[j]}); start strictly inside the bounds."
        )
    return flat


def _run(
    model,
    has_args,
    transform,
    x0s,
    batched,
    shared,
    axes,
    *,
    solver,
    jac,
    rtol,
    atol,
    max_steps,
    segment_steps,
    absolute_sigma,
    threads=None,
) -> FitResult:
    if solver is not None and not isinstance(
        solver, (optx.AbstractLeastSquaresSolver, optx.AbstractMinimiser)
    ):
        raise SimkitInputError(
            f"solver must be an optimistix least-squares solver or minimiser, "
            f"got {type(solver).__name__}."
        )

    def run(x0_c, batched_c):
        if solver is None:
            return run_batched_lm(
                model,
                has_args,
                transform,
                x0_c,
                batched_c,
                shared,
                axes,
                jac=jac,
                rtol=rtol,
                atol=atol,
                max_steps=max_steps,
                segment_steps=segment_steps,
                absolute_sigma=absolute_sigma,
            )
        return _vmapped_optimistix(
            model,
            has_args,
            transform,
            x0_c,
            batched_c,
            shared,
            axes,
            solver,
            max_steps,
            jac,
            absolute_sigma,
        )

    n = int(np.shape(x0s)[0])
    x0s = jnp.asarray(x0s)
    # One batch per core, each with its own compaction (members are independent).
    chunks = chunk_count(n, _MIN_CHUNK, threads, x0s, batched)
    return join_members(run_chunks(run, split_members((x0s, batched), n, chunks)), n)


@eqx.filter_jit
def _vmapped_optimistix(
    model, has_args, transform, x0s, batched, shared, axes, solver, max_steps, jac, absolute_sigma
):
    def one(x0, b):
        data, inv_sigma, args = _merge(b, shared, axes)
        res, _ = _fit_core(
            model,
            has_args,
            transform,
            x0,
            data,
            inv_sigma,
            args,
            solver,
            max_steps,
            jac,
            absolute_sigma,
        )
        return res

    return jax.vmap(one)(x0s, batched)


def fit_multistart(
    model: Model,
    starts: PyTree,
    data: PyTree,
    *,
    sigma: PyTree | float | None = None,
    absolute_sigma: bool = True,
    args: Any = None,
    bounds: PyTree | None = None,
    rtol: float = 1e-8,
    atol: float = 1e-8,
    max_steps: int = 256,
    jac: Jac = "fwd",
    segment_steps: int = 64,
    return_all: bool = False,
    throw: bool = True,
    threads: int | None = None,
) -> FitResult | tuple[FitResult, FitResult]:
    """Fit from many starting points at once (one batch) and keep the best converged fit.

    Args:
        model: as in `fit`.
        data: as in `fit` (one data set shared by every start).
        sigma: as in `fit`.
        absolute_sigma: as in `fit`.
        args: as in `fit`.
        bounds: as in `fit`.
        rtol: as in `fit`.
        atol: as in `fit`.
        max_steps: as in `fit`.
        jac: as in `fit`.
        starts: starting parameters with a leading axis `(n_starts, ...)` on every leaf, e.g.
            drawn uniformly inside the bounds.
        return_all: also return the batched result of every start.
        throw: raise `FitError` if no start converged.
        threads: as in `fit_batch` (the starts split over host threads, one per core, when
            each thread keeps at least 64 starts).

    Returns:
        The best `FitResult` (lowest chi2 among converged starts), or `(best, all)`.

    Example (16 starts of a frequency fit, drawn inside the bounds):
        >>> starts = {"a": jnp.ones(16), "w": jnp.linspace(0.5, 8.0, 16)}
        >>> best = fit_multistart(lambda p: p["a"] * jnp.sin(p["w"] * t), starts, y,
        ...                       bounds={"a": None, "w": (0.1, 10.0)})
        >>> best.params["w"]
    """
    _check_common(jac, max_steps, rtol, atol, segment_steps)
    check_threads(threads)
    n = _leading(starts, "starts")
    transform, data, inv_sigma, has_args = prepare(
        model, starts, data, sigma=sigma, args=args, bounds=bounds, batch_axes_params=1
    )
    x0s = _starts(transform, starts, n)
    axes = (False, False, False)
    batched = (None, None, None)
    shared = (data, inv_sigma, args)
    all_res = _run(
        model,
        has_args,
        transform,
        x0s,
        batched,
        shared,
        axes,
        solver=None,
        jac=jac,
        rtol=rtol,
        atol=atol,
        max_steps=max_steps,
        segment_steps=segment_steps,
        absolute_sigma=absolute_sigma,
        threads=threads,
    )
    ok = np.asarray(all_res.success)
    chi2 = np.asarray(all_res.chi2)
    if np.any(ok):
        best_i = int(np.flatnonzero(ok)[np.argmin(chi2[ok])])
    else:
        best_i = int(np.nanargmin(np.where(np.isfinite(chi2), chi2, np.inf)))
    best = all_res.member(best_i)
    if throw and not np.any(ok):
        raise FitError(
            f"none of the {n} starts converged ({all_res.message}); the result holds "
            "the start with the lowest chi2. Pass throw=False to inspect it.",
            best,
        )
    return (best, all_res) if return_all else best
