"""Corners of the ODE layer that users of diffrax visit (issue 13): reverse-time solves, every
adjoint diffrax offers, vmap / jacfwd / grad through each simkit solver, dense output and events
with the Rosenbrock solvers, pytree and strict-dtype states.

Reference problem (closed form, so every check has an exact answer):
    y' = -k y + a cos t,  y(t0) = y0
    y(t) = (y0 - p(t0)) e^{-k (t - t0)} + p(t),  p(t) = a (k cos t + sin t) / (k^2 + 1).
Its gradients are `jax.grad` of the closed form. The default part stays small (few distinct
compiles, scalar states); the full matrix is marked slow.
"""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
import pytest

from simkit.ode import (
    ODEProblem,
    Rodas5,
    Rodas5P,
    solve,
    solve_ensemble,
    solve_ensemble_fused,
    solve_stiff,
    solve_stiff_ensemble,
)

RODAS = [Rodas5(), Rodas5P()]
RODAS_IDS = ["Rodas5", "Rodas5P"]
TOL = dict(rtol=1e-10, atol=1e-12)


def forced(t, y, p):
    return -p["k"] * y + p["a"] * jnp.cos(t)


def exact(t, t0, y0, p):
    k, a = p["k"], p["a"]

    def part(s):
        return a * (k * jnp.cos(s) + jnp.sin(s)) / (k**2 + 1)

    return (y0 - part(t0)) * jnp.exp(-k * (t - t0)) + part(t)


PARAMS = {"k": jnp.asarray(2.0), "a": jnp.asarray(0.7)}
Y0 = jnp.array([1.3])


def _diffeqsolve(solver, t0, t1, y0=Y0, params=PARAMS, ts=None, **kwargs):
    saveat = diffrax.SaveAt(ts=ts, dense=True) if ts is not None else diffrax.SaveAt(t1=True)
    return diffrax.diffeqsolve(
        diffrax.ODETerm(forced),
        solver,
        jnp.asarray(t0),
        jnp.asarray(t1),
        None,
        y0,
        args=params,
        saveat=saveat,
        stepsize_controller=diffrax.PIDController(**TOL),
        **kwargs,
    )


# --- reverse time, dense output ---------------------------------------------------------------


@pytest.mark.parametrize("solver", RODAS, ids=RODAS_IDS)
def test_rodas_forward_and_reverse_time_with_dense_output(solver):
    # Time-dependent forcing, so the df/dt stage terms must take the sign of time as well.
    for t0, t1 in ((0.0, 2.0), (2.0, 0.0)):
        ts = jnp.linspace(t0, t1, 5)
        sol = _diffeqsolve(solver, t0, t1, ts=ts)
        assert sol.result == diffrax.RESULTS.successful
        ref = exact(ts, t0, Y0[0], PARAMS)[:, None]
        np.testing.assert_allclose(sol.ys, ref, rtol=1e-8, atol=1e-10)
        mid = t0 + 0.37 * (t1 - t0)  # dense output between saves
        np.testing.assert_allclose(sol.evaluate(mid), exact(mid, t0, Y0, PARAMS), rtol=1e-6)


def test_rodas_reverse_time_round_trip():
    # There and back again: y(0) -> y(3) -> y(0) recovers the start.
    y3 = _diffeqsolve(Rodas5P(), 0.0, 3.0).ys[-1]
    back = _diffeqsolve(Rodas5P(), 3.0, 0.0, y0=y3).ys[-1]
    np.testing.assert_allclose(back, Y0, rtol=1e-8)


# --- events -------------------------------------------------------------------------------------


def test_rodas_event_root_found_by_solve():
    # y' = -y, y(0) = 1 crosses 1/2 at t = ln 2; the root is found on Rodas' dense output.
    prob = ODEProblem(lambda t, y, k: -k * y, jnp.array([1.0]), jnp.asarray(1.0), 0.0, 5.0)
    event = diffrax.Event(
        lambda t, y, args, **kw: y[0] - 0.5, root_finder=optx.Newton(rtol=1e-12, atol=1e-12)
    )
    sol = solve(prob, stiff=True, event=event, rtol=1e-10, atol=1e-12)
    assert sol.result == diffrax.RESULTS.event_occurred
    np.testing.assert_allclose(sol.ts[-1], np.log(2.0), rtol=1e-9)
    np.testing.assert_allclose(sol.ys[-1], [0.5], rtol=1e-8)


# --- adjoints ----------------------------------------------------------------------------------


def _loss(params, solver, adjoint, t0=0.0, t1=1.5):
    return _diffeqsolve(solver, t0, t1, params=params, adjoint=adjoint).ys[-1, 0]


def _exact_grad(t0=0.0, t1=1.5):
    return jax.grad(lambda p: exact(t1, t0, Y0[0], p))(PARAMS)


def _assert_tree_close(got, want, rtol):
    for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=False):
        np.testing.assert_allclose(g, w, rtol=rtol)


