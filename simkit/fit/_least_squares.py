"""Single least-squares fits (simkit LM or optimistix) and minimisation, with uncertainties."""

from __future__ import annotations

import functools
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import Array, ArrayLike, Float, PyTree

from .._checks import SimkitInputError, require_finite, require_positive
from ._lm import LMState, lm_solve
from ._problem import (
    Model,
    call_model,
    check_model_output,
    eval_shape_static,
    flat_weighted_residual,
    inverse_sigma,
    member_struct,
    require_float_tree,
    require_step_limit,
    require_x64,
    weighted_residual,
)
from ._result import (
    FitError,
    FitResult,
    FitStatus,
    covariance_from_jacobian,
    status_from_optimistix,
)
from ._transforms import ParamTransform, _is_bound_leaf, check_start, ravel_host

Jac = Literal["fwd", "bwd"]
OPTIMALITY_TOL = 0.1  # remaining Gauss-Newton step, in standard errors, still called a minimum
STEP_TOL_FACTOR = 10.0  # ... or within this many times the solver's tolerance atol + rtol |x|
ZERO_RESIDUAL = 1e4  # ... or residuals within this many eps of the size of their terms
GRAD_TOL_FACTOR = 100.0  # ... or the gradient's angle test within this many times rtol


def _check_jac(jac: str) -> None:
    if jac not in ("fwd", "bwd"):
        raise SimkitInputError(f"jac must be 'fwd' or 'bwd', got {jac!r}.")


def finalise(
    model: Model,
    has_args: bool,
    transform: ParamTransform,
    u: Float[Array, " p"],
    data: PyTree,
    inv_sigma: PyTree | None,
    args: Any,
    *,
    n_steps,
    status,
    jac: Jac,
    absolute_sigma: bool,
    method: str,
    rtol=1e-8,
    atol=1e-8,
    r0_norm=None,
) -> FitResult:
    """Turn an optimum `u` into a `FitResult` (jittable, vmappable), evaluating the Jacobian.

    The covariance uses the Jacobian of the weighted residuals with respect to the *constrained*
    flat parameters `x = T(u)`, which equals the delta-method transform `D cov_u D` of the
    unconstrained covariance (see `simkit.fit._transforms`). Used after optimistix solvers,
    which do not hand back their Jacobian; simkit's own LM uses `finalise_lm`.
    """
    x = transform.to_flat(u)

    def res_x(x_):
        pred = call_model(model, transform.unravel(x_), args, has_args)
        return flat_weighted_residual(pred, data, inv_sigma), pred

    jac_fn = jax.jacfwd if jac == "fwd" else jax.jacrev
    J, pred = jac_fn(res_x, has_aux=True)(x)
    r = flat_weighted_residual(pred, data, inv_sigma)
    residuals = jax.tree_util.tree_map(lambda d, q: d - q, data, pred)
    return assemble_result(
        transform,
        x,
        J,
        r,
        residuals,
        weighted_data(data, inv_sigma),
        n_steps=n_steps,
        status=status,
        scale=(inv_sigma is None) or (not absolute_sigma),
        method=method,
        rtol=rtol,
        atol=atol,
        r0_norm=r0_norm,
    )


def jacobian_x_from_state(transform: ParamTransform, state: LMState):
    """The LM state's Jacobian w.r.t. `u` converted to one w.r.t. `x = T(u)`: `J_x = J_u / D`.

    `J_u = J_x D` column by column (chain rule, D = dx/du), and forward mode computes the
    column `J_x D_i` by pushing the tangent `D_i` through the model linearly, so dividing by
    `D_i` recovers `J_x` to rounding. Returns `(J_x, usable)`; `usable` is False where some
    `D_i` is not finite or below 1e-100 (a saturated transform, where the tangents may have
    underflowed): then `J_x` must be re-evaluated at `x` directly.
    """
    D = transform.derivative(state.u)
    usable = jnp.all(jnp.isfinite(D) & (jnp.abs(D) > 1e-100))
    return state.jac / jnp.where(usable, D, 1.0)[None, :], usable


