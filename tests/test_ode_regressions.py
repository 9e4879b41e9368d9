"""Regression tests for the ODE defects of issue 13 (1, 2, 3 and the ODE halves of 7 and 8),
plus the NaN gradient of stiff ensembles found while fixing them. Each test is named after its
defect and failed on the code before the fix."""

import inspect

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simkit
from simkit.ode import (
    ODEProblem,
    Rodas5,
    Rodas5P,
    default_solver,
    solve,
    solve_ensemble,
    solve_stiff,
    solve_stiff_ensemble,
)

RODAS = [Rodas5(), Rodas5P()]


def _decay(t, y, k):
    return -k * y


# --- defect 1: reverse time ---------------------------------------------------------------------


@pytest.mark.parametrize("solver", RODAS, ids=lambda s: type(s).__name__)
def test_defect1_rodas_reverse_time_integrates_backwards(solver):
    # y' = -y from t=1 back to t=0: y(0) = e * y(1). The old step ignored the sign diffrax folds
    # into the term's control and returned e^-2 with a "successful" result.
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(lambda t, y, a: -y), solver, 1.0, 0.0, -0.01, y0=jnp.array([np.exp(-1.0)])
    )
    assert sol.result == diffrax.RESULTS.successful
    np.testing.assert_allclose(np.asarray(sol.ys)[-1], [1.0], rtol=1e-10)


# --- defect 2: BacksolveAdjoint -----------------------------------------------------------------


def test_defect2_backsolve_adjoint_with_rodas_equals_checkpointing():
    y0 = jnp.array([2.0])

    def loss(k, adjoint):
        prob = ODEProblem(_decay, y0, k, 0.0, 1.0)
        return solve(prob, stiff=True, rtol=1e-10, atol=1e-12, adjoint=adjoint).ys.sum()

    exact = -2.0 * np.exp(-1.5)  # d/dk of 2 e^{-k} at k = 1.5
    back = jax.grad(loss)(1.5, diffrax.BacksolveAdjoint())
    ckpt = jax.grad(loss)(1.5, diffrax.RecursiveCheckpointAdjoint())
    np.testing.assert_allclose(back, exact, rtol=1e-7)
    np.testing.assert_allclose(back, ckpt, rtol=1e-7)


# --- defect 3: states -------------------------------------------------------------------------


def test_defect3_rodas_pytree_states():
    def field(t, y, args):  # a' = -a, b0' = a, b1' = -2 b1
        return {"a": -y["a"], "b": (y["a"], -2.0 * y["b"][1])}

    y0 = {"a": jnp.array([1.0]), "b": (jnp.array([0.0]), jnp.array([1.0, 3.0]))}
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        Rodas5(),
        0.0,
        1.0,
        0.05,
        y0,
        stepsize_controller=diffrax.PIDController(rtol=1e-9, atol=1e-11),
    )
    np.testing.assert_allclose(sol.ys["a"][-1], [np.exp(-1)], rtol=1e-8)
    np.testing.assert_allclose(sol.ys["b"][0][-1], [1 - np.exp(-1)], rtol=1e-8)
    np.testing.assert_allclose(sol.ys["b"][1][-1], [np.exp(-2), 3 * np.exp(-2)], rtol=1e-8)


def test_defect3_rodas_empty_state():
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(lambda t, y, a: -y), Rodas5(), 0.0, 1.0, 0.1, jnp.zeros((0,))
    )
    assert sol.result == diffrax.RESULTS.successful and sol.ys.shape == (1, 0)


def test_defect3_rodas_complex_state():
    # y' = i y: y(1) = e^i. The real-and-imaginary split makes the Jacobian exact.
    with pytest.warns(UserWarning, match="Complex dtype"):  # diffrax's own caveat
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(lambda t, y, a: 1j * y),
            Rodas5P(),
            0.0,
            1.0,
            0.05,
            jnp.array([1.0 + 0.0j]),
            stepsize_controller=diffrax.PIDController(rtol=1e-9, atol=1e-11),
        )
    np.testing.assert_allclose(sol.ys[-1], [np.exp(1j)], rtol=1e-8)


