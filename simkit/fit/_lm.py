"""simkit's Levenberg-Marquardt: one member's state, step and solve (jittable, vmappable).

Used by `fit` (one member in a `lax.while_loop`, by default) and by `fit_batch` /
`fit_multistart` (vmapped members advanced in segments, see `_batch`).

The algorithm is Levenberg-Marquardt with Marquardt's diagonal scaling and Nielsen's damping
update (H. B. Nielsen, "Damping parameter in Marquardt's method", IMM-REP-1999-05, DTU): solve
`(J^T J + lam * diag(d)) delta = -J^T r` (Cholesky), accept when the gain ratio
`rho = (actual decrease) / (predicted decrease) > 1e-4`, then `lam *= max(1/3, 1 - (2 rho - 1)^3)`,
else `lam *= nu, nu *= 2`. `d` is the running maximum of `diag(J^T J)` (MINPACK's scaling), which
makes the method invariant to rescaling a parameter. Each member keeps its own damping, step
count and status; finished members are frozen. One residual-and-Jacobian evaluation per
iteration (forward mode: one pass carrying p tangents), and the state keeps the Jacobian at the
accepted point, so the covariance at the end needs no further model evaluation.
"""

from __future__ import annotations

from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from ._problem import weighted_residual
from ._result import FitStatus

Jac = Literal["fwd", "bwd"]
_LAM0 = 1e-3
_LAM_MAX = 1e16
_SMALL_P = 8  # up to this many parameters the damped normal equations are solved unrolled


class LMState(eqx.Module):
    """State of one member of the Levenberg-Marquardt (leading batch axis when batched)."""

    u: Float[Array, " p"]
    r: Float[Array, " m"]
    jac: Float[Array, "m p"]
    cost: Float[Array, ""]
    lam: Float[Array, ""]
    nu: Float[Array, ""]
    dscale: Float[Array, " p"]
    n_steps: Int[Array, ""]
    status: Int[Array, ""]


def res_and_jac(model, has_args, transform, jac: Jac, u, data, inv_sigma, args):
    """Weighted residuals `(m,)` and their Jacobian `(m, p)` w.r.t. the unconstrained `u`."""

    def f(u_):
        r = weighted_residual(model, has_args, transform, u_, data, inv_sigma, args)
        return r, r

    fn = jax.jacfwd if jac == "fwd" else jax.jacrev
    J, r = fn(f, has_aux=True)(u)
    return r, J


def lm_init(model, has_args, transform, jac, u0, data, inv_sigma, args) -> LMState:
    """State at the start `u0` (status DIVERGED if the residuals or Jacobian are not finite)."""
    r, J = res_and_jac(model, has_args, transform, jac, u0, data, inv_sigma, args)
    cost = 0.5 * jnp.sum(r * r)
    finite = jnp.isfinite(cost) & jnp.all(jnp.isfinite(J))
    dscale = jnp.sum(J * J, axis=0)
    status = jnp.where(finite, FitStatus.RUNNING, FitStatus.DIVERGED).astype(jnp.int32)
    one = jnp.ones_like(cost)
    return LMState(
        u=u0,
        r=r,
        jac=J,
        cost=cost,
        lam=_LAM0 * one,
        nu=2.0 * one,
        dscale=dscale,
        n_steps=jnp.zeros((), jnp.int32),
        status=status,
    )


def _spd_solve(M: Float[Array, "p p"], b: Float[Array, " p"]) -> Float[Array, " p"]:
    """Solve `M x = b` for symmetric positive definite `M` by Cholesky.

    For p <= 8 the factorisation is written out elementwise (a few dozen scalar operations):
    under `vmap` these become batch-wide vector operations, far cheaper on CPU than a batched
    LAPACK call per member. Same arithmetic as LAPACK's unblocked Cholesky; a matrix that is
    not positive definite gives NaN, as `jnp.linalg.cholesky` does.
    """
    p = M.shape[0]
    if p > _SMALL_P:
        chol = jnp.linalg.cholesky(M)
        return jax.scipy.linalg.cho_solve((chol, True), b)
    L: list[list[Any]] = [[None] * p for _ in range(p)]
    for j in range(p):
        s = M[j, j] - sum((L[j][k] * L[j][k] for k in range(j)), jnp.zeros_like(M[j, j]))
        L[j][j] = jnp.sqrt(s)
        for i in range(j + 1, p):
            s = M[i, j] - sum((L[i][k] * L[j][k] for k in range(j)), jnp.zeros_like(M[i, j]))
            L[i][j] = s / L[j][j]
    y: list = []
    for i in range(p):  # L y = b
        acc = sum((L[i][k] * y[k] for k in range(i)), jnp.zeros_like(b[i]))
        y.append((b[i] - acc) / L[i][i])
    x: list = [None] * p
    for i in reversed(range(p)):  # L^T x = y
        acc = sum((L[k][i] * x[k] for k in range(i + 1, p)), jnp.zeros_like(b[i]))
        x[i] = (y[i] - acc) / L[i][i]
    return jnp.stack(x)