REVERSE_ADJOINTS = {
    "checkpoint": diffrax.RecursiveCheckpointAdjoint(),
    "direct": diffrax.DirectAdjoint(),
    "backsolve": diffrax.BacksolveAdjoint(),
}


@pytest.mark.slow  # the default run covers checkpointing and backsolve in test_ode_regressions
@pytest.mark.parametrize("name", list(REVERSE_ADJOINTS))
@pytest.mark.parametrize("solver", RODAS, ids=RODAS_IDS)
def test_rodas_reverse_mode_adjoints_equal_the_exact_gradient(solver, name):
    grad = jax.grad(_loss)(PARAMS, solver, REVERSE_ADJOINTS[name])
    _assert_tree_close(grad, _exact_grad(), rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("solver", RODAS, ids=RODAS_IDS)
def test_rodas_backsolve_adjoint_in_reverse_time(solver):
    # The adjoint of a reverse-time solve integrates forward again.
    grad = jax.grad(_loss)(PARAMS, solver, diffrax.BacksolveAdjoint(), 1.5, 0.0)
    _assert_tree_close(grad, _exact_grad(1.5, 0.0), rtol=1e-6)


def test_rodas_forward_mode_jacfwd_equals_the_exact_gradient():
    jac = jax.jacfwd(_loss)(PARAMS, Rodas5(), diffrax.ForwardMode())
    _assert_tree_close(jac, _exact_grad(), rtol=1e-6)


@pytest.mark.slow
def test_rodas_implicit_adjoint_at_a_steady_state():
    # y' = -k (y - a) settles at y = a: d y_inf / d a = 1, d y_inf / d k = 0.
    def loss(p):
        term = diffrax.ODETerm(lambda t, y, p: -p["k"] * (y - p["a"]))
        event = diffrax.Event(diffrax.steady_state_event(rtol=1e-10, atol=1e-10))
        sol = diffrax.diffeqsolve(
            term,
            Rodas5(),
            0.0,
            jnp.inf,
            0.1,
            jnp.array([3.0]),
            args=p,
            event=event,
            adjoint=diffrax.ImplicitAdjoint(),
            stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-8),
        )
        return sol.ys[-1, 0]

    grad = jax.grad(loss)(PARAMS)
    np.testing.assert_allclose(grad["a"], 1.0, rtol=1e-6)
    np.testing.assert_allclose(grad["k"], 0.0, atol=1e-6)


# --- vmap, jacfwd and grad through each simkit entry point ---------------------------------------

PROB = ODEProblem(forced, Y0, PARAMS, 0.0, 1.5)


def _with(params):
    return ODEProblem(forced, Y0, params, 0.0, 1.5)


def _exact_grads(ks):
    return jax.vmap(
        lambda k: jax.grad(lambda p: exact(1.5, 0.0, Y0[0], p))({"k": k, "a": PARAMS["a"]})
    )(ks)


KS = jnp.array([1.0, 2.0, 4.0])


def test_solve_stiff_jacfwd_with_forward_mode():
    def loss(p):
        return solve_stiff(_with(p), adjoint=diffrax.ForwardMode(), **TOL).ys[-1, 0]

    _assert_tree_close(jax.jacfwd(loss)(PARAMS), _exact_grad(), rtol=1e-6)