def finalise_lm(
    model: Model,
    has_args: bool,
    transform: ParamTransform,
    state: LMState,
    data: PyTree,
    inv_sigma: PyTree | None,
    args: Any,
    *,
    jac: Jac,
    absolute_sigma: bool,
    method: str,
    rtol: ArrayLike = 1e-8,
    atol: ArrayLike = 1e-8,
    J_x: Array | None = None,
    r0_norm=None,
) -> FitResult:
    """`FitResult` from a finished LM state, reusing its residuals and Jacobian (jittable).

    Args:
        J_x: the Jacobian w.r.t. the constrained flat parameters, if already known; default
            `J_u / D` from the state, re-evaluated (one Jacobian pass) only where that is not
            usable (`jacobian_x_from_state`).
    """
    x = transform.to_flat(state.u)
    if J_x is None:
        J_fast, usable = jacobian_x_from_state(transform, state)
        J_x = jax.lax.cond(
            usable,
            lambda: J_fast,
            lambda: jacobian_x(model, has_args, transform, x, data, inv_sigma, args, jac),
        )
    r = state.r
    diff = unflatten_like(r, data)  # (pred - data) / sigma, per data leaf
    if inv_sigma is None:
        residuals = jax.tree_util.tree_map(lambda e: -e, diff)
    else:
        residuals = jax.tree_util.tree_map(lambda e, w: -e / w, diff, inv_sigma)
    return assemble_result(
        transform,
        x,
        J_x,
        r,
        residuals,
        weighted_data(data, inv_sigma),
        n_steps=state.n_steps,
        status=state.status,
        scale=(inv_sigma is None) or (not absolute_sigma),
        method=method,
        rtol=rtol,
        atol=atol,
        r0_norm=r0_norm,
    )


def weighted_data(data: PyTree, inv_sigma: PyTree | None) -> Float[Array, " m"]:
    """The data divided by sigma, flat `(m,)` (the scale of the weighted residuals)."""
    return flat_weighted_residual(data, jax.tree_util.tree_map(jnp.zeros_like, data), inv_sigma)


def jacobian_x(model, has_args, transform, x, data, inv_sigma, args, jac: Jac):
    """Jacobian `(m, p)` of the weighted residuals w.r.t. the constrained flat parameters."""

    def res_x(x_):
        pred = call_model(model, transform.unravel(x_), args, has_args)
        return flat_weighted_residual(pred, data, inv_sigma)

    return (jax.jacfwd if jac == "fwd" else jax.jacrev)(res_x)(x)


