"""Regression tests for the fit defects of issue 13 (numbers as in the issue):

4. converged fits reported as "not a minimum" (noise-free data, near-zero residuals, a nearly
   singular Jacobian at the optimum), while a stalled fit must still be reported;
5. large unbounded parameters (the transform's unused `exp(u)` branch overflowed and gave NaN
   reverse-mode gradients);
6. non-array `args` (a function in `args`);
7. validation of tolerances and step limits in the fit layer;
8. the module docstring naming the wrong default solver of `fit`.

Each test failed on the code before the fix (see the issue for the old behaviour).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
import pytest

import simkit.fit
from simkit import SimkitInputError
from simkit.fit import (
    FitStatus,
    ParamTransform,
    fit,
    fit_batch,
    fit_multistart,
    minimise,
    ode_model,
)
from simkit.ode import ODEProblem

T = jnp.linspace(0.0, 3.0, 40)


def exp_model(p):
    return p["a"] * jnp.exp(-p["k"] * T)


def two_exp(p):
    return p["a"] * jnp.exp(-p["k1"] * T) + p["b"] * jnp.exp(-p["k2"] * T)


# ----------------------------------------------------------------------------------------------
# 4. Converged means converged


@pytest.mark.parametrize("solver", [None, "simkit-lm"])
def test_noise_free_exponential_is_a_minimum(solver):
    """Exact data: the parameters come back to ~1e-14 and the residuals are rounding noise; the
    old statistic |U^T r| / s (s from those residuals) scored ~sqrt(dof) = 6 and said
    NOT_A_MINIMUM."""
    y = exp_model({"a": 2.0, "k": 1.3})
    res = fit(exp_model, {"a": 1.0, "k": 1.0}, y, solver=solver)
    assert int(res.status) == FitStatus.SUCCESS
    np.testing.assert_allclose([res.params["a"], res.params["k"]], [2.0, 1.3], rtol=1e-12)
    assert float(res.optimality) < 0.1


def test_nearly_singular_jacobian_at_exact_optimum_is_a_minimum():
    """Two exponentials with rates 1 and 1.0001: J^T J has condition ~1e17 but is still invertible
    by the SVD cut; the data are exact, so the fit is at a (zero-residual) minimum."""
    y = two_exp({"a": 1.0, "b": 1.0, "k1": 1.0, "k2": 1.0001})
    res = fit(two_exp, {"a": 1.2, "b": 0.8, "k1": 0.9, "k2": 1.2}, y)
    assert int(res.status) == FitStatus.SUCCESS
    assert float(res.chi2) < 1e-20


def test_tiny_noise_fit_is_a_minimum():
    """Noise of 1e-12 relative: the standard errors (~1e-12) are below what rtol = 1e-8 asks
    for, so the optimiser stops within its tolerance, not within 0.1 standard errors; that is
    convergence at the requested tolerance, not a failure."""
    rng = np.random.default_rng(3)
    y = exp_model({"a": 2.0, "k": 1.3}) * (1.0 + 1e-12 * rng.normal(size=40))
    for solver in (None, "simkit-lm"):
        res = fit(exp_model, {"a": 1.0, "k": 1.0}, y, solver=solver)
        assert int(res.status) == FitStatus.SUCCESS
        np.testing.assert_allclose(res.params["k"], 1.3, rtol=1e-9)


def test_stalled_fit_far_from_optimum_is_still_reported():
    """A model that is NaN everywhere but at its start (and a data set it misses by 1): every
    trial step fails, the optimiser stops 'successfully' with a tiny step, and the check must
    still say this is not a minimum (the m = p case too, which has no residual variance)."""

    def nan_off_start(p):
        return jnp.where(p["a"] == 1.0, p["a"], jnp.nan) * jnp.ones(4)

    for solver in (None, "simkit-lm"):
        res = fit(nan_off_start, {"a": 1.0}, jnp.zeros(4), solver=solver, throw=False)
        assert int(res.status) != FitStatus.SUCCESS

    def square(p):  # m = p = 1, so dof = 0
        return jnp.where(p["a"] == 1.0, p["a"], jnp.nan) * jnp.ones(1)

    res = fit(square, {"a": 1.0}, jnp.zeros(1), throw=False)
    assert int(res.status) != FitStatus.SUCCESS


# ----------------------------------------------------------------------------------------------
# 5. Large unbounded parameters


def test_transform_gradient_finite_for_large_unbounded_parameter():
    tr = ParamTransform.build({"x": 0.0, "y": 1.0}, {"x": None, "y": (0.0, None)})
    u = jnp.array([900.0, 0.5])
    g = jax.grad(lambda v: jnp.sum(tr.to_flat(v)))(u)
    np.testing.assert_allclose(g, [1.0, np.exp(0.5)], rtol=1e-14)
    g = jax.jacrev(tr.to_flat)(u)
    assert np.all(np.isfinite(g))


def test_minimise_far_unbounded_minimum():
    """(x - 1000)^2 from 900: BFGS on this converges in a few steps; the NaN gradient stalled it
    at 900 until max_steps."""
    res = minimise(lambda p: (p["x"] - 1000.0) ** 2, {"x": 900.0})
    np.testing.assert_allclose(res.params["x"], 1000.0, rtol=1e-10)
    assert int(res.n_steps) < 50


@pytest.mark.parametrize(("solver", "jac"), [(None, "bwd"), ("simkit-lm", "fwd")])
def test_fit_far_unbounded_parameter(solver, jac):
    """Both Jacobian modes failed: reverse mode with NaN cotangents, forward mode with the NaN
    tangent `0 * inf` of the unused branch."""

    def model(p):
        return p["x"] * jnp.ones(3) + jnp.arange(3.0)

    res = fit(model, {"x": 900.0}, jnp.full(3, 1000.0) + jnp.arange(3.0), jac=jac, solver=solver)
    np.testing.assert_allclose(res.params["x"], 1000.0, rtol=1e-12)


# ----------------------------------------------------------------------------------------------
# 6. Non-array args


def _scaled(p, args):
    f, t = args
    return p["a"] * f(t)


def test_fit_with_function_in_args():
    y = 2.0 * jnp.sin(T)
    for solver in (None, "simkit-lm"):
        res = fit(_scaled, {"a": 1.0}, y, args=(jnp.sin, T), solver=solver)
        np.testing.assert_allclose(res.params["a"], 2.0, rtol=1e-10)
    best = fit_multistart(_scaled, {"a": jnp.array([0.5, 3.0])}, y, args=(jnp.sin, T))
    np.testing.assert_allclose(best.params["a"], 2.0, rtol=1e-10)


def test_fit_batch_with_function_in_args():
    """Array leaves of args are batched, the others shared by every member."""
    ys = jnp.stack([2.0 * jnp.sin(T), 3.0 * jnp.sin(T)])
    res = fit_batch(_scaled, {"a": jnp.ones(2)}, ys, args=(jnp.sin, jnp.stack([T, T])))
    np.testing.assert_allclose(res.params["a"], [2.0, 3.0], rtol=1e-10)


def test_minimise_with_function_in_args():
    def loss(p, args):
        f, t = args
        return jnp.sum((p["a"] * f(t) - 2.0 * jnp.sin(t)) ** 2)

    res = minimise(loss, {"a": 1.0}, args=(jnp.sin, T))
    np.testing.assert_allclose(res.params["a"], 2.0, rtol=1e-8)


def test_model_that_fails_with_its_args_gets_a_clear_error():
    with pytest.raises(SimkitInputError, match=r"model\(params, args\) failed to evaluate"):
        fit(lambda p, a: p["a"] * a["missing"], {"a": 1.0}, T, args={"t": T})
    with pytest.raises(SimkitInputError, match=r"loss\(params, args\) failed to evaluate"):
        minimise(lambda p, a: p["a"] * a["missing"], {"a": 1.0}, args={"t": T})


# ----------------------------------------------------------------------------------------------
# 7. Validation


@pytest.mark.parametrize("kw", [{"rtol": 0.0}, {"atol": -1e-8}, {"rtol": float("nan")}])
def test_minimise_rejects_bad_tolerances(kw):
    with pytest.raises(SimkitInputError, match="tol"):
        minimise(lambda p: (p["x"] - 1.0) ** 2, {"x": 0.0}, **kw)


@pytest.mark.parametrize("steps", [2**31, 2**32 + 100])
def test_step_limits_beyond_int32_are_refused(steps):
    """The step counters are int32: 2**31 used to wrap to a negative limit (simkit LM: stop after
    one step) and fit_batch / fit_multistart raised a raw OverflowError."""
    y = exp_model({"a": 2.0, "k": 1.3})
    p0 = {"a": 1.0, "k": 1.0}
    starts = {"a": jnp.ones(2), "k": jnp.ones(2)}
    calls = [
        lambda: fit(exp_model, p0, y, max_steps=steps),
        lambda: fit(exp_model, p0, y, max_steps=steps, solver="simkit-lm"),
        lambda: fit_multistart(exp_model, starts, y, max_steps=steps),
        lambda: fit_batch(exp_model, starts, jnp.stack([y, y]), max_steps=steps),
        lambda: fit_batch(exp_model, starts, jnp.stack([y, y]), segment_steps=steps),
        lambda: minimise(lambda p: (p["x"] - 1.0) ** 2, {"x": 0.0}, max_steps=steps),
    ]
    for call in calls:
        with pytest.raises(SimkitInputError, match="steps must be < 2\\*\\*31"):
            call()


def test_ode_model_rejects_bad_solver_settings():
    problem = ODEProblem(lambda t, y, p: -p["k"] * y, jnp.array([1.0]), {"k": 1.0}, 0.0, 1.0)
    ts = np.linspace(0.0, 1.0, 5)
    for kw in ({"rtol": 0.0}, {"atol": -1.0}, {"dt0": -0.1}, {"max_steps": 2**31}):
        with pytest.raises(SimkitInputError):
            ode_model(problem, ts, **kw)


# ----------------------------------------------------------------------------------------------
# 8. Docstring


def test_module_docstring_names_fits_real_default():
    """`fit(solver=None)` runs optimistix's Levenberg-Marquardt; the docstring said simkit's."""
    from simkit.fit._least_squares import default_solver

    assert isinstance(default_solver(1e-8, 1e-8), optx.LevenbergMarquardt)
    doc = " ".join(simkit.fit.__doc__.split())
    assert "optimistix's Levenberg-Marquardt by default" in doc
    assert "simkit's Levenberg-Marquardt by default" not in doc
