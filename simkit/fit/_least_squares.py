"""Single least-squares fits and general minimisation on optimistix, with uncertainties."""

from __future__ import annotations

import functools
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import Array, Float, PyTree

from .._checks import SimkitInputError, require_positive
from ._problem import (
    Model, call_model, check_model_output, flat_weighted_residual, inverse_sigma, member_struct,
    require_float_tree, require_x64, weighted_residual,
)
from ._result import (
    FitError, FitResult, FitStatus, covariance_from_jacobian, status_from_optimistix,
)
from ._transforms import ParamTransform, ravel_host

Jac = Literal["fwd", "bwd"]
OPTIMALITY_TOL = 0.1  # remaining Gauss-Newton step, in standard errors, still called a minimum


@functools.lru_cache(maxsize=32)
def default_solver(rtol: float, atol: float) -> optx.LevenbergMarquardt:
    """`optimistix.LevenbergMarquardt(rtol, atol)`, cached: repeated fits reuse one compilation."""
    return optx.LevenbergMarquardt(rtol=rtol, atol=atol)


def _check_jac(jac: str) -> None:
    if jac not in ("fwd", "bwd"):
        raise SimkitInputError(f"jac must be 'fwd' or 'bwd', got {jac!r}.")


def finalise(model: Model, has_args: bool, transform: ParamTransform, u: Float[Array, " p"],
             data: PyTree, inv_sigma: PyTree | None, args: Any, *, n_steps, status, jac: Jac,
             absolute_sigma: bool, method: str) -> FitResult:
    """Turn an optimum `u` into a `FitResult` (jittable, vmappable).

    The covariance uses the Jacobian of the weighted residuals with respect to the *constrained*
    flat parameters `x = T(u)`, which equals the delta-method transform `D cov_u D` of the
    unconstrained covariance (see `simkit.fit._transforms`).
    """
    x = transform.to_flat(u)
    params = transform.unravel(x)

    def res_x(x_):
        pred = call_model(model, transform.unravel(x_), args, has_args)
        return flat_weighted_residual(pred, data, inv_sigma), pred

    jac_fn = jax.jacfwd if jac == "fwd" else jax.jacrev
    J, pred = jac_fn(res_x, has_aux=True)(x)
    r = flat_weighted_residual(pred, data, inv_sigma)
    chi2 = jnp.sum(r * r)
    m, p = J.shape
    dof = m - p
    scale = (inv_sigma is None) or (not absolute_sigma)
    cov, corr, se, ok, cond, s2, optimality, gn_step = covariance_from_jacobian(J, r, dof, scale)
    # An optimiser can stop "successfully" where every trial step fails (e.g. a model that is
    # NaN all around the iterate): refuse to call that a minimum. If the step still to be taken
    # would cross a bound, the minimum is outside the bounds: say so (the optimiser, working on
    # the transformed parameter, creeps towards the bound until max_steps or a stall).
    status = jnp.asarray(status, jnp.int32)
    status = jnp.where((status == FitStatus.SUCCESS) & (optimality > OPTIMALITY_TOL),
                       FitStatus.NOT_A_MINIMUM, status)
    x_next = x + gn_step
    at_bound = (transform.kind != 0) & ((x_next <= transform.lower) | (x_next >= transform.upper))
    unfinished = ((status == FitStatus.NOT_A_MINIMUM) | (status == FitStatus.MAX_STEPS)
                  | (status == FitStatus.DIVERGED))
    status = jnp.where(unfinished & jnp.any(at_bound), FitStatus.AT_BOUND,
                       status).astype(jnp.int32)
    residuals = jax.tree_util.tree_map(lambda d, q: d - q, data, pred)
    return FitResult(
        params=params, covariance=cov, stderr=transform.unravel(se), correlation=corr,
        residuals=residuals, chi2=chi2, residual_variance=s2,
        n_steps=jnp.asarray(n_steps, jnp.int32), status=status,
        covariance_ok=ok, condition=cond, optimality=optimality, at_bound=at_bound, dof=dof,
        param_names=transform.names, method=method)


@eqx.filter_jit
def _fit_core(model, has_args, transform, x0, data, inv_sigma, args, solver, max_steps, jac,
              absolute_sigma):
    u0 = transform.from_flat(jnp.asarray(x0))
    def fn(u, a):
        d, w, ar = a
        return weighted_residual(model, has_args, transform, u, d, w, ar)

    r0 = fn(u0, (data, inv_sigma, args))
    init_finite = jnp.all(jnp.isfinite(r0))
    options = {"jac": jac} if not isinstance(solver, optx.AbstractMinimiser) else {}
    sol = optx.least_squares(fn, solver, u0, (data, inv_sigma, args), options=options,
                             max_steps=max_steps, throw=False)
    status = status_from_optimistix(sol.result)
    res = finalise(model, has_args, transform, sol.value, data, inv_sigma, args,
                   n_steps=sol.stats["num_steps"], status=status, jac=jac,
                   absolute_sigma=absolute_sigma, method=type(solver).__name__)
    return res, init_finite