@pytest.mark.parametrize("dtype", [jnp.float32, pytest.param(jnp.float64, marks=pytest.mark.slow)])
def test_defect3_strict_dtype_promotion(dtype):
    # Times used to stay float64 while states were float32 (diffrax then upcast y0, and the
    # user's float32 parameters met float64 states): every entry point must run in strict mode
    # and keep the state's dtype.
    k = jnp.asarray(1.5, dtype)

    def field(t, y, p):
        return -p * y

    prob = ODEProblem(field, jnp.array([1.0, 2.0], dtype), k, 0.0, 1.0)
    ks = jnp.asarray([1.0, 1.5], dtype)
    with jax.numpy_dtype_promotion("strict"):
        outs = [
            solve(prob, stiff=True, rtol=1e-4, atol=1e-6).ys,
            solve(prob, rtol=1e-4, atol=1e-6, saveat=jnp.linspace(0.0, 1.0, 3)).ys,
            solve_ensemble(prob, params=ks, stiff=True, rtol=1e-4, atol=1e-6)[1],
            solve_stiff(prob, rtol=1e-4, atol=1e-6).ys,
        ]
    for out in outs:
        assert out.dtype == dtype
    np.testing.assert_allclose(np.asarray(outs[0])[-1], [np.exp(-1.5), 2 * np.exp(-1.5)], rtol=1e-3)


# --- defect 7 (ODE half): validation ------------------------------------------------------------

PROB = ODEProblem(_decay, jnp.array([1.0, 2.0]), jnp.asarray(1.5), 0.0, 1.0)


@pytest.mark.parametrize("max_steps", [2**31, 2**32 + 100])
def test_defect7_max_steps_beyond_int32_is_refused(max_steps):
    with pytest.raises(simkit.SimkitInputError, match=r"max_steps=\d+ is above 2147483647"):
        solve_ensemble(PROB, params=jnp.array([1.0, 2.0]), max_steps=max_steps)
    with pytest.raises(simkit.SimkitInputError, match="2147483647"):
        solve(PROB, max_steps=max_steps)


@pytest.mark.parametrize("tol", [{"rtol": 0.0}, {"rtol": -1e-6}, {"atol": 0.0}, {"atol": -1e-6}])
def test_defect7_nonpositive_tolerances_are_refused(tol):
    with pytest.raises(simkit.SimkitInputError, match="must be .*> 0"):
        solve(PROB, **tol)
    with pytest.raises(simkit.SimkitInputError, match="must be .*> 0"):
        solve_ensemble(PROB, params=jnp.array([1.0, 2.0]), **tol)


def test_defect7_float32_with_rtol_1e_12_is_refused():
    prob32 = ODEProblem(_decay, jnp.array([1.0], jnp.float32), jnp.float32(1.5), 0.0, 1.0)
    with pytest.raises(simkit.SimkitInputError, match=r"rtol=1e-12 is below what float32"):
        solve(prob32, rtol=1e-12)
    with pytest.raises(simkit.SimkitInputError, match=r"rtol=1e-12 is below what float32"):
        solve_ensemble(prob32, params=jnp.array([1.0, 2.0], jnp.float32), rtol=1e-12)


# --- defect 8 (ODE half): docstrings ------------------------------------------------------------


@pytest.mark.parametrize("fn", [solve, solve_ensemble])
def test_defect8_docstrings_name_rodas5_as_the_stiff_default(fn):
    assert isinstance(default_solver(True), Rodas5)
    doc = inspect.getdoc(fn)
    assert "if `stiff`, `simkit.ode.Rodas5()`" in doc and "Kvaerno5()`." not in doc


# --- found while fixing: NaN gradients in stiff ensembles -----------------------------------------


def test_stiff_ensemble_gradient_is_finite_for_members_that_finish_first():
    # In a vmapped solve, members that reach t1 first keep taking masked zero-length steps; the
    # dense output divided by that zero length and its NaN leaked through the mask into the
    # gradient of the faster member.
    prob = ODEProblem(_decay, jnp.array([1.0]), jnp.asarray(1.0), 0.0, 1.0)

    def loss(ks):
        return solve_stiff_ensemble(prob, params=ks, rtol=1e-8, atol=1e-10, shard=False)[1].sum()

    ks = jnp.array([1.0, 1.5])
    np.testing.assert_allclose(jax.grad(loss)(ks), -np.exp(-np.asarray(ks)), rtol=1e-6)
