"""Tests of simkit.fit: covariance against closed forms and SciPy, LV recovery and coverage,
transforms, multi-start, batches, failure reporting and bad inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
import pytest
from scipy.optimize import curve_fit

from simkit import SimkitInputError
from simkit.fit import (
    FitError,
    FitStatus,
    ParamTransform,
    fit,
    fit_batch,
    fit_multistart,
    minimise,
    ode_model,
)
from simkit.ode import ODEProblem

# ----------------------------------------------------------------------------------------------
# Shared models (module level, so jitted fits compile once for the whole file)

T_EXP = np.linspace(0.0, 3.0, 40)
T_EXP_J = jnp.asarray(T_EXP)


def exp_model(p):
    return p["a"] * jnp.exp(-p["k"] * T_EXP_J)


def lv_field(t, y, p):
    x, z = y[0], y[1]
    return jnp.stack([p["alpha"] * x - p["beta"] * x * z, p["delta"] * x * z - p["gamma"] * z])


LV_TRUE = {"alpha": 1.0, "beta": 0.1, "gamma": 1.5, "delta": 0.075}
LV_START = {"alpha": 0.8, "beta": 0.12, "gamma": 1.3, "delta": 0.09}
LV_BOUNDS = {k: (0.0, None) for k in LV_TRUE}
LV_TS = np.linspace(0.0, 15.0, 31)
LV_PROBLEM = ODEProblem(lv_field, jnp.array([10.0, 5.0]), LV_TRUE, 0.0, 15.0)
LV_RK4 = ode_model(LV_PROBLEM, LV_TS, method="rk4", substeps=4)
LV_NOISE = 1.0


def lv_clean():
    return np.asarray(jax.jit(LV_RK4)(LV_TRUE))


def batched(tree, n):
    return jax.tree_util.tree_map(lambda x: jnp.full((n,), x), tree)


# ----------------------------------------------------------------------------------------------
# Covariance against closed forms and SciPy


def test_linear_model_covariance_matches_closed_form():
    """Linear least squares: beta = (X^T X)^-1 X^T y, cov = s^2 (X^T X)^-1, s^2 = RSS/(m-p)
    (exact for a linear model; any textbook, e.g. Seber & Lee, Linear Regression Analysis)."""
    rng = np.random.default_rng(0)
    X = np.column_stack([np.ones(50), np.linspace(0, 1, 50), np.linspace(0, 1, 50) ** 2])
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=50)
    Xj = jnp.asarray(X)
    res = fit(lambda p: Xj @ p["beta"], {"beta": jnp.zeros(3)}, jnp.asarray(y))
    beta = np.linalg.solve(X.T @ X, X.T @ y)
    rss = np.sum((y - X @ beta) ** 2)
    cov = rss / (50 - 3) * np.linalg.inv(X.T @ X)
    np.testing.assert_allclose(res.params["beta"], beta, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res.covariance, cov, rtol=1e-7)
    np.testing.assert_allclose(res.stderr["beta"], np.sqrt(np.diag(cov)), rtol=1e-7)
    np.testing.assert_allclose(res.chi2, rss, rtol=1e-9)
    np.testing.assert_allclose(np.diag(res.correlation), 1.0, rtol=1e-12)
    np.testing.assert_allclose(res.residuals, y - X @ beta, atol=1e-10)
    assert res.dof == 47 and bool(res.success) and bool(res.covariance_ok)
    assert res.param_names == ("['beta'][0]", "['beta'][1]", "['beta'][2]")


@pytest.mark.parametrize("with_sigma", [False, True])
def test_exponential_decay_matches_scipy_curve_fit(with_sigma):
    """Independent reference: scipy.optimize.curve_fit (MINPACK LM). Parameters agree to 1e-6
    (both converge to the same optimum) and standard errors to 1e-4 relative (SciPy's MINPACK
    Jacobian is finite-difference, ~1e-7 relative, ours exact)."""
    rng = np.random.default_rng(1)
    sig = 0.05 * (1.0 + T_EXP)
    y = 2.0 * np.exp(-1.3 * T_EXP) + sig * rng.normal(size=T_EXP.size)
    kwargs = {"sigma": jnp.asarray(sig)} if with_sigma else {}
    res = fit(exp_model, {"a": 1.0, "k": 1.0}, jnp.asarray(y), **kwargs)
    popt, pcov = curve_fit(
        lambda t, a, k: a * np.exp(-k * t),
        T_EXP,
        y,
        p0=[1.0, 1.0],
        sigma=sig if with_sigma else None,
        absolute_sigma=with_sigma,
    )
    np.testing.assert_allclose([res.params["a"], res.params["k"]], popt, rtol=1e-6)
    np.testing.assert_allclose(
        [res.stderr["a"], res.stderr["k"]], np.sqrt(np.diag(pcov)), rtol=1e-4
    )
    np.testing.assert_allclose(res.covariance, pcov, rtol=1e-4)


def test_relative_sigma_rescales_like_curve_fit():
    """absolute_sigma=False: covariance scaled by chi2/dof, as curve_fit(absolute_sigma=False)."""
    rng = np.random.default_rng(2)
    sig = np.full(T_EXP.size, 0.2)
    y = 2.0 * np.exp(-1.3 * T_EXP) + 0.05 * rng.normal(size=T_EXP.size)
    res = fit(exp_model, {"a": 1.0, "k": 1.0}, jnp.asarray(y), sigma=0.2, absolute_sigma=False)
    _, pcov = curve_fit(
        lambda t, a, k: a * np.exp(-k * t), T_EXP, y, p0=[1.0, 1.0], sigma=sig, absolute_sigma=False
    )
    np.testing.assert_allclose(res.covariance, pcov, rtol=1e-4)


def test_reverse_mode_jacobian_matches_forward():
    rng = np.random.default_rng(3)
    y = jnp.asarray(2.0 * np.exp(-1.3 * T_EXP) + 0.05 * rng.normal(size=T_EXP.size))
    a = fit(exp_model, {"a": 1.0, "k": 1.0}, y, jac="fwd")
    b = fit(exp_model, {"a": 1.0, "k": 1.0}, y, jac="bwd")
    np.testing.assert_allclose(a.covariance, b.covariance, rtol=1e-8)
    np.testing.assert_allclose(a.params["k"], b.params["k"], rtol=1e-8)


@pytest.mark.slow  # default-suite time; covariances: the recovery/coverage tests
def test_covariance_from_lm_state_equals_fresh_jacobian():
    """The default fit takes the covariance from its last Jacobian (`J_x = J_u / D`, D = dx/du);
    it equals the one from a Jacobian evaluated afresh at x. Where the transform saturates
    (here k = exp(u) at u = -720: D underflows, so J_u has lost the k column) it must fall back to
    the fresh evaluation. Model args with a non-array leaf take the other compiled path."""
    from simkit.fit._batch import _batch_finalise
    from simkit.fit._least_squares import finalise, finalise_lm
    from simkit.fit._lm import lm_init

    rng = np.random.default_rng(13)
    y = jnp.asarray(2.0 * np.exp(-1.3 * T_EXP) + 0.05 * rng.normal(size=T_EXP.size))
    tr = ParamTransform.build({"a": 1.0, "k": 1.0}, {"a": (0.0, 5.0), "k": (0.0, None)})
    us = jnp.array([[0.3, 0.2], [0.3, -720.0]])
    init = jax.vmap(lambda u: lm_init(exp_model, False, tr, "fwd", u, y, None, None))
    batch = _batch_finalise(
        exp_model,
        False,
        tr,
        "fwd",
        True,
        init(us),
        (None, None, None),
        (y, None, None),
        (False, False, False),
    )
    for i, u in enumerate(us):
        state = lm_init(exp_model, False, tr, "fwd", u, y, None, None)
        kw = {"jac": "fwd", "absolute_sigma": True, "method": ""}
        a = finalise_lm(exp_model, False, tr, state, y, None, None, **kw)
        b = finalise(exp_model, False, tr, u, y, None, None, n_steps=0, status=0, **kw)
        assert np.all(np.isfinite(np.asarray(b.covariance)))
        for cov in (a.covariance, batch.covariance[i]):
            np.testing.assert_allclose(cov, b.covariance, rtol=1e-10)
        np.testing.assert_allclose(a.residuals, b.residuals, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(a.chi2, b.chi2, rtol=1e-13)
    plain = fit(exp_model, {"a": 1.0, "k": 1.0}, y, solver="simkit-lm")
    via_args = fit(
        lambda p, arg: arg["s"] * p["a"] * jnp.exp(-p["k"] * arg["t"]),
        {"a": 1.0, "k": 1.0},
        y,
        args={"t": T_EXP_J, "s": 1.0},
        solver="simkit-lm",
    )
    optx_lm = fit(
        exp_model, {"a": 1.0, "k": 1.0}, y, solver=optx.LevenbergMarquardt(rtol=1e-10, atol=1e-10)
    )
    assert via_args.method == plain.method == "simkit LevenbergMarquardt"
    assert optx_lm.method == "LevenbergMarquardt"
    for other in (via_args, optx_lm):
        np.testing.assert_allclose(other.params["k"], plain.params["k"], rtol=1e-7)
        np.testing.assert_allclose(other.covariance, plain.covariance, rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# Lotka-Volterra


@pytest.mark.slow  # default-suite time; LV recovery: test_problem_script_recovers_parameters
def test_lotka_volterra_diffrax_recovers_truth_within_3_stderr():
    """Adaptive diffrax solve (forward-mode adjoint) inside optimistix LM: the 4 rates are
    recovered within 3 standard errors (a 99.7% interval per parameter for a correct
    covariance; the noise seed is fixed)."""
    model = ode_model(LV_PROBLEM, LV_TS, rtol=1e-8, atol=1e-8)
    rng = np.random.default_rng(4)
    clean = np.asarray(jax.jit(model)(LV_TRUE))
    np.testing.assert_allclose(lv_clean(), clean, atol=5e-3)  # RK4 (h = 0.125) vs adaptive
    data = clean + LV_NOISE * rng.normal(size=clean.shape)
    res = fit(model, LV_START, jnp.asarray(data), sigma=LV_NOISE, bounds=LV_BOUNDS)
    for k, v in LV_TRUE.items():
        assert abs(float(res.params[k]) - v) < 3 * float(res.stderr[k]), (k, res.summary())
        assert float(res.stderr[k]) < 0.05 * v  # the data really constrain each rate
    assert 20 < float(res.chi2) < 110  # chi2 with 58 dof: 99.9% interval ~[30, 96]


def test_lotka_volterra_coverage_200_realisations_one_batch():
    """Coverage of the 1-sigma interval over 200 noise realisations solved as one batch.

    For a correct covariance each true parameter falls inside +-1 stderr with probability
    0.683. With 200 independent draws the binomial sd is sqrt(0.683 * 0.317 / 200) = 0.033;
    we accept [0.58, 0.78] per parameter (+-3 sd) and [0.62, 0.75] pooled over the 4
    parameters (800 draws, sd 0.016 if independent, widened for their correlation). A
    covariance too small or too large by 30% (interval coverage 0.52 or 0.79) fails. The mean
    chi2 must be dof = 58 within 3 sd (sd of the mean sqrt(2 * 58 / 200) = 0.76).
    """
    n = 200
    rng = np.random.default_rng(5)
    data = lv_clean()[None] + LV_NOISE * rng.normal(size=(n, *lv_clean().shape))
    res = fit_batch(
        LV_RK4, batched(LV_START, n), jnp.asarray(data), sigma=LV_NOISE, bounds=LV_BOUNDS
    )
    assert res.batch_shape == (n,) and bool(np.all(res.success))
    inside = {
        k: np.abs(np.asarray(res.params[k]) - v) < np.asarray(res.stderr[k])
        for k, v in LV_TRUE.items()
    }
    for k, hits in inside.items():
        assert 0.58 <= hits.mean() <= 0.78, (k, hits.mean())
    pooled = np.mean([h.mean() for h in inside.values()])
    assert 0.62 <= pooled <= 0.75, pooled
    # The test has teeth: standard errors off by 30% either way leave the pooled band.
    for factor, check in ((0.7, lambda f: f < 0.62), (1.3, lambda f: f > 0.75)):
        scaled = np.mean(
            [
                np.mean(np.abs(np.asarray(res.params[k]) - v) < factor * np.asarray(res.stderr[k]))
                for k, v in LV_TRUE.items()
            ]
        )
        assert check(scaled), (factor, scaled)
    assert abs(np.mean(res.chi2) - 58) < 3 * 0.76, np.mean(res.chi2)


def test_ode_model_fits_initial_condition_and_observable_like_closed_form():
    """dy/dt = -k y with y(0) = a fitted through `to_problem`, observing y only: the same fit as
    the closed form a exp(-k t) (solver tolerance 1e-10 -> parameters agree to 1e-6)."""
    rng = np.random.default_rng(12)
    y = jnp.asarray(2.0 * np.exp(-1.3 * T_EXP) + 0.05 * rng.normal(size=T_EXP.size))
    decay = ODEProblem(lambda t, u, p: -p["k"] * u, jnp.ones(1), {"k": 1.0}, 0.0, 3.0)
    model = ode_model(
        decay,
        T_EXP,
        rtol=1e-10,
        atol=1e-10,
        to_problem=lambda p: (jnp.reshape(p["a"], (1,)), {"k": p["k"]}),
        observe=lambda ys, p: ys[:, 0],
    )
    ode_fit = fit(model, {"a": 1.0, "k": 1.0}, y)
    closed = fit(exp_model, {"a": 1.0, "k": 1.0}, y)
    for k in ("a", "k"):
        np.testing.assert_allclose(ode_fit.params[k], closed.params[k], rtol=1e-6)
        np.testing.assert_allclose(ode_fit.stderr[k], closed.stderr[k], rtol=1e-5)


# ----------------------------------------------------------------------------------------------
# Transforms


def test_transform_round_trip_and_bounds():
    params = {"free": jnp.array([-3.0, 2.0]), "pos": 0.5, "low": 3.0, "up": -1.0, "box": 0.2}
    bounds = {
        "free": None,
        "pos": (0.0, None),
        "low": (2.0, None),
        "up": (None, 1.0),
        "box": (0.0, 1.0),
    }
    tr = ParamTransform.build(params, bounds)
    u = tr.to_unconstrained(params)
    back = tr.to_params(u)
    for k in params:
        np.testing.assert_allclose(back[k], params[k], rtol=1e-12)
    assert tr.names == ("['box']", "['free'][0]", "['free'][1]", "['low']", "['pos']", "['up']")
    # Extreme unconstrained values still map inside the (closed) bounds.
    for big in (-30.0, 30.0):
        x = tr.unravel(tr.to_flat(jnp.full(6, big)))
        assert 0.0 <= float(x["box"]) <= 1.0 and float(x["low"]) >= 2.0
        assert float(x["pos"]) >= 0.0 and float(x["up"]) <= 1.0
    np.testing.assert_allclose(tr.derivative(u)[4], 0.5, rtol=1e-12)  # d(exp u)/du = x


def test_bounds_respected_and_covariance_is_delta_method():
    """The optimum of an unbounded fit lies outside the box -> the bounded fit stays inside.
    Covariance in the user's space equals D cov_u D with D = dx/du (delta method)."""
    rng = np.random.default_rng(6)
    y = jnp.asarray(2.0 * np.exp(-1.3 * T_EXP) + 0.05 * rng.normal(size=T_EXP.size))
    box = {"a": (0.0, 1.5), "k": (0.0, None)}
    res = fit(exp_model, {"a": 1.0, "k": 1.0}, y, bounds=box, throw=False)
    assert 0.0 < float(res.params["a"]) <= 1.5 and float(res.params["k"]) > 0
    # Ending against the bound is reported (the covariance is not valid there), naming 'a'.
    assert int(res.status) == FitStatus.AT_BOUND and "at a bound: ['a']" in res.message
    np.testing.assert_array_equal(res.at_bound, [True, False])
    both = fit_batch(
        exp_model, {"a": jnp.ones(2), "k": jnp.ones(2)}, jnp.stack([y, y]), bounds=box, throw=False
    )
    np.testing.assert_array_equal(both.status, FitStatus.AT_BOUND)
    # Interior optimum: compare with the delta method explicitly.
    bounds = {"a": (0.5, 5.0), "k": (0.0, None)}
    res = fit(exp_model, {"a": 1.0, "k": 1.0}, y, bounds=bounds)
    tr = ParamTransform.build({"a": 1.0, "k": 1.0}, bounds)
    u = tr.to_unconstrained(res.params)
    J_u = jax.jacfwd(lambda u_: exp_model(tr.to_params(u_)) - y)(u)
    s2 = float(res.chi2) / res.dof
    cov_u = s2 * np.linalg.inv(np.asarray(J_u.T @ J_u))
    D = np.diag(np.asarray(tr.derivative(u)))
    np.testing.assert_allclose(res.covariance, D @ cov_u @ D, rtol=1e-6)
    plain = fit(exp_model, {"a": 1.0, "k": 1.0}, y)  # same optimum without bounds
    np.testing.assert_allclose(res.covariance, plain.covariance, rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# Multi-start and batches

T_SIN = jnp.linspace(0.0, 6.0, 80)


def sin_model(p):
    return jnp.sin(p["w"] * T_SIN)


def test_multistart_finds_global_minimum():
    """sin(w t) has many local minima in w; from w=1 LM gets stuck, 24 starts in one batch
    find the true w = 3.7."""
    rng = np.random.default_rng(7)
    y = jnp.asarray(np.sin(3.7 * np.asarray(T_SIN)) + 0.05 * rng.normal(size=80))
    local = fit(sin_model, {"w": 1.0}, y)
    assert abs(float(local.params["w"]) - 3.7) > 0.5  # a local minimum: the test has teeth
    starts = {"w": jnp.linspace(0.5, 8.0, 24)}
    best, every = fit_multistart(sin_model, starts, y, bounds={"w": (0.0, 10.0)}, return_all=True)
    assert abs(float(best.params["w"]) - 3.7) < 3 * float(best.stderr["w"])
    assert every.batch_shape == (24,)
    assert float(best.chi2) <= float(np.min(np.asarray(every.chi2)[np.asarray(every.success)]))
    assert float(best.chi2) < float(local.chi2) / 10


def test_batched_fits_equal_individual_fits():
    """simkit's batched LM (and a vmapped optimistix LM, lockstep) give the single-fit answers."""
    n = 4
    rng = np.random.default_rng(8)
    data = lv_clean()[None] + LV_NOISE * rng.normal(size=(n, *lv_clean().shape))
    res = fit_batch(
        LV_RK4, batched(LV_START, n), jnp.asarray(data), sigma=LV_NOISE, bounds=LV_BOUNDS
    )
    for i in range(n):
        one = fit(LV_RK4, LV_START, jnp.asarray(data[i]), sigma=LV_NOISE, bounds=LV_BOUNDS)
        for k in LV_TRUE:
            np.testing.assert_allclose(res.member(i).params[k], one.params[k], rtol=1e-6)
            np.testing.assert_allclose(res.member(i).stderr[k], one.stderr[k], rtol=1e-5)
        np.testing.assert_allclose(res.member(i).chi2, one.chi2, rtol=1e-9)
    y = 2.0 * np.exp(-np.array([1.0, 2.0])[:, None] * T_EXP[None]) + 0.01 * rng.normal(size=(2, 40))
    starts = {"a": jnp.ones(2), "k": jnp.ones(2)}
    lockstep = fit_batch(
        exp_model, starts, jnp.asarray(y), solver=optx.LevenbergMarquardt(rtol=1e-8, atol=1e-8)
    )
    for i in range(2):
        one = fit(exp_model, {"a": 1.0, "k": 1.0}, jnp.asarray(y[i]))
        np.testing.assert_allclose(lockstep.member(i).params["k"], one.params["k"], rtol=1e-6)
        np.testing.assert_allclose(lockstep.member(i).stderr["k"], one.stderr["k"], rtol=1e-5)


@pytest.mark.slow  # default-suite time; fit_batch: test_batched_fits_equal_individual_fits
def test_batch_compaction_with_very_different_iteration_counts():
    """Members needing 1 vs many iterations (starts at / far from the optimum) in a batch of 80:
    once only the 8 slow ones run they are gathered into a batch of 16 (padded); every member
    converges to its own answer."""
    n = 80
    rng = np.random.default_rng(9)
    k_true = np.linspace(0.5, 3.0, n)
    y = 2.0 * np.exp(-k_true[:, None] * T_EXP[None]) + 0.01 * rng.normal(size=(n, T_EXP.size))
    near = jnp.arange(n) % 10 != 1
    starts = {"a": jnp.where(near, 2.0, 0.2), "k": jnp.where(near, jnp.asarray(k_true), 8.0)}
    res = fit_batch(
        exp_model,
        starts,
        jnp.asarray(y),
        segment_steps=2,
        bounds={"a": (0.0, None), "k": (0.0, None)},
    )
    steps = np.asarray(res.n_steps)
    assert steps.max() >= 3 * steps.min()  # the members really differ in work
    np.testing.assert_allclose(res.params["k"], k_true, rtol=0.05)
    for i in (0, 1, n - 1):
        one = fit(
            exp_model,
            {"a": float(starts["a"][i]), "k": float(starts["k"][i])},
            jnp.asarray(y[i]),
            bounds={"a": (0.0, None), "k": (0.0, None)},
        )
        np.testing.assert_allclose(res.member(i).params["k"], one.params["k"], rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# Failure reporting


def test_iteration_limit_reported_with_last_iterate():
    """From this far start the LM needs ~20 iterations (its first few trial steps overshoot
    and are rejected while the damping grows); 10 are allowed."""
    rng = np.random.default_rng(10)
    y = jnp.asarray(2.0 * np.exp(-1.3 * T_EXP) + 0.05 * rng.normal(size=T_EXP.size))
    res = fit(exp_model, {"a": 0.1, "k": 5.0}, y, max_steps=10, throw=False)
    assert not bool(res.success) and int(res.status) == FitStatus.MAX_STEPS
    assert "max_steps" in res.message and int(res.n_steps) == 10
    last = float(res.params["k"])
    assert np.isfinite(last) and last != 5.0  # the last iterate, not the start
    with pytest.raises(FitError, match="max_steps") as info:
        fit(exp_model, {"a": 0.1, "k": 5.0}, y, max_steps=10)
    assert float(info.value.result.params["k"]) == last
    # An optimistix solver reports its iteration limit the same way.
    res = fit(
        exp_model,
        {"a": 0.1, "k": 5.0},
        y,
        max_steps=2,
        throw=False,
        solver=optx.LevenbergMarquardt(rtol=1e-8, atol=1e-8),
    )
    assert int(res.status) == FitStatus.MAX_STEPS and float(res.params["k"]) != 5.0
    # Same for a batch (simkit's LM): member 0 starts at the optimum, member 1 cannot finish.
    best = fit(exp_model, {"a": 0.1, "k": 5.0}, y)
    starts = {
        "a": jnp.array([float(best.params["a"]), 0.1]),
        "k": jnp.array([float(best.params["k"]), 5.0]),
    }
    with pytest.raises(FitError, match="1 of 2 fits failed") as info:
        fit_batch(exp_model, starts, jnp.stack([y, y]), max_steps=2)
    np.testing.assert_array_equal(
        info.value.result.status, [FitStatus.SUCCESS, FitStatus.MAX_STEPS]
    )
    assert np.isfinite(float(info.value.result.params["k"][1]))


def test_diverging_fit_is_failed_not_returned():
    """data = 0 and model 1/a: the cost falls towards a -> infinity, so the iterate runs away
    (Gauss-Newton doubles a every step) and never converges."""

    def runaway(p):
        return jnp.ones(5) / p["a"]

    for runner in (
        lambda **kw: fit(runaway, {"a": 1.0}, jnp.zeros(5), **kw),
        lambda **kw: fit_batch(runaway, {"a": jnp.ones(3)}, jnp.zeros((3, 5)), **kw),
    ):
        res = runner(throw=False)
        assert not np.any(np.asarray(res.success))
        assert np.all(np.asarray(res.params["a"]) > 50.0)  # the last iterate, far from 1
        with pytest.raises(FitError):
            runner()


def test_stalled_fit_reports_divergence():
    """A model that is NaN everywhere except at the start: no step can be taken."""

    def nan_off_start(p):
        return jnp.where(p["a"] == 1.0, p["a"], jnp.nan) * jnp.ones(4)

    res = fit_batch(nan_off_start, {"a": jnp.ones(2)}, jnp.zeros((2, 4)), throw=False)
    assert np.all(np.asarray(res.status) == FitStatus.DIVERGED)
    np.testing.assert_array_equal(res.params["a"], 1.0)
    single = fit(nan_off_start, {"a": 1.0}, jnp.zeros(4), throw=False)
    assert not bool(single.success)


def test_singular_jacobian_flags_covariance_not_crash():
    """Only the product a*b is identifiable: J^T J is singular."""
    y = jnp.asarray(2.0 * T_EXP)
    res = fit(lambda p: p["a"] * p["b"] * T_EXP_J, {"a": 1.0, "b": 1.0}, y)
    assert bool(res.success) and not bool(res.covariance_ok)
    assert np.all(np.isinf(np.asarray(res.covariance)))
    assert np.all(np.isnan(np.asarray(res.correlation)))
    assert "covariance could not be estimated" in res.message
    np.testing.assert_allclose(res.params["a"] * res.params["b"], 2.0, rtol=1e-8)


def test_minimise_gaussian_likelihood_matches_analytic():
    """MLE of a normal sample: mu = mean, sigma^2 = mean squared deviation; the inverse Hessian
    of the negative log-likelihood gives var(mu) = sigma^2/n, var(sigma) = sigma^2/(2n)."""
    rng = np.random.default_rng(11)
    x = jnp.asarray(3.0 + 2.0 * rng.normal(size=400))

    def nll(p):
        return jnp.sum(0.5 * ((x - p["mu"]) / p["s"]) ** 2 + jnp.log(p["s"]))

    res = minimise(nll, {"mu": 0.0, "s": 1.0}, bounds={"s": (0.0, None), "mu": None})
    s_hat = float(np.std(np.asarray(x)))
    np.testing.assert_allclose(res.params["mu"], float(np.mean(np.asarray(x))), rtol=1e-6)
    np.testing.assert_allclose(res.params["s"], s_hat, rtol=1e-6)
    np.testing.assert_allclose(res.stderr["mu"], s_hat / np.sqrt(400), rtol=1e-5)
    np.testing.assert_allclose(res.stderr["s"], s_hat / np.sqrt(800), rtol=1e-5)


# ----------------------------------------------------------------------------------------------
# Bad input


def test_shape_mismatch_raises():
    with pytest.raises(
        SimkitInputError,
        match=r"model output shape \(40,\) does not match "
        r"data shape \(39,\)",
    ):
        fit(exp_model, {"a": 1.0, "k": 1.0}, jnp.zeros(39))
    with pytest.raises(SimkitInputError, match="sigma shape"):
        fit(exp_model, {"a": 1.0, "k": 1.0}, jnp.zeros(40), sigma=jnp.ones(3))
    with pytest.raises(SimkitInputError, match="sigma must be finite and > 0"):
        fit(exp_model, {"a": 1.0, "k": 1.0}, jnp.zeros(40), sigma=0.0)
    with pytest.raises(SimkitInputError, match="model output shape"):
        fit_batch(exp_model, batched({"a": 1.0, "k": 1.0}, 2), jnp.zeros((2, 41)))
    with pytest.raises(SimkitInputError, match="3 starts but data has 2"):
        fit_batch(exp_model, batched({"a": 1.0, "k": 1.0}, 3), jnp.zeros((2, 40)))


def test_start_outside_bounds_names_parameter():
    with pytest.raises(SimkitInputError, match=r"parameter \['k'\] starts at -1.0, outside"):
        fit(exp_model, {"a": 1.0, "k": -1.0}, jnp.zeros(40), bounds={"k": (0.0, None), "a": None})
    with pytest.raises(SimkitInputError, match=r"parameter \['w'\] of start 2 is 11.0"):
        fit_multistart(
            sin_model, {"w": jnp.array([1.0, 2.0, 11.0])}, jnp.zeros(80), bounds={"w": (0.0, 10.0)}
        )
    with pytest.raises(SimkitInputError, match="lower bound 2.0 must be < upper bound 1.0"):
        fit(exp_model, {"a": 1.0, "k": 1.5}, jnp.zeros(40), bounds={"k": (2.0, 1.0), "a": None})


def test_other_bad_inputs():
    with pytest.raises(SimkitInputError, match="NaN/inf residuals at the start"):
        fit(lambda p: jnp.log(p["a"] - 2.0) * jnp.ones(3), {"a": 1.0}, jnp.zeros(3))
    with pytest.raises(SimkitInputError, match="data.*NaN"):
        fit(exp_model, {"a": 1.0, "k": 1.0}, jnp.full(40, jnp.nan))
    with pytest.raises(SimkitInputError, match="must be floating point"):
        fit(exp_model, {"a": 1, "k": 1.0}, jnp.zeros(40))
    with pytest.raises(SimkitInputError, match="jac must be"):
        fit(exp_model, {"a": 1.0, "k": 1.0}, jnp.zeros(40), jac="central")
    with pytest.raises(SimkitInputError, match="ts must lie inside"):
        ode_model(LV_PROBLEM, np.linspace(0.0, 20.0, 5))
    jax.config.update("jax_enable_x64", False)
    try:
        with pytest.raises(SimkitInputError, match="needs float64"):
            fit(exp_model, {"a": 1.0, "k": 1.0}, jnp.zeros(40))
    finally:
        jax.config.update("jax_enable_x64", True)


def test_problem_script_recovers_parameters(tmp_h5):
    """problems/lotka_volterra_fit.py end to end (RK4 model, 4 starts): the HDF5 file holds the
    data, the fit and a covariance whose stderr brackets the truth within 3 sigma."""
    import importlib.util
    from pathlib import Path

    import h5py

    path = Path(__file__).resolve().parents[1] / "problems" / "lotka_volterra_fit.py"
    spec = importlib.util.spec_from_file_location("lotka_volterra_fit", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert (
        mod.main(
            [
                "--out",
                str(tmp_h5),
                "--method",
                "rk4",
                "--starts",
                "4",
                "--seed",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    with h5py.File(tmp_h5, "r") as h5:
        params, stderr, true = h5["params"][()], h5["stderr"][()], h5["true_params"][()]
        assert h5["covariance"].shape == (4, 4) and h5["data"].shape == (31, 2)
        np.testing.assert_allclose(np.sqrt(np.diag(h5["covariance"][()])), stderr, rtol=1e-12)
    assert np.all(np.abs(params - true) < 3 * stderr)
    with pytest.raises(SimkitInputError, match="already exists"):
        mod.main(["--out", str(tmp_h5), "--method", "rk4"])


@pytest.mark.parametrize("solver", [None, "simkit-lm"])
def test_repeated_fits_do_not_retrace(solver):
    """A second fit with the same model and shapes reuses the compiled solve (a retrace per call
    once made every default fit ~400x slower)."""
    traces = []
    t = jnp.linspace(0.0, 1.0, 20)

    def model(p):
        traces.append(1)  # runs only while tracing
        return p["a"] * jnp.exp(-p["k"] * t)

    y = model({"a": 2.0, "k": 1.3}) + 0.01 * jnp.asarray(np.random.default_rng(0).normal(size=20))
    fit(model, {"a": 1.0, "k": 1.0}, y, solver=solver)
    n_first = len(traces)
    fit(model, {"a": 1.1, "k": 0.9}, y * 1.01, solver=solver)
    assert len(traces) == n_first
