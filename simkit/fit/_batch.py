"""Many independent fits as one batch, without lockstep; multi-start fits.

`vmap` of an iterative solver runs every member until the slowest one has converged (the while
loop's condition becomes "any member still running"), and every iteration costs the full batch.
Here the batch is advanced by a vectorised Levenberg-Marquardt in bounded *segments* of
iterations; between segments the host drops the finished members and compacts the rest into a
smaller batch. Batch sizes are taken from a short ladder (the full size, then 16 * 4^j), and a
batch is only compacted when that cuts its size at least 4x, so at most a handful of shapes are
compiled (1000 fits: 1000, 256, 64, 16).

The per-member algorithm is Levenberg-Marquardt with Marquardt's diagonal scaling and Nielsen's
damping update (H. B. Nielsen, "Damping parameter in Marquardt's method", IMM-REP-1999-05, DTU):
solve `(J^T J + lam * diag(d)) delta = -J^T r` (Cholesky), accept when the gain ratio
`rho = (actual decrease) / (predicted decrease) > 1e-4`, then `lam *= max(1/3, 1 - (2 rho - 1)^3)`,
else `lam *= nu, nu *= 2`. `d` is the running maximum of `diag(J^T J)` (MINPACK's scaling), which
makes the method invariant to rescaling a parameter. Each member keeps its own damping, step
count and status; finished members are frozen.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import Array, Float, Int, PyTree

from .._checks import SimkitInputError, require_positive
from ._least_squares import Jac, _check_jac, _fit_core, finalise, prepare
from ._problem import Model, weighted_residual
from ._result import FitError, FitResult, FitStatus
from ._transforms import ParamTransform

_MIN_BUCKET = 16
_LAM0 = 1e-3
_LAM_MAX = 1e16


class LMState(eqx.Module):
    """State of one member of the batched Levenberg-Marquardt (leading batch axis when batched)."""

    u: Float[Array, " p"]
    r: Float[Array, " m"]
    jac: Float[Array, "m p"]
    cost: Float[Array, ""]
    lam: Float[Array, ""]
    nu: Float[Array, ""]
    dscale: Float[Array, " p"]
    n_steps: Int[Array, ""]
    status: Int[Array, ""]


def _res_and_jac(model, has_args, transform, jac: Jac, u, data, inv_sigma, args):
    def f(u_):
        r = weighted_residual(model, has_args, transform, u_, data, inv_sigma, args)
        return r, r

    fn = jax.jacfwd if jac == "fwd" else jax.jacrev
    J, r = fn(f, has_aux=True)(u)
    return r, J


def _lm_init(model, has_args, transform, jac, u0, data, inv_sigma, args) -> LMState:
    r, J = _res_and_jac(model, has_args, transform, jac, u0, data, inv_sigma, args)
    cost = 0.5 * jnp.sum(r * r)
    finite = jnp.isfinite(cost) & jnp.all(jnp.isfinite(J))
    dscale = jnp.sum(J * J, axis=0)
    status = jnp.where(finite, FitStatus.RUNNING, FitStatus.DIVERGED).astype(jnp.int32)
    one = jnp.ones_like(cost)
    return LMState(u=u0, r=r, jac=J, cost=cost, lam=_LAM0 * one, nu=2.0 * one, dscale=dscale,
                   n_steps=jnp.zeros((), jnp.int32), status=status)


def _lm_step(model, has_args, transform, jac, rtol, atol, max_steps, s: LMState, data,
             inv_sigma, args) -> LMState:
    """One Levenberg-Marquardt iteration of one member (a no-op unless status is RUNNING)."""
    J, r = s.jac, s.r
    g = J.T @ r
    A = J.T @ J
    d = jnp.maximum(s.dscale, jnp.finfo(A.dtype).tiny)
    M = A + s.lam * jnp.diag(d)
    chol = jnp.linalg.cholesky(M)
    delta = -jax.scipy.linalg.cho_solve((chol, True), g)
    u_new = s.u + delta
    r_new, J_new = _res_and_jac(model, has_args, transform, jac, u_new, data, inv_sigma, args)
    cost_new = 0.5 * jnp.sum(r_new * r_new)
    predicted = -(g @ delta + 0.5 * delta @ (A @ delta))
    actual = s.cost - cost_new
    finite = (jnp.isfinite(cost_new) & jnp.all(jnp.isfinite(J_new)) & jnp.all(jnp.isfinite(u_new))
              & jnp.all(jnp.isfinite(delta)))
    rho = jnp.where(finite & (predicted > 0), actual / jnp.where(predicted > 0, predicted, 1.0),
                    -1.0)
    accept = finite & (rho > 1e-4)
    lam = jnp.where(accept, s.lam * jnp.maximum(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3),
                    s.lam * s.nu)
    nu = jnp.where(accept, 2.0, 2.0 * s.nu)
    # Convergence: a step that changes every parameter by less than atol + rtol |u| and the cost
    # by less than atol + rtol cost (accepted), or a rejected step that is already that small
    # (no representable improvement left), or an exactly zero gradient.
    small_step = jnp.all(jnp.abs(delta) <= atol + rtol * jnp.abs(s.u)) & finite
    small_cost = jnp.abs(actual) <= atol + rtol * s.cost
    converged = (accept & small_step & small_cost) | (~accept & small_step) | jnp.all(g == 0)
    n_steps = s.n_steps + 1
    stalled = ~converged & (lam > _LAM_MAX)
    status = jnp.where(converged, FitStatus.SUCCESS,
                       jnp.where(stalled, FitStatus.DIVERGED,
                                 jnp.where(n_steps >= max_steps, FitStatus.MAX_STEPS,
                                           FitStatus.RUNNING))).astype(jnp.int32)
    new = LMState(
        u=jnp.where(accept, u_new, s.u), r=jnp.where(accept, r_new, r),
        jac=jnp.where(accept, J_new, J), cost=jnp.where(accept, cost_new, s.cost), lam=lam,
        nu=nu, dscale=jnp.where(accept, jnp.maximum(s.dscale, jnp.sum(J_new * J_new, axis=0)),
                                s.dscale),
        n_steps=n_steps, status=status)
    running = s.status == FitStatus.RUNNING
    return jax.tree_util.tree_map(lambda a, b: jnp.where(running, a, b), new, s)


@eqx.filter_jit
def _batch_init(model, has_args, transform, jac, x0s, batched, shared, axes):
    def one(x0, b):
        data, inv_sigma, args = _merge(b, shared, axes)
        return _lm_init(model, has_args, transform, jac, transform.from_flat(x0), data,
                        inv_sigma, args)

    return jax.vmap(one)(x0s, batched)


@eqx.filter_jit
def _batch_segment(model, has_args, transform, jac, rtol, atol, max_steps, n_iter, states,
                   batched, shared, axes):
    """Advance every running member by up to `n_iter` iterations (stops early if all finish)."""

    def step_all(st):
        def one(s, b):
            data, inv_sigma, args = _merge(b, shared, axes)
            return _lm_step(model, has_args, transform, jac, rtol, atol, max_steps, s, data,
                            inv_sigma, args)

        return jax.vmap(one)(st, batched)

    def cond(carry):
        k, st = carry
        return (k < n_iter) & jnp.any(st.status == FitStatus.RUNNING)

    def body(carry):
        k, st = carry
        return k + 1, step_all(st)

    _, states = jax.lax.while_loop(cond, body, (jnp.zeros((), jnp.int32), states))
    return states


@eqx.filter_jit
def _batch_finalise(model, has_args, transform, jac, absolute_sigma, states, batched, shared,
                    axes):
    def one(s, b):
        data, inv_sigma, args = _merge(b, shared, axes)
        return finalise(model, has_args, transform, s.u, data, inv_sigma, args,
                        n_steps=s.n_steps, status=s.status, jac=jac,
                        absolute_sigma=absolute_sigma, method="simkit batched LevenbergMarquardt")

    return jax.vmap(one)(states, batched)


def _merge(b, shared, axes):
    """(data, inv_sigma, args) for one member from its batched slice and the shared parts."""
    out = []
    for i, ax in enumerate(axes):
        out.append(b[i] if ax else shared[i])
    return tuple(out)


def _bucket(n_active: int, n_total: int) -> int:
    size = _MIN_BUCKET
    while size < n_active:
        size *= 4
    return min(size, n_total)


@eqx.filter_jit
def _take(tree, idx):
    """Gather members `idx` of every leaf (one compiled call per bucket size, not per leaf)."""
    return jax.tree_util.tree_map(lambda x: x[idx], tree)


@eqx.filter_jit
def _put(tree, idx, part):
    return jax.tree_util.tree_map(lambda full, p: full.at[idx].set(p), tree, part)


def run_batched_lm(model, has_args, transform, x0s, batched, shared, axes, *, jac, rtol, atol,
                   max_steps, segment_steps, absolute_sigma) -> FitResult:
    """Host driver: segments of `segment_steps` iterations with compaction in between."""
    n = int(x0s.shape[0])
    states = _batch_init(model, has_args, transform, jac, x0s, batched, shared, axes)
    active = np.flatnonzero(np.asarray(states.status) == FitStatus.RUNNING)
    n_iter = jnp.asarray(segment_steps, jnp.int32)
    rtol_a, atol_a = jnp.asarray(rtol), jnp.asarray(atol)
    max_a = jnp.asarray(max_steps, jnp.int32)
    idx = None  # None: the whole batch in place; else the (padded) members being advanced
    size = n
    while active.size:
        k = active.size
        if _bucket(k, n) * 4 <= size:
            # Compact the running members into a smaller bucket-sized batch (only when that cuts
            # the work at least 4x, so each new shape to compile pays for itself). Padding
            # repeats the last member; its copies compute identical values, so the duplicate
            # writes in `_put` agree.
            size = _bucket(k, n)
            idx = jnp.asarray(np.concatenate([active, np.full(size - k, active[-1])]))
        if idx is None:
            states = _batch_segment(model, has_args, transform, jac, rtol_a, atol_a, max_a,
                                    n_iter, states, batched, shared, axes)
            active = np.flatnonzero(np.asarray(states.status) == FitStatus.RUNNING)
        else:
            sub_states, sub_batched = _take((states, batched), idx)
            sub = _batch_segment(model, has_args, transform, jac, rtol_a, atol_a, max_a,
                                 n_iter, sub_states, sub_batched, shared, axes)
            states = _put(states, idx, sub)
            still = np.asarray(sub.status) == FitStatus.RUNNING
            active = np.unique(np.asarray(idx)[still])
    return _batch_finalise(model, has_args, transform, jac, absolute_sigma, states, batched,
                           shared, axes)


def _leading(tree, name: str) -> int:
    sizes = {int(np.shape(x)[0]) if np.ndim(x) else -1 for x in jax.tree_util.tree_leaves(tree)}
    if -1 in sizes or len(sizes) != 1:
        raise SimkitInputError(
            f"{name} needs one leading batch axis of the same length on every leaf, got leaf "
            f"shapes {[tuple(np.shape(x)) for x in jax.tree_util.tree_leaves(tree)]}.")
    return sizes.pop()


def _check_common(jac, max_steps, rtol, atol, segment_steps):
    _check_jac(jac)
    require_positive("max_steps", max_steps, integer=True)
    require_positive("segment_steps", segment_steps, integer=True)
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
    segment_steps: int = 8,
    throw: bool = True,
) -> FitResult:
    """Many independent least-squares fits (e.g. one per experiment) solved as one batch.

    Fit `i` minimises `sum(((data[i] - model(params_i[, args[i]])) / sigma[i])^2)`. The batch
    is advanced in segments of `segment_steps` Levenberg-Marquardt iterations; finished members
    are dropped between segments, so the cost follows the total work, not `n * slowest`.

    Args:
        model: as in `fit`, for ONE member.
        params0: starting parameters with a leading batch axis `(n, ...)` on every leaf (for
            one start shared by all: `jax.tree.map(lambda x: jnp.broadcast_to(x, (n,) +
            jnp.shape(x)), p0)`).
        data: observations with a leading batch axis `(n, ...)` on every leaf.
        sigma: None, a scalar, one member's shape (shared), or the batched data's shape.
        absolute_sigma, bounds, rtol, atol, max_steps, jac: as in `fit` (bounds shared by all).
        args: extra model input with a leading batch axis `(n, ...)` on every leaf, or None.
        solver: None (simkit's batched Levenberg-Marquardt, not lockstep), or an optimistix
            solver, which is then `vmap`ped over the batch (lockstep: every member iterates
            until the slowest converges).
        segment_steps: iterations between compactions.
        throw: raise `FitError` if any member failed (the error carries the whole result).

    Returns:
        A batched `FitResult` (leading axis `n` on every array; `result.member(i)` for one).
    """
    _check_common(jac, max_steps, rtol, atol, segment_steps)
    n = _leading(data, "data")
    n_p = _leading(params0, "params0")
    if n_p != n:
        raise SimkitInputError(f"params0 has {n_p} starts but data has {n} members; give one "
                               "start per member (a leading batch axis on every leaf).")
    if args is not None and _leading(args, "args") != n:
        raise SimkitInputError(f"args has {_leading(args, 'args')} members but data has {n}.")
    transform, data, inv_sigma, has_args = prepare(
        model, params0, data, sigma=sigma, args=args, bounds=bounds,
        batch_axes_params=1, batch_axes_data=1)
    x0s = _starts(transform, params0, n)
    sigma_batched = inv_sigma is not None and all(
        np.ndim(w) > 0 and np.shape(w) == np.shape(d)
        for w, d in zip(jax.tree_util.tree_leaves(inv_sigma), jax.tree_util.tree_leaves(data)))
    axes = (True, sigma_batched, args is not None)
    batched = (data, inv_sigma if sigma_batched else None, args)
    shared = (None, None if sigma_batched else inv_sigma, None)
    result = _run(model, has_args, transform, x0s, batched, shared, axes, solver=solver, jac=jac,
                  rtol=rtol, atol=atol, max_steps=max_steps, segment_steps=segment_steps,
                  absolute_sigma=absolute_sigma)
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
            f"bounds ({lo[j]}, {hi[j]}); start strictly inside the bounds.")
    return flat


def _run(model, has_args, transform, x0s, batched, shared, axes, *, solver, jac, rtol, atol,
         max_steps, segment_steps, absolute_sigma) -> FitResult:
    if solver is None:
        return run_batched_lm(model, has_args, transform, jnp.asarray(x0s), batched, shared, axes,
                              jac=jac, rtol=rtol, atol=atol, max_steps=max_steps,
                              segment_steps=segment_steps, absolute_sigma=absolute_sigma)
    if not isinstance(solver, (optx.AbstractLeastSquaresSolver, optx.AbstractMinimiser)):
        raise SimkitInputError(f"solver must be an optimistix least-squares solver or minimiser, "
                               f"got {type(solver).__name__}.")
    return _vmapped_optimistix(model, has_args, transform, jnp.asarray(x0s), batched, shared,
                               axes, solver, max_steps, jac, absolute_sigma)


@eqx.filter_jit
def _vmapped_optimistix(model, has_args, transform, x0s, batched, shared, axes, solver,
                        max_steps, jac, absolute_sigma):
    def one(x0, b):
        data, inv_sigma, args = _merge(b, shared, axes)
        res, _ = _fit_core(model, has_args, transform, x0, data, inv_sigma, args, solver,
                           max_steps, jac, absolute_sigma)
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
    segment_steps: int = 8,
    return_all: bool = False,
    throw: bool = True,
) -> FitResult | tuple[FitResult, FitResult]:
    """Fit from many starting points at once (one batch) and keep the best converged fit.

    Args:
        model, data, sigma, absolute_sigma, args, bounds, rtol, atol, max_steps, jac: as in
            `fit` (one data set shared by every start).
        starts: starting parameters with a leading axis `(n_starts, ...)` on every leaf, e.g.
            drawn uniformly inside the bounds.
        return_all: also return the batched result of every start.
        throw: raise `FitError` if no start converged.

    Returns:
        The best `FitResult` (lowest chi2 among converged starts), or `(best, all)`.
    """
    _check_common(jac, max_steps, rtol, atol, segment_steps)
    n = _leading(starts, "starts")
    transform, data, inv_sigma, has_args = prepare(
        model, starts, data, sigma=sigma, args=args, bounds=bounds, batch_axes_params=1)
    x0s = _starts(transform, starts, n)
    axes = (False, False, False)
    batched = (None, None, None)
    shared = (data, inv_sigma, args)
    all_res = run_batched_lm(model, has_args, transform, jnp.asarray(x0s), batched, shared, axes,
                             jac=jac, rtol=rtol, atol=atol, max_steps=max_steps,
                             segment_steps=segment_steps, absolute_sigma=absolute_sigma)
    ok = np.asarray(all_res.success)
    chi2 = np.asarray(all_res.chi2)
    if np.any(ok):
        best_i = int(np.flatnonzero(ok)[np.argmin(chi2[ok])])
    else:
        best_i = int(np.nanargmin(np.where(np.isfinite(chi2), chi2, np.inf)))
    best = all_res.member(best_i)
    if throw and not np.any(ok):
        raise FitError(f"none of the {n} starts converged ({all_res.message}); the result holds "
                       "the start with the lowest chi2. Pass throw=False to inspect it.", best)
    return (best, all_res) if return_all else best
