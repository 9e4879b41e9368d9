"""Speed paths of batched fitting (issue 13): fit_batch's compaction of a tail of slow
members, and `ode_model(method="adaptive")`, simkit's own forward-differentiable adaptive Runge-Kutta model. The answers do
not depend on the path taken."""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_fit import LV_BOUNDS, LV_PROBLEM, LV_START, LV_TRUE, LV_TS, lv_field  # shared fixtures

import simkit.fit._batch as batch_mod
from simkit import SimkitInputError
from simkit.fit import fit, fit_batch, ode_model
from simkit.ode import ODEProblem

T = jnp.linspace(0.0, 3.0, 40)
BOUNDS = {"a": (0.0, None), "k": (0.0, None)}


def decay(p):
    return p["a"] * jnp.exp(-p["k"] * T)


def _tail_batch(n: int = 80):
    """n decay fits; every tenth starts far from its optimum (many more iterations)."""
    rng = np.random.default_rng(3)
    k_true = np.linspace(0.5, 3.0, n)
    y = 2.0 * np.exp(-k_true[:, None] * np.asarray(T)[None]) + 0.01 * rng.normal(size=(n, 40))
    near = jnp.arange(n) % 10 != 1
    starts = {"a": jnp.where(near, 2.0, 0.2), "k": jnp.where(near, jnp.asarray(k_true), 8.0)}
    return starts, jnp.asarray(y)


def _spy_segments(monkeypatch):
    """Record (iterations asked, batch size) of every `_batch_segment` call."""
    calls: list[tuple[int, int]] = []
    segment = batch_mod._batch_segment

    def spy(*a):
        calls.append((int(a[7]), int(a[9].status.shape[0])))
        return segment(*a)

    monkeypatch.setattr(batch_mod, "_batch_segment", spy)
    return calls


def test_a_tail_runs_in_place_first_then_compacts_and_answers_do_not_depend_on_it(monkeypatch):
    calls = _spy_segments(monkeypatch)
    starts, y = _tail_batch()
    n = y.shape[0]
    batched = fit_batch(decay, starts, y, bounds=BOUNDS)
    assert (batch_mod._GRACE, n) in calls  # the tail runs in place first
    assert any(size < n for _, size in calls)  # then in a compacted batch
    assert bool(np.all(np.asarray(batched.success)))
    # Same answers as single fits to the fits' tolerance (rtol 1e-8): a member computed in a
    # batch of another width may round differently.
    for i in (1, 2, 11):
        one = fit(decay, {"a": starts["a"][i], "k": starts["k"][i]}, y[i], bounds=BOUNDS)
        np.testing.assert_allclose(batched.params["k"][i], one.params["k"], rtol=1e-7)
    # Deterministic: the same call gives the same bits.
    again = fit_batch(decay, starts, y, bounds=BOUNDS)
    np.testing.assert_array_equal(again.params["k"], batched.params["k"])


# ----------------------------------------------------------------------------------------------
# ode_model(method="adaptive")


LV_ADAPTIVE = ode_model(LV_PROBLEM, LV_TS, method="adaptive")
DECAY = ODEProblem(lambda t, y, p: -p["k"] * y, jnp.ones(1), {"k": 1.0}, 0.0, 3.0)


def test_adaptive_model_is_exact_on_decay_with_its_forward_jacobian():
    """y' = -k y, y(0) = 1: y = exp(-k t), dy/dk = -t exp(-k t) (closed forms), at data times
    that start after t0, with and without dt0."""
    ts = np.linspace(0.5, 3.0, 11)
    for dt0 in (None, 0.01):
        model = ode_model(DECAY, ts, method="adaptive", rtol=1e-10, atol=1e-12, dt0=dt0)
        k = 1.7
        ys = np.asarray(jax.jit(model)({"k": k}))[:, 0]
        np.testing.assert_allclose(ys, np.exp(-k * ts), rtol=1e-8)
        dk = np.asarray(jax.jit(jax.jacfwd(model))({"k": k})["k"])[:, 0]
        np.testing.assert_allclose(dk, -ts * np.exp(-k * ts), rtol=1e-7)


