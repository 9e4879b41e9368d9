"""Fit results: status codes, the `FitResult` pytree, `FitError`, and the covariance estimate."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PyTree

if TYPE_CHECKING:
    from ._least_squares import MinimiseResult


class FitStatus(enum.IntEnum):
    """Outcome of one fit (stored as an int array in `FitResult.status`)."""

    SUCCESS = 0
    MAX_STEPS = 1  # iteration limit reached before convergence
    DIVERGED = 2  # non-finite iterate / residuals, or no step could reduce the cost
    SOLVER_FAILED = 3  # any other optimiser failure (e.g. a failed linear solve)
    NOT_A_MINIMUM = 4  # the optimiser stopped, but a Gauss-Newton step from there is still large
    AT_BOUND = 5  # the best fit lies on a bound: the unconstrained minimum is outside the bounds
    RUNNING = -1  # internal: still iterating (never returned)


_STATUS_TEXT = {
    FitStatus.SUCCESS: "converged",
    FitStatus.MAX_STEPS: "reached max_steps before converging; the parameters are the last "
    "iterate (raise max_steps, improve the start, or check the model)",
    FitStatus.DIVERGED: "diverged (non-finite parameters or residuals, or no step reduced the "
    "cost); the parameters are the last finite iterate",
    FitStatus.SOLVER_FAILED: "the optimiser failed (see optimistix result); the parameters are "
    "the last iterate",
    FitStatus.NOT_A_MINIMUM: "stopped at a point that is not a minimum (the remaining "
    "Gauss-Newton step exceeds 0.1 standard errors and the solver's "
    "tolerance, the gradient is not orthogonal to the residuals and "
    "they are not zero, e.g. the model is NaN around it); the "
    "parameters are the last iterate",
    FitStatus.AT_BOUND: "ended against a bound: the least-squares minimum lies outside the "
    "bounds (see `at_bound`), so the covariance is not valid there; widen "
    "the bounds, fix that parameter, or check the model",
    FitStatus.RUNNING: "still running",
}


class FitError(RuntimeError):
    """A fit did not converge. `.result` holds the `FitResult` (a `MinimiseResult` for
    `minimise`) with the last iterate."""

    def __init__(self, message: str, result: FitResult | MinimiseResult):
        super().__init__(message)
        self.result = result


class FitResult(eqx.Module):
    """The result of a least-squares fit (one fit, or a batch with a leading axis on every array).

    Attributes:
        params: best parameters, a pytree like the start (constrained, user space).
        covariance: `(p, p)` covariance of the flat parameters (order: `param_names`); filled
            with inf when it could not be estimated (`covariance_ok` False).
        stderr: standard errors `sqrt(diag(covariance))`, a pytree like `params`.
        correlation: `(p, p)` correlation matrix (NaN when the covariance is not available).
        residuals: `data - model(params)` (unweighted), a pytree like the data.
        chi2: sum of squared weighted residuals `sum(((data - model) / sigma)^2)` (sigma = 1
            when not given).
        residual_variance: `chi2 / dof`, the factor applied to the covariance when no sigma is
            given (or `absolute_sigma=False`); 1 means the model explains the data to within the
            stated sigma.
        dof: degrees of freedom `m - p` (data points minus parameters).
        n_steps: optimiser iterations taken.
        status: `FitStatus` code (0 = success).
        covariance_ok: whether `J^T J` was well-conditioned enough to invert.
        condition: condition number of `J^T J` (of the weighted residual Jacobian, squared).
        optimality: length of the Gauss-Newton step still possible from `params`, in standard
            errors (covariance metric; the noise level floored at the residuals' rounding
            level, so an exact fit scores ~0, not ~sqrt(dof)); ~0 at a minimum. A "converged"
            fit with optimality > 0.1 whose step also exceeds the solver's tolerance, whose
            gradient fails the angle test and whose residuals are not zero is reported as
            `NOT_A_MINIMUM` (see `simkit.fit._least_squares.assemble_result`), or as
            `AT_BOUND` when that step would cross a bound.
        at_bound: `(p,)` flat flags: the remaining Gauss-Newton step would cross this
            parameter's bound (its minimum lies outside the bounds).
        param_names: names of the flat parameter entries (static).
        method: which optimiser produced this (static).

    Example:
        >>> res = fit(model, {"a": 1.0, "k": 1.0}, y, sigma=0.1)
        >>> res.params["k"], res.stderr["k"], res.chi2 / res.dof
        >>> print(res.message)
    """

    params: PyTree
    covariance: Float[Array, "*batch p p"]
    stderr: PyTree
    correlation: Float[Array, "*batch p p"]
    residuals: PyTree
    chi2: Float[Array, "*batch"]
    residual_variance: Float[Array, "*batch"]
    n_steps: Int[Array, "*batch"]
    status: Int[Array, "*batch"]
    covariance_ok: Bool[Array, "*batch"]
    condition: Float[Array, "*batch"]
    optimality: Float[Array, "*batch"]
    at_bound: Bool[Array, "*batch p"]
    dof: int = eqx.field(static=True)
    param_names: tuple[str, ...] = eqx.field(static=True, default=())
    method: str = eqx.field(static=True, default="")

    @property
    def success(self) -> Bool[Array, "*batch"]:
        """True where the optimiser converged."""
        return jnp.asarray(self.status) == FitStatus.SUCCESS

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """Leading batch shape: `()` for one fit, `(n,)` for `fit_batch` / `return_all`."""
        return tuple(np.shape(self.status))

    @property
    def message(self) -> str:
        """Human-readable outcome (for a batch: counts of each outcome)."""
        status = np.asarray(self.status)
        cov_ok = np.asarray(self.covariance_ok)
        if status.ndim == 0:
            text = f"fit after {int(self.n_steps)} steps: {_STATUS_TEXT[FitStatus(int(status))]}"
            if int(status) == FitStatus.AT_BOUND:
                pinned = [
                    n
                    for n, b in zip(self.param_names, np.asarray(self.at_bound), strict=False)
                    if b
                ]
                text += f" (at a bound: {', '.join(pinned)})"
            if not bool(cov_ok):
                text += (
                    f"; covariance could not be estimated (J^T J singular or "
                    f"ill-conditioned, condition number {float(self.condition):.3g}, or "
                    f"dof={self.dof} <= 0): it is filled with inf"
                )
            return text + "."
        counts = {FitStatus(int(s)).name: int(np.sum(status == s)) for s in np.unique(status)}
        n_bad_cov = int(np.sum(~cov_ok))
        return (
            f"{status.size} fits: {counts}; covariance unavailable in {n_bad_cov}; "
            f"steps max {int(np.max(self.n_steps))}, mean {float(np.mean(self.n_steps)):.1f}."
        )

    def member(self, i: int) -> "FitResult":
        """The `i`-th fit of a batched result."""
        if not self.batch_shape:
            raise IndexError("member() needs a batched FitResult; this one holds a single fit.")
        return _index(self, i)

    def raise_if_failed(self) -> "FitResult":
        """Raise `FitError` (carrying this result) if any fit did not converge; else return self."""
        status = np.asarray(self.status)
        if np.all(status == FitStatus.SUCCESS):
            return self
        if status.ndim == 0:
            msg = self.message
        else:
            bad = np.flatnonzero(status.ravel() != FitStatus.SUCCESS)
            msg = (
                f"{bad.size} of {status.size} fits failed (first: member {int(bad[0])}, "
                f"{_STATUS_TEXT[FitStatus(int(status.ravel()[bad[0]]))]}). {self.message}"
            )
        raise FitError(msg + " Pass throw=False to inspect the result instead.", self)

    def summary(self) -> str:
        """A table of parameter, value and standard error (single fits)."""
        if self.batch_shape:
            return self.message
        flat = np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(self.params)])
        err = np.sqrt(np.diag(np.asarray(self.covariance)))
        width = max([len(n) for n in self.param_names] + [9])
        lines = [f"{'parameter':<{width}}  {'value':>14}  {'stderr':>12}"]
        for name, v, e in zip(self.param_names, flat, err, strict=False):
            lines.append(f"{name:<{width}}  {v:>14.6g}  {e:>12.4g}")
        lines.append(f"chi2 = {float(self.chi2):.6g}, dof = {self.dof}, {self.message}")
        return "\n".join(lines)


def covariance_from_jacobian(
    jac: Float[Array, "m p"],
    r: Float[Array, " m"],
    dof: int,
    scale_by_residuals: bool,
    noise_floor: Float[Array, ""] | float = 0.0,
) -> tuple[
    Float[Array, "p p"],
    Float[Array, "p p"],
    Float[Array, " p"],
    Bool[Array, ""],
    Float[Array, ""],
    Float[Array, ""],
    Float[Array, ""],
    Float[Array, " p"],
]:
    """Covariance `s^2 (J^T J)^-1` from the weighted residual Jacobian at the optimum (jittable).

    The inverse is taken through the SVD `J = U S V^T` (`(J^T J)^-1 = V S^-2 V^T`), which never
    forms `J^T J` and so keeps twice the digits. It is declared singular when the smallest
    singular value is below `max(m, p) * eps * largest` (the pseudo-inverse cut of
    `numpy.linalg.pinv` / SciPy `curve_fit`), or when m < p; then the covariance is all inf, the
    correlation NaN.

    Also returns the *optimality* of the point: the length, in this covariance's metric, of the
    Gauss-Newton step that would still be taken from it, `sqrt(delta^T cov^-1 delta)` =
    `|U^T r| / s`. At a least-squares minimum it is ~0; 1 means the minimum is still about one
    standard error away (so the optimiser stopped somewhere that is not a minimum). The noise
    level `s` in it is floored at `noise_floor`: with exact data the residuals are rounding
    noise, and measuring the step in units of rounding noise would call any exact fit a
    non-minimum.

    Args:
        jac: `(m, p)` Jacobian of the weighted residuals w.r.t. the (constrained) flat params.
        r: `(m,)` weighted residuals at the same point.
        dof: `m - p`.
        scale_by_residuals: multiply by `s^2 = chi2 / dof` (no sigma given, or
            `absolute_sigma=False`); otherwise sigma is taken as the true noise level.
        noise_floor: lower bound on the per-residual variance used for the optimality (not
            for the covariance), e.g. the rounding level of the residuals.

    Returns:
        (covariance, correlation, stderr `(p,)`, ok, condition number of `J^T J`, s^2 =
        chi2 / dof, optimality, the Gauss-Newton step `(p,)` still possible from here; zero
        where `J` is rank-deficient, but computed whenever `J` has full column rank, even when
        the covariance is not available because dof = 0)
    """
    m, p = jac.shape
    chi2 = jnp.sum(r * r)
    finite = jnp.all(jnp.isfinite(jac)) & jnp.isfinite(chi2)
    jac_f = jnp.where(finite, jac, 0.0)
    if m >= p:
        # QR first, then the SVD of the small (p, p) factor: same singular values and vectors,
        # but far cheaper than a (m, p) SVD when m >> p (a batch of 1000 LV fits: ~5x).
        q, rr = jnp.linalg.qr(jac_f)
        ur, s, vt = jnp.linalg.svd(rr)
        u = q @ ur
    else:
        u, s, vt = jnp.linalg.svd(jac_f, full_matrices=False)
    eps = jnp.finfo(jac.dtype).eps
    smax = s[0]
    smin = s[-1]
    full_rank = (smin > max(m, p) * eps * smax) & finite & (m >= p)
    ok = full_rank
    inv_s2 = jnp.where(ok, 1.0 / jnp.where(ok, s, 1.0) ** 2, jnp.inf)
    cov = (vt.T * inv_s2[None, :]) @ vt
    s2 = chi2 / dof if dof > 0 else jnp.full_like(chi2, jnp.nan)
    if scale_by_residuals:
        ok = ok & (dof > 0)
        scale = s2
    else:
        scale = jnp.ones_like(chi2)
    cov = jnp.where(ok, cov * scale, jnp.inf)
    stderr = jnp.sqrt(jnp.diag(cov))
    corr = jnp.where(ok, cov / (stderr[:, None] * stderr[None, :]), jnp.nan)
    condition = jnp.where(smin > 0, (smax / jnp.where(smin > 0, smin, 1.0)) ** 2, jnp.inf)
    ur = u.T @ jnp.where(finite, r, 0.0)
    proj2 = jnp.sum(ur**2)
    scale_opt = jnp.maximum(scale, noise_floor) if scale_by_residuals else scale
    safe_scale = jnp.where(ok & (scale_opt > 0), scale_opt, 1.0)
    optimality = jnp.where(ok, jnp.where(scale_opt > 0, jnp.sqrt(proj2 / safe_scale), 0.0), jnp.nan)
    gn_step = -(vt.T @ (ur / jnp.where(full_rank, s, 1.0)))
    gn_step = jnp.where(full_rank, gn_step, 0.0)
    return cov, corr, stderr, ok, condition, s2, optimality, gn_step


def status_from_optimistix(result: Any) -> Int[Array, ""]:
    """Map an `optimistix.RESULTS` value to a `FitStatus` code (jittable)."""
    import optimistix as optx

    code = jnp.where(result == optx.RESULTS.successful, FitStatus.SUCCESS, FitStatus.SOLVER_FAILED)
    code = jnp.where(result == optx.RESULTS.nonlinear_max_steps_reached, FitStatus.MAX_STEPS, code)
    code = jnp.where(
        (result == optx.RESULTS.nonfinite) | (result == optx.RESULTS.nonlinear_divergence),
        FitStatus.DIVERGED,
        code,
    )
    return code.astype(jnp.int32)


@eqx.filter_jit
def _index(tree, i):
    return jax.tree_util.tree_map(lambda x: x[i], tree)