def unflatten_like(flat: Float[Array, " m"], tree: PyTree) -> PyTree:
    """Split a flat vector back into arrays shaped like the leaves of `tree`."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    out, start = [], 0
    for leaf in leaves:
        shape = jnp.shape(leaf)
        size = int(np.prod(shape, dtype=np.int64))
        out.append(jnp.reshape(flat[start : start + size], shape))
        start += size
    return jax.tree_util.tree_unflatten(treedef, out)


def assemble_result(
    transform: ParamTransform,
    x,
    J,
    r,
    residuals,
    dw,
    *,
    n_steps,
    status,
    scale: bool,
    method: str,
    rtol,
    atol,
    r0_norm=None,
) -> FitResult:
    """Covariance, status refinement (not a minimum / at a bound) and the `FitResult`.

    An optimiser can stop "successfully" where every trial step fails (e.g. a model that is NaN
    all around the iterate, or a step limit on the damping): such a point is reported as
    `NOT_A_MINIMUM` unless one of these says it is converged:

    - the Gauss-Newton step still possible from `x` is below `OPTIMALITY_TOL` standard errors
      (the noise level floored at the residuals' rounding level, see below);
    - that step is within `STEP_TOL_FACTOR * (atol + rtol |x|)` in every parameter: converged
      to the requested tolerance, whatever the size of the residuals (this also covers m = p,
      where there is no residual variance);
    - the residuals are zero to working precision: `|r| <= ZERO_RESIDUAL * eps * (|a| + |r0|)`,
      where `a_i = |d_i| + |pred_i| + sum_j |J_ij x_j|` (weighted) is the size of the terms
      residual `i` is computed from and `r0` the residuals at the start. chi2 = 0 is the
      global minimum; the remaining "step" is rounding;
    - the gradient `g = J^T r` is orthogonal to the residuals to within `GRAD_TOL_FACTOR *
      rtol`: `|g_j| <= tol |J_j| |r|` for every column (MINPACK's angle test; not relative to
      the size of `r`, and meaningful where `J` is rank-deficient at the minimum, as at the
      local minima of Freudenstein-Roth or Jennrich-Sampson, where the Gauss-Newton step is
      not: it blows up along the null direction while the gradient is zero).

    Args:
        dw: `(m,)` the data divided by sigma (the scale of the weighted residuals).
        rtol, atol: the solver's convergence tolerances.
        r0_norm: `|r|` at the start (None: not used).
    """
    params = transform.unravel(x)
    chi2 = jnp.sum(r * r)
    m, p = J.shape
    dof = m - p
    eps = jnp.finfo(J.dtype).eps
    J_f = jnp.where(jnp.isfinite(J), J, 0.0)
    terms = jnp.abs(dw) + jnp.abs(dw + r) + jnp.abs(J_f) @ jnp.abs(x)
    r_round = ZERO_RESIDUAL * eps * jnp.sqrt(jnp.sum(terms * terms))
    floor = r_round**2 / max(dof, 1)
    r_zero = r_round if r0_norm is None else r_round + ZERO_RESIDUAL * eps * r0_norm
    cov, corr, se, ok, cond, s2, optimality, gn_step = covariance_from_jacobian(
        J, r, dof, scale, noise_floor=floor
    )
    r_norm = jnp.sqrt(chi2)
    zero_residual = r_norm <= r_zero
    within_tol = jnp.all(jnp.abs(gn_step) <= STEP_TOL_FACTOR * (atol + rtol * jnp.abs(x)))
    r_f = jnp.where(jnp.isfinite(r), r, 0.0)
    col_norms = jnp.sqrt(jnp.sum(J_f * J_f, axis=0))
    angle_ok = jnp.all(jnp.abs(J_f.T @ r_f) <= GRAD_TOL_FACTOR * rtol * col_norms * r_norm)
    angle_ok = angle_ok & jnp.all(jnp.isfinite(J)) & jnp.all(jnp.isfinite(r)) & (r_norm > 0)
    converged = (optimality <= OPTIMALITY_TOL) | within_tol | zero_residual | angle_ok
    status = jnp.asarray(status, jnp.int32)
    status = jnp.where((status == FitStatus.SUCCESS) & ~converged, FitStatus.NOT_A_MINIMUM, status)
    # If the step still to be taken would cross a bound, the minimum is outside the bounds: say
    # so (the optimiser, working on the transformed parameter, creeps towards the bound until
    # max_steps or a stall).
    x_next = x + gn_step
    at_bound = (transform.kind != 0) & ((x_next <= transform.lower) | (x_next >= transform.upper))
    unfinished = (
        (status == FitStatus.NOT_A_MINIMUM)
        | (status == FitStatus.MAX_STEPS)
        | (status == FitStatus.DIVERGED)
    )
    status = jnp.where(unfinished & jnp.any(at_bound), FitStatus.AT_BOUND, status).astype(jnp.int32)
    return FitResult(
        params=params,
        covariance=cov,
        stderr=transform.unravel(se),
        correlation=corr,
        residuals=residuals,
        chi2=chi2,
        residual_variance=s2,
        n_steps=jnp.asarray(n_steps, jnp.int32),
        status=status,
        covariance_ok=ok,
        condition=cond,
        optimality=optimality,
        at_bound=at_bound,
        dof=dof,
        param_names=transform.names,
        method=method,
    )


LM_METHOD = "simkit LevenbergMarquardt"


def _fit_lm_impl(
    model,
    has_args,
    jac,
    absolute_sigma,
    transform,
    x0,
    data,
    inv_sigma,
    args,
    rtol,
    atol,
    max_steps,
):
    """One fit with simkit's LM, covariance included: one compiled call, one dispatch."""
    u0 = transform.from_flat(x0)
    s0, s = lm_solve(
        model, has_args, transform, jac, u0, data, inv_sigma, args, rtol, atol, max_steps
    )
    res = finalise_lm(
        model,
        has_args,
        transform,
        s,
        data,
        inv_sigma,
        args,
        jac=jac,
        absolute_sigma=absolute_sigma,
        method=LM_METHOD,
        rtol=rtol,
        atol=atol,
        r0_norm=jnp.sqrt(2.0 * s0.cost),
    )
    return res, jnp.isfinite(s0.cost)


def _jit_friendly(model: Model, args: Any) -> bool:
    """Whether `_fit_lm_jit` can take these: a hashable model (it is a static argument) and
    only array leaves in `args`. Otherwise (e.g. a model that is an `eqx.Module` holding
    arrays, or a Python float in `args`) `_fit_lm_filter` separates arrays from the rest."""
    try:
        hash(model)
    except TypeError:
        return False
    return all(isinstance(a, (jax.Array, np.ndarray)) for a in jax.tree_util.tree_leaves(args))


# Two compiled entry points for the same function: `jax.jit` (the fast C++ dispatch path) when
# every leaf of `args` is an array, `eqx.filter_jit` (non-array leaves static) otherwise.
_fit_lm_jit = jax.jit(_fit_lm_impl, static_argnums=(0, 1, 2, 3))
_fit_lm_filter = eqx.filter_jit(_fit_lm_impl)


def default_solver(rtol: float, atol: float) -> optx.LevenbergMarquardt:
    """optimistix's Levenberg-Marquardt: the default least-squares solver of `fit`."""
    return optx.LevenbergMarquardt(rtol=rtol, atol=atol)


@eqx.filter_jit
def _fit_core(
    model, has_args, transform, x0, data, inv_sigma, args, solver, max_steps, jac, absolute_sigma
):
    """One fit with an optimistix solver (covariance from a fresh Jacobian at the optimum)."""
    u0 = transform.from_flat(jnp.asarray(x0))

    def fn(u, a):
        d, w, ar = a
        return weighted_residual(model, has_args, transform, u, d, w, ar)

    r0 = fn(u0, (data, inv_sigma, args))
    init_finite = jnp.all(jnp.isfinite(r0))
    options = {"jac": jac} if not isinstance(solver, optx.AbstractMinimiser) else {}
    sol = optx.least_squares(
        fn, solver, u0, (data, inv_sigma, args), options=options, max_steps=max_steps, throw=False
    )
    status = status_from_optimistix(sol.result)
    res = finalise(
        model,
        has_args,
        transform,
        sol.value,
        data,
        inv_sigma,
        args,
        n_steps=sol.stats["num_steps"],
        status=status,
        jac=jac,
        absolute_sigma=absolute_sigma,
        method=type(solver).__name__,
        rtol=getattr(solver, "rtol", 1e-8),
        atol=getattr(solver, "atol", 1e-8),
        r0_norm=jnp.sqrt(jnp.sum(r0 * r0)),
    )
    return res, init_finite


_PREPARED: dict = {}


def _signature(tree: PyTree):
    """Hashable (treedef, leaf shapes and dtypes) of a pytree; a leaf that is not array-like
    (e.g. a function in `args`) enters as itself (TypeError if it cannot be hashed)."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    key = (
        treedef,
        tuple(
            (np.shape(x), str(x.dtype) if hasattr(x, "dtype") else type(x).__name__)
            if eqx.is_array_like(x)
            else ("static", x)
            for x in leaves
        ),
    )
    hash(key)
    return key


def _bounds_key(bounds: PyTree | None):
    """Hashable key of a bounds pytree (values included), or None if it cannot be keyed."""
    if bounds is None:
        return ()
    try:
        leaves, treedef = jax.tree_util.tree_flatten(bounds, is_leaf=_is_bound_leaf)
        key = [treedef]
        for b in leaves:
            if b is None:
                key.append(None)
            elif isinstance(b, tuple) and len(b) == 2:
                key.append(
                    tuple(
                        None
                        if e is None
                        else (np.shape(e), np.asarray(e).tobytes(), str(np.asarray(e).dtype))
                        for e in b
                    )
                )
            else:
                return None
        key = tuple(key)
        hash(key)
        return key
    except Exception:  # odd input: let the full checks report it
        return None


def prepare(
    model: Model,
    params0: PyTree,
    data: PyTree,
    *,
    sigma,
    args,
    bounds,
    batch_axes_params: int = 0,
    batch_axes_data: int = 0,
):
    """Shared host-side validation. Returns (transform, data, inv_sigma, has_args).

    The structural checks (model output against the data layout, the bounds, the transform)
    are done once per (model, layouts, bounds) and remembered; later calls with the same
    layouts only check the values (finite parameters and data, sigma, starts inside bounds).
    """
    require_x64()
    if not callable(model):
        raise SimkitInputError(
            f"model must be a callable model(params) -> prediction, got {type(model).__name__}."
        )
    has_args = args is not None
    key = None
    bkey = _bounds_key(bounds)
    if bkey is not None:
        try:
            key = (
                model,
                has_args,
                batch_axes_params,
                batch_axes_data,
                _signature(params0),
                _signature(args),
                _signature(data),
                bkey,
            )
            hash(key)
        except TypeError:  # unhashable model or layout: check everything every time
            key = None
    cached = _PREPARED.get(key) if key is not None else None
    if cached is not None:
        transform, lo, hi = cached
        require_finite("params0", params0)
        require_finite("data", data)
        data = jax.tree_util.tree_map(jnp.asarray, data)
        inv_sigma = inverse_sigma(sigma, data, batch_axes=batch_axes_data)
        if not batch_axes_params:
            check_start(transform.names, lo, hi, ravel_host(params0)[0])
        return transform, data, inv_sigma, has_args
    require_float_tree("params0", params0)
    require_float_tree("data", data)
    data = jax.tree_util.tree_map(jnp.asarray, data)
    one_params = params0
    if batch_axes_params:
        one_params = jax.tree_util.tree_map(lambda x: np.asarray(x)[0], params0)
    one_args = args
    if has_args and batch_axes_data:
        one_args = jax.tree_util.tree_map(
            lambda x: np.asarray(x)[0] if eqx.is_array(x) else x, args
        )
    check_model_output(model, one_params, one_args, has_args, member_struct(data, batch_axes_data))
    inv_sigma = inverse_sigma(sigma, data, batch_axes=batch_axes_data)
    transform = ParamTransform.build(params0 if not batch_axes_params else one_params, bounds)
    lo, hi = np.asarray(transform.lower), np.asarray(transform.upper)
    # Device copies of the transform's arrays: later calls pass them without a transfer.
    transform = jax.tree_util.tree_map(jnp.asarray, transform)
    if key is not None:
        if len(_PREPARED) > 256:
            _PREPARED.clear()
        _PREPARED[key] = (transform, lo, hi)
    return transform, data, inv_sigma, has_args


def fit(
    model: Model,
    params0: PyTree,
    data: PyTree,
    *,
    sigma: PyTree | float | None = None,
    absolute_sigma: bool = True,
    args: Any = None,
    bounds: PyTree | None = None,
    solver: optx.AbstractLeastSquaresSolver | optx.AbstractMinimiser | str | None = None,
    rtol: float = 1e-8,
    atol: float = 1e-8,
    max_steps: int = 256,
    jac: Jac = "fwd",
    throw: bool = True,
) -> FitResult:
    """Least-squares fit of `model(params)` to `data`, with covariance and standard errors.

    Minimises `chi2 = sum(((data - model(params)) / sigma)^2)` over unconstrained parameters
    (see `bounds`) with optimistix (Levenberg-Marquardt by default, any optimistix least-squares
    solver or minimiser via `solver`), or with `solver="simkit-lm"`, the per-member masked
    Levenberg-Marquardt that `fit_batch` runs (`simkit.fit._lm`): one compiled call computes the
    iterations, the covariance (from the last Jacobian) and the status, ~3x faster per fit here
    than the optimistix path, which needs one more Jacobian for the covariance.

    Args:
        model: `model(params) -> prediction` (or `model(params, args)` when `args` is given),
            pure and jittable; the prediction has the structure and shapes of `data`. For ODE
            models see `simkit.fit.ode_model`.
        params0: starting parameters, a pytree of float arrays (e.g. `{"k": 1.0}`).
        data: observations, an array (e.g. `(n_times, n_obs)`) or pytree of arrays.
        sigma: standard deviation of each data point (scalar or shaped like `data`); None means
            unit weights and the noise level is estimated from the residuals.
        absolute_sigma: with `sigma` given, treat it as the true noise level: covariance
            `(J^T J)^-1` of the weighted residuals, not rescaled (SciPy `curve_fit`'s
            `absolute_sigma=True`). If False, or if `sigma` is None, the covariance is scaled by
            `s^2 = chi2 / (m - p)`.
        args: extra non-fitted input passed as `model(params, args)` (times, covariates).
        bounds: None, or a pytree like `params0` (or a prefix) of `(lower, upper)` pairs; either
            side may be None. `(0, None)` is positivity. Starting values must be strictly
            inside. The optimiser works on `u` with `x = lo + exp(u)` / `hi - exp(u)` /
            `lo + (hi - lo) sigmoid(u)`; the covariance is reported for `x`.
        solver: None (`optx.LevenbergMarquardt(rtol, atol)`), any optimistix least-squares
            solver or minimiser (the covariance costs one more Jacobian at the optimum), or
            "simkit-lm" (simkit's batched Levenberg-Marquardt on one member: its final Jacobian
            gives the covariance).
        rtol: relative convergence tolerance of the default solvers (for "simkit-lm": it
            stops when a step changes every unconstrained parameter by at most
            `atol + rtol |u|` and the cost by at most `atol + rtol cost`).
        atol: absolute convergence tolerance, used with `rtol` as above.
        max_steps: iteration limit; reaching it is a failure.
        jac: "fwd" (default) or "bwd" Jacobians. Forward mode costs one pass per parameter and
            works through diffrax solves with `diffrax.ForwardMode`; for a few parameters and
            many residuals (the usual fit) it is cheaper than reverse mode, which costs one pass
            per residual and needs a reverse-differentiable model.
        throw: raise `FitError` (a RuntimeError carrying the result with the last iterate) if
            the fit fails; with False inspect `result.success` / `result.message`.

    Returns:
        `FitResult` with params, covariance `(p, p)`, stderr, correlation, residuals, chi2,
        n_steps, status.

    Raises:
        SimkitInputError: bad inputs (shapes that do not match, start outside bounds, non-finite
            data or model output at the start, float32 mode), before the optimiser runs.
        FitError: the fit did not converge (only with `throw=True`).

    Example:
        >>> t = jnp.linspace(0.0, 1.0, 20)
        >>> res = fit(lambda p: p["a"] * jnp.exp(-p["k"] * t), {"a": 1.0, "k": 1.0}, y,
        ...           bounds={"a": None, "k": (0.0, None)})
        >>> res.params["k"], res.stderr["k"]
    """
    _check_jac(jac)
    require_step_limit("max_steps", max_steps)
    require_positive("rtol", rtol)
    require_positive("atol", atol)
    if isinstance(solver, str):
        if solver != "simkit-lm":
            raise SimkitInputError(
                f"solver must be an optimistix least-squares solver or minimiser, or "
                f"'simkit-lm', got {solver!r}."
            )
    elif solver is not None and not isinstance(
        solver, (optx.AbstractLeastSquaresSolver, optx.AbstractMinimiser)
    ):
        raise SimkitInputError(
            f"solver must be an optimistix least-squares solver or minimiser, "
            f"or 'simkit-lm', got {type(solver).__name__}."
        )
    transform, data, inv_sigma, has_args = prepare(
        model, params0, data, sigma=sigma, args=args, bounds=bounds
    )
    x0 = ravel_host(params0)[0]
    if solver == "simkit-lm":
        core = _fit_lm_jit if _jit_friendly(model, args) else _fit_lm_filter
        result, init_finite = core(
            model,
            has_args,
            jac,
            bool(absolute_sigma),
            transform,
            x0,
            data,
            inv_sigma,
            args,
            float(rtol),
            float(atol),
            int(max_steps),
        )
    else:
        if solver is None:
            solver = default_solver(float(rtol), float(atol))
        result, init_finite = _fit_core(
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
    init_finite, status = jax.device_get((init_finite, result.status))  # one transfer
    if not bool(init_finite):
        raise SimkitInputError(
            "model(params0) returned NaN/inf residuals at the start parameters; check params0 "
            f"({dict(zip(transform.names, x0.tolist(), strict=False))}) and "
            "the model (e.g. an ODE solve that fails there)."
        )
    if throw and int(status) != FitStatus.SUCCESS:
        result.raise_if_failed()
    return result


class MinimiseResult(eqx.Module):
    """Result of `minimise`: best params, loss value, inverse-Hessian covariance, status.

    `covariance` is `H^-1` of the loss in the constrained parameters, which is the parameter
    covariance when the loss is a negative log-likelihood (inf-filled when H is not positive
    definite; `covariance_ok` False).

    Example:
        >>> res = minimise(nll, {"mu": 0.0, "sigma": 1.0}, throw=False)
        >>> res.raise_if_failed().params["mu"], res.stderr["mu"]
    """

    params: PyTree
    value: Float[Array, ""]
    covariance: Float[Array, "p p"]
    stderr: PyTree
    correlation: Float[Array, "p p"]
    n_steps: Array
    status: Array
    covariance_ok: Array
    param_names: tuple[str, ...] = eqx.field(static=True, default=())

    @property
    def success(self):
        """True where the minimiser converged (status 0)."""
        return jnp.asarray(self.status) == 0

    def raise_if_failed(self) -> "MinimiseResult":
        """Return `self`, or raise `FitError` (carrying `self`) if the minimisation failed."""
        from ._result import _STATUS_TEXT, FitStatus

        if not bool(np.all(np.asarray(self.status) == 0)):
            text = _STATUS_TEXT[FitStatus(int(np.asarray(self.status)))]
            raise FitError(
                f"minimisation {text} after {int(self.n_steps)} steps. Pass "
                "throw=False to inspect the result instead.",
                self,
            )
        return self


@eqx.filter_jit
def _minimise_core(loss, has_args, transform, u0, args, solver, max_steps):
    def fn(u, a):
        return call_model(loss, transform.to_params(u), a, has_args)

    v0 = fn(u0, args)
    sol = optx.minimise(fn, solver, u0, args, max_steps=max_steps, throw=False)
    x = transform.to_flat(sol.value)
    lx = lambda x_: call_model(loss, transform.unravel(x_), args, has_args)  # noqa: E731
    value = lx(x)
    H = jax.hessian(lx)(x)
    H = 0.5 * (H + H.T)
    evals, evecs = jnp.linalg.eigh(H)
    ok = (evals[0] > jnp.finfo(H.dtype).eps * H.shape[0] * jnp.max(jnp.abs(evals))) & jnp.all(
        jnp.isfinite(H)
    )
    cov = jnp.where(ok, (evecs / jnp.where(ok, evals, 1.0)[None, :]) @ evecs.T, jnp.inf)
    se = jnp.sqrt(jnp.diag(cov))
    corr = jnp.where(ok, cov / (se[:, None] * se[None, :]), jnp.nan)
    res = MinimiseResult(
        params=transform.unravel(x),
        value=value,
        covariance=cov,
        stderr=transform.unravel(se),
        correlation=corr,
        n_steps=sol.stats["num_steps"],
        status=status_from_optimistix(sol.result),
        covariance_ok=ok,
        param_names=transform.names,
    )
    return res, jnp.isfinite(v0)


def minimise(
    loss,
    params0: PyTree,
    *,
    args: Any = None,
    bounds: PyTree | None = None,
    solver: optx.AbstractMinimiser | None = None,
    rtol: float = 1e-8,
    atol: float = 1e-8,
    max_steps: int = 1024,
    throw: bool = True,
) -> MinimiseResult:
    """Minimise a scalar `loss(params)` (e.g. a negative log-likelihood) with optimistix.

    Args:
        loss: `loss(params) -> scalar` (or `loss(params, args)`), pure and jittable.
        params0: starting parameters (pytree of float arrays).
        args: extra non-fitted input for `loss`.
        bounds: as in `fit` (transforms to an unconstrained problem).
        solver: any optimistix minimiser; default `optx.BFGS(rtol, atol)`.
        max_steps: iteration limit (reaching it is a failure).
        throw: raise `FitError` if the minimisation failed.

    Returns:
        `MinimiseResult`; `covariance = H^-1` (Hessian of the loss in the constrained params),
        the parameter covariance when `loss` is a negative log-likelihood.

    Example (maximum likelihood of a normal sample `x`):
        >>> def nll(p):
        ...     return jnp.sum(0.5 * ((x - p["mu"]) / p["s"]) ** 2 + jnp.log(p["s"]))
        >>> res = minimise(nll, {"mu": 0.0, "s": 1.0}, bounds={"mu": None, "s": (0.0, None)})
        >>> res.params["mu"], res.stderr["mu"]  # ~ mean(x), ~ std(x) / sqrt(len(x))
    """
    require_x64()
    require_step_limit("max_steps", max_steps)
    require_positive("rtol", rtol)
    require_positive("atol", atol)
    if not callable(loss):
        raise SimkitInputError(f"loss must be callable, got {type(loss).__name__}.")
    require_float_tree("params0", params0)
    has_args = args is not None
    try:
        out = eval_shape_static(lambda p, a: call_model(loss, p, a, has_args), params0, args)
    except Exception as exc:
        call = "loss(params, args)" if has_args else "loss(params)"
        raise SimkitInputError(
            f"{call} failed to evaluate at params0: {type(exc).__name__}: {exc}"
        ) from exc
    if getattr(out, "shape", None) != ():
        raise SimkitInputError(
            f"loss must return a scalar, got shape {getattr(out, 'shape', out)}."
        )
    transform = ParamTransform.build(params0, bounds)
    if solver is None:
        solver = _default_minimiser(float(rtol), float(atol))
    if not isinstance(solver, optx.AbstractMinimiser):
        raise SimkitInputError(
            f"solver must be an optimistix minimiser, got {type(solver).__name__}."
        )
    u0 = transform.from_flat(jnp.asarray(ravel_host(params0)[0]))
    res, ok0 = _minimise_core(loss, has_args, transform, u0, args, solver, max_steps)
    if not bool(ok0):
        raise SimkitInputError("loss(params0) is NaN/inf at the start parameters; check params0.")
    if throw:
        res.raise_if_failed()
    return res


@functools.lru_cache(maxsize=32)
def _default_minimiser(rtol: float, atol: float) -> optx.BFGS:
    return optx.BFGS(rtol=rtol, atol=atol)