def test_adaptive_model_matches_tight_diffrax_solve_and_jacobian():
    ref = diffrax.diffeqsolve(
        diffrax.ODETerm(lv_field),
        diffrax.Tsit5(),
        0.0,
        15.0,
        None,
        jnp.array([10.0, 5.0]),
        args=LV_TRUE,
        saveat=diffrax.SaveAt(ts=jnp.asarray(LV_TS)),
        stepsize_controller=diffrax.PIDController(rtol=1e-12, atol=1e-12),
        max_steps=100_000,
    ).ys
    ys = jax.jit(LV_ADAPTIVE)(LV_TRUE)
    np.testing.assert_allclose(ys, ref, rtol=1e-6, atol=1e-6)  # rtol = atol = 1e-8 solve
    J = jax.jit(jax.jacfwd(LV_ADAPTIVE))(LV_TRUE)
    J_dfx = jax.jit(jax.jacfwd(ode_model(LV_PROBLEM, LV_TS)))(LV_TRUE)
    for k in LV_TRUE:
        scale = float(jnp.max(jnp.abs(J_dfx[k])))
        np.testing.assert_allclose(J[k], J_dfx[k], atol=1e-6 * scale)


def test_adaptive_model_fits_agree_with_the_diffrax_model_single_and_batched():
    clean = np.asarray(jax.jit(LV_ADAPTIVE)(LV_TRUE))
    rng = np.random.default_rng(21)
    data = clean[None] + rng.normal(size=(3, *clean.shape))
    dfx_model = ode_model(LV_PROBLEM, LV_TS)
    batch = fit_batch(
        LV_ADAPTIVE,
        jax.tree_util.tree_map(lambda x: jnp.full((3,), x), LV_START),
        jnp.asarray(data),
        sigma=1.0,
        bounds=LV_BOUNDS,
    )
    for i in range(3):
        d = jnp.asarray(data[i])
        one = fit(LV_ADAPTIVE, LV_START, d, sigma=1.0, bounds=LV_BOUNDS, solver="simkit-lm")
        ref = fit(dfx_model, LV_START, d, sigma=1.0, bounds=LV_BOUNDS, solver="simkit-lm")
        assert bool(one.success) and bool(batch.member(i).success)
        for k in LV_TRUE:
            se = float(ref.stderr[k])
            assert abs(float(one.params[k]) - float(ref.params[k])) < 1e-4 * se
            assert abs(float(batch.member(i).params[k]) - float(one.params[k])) < 1e-4 * se
            np.testing.assert_allclose(float(one.stderr[k]), se, rtol=1e-4)


def test_adaptive_model_reports_a_failed_solve_as_nan():
    """Too few steps, or NaN parameters (the step size collapses: the solve stops instead of
    running to max_steps), give a NaN prediction, which the fit rejects."""
    short = ode_model(LV_PROBLEM, LV_TS, method="adaptive", max_steps=5)
    assert bool(jnp.all(jnp.isnan(jax.jit(short)(LV_TRUE))))
    bad = dict(LV_TRUE, alpha=jnp.nan)
    assert bool(jnp.all(jnp.isnan(jax.jit(LV_ADAPTIVE)(bad))))


@pytest.mark.parametrize(
    "kw",
    [
        {"solver": diffrax.Kvaerno5()},
        {"solver": diffrax.Euler()},
        {"stiff": True},
        {"jac": "bwd"},
    ],
)
def test_adaptive_model_refuses_what_it_does_not_cover(kw):
    with pytest.raises(SimkitInputError, match="method='adaptive'"):
        ode_model(LV_PROBLEM, LV_TS, method="adaptive", **kw)


def test_unknown_method_names_all_three():
    with pytest.raises(SimkitInputError, match="'diffrax', 'adaptive' or 'rk4'"):
        ode_model(LV_PROBLEM, LV_TS, method="euler")  # type: ignore[arg-type]


def test_bucket_ladder():
    """Buckets 16 * 4^j (at most the batch), compacting when the running fit a quarter."""
    assert batch_mod._bucket(33, 1000) == 64
    assert batch_mod._bucket(65, 1000) == 256
    assert batch_mod._bucket(900, 1000) == 1000  # never above the batch
    assert batch_mod._stop_below(1000) == 64
    assert batch_mod._stop_below(40) == 0  # too small to compact