def prepare(model: Model, params0: PyTree, data: PyTree, *, sigma, args, bounds,
            batch_axes_params: int = 0, batch_axes_data: int = 0):
    """Shared host-side validation. Returns (transform, data, inv_sigma, has_args)."""
    require_x64()
    if not callable(model):
        raise SimkitInputError(f"model must be a callable model(params) -> prediction, got "
                               f"{type(model).__name__}.")
    require_float_tree("params0", params0)
    require_float_tree("data", data)
    data = jax.tree_util.tree_map(jnp.asarray, data)
    one_params = params0
    if batch_axes_params:
        one_params = jax.tree_util.tree_map(lambda x: np.asarray(x)[0], params0)
    has_args = args is not None
    one_args = args
    if has_args and batch_axes_data:
        one_args = jax.tree_util.tree_map(lambda x: np.asarray(x)[0], args)
    check_model_output(model, one_params, one_args, has_args,
                       member_struct(data, batch_axes_data))
    inv_sigma = inverse_sigma(sigma, data, batch_axes=batch_axes_data)
    transform = ParamTransform.build(params0 if not batch_axes_params else one_params, bounds)
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
    solver: optx.AbstractLeastSquaresSolver | optx.AbstractMinimiser | None = None,
    rtol: float = 1e-8,
    atol: float = 1e-8,
    max_steps: int = 256,
    jac: Jac = "fwd",
    throw: bool = True,
) -> FitResult:
    """Least-squares fit of `model(params)` to `data`, with covariance and standard errors.

    Minimises `chi2 = sum(((data - model(params)) / sigma)^2)` with optimistix
    (Levenberg-Marquardt by default) over unconstrained parameters (see `bounds`).

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
        solver: any optimistix least-squares solver or minimiser; default
            `optx.LevenbergMarquardt(rtol, atol)`.
        rtol, atol: convergence tolerances of the default solver (on the unconstrained
            parameters and the cost).
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
    require_positive("max_steps", max_steps, integer=True)
    require_positive("rtol", rtol)
    require_positive("atol", atol)
    transform, data, inv_sigma, has_args = prepare(model, params0, data, sigma=sigma, args=args,
                                                   bounds=bounds)
    solver = default_solver(float(rtol), float(atol)) if solver is None else solver
    if not isinstance(solver, (optx.AbstractLeastSquaresSolver, optx.AbstractMinimiser)):
        raise SimkitInputError(f"solver must be an optimistix least-squares solver or minimiser, "
                               f"got {type(solver).__name__}.")
    x0 = ravel_host(params0)[0]
    result, init_finite = _fit_core(model, has_args, transform, x0, data, inv_sigma, args,
                                    solver, max_steps, jac, absolute_sigma)
    if not bool(init_finite):
        raise SimkitInputError(
            "model(params0) returned NaN/inf residuals at the start parameters; check params0 "
            f"({dict(zip(transform.names, x0.tolist()))}) and "
            "the model (e.g. an ODE solve that fails there).")
    if throw:
        result.raise_if_failed()
    return result


class MinimiseResult(eqx.Module):
    """Result of `minimise`: best params, loss value, inverse-Hessian covariance, status.

    `covariance` is `H^-1` of the loss in the constrained parameters, which is the parameter
    covariance when the loss is a negative log-likelihood (inf-filled when H is not positive
    definite; `covariance_ok` False).
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
        return jnp.asarray(self.status) == 0

    def raise_if_failed(self) -> "MinimiseResult":
        from ._result import _STATUS_TEXT, FitStatus

        if not bool(np.all(np.asarray(self.status) == 0)):
            text = _STATUS_TEXT[FitStatus(int(np.asarray(self.status)))]
            raise FitError(f"minimisation {text} after {int(self.n_steps)} steps. Pass "
                           "throw=False to inspect the result instead.",
                           self)  # type: ignore[arg-type]
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
    ok = (evals[0] > jnp.finfo(H.dtype).eps * H.shape[0] * jnp.max(jnp.abs(evals))) \
        & jnp.all(jnp.isfinite(H))
    cov = jnp.where(ok, (evecs / jnp.where(ok, evals, 1.0)[None, :]) @ evecs.T, jnp.inf)
    se = jnp.sqrt(jnp.diag(cov))
    corr = jnp.where(ok, cov / (se[:, None] * se[None, :]), jnp.nan)
    res = MinimiseResult(params=transform.unravel(x), value=value, covariance=cov,
                         stderr=transform.unravel(se), correlation=corr,
                         n_steps=sol.stats["num_steps"], status=status_from_optimistix(sol.result),
                         covariance_ok=ok, param_names=transform.names)
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
    """
    require_x64()
    require_positive("max_steps", max_steps, integer=True)
    if not callable(loss):
        raise SimkitInputError(f"loss must be callable, got {type(loss).__name__}.")
    require_float_tree("params0", params0)
    has_args = args is not None
    try:
        out = jax.eval_shape(lambda p, a: call_model(loss, p, a, has_args), params0, args)
    except Exception as exc:
        raise SimkitInputError(f"loss failed to evaluate at params0: {exc}") from exc
    if getattr(out, "shape", None) != ():
        raise SimkitInputError(
            f"loss must return a scalar, got shape {getattr(out, 'shape', out)}.")
    transform = ParamTransform.build(params0, bounds)
    if solver is None:
        solver = _default_minimiser(float(rtol), float(atol))
    if not isinstance(solver, optx.AbstractMinimiser):
        raise SimkitInputError(f"solver must be an optimistix minimiser, got "
                               f"{type(solver).__name__}.")
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