def lm_step(
    model, has_args, transform, jac, rtol, atol, max_steps, s: LMState, data, inv_sigma, args
) -> LMState:
    """One Levenberg-Marquardt iteration of one member (a no-op unless status is RUNNING)."""
    J, r = s.jac, s.r
    # Products written as elementwise sums: under vmap these are wide vector operations, where
    # batched (m, p) matrix products would be many tiny dot calls on CPU.
    g = J.T @ r
    A = J.T @ J
    d = jnp.maximum(s.dscale, jnp.finfo(A.dtype).tiny)
    M = A + s.lam * jnp.diag(d)
    delta = -_spd_solve(M, g)
    u_new = s.u + delta
    r_new, J_new = res_and_jac(model, has_args, transform, jac, u_new, data, inv_sigma, args)
    cost_new = 0.5 * jnp.sum(r_new * r_new)
    predicted = -(g @ delta + 0.5 * delta @ (A @ delta))
    actual = s.cost - cost_new
    finite = (
        jnp.isfinite(cost_new)
        & jnp.all(jnp.isfinite(J_new))
        & jnp.all(jnp.isfinite(u_new))
        & jnp.all(jnp.isfinite(delta))
    )
    rho = jnp.where(
        finite & (predicted > 0), actual / jnp.where(predicted > 0, predicted, 1.0), -1.0
    )
    accept = finite & (rho > 1e-4)
    lam = jnp.where(
        accept, s.lam * jnp.maximum(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3), s.lam * s.nu
    )
    nu = jnp.where(accept, 2.0, 2.0 * s.nu)
    # Convergence: a step that changes every parameter by less than atol + rtol |u| and the cost
    # by less than atol + rtol cost (accepted), or a rejected step that is already that small
    # (no representable improvement left), or an exactly zero gradient.
    small_step = jnp.all(jnp.abs(delta) <= atol + rtol * jnp.abs(s.u)) & finite
    small_cost = jnp.abs(actual) <= atol + rtol * s.cost
    converged = (accept & small_step & small_cost) | (~accept & small_step) | jnp.all(g == 0)
    n_steps = s.n_steps + 1
    stalled = ~converged & (lam > _LAM_MAX)
    status = jnp.where(
        converged,
        FitStatus.SUCCESS,
        jnp.where(
            stalled,
            FitStatus.DIVERGED,
            jnp.where(n_steps >= max_steps, FitStatus.MAX_STEPS, FitStatus.RUNNING),
        ),
    ).astype(jnp.int32)
    # Finished members are frozen: one select per field (the Jacobian is the big one).
    running = s.status == FitStatus.RUNNING
    take = accept & running
    return LMState(
        u=jnp.where(take, u_new, s.u),
        r=jnp.where(take, r_new, r),
        jac=jnp.where(take, J_new, J),
        cost=jnp.where(take, cost_new, s.cost),
        lam=jnp.where(running, lam, s.lam),
        nu=jnp.where(running, nu, s.nu),
        dscale=jnp.where(take, jnp.maximum(s.dscale, jnp.sum(J_new * J_new, axis=0)), s.dscale),
        n_steps=jnp.where(running, n_steps, s.n_steps),
        status=jnp.where(running, status, s.status),
    )


def lm_solve(
    model, has_args, transform, jac, u0, data, inv_sigma, args, rtol, atol, max_steps
) -> tuple[LMState, LMState]:
    """Run one member to completion; returns (start state, final state) (jittable)."""
    s0 = lm_init(model, has_args, transform, jac, u0, data, inv_sigma, args)

    def body(s):
        return lm_step(
            model, has_args, transform, jac, rtol, atol, max_steps, s, data, inv_sigma, args
        )

    s = jax.lax.while_loop(lambda s: s.status == FitStatus.RUNNING, body, s0)
    return s0, s