@pytest.mark.slow
def test_solve_stiff_vmap_of_grad():
    # Under vmap the failure check runs through eqx.error_if (no host round trip).
    def loss(p):
        return solve_stiff(_with(p), **TOL).ys[-1, 0]

    grads = jax.vmap(lambda k: jax.grad(loss)({"k": k, "a": PARAMS["a"]}))(KS)
    _assert_tree_close(grads, _exact_grads(KS), rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize(
    "solver", [None, Rodas5P(), diffrax.Tsit5()], ids=["Rodas5", "Rodas5P", "Tsit5"]
)
def test_solve_vmap_grad_jacfwd(solver):
    stiff = solver is None

    def loss(p, adjoint=None):
        return solve(_with(p), solver=solver, stiff=stiff, adjoint=adjoint, **TOL).ys[-1, 0]

    grads = jax.vmap(lambda k: jax.grad(loss)({"k": k, "a": PARAMS["a"]}))(KS)
    _assert_tree_close(grads, _exact_grads(KS), rtol=1e-6)
    _assert_tree_close(jax.jacfwd(loss)(PARAMS, diffrax.ForwardMode()), _exact_grad(), rtol=1e-6)


@pytest.mark.slow
def test_ensembles_grad_equals_exact():
    params = {"k": KS, "a": jnp.full(3, PARAMS["a"])}
    want = _exact_grads(KS)

    def stiff_loss(p):
        return solve_stiff_ensemble(PROB, params=p, shard=False, **TOL)[1][:, -1, 0].sum()

    def vmapped_loss(p):
        return solve_ensemble(PROB, params=p, stiff=True, shard=False, **TOL)[1][:, -1, 0].sum()

    for loss in (stiff_loss, vmapped_loss):
        _assert_tree_close(jax.grad(loss)(params), want, rtol=1e-6)


@pytest.mark.slow
def test_fused_fixed_step_grad_and_jacfwd_equal_exact():
    params = {"k": KS, "a": jnp.full(3, PARAMS["a"])}

    def final(p):
        sol = solve_ensemble_fused(PROB, params=p, solver="rk4", fixed_step=True, dt0=1e-3)
        return sol.ys[:, -1, 0]

    want = _exact_grads(KS)
    _assert_tree_close(jax.grad(lambda p: final(p).sum())(params), want, rtol=1e-6)
    jac = jax.jacfwd(final)(params)
    _assert_tree_close(jax.tree_util.tree_map(jnp.diagonal, jac), want, rtol=1e-6)


# --- pytree and strict-dtype states ---------------------------------------------------------------


def _pair_field(t, y, p):  # (u, v): u' = -k u + a cos t, v' = u (v(t) = integral of u)
    u, v = y
    return (-p["k"] * u + p["a"] * jnp.cos(t), u)


@pytest.mark.parametrize("dtype", [jnp.float32, pytest.param(jnp.float64, marks=pytest.mark.slow)])
def test_rodas_pytree_state_under_strict_promotion(dtype):
    p = jax.tree_util.tree_map(lambda x: x.astype(dtype), PARAMS)
    y0 = (jnp.asarray(1.3, dtype), jnp.zeros((1,), dtype))
    rtol = 1e-5 if dtype == jnp.float32 else 1e-10
    with jax.numpy_dtype_promotion("strict"):
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(_pair_field),
            Rodas5P(),
            jnp.asarray(0.0, dtype),
            jnp.asarray(1.5, dtype),
            None,
            y0,
            args=p,
            saveat=diffrax.SaveAt(ts=jnp.linspace(0.0, 1.5, 4, dtype=dtype)),
            stepsize_controller=diffrax.PIDController(rtol=rtol, atol=rtol),
        )
    assert sol.ys[0].dtype == dtype and sol.ys[1].dtype == dtype
    u_ref = exact(jnp.linspace(0.0, 1.5, 4), 0.0, 1.3, PARAMS)
    np.testing.assert_allclose(sol.ys[0], u_ref, rtol=100 * rtol)


@pytest.mark.slow
def test_rodas_mixed_dtype_leaves():
    # Leaves of different precision stay in their own dtype; the step works in the wider one.
    # (float32 times: diffrax promotes every leaf to at least the time dtype. Not under strict
    # promotion: diffrax 0.7.2's PIDController mixes the leaves' dtypes itself.)
    y0 = (jnp.asarray(1.3, jnp.float64), jnp.zeros((1,), jnp.float32))
    t0, t1, dt0 = (jnp.asarray(x, jnp.float32) for x in (0.0, 1.0, 0.01))

    def field(t, y, p):
        u, v = y
        return (-2.0 * u, u.astype(jnp.float32) * jnp.ones((1,), jnp.float32))

    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        Rodas5(),
        t0,
        t1,
        dt0,
        y0,
        stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-6),
    )
    assert sol.ys[0].dtype == jnp.float64 and sol.ys[1].dtype == jnp.float32
    np.testing.assert_allclose(sol.ys[1][-1], [1.3 * (1 - np.exp(-2.0)) / 2], rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_every_entry_point_under_strict_promotion(dtype):
    p = jax.tree_util.tree_map(lambda x: x.astype(dtype), PARAMS)
    prob = ODEProblem(forced, Y0.astype(dtype), p, 0.0, 1.5)
    batch = {"k": KS.astype(dtype), "a": jnp.full(3, 0.7, dtype)}
    tol = dict(rtol=1e-4, atol=1e-7)  # solve_stiff refuses float32 below 100 eps (1.2e-5)
    with jax.numpy_dtype_promotion("strict"):
        outs = [
            solve(prob, **tol).ys,
            solve(prob, stiff=True, dense=True, **tol).evaluate(0.5),
            solve(prob, solver=Rodas5P(), saveat=jnp.linspace(0.0, 1.5, 3), **tol).ys,
            solve_ensemble(prob, params=batch, **tol)[1],
            solve_ensemble(prob, params=batch, method="diffrax", **tol)[1],
            solve_ensemble(prob, params=batch, stiff=True, **tol)[1],
            solve_ensemble(prob, params=batch, fixed_step=True, dt0=0.01, solver="rk4")[1],
            solve_stiff(prob, **tol).ys,
            solve_stiff_ensemble(prob, params=batch, **tol)[1],
        ]
    for out in outs:
        assert out.dtype == dtype
    ref = exact(1.5, 0.0, 1.3, PARAMS)
    np.testing.assert_allclose(np.asarray(outs[-2])[-1, 0], ref, rtol=1e-4)
