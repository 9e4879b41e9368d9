"""Fused ensemble Runge-Kutta kernels (simkit/ode/_fused.py, _tableau.py).

Validation sources:
- closed forms: y' = -k y (y = y0 exp(-k t)); harmonic oscillator x'' = -w^2 x
  (x = x0 cos(w t) + v0/w sin(w t)); y' = y cos t (y = y0 exp(sin t)).
- Runge-Kutta order conditions (Butcher trees up to order 5): Hairer, Norsett & Wanner,
  "Solving ODEs I", 2nd ed., Table II.2.2.
- diffrax 0.7.2 (same method, ConstantStepSize / PIDController) and SciPy's DOP853 at
  rtol = atol = 1e-13 as independent references for Lorenz-63 (sigma=10, rho=28, beta=8/3).
"""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import simkit
from simkit.ensemble import sharded_call
from simkit.ode import ODEProblem, _fused, solve_ensemble, solve_ensemble_fused
from simkit.ode._tableau import DOPRI5, TABLEAUS, TSIT5

LORENZ_P = jnp.array([10.0, 28.0, 8.0 / 3.0])


def lorenz(t, y, p):
    return jnp.stack([p[0] * (y[1] - y[0]), y[0] * (p[1] - y[2]) - y[1], y[0] * y[1] - p[2] * y[2]])


def lorenz_np(t, y):
    s, r, b = (float(x) for x in LORENZ_P)
    return np.array([s * (y[1] - y[0]), y[0] * (r - y[2]) - y[1], y[0] * y[1] - b * y[2]])


def decay(t, y, k):
    return -k * y


def oscillator(t, y, w):
    return jnp.stack([y[1], -(w * w) * y[0]])


def cos_growth(t, y, p):
    return y * jnp.cos(t)


def lorenz_members(n, dtype=jnp.float64, seed=0):
    y0 = 1.0 + 0.5 * jax.random.normal(jax.random.PRNGKey(seed), (n, 3))
    return y0.astype(dtype), jnp.broadcast_to(LORENZ_P, (n, 3)).astype(dtype)


def lorenz_problem(t1=1.0):
    return ODEProblem(lorenz, jnp.ones(3), LORENZ_P, 0.0, t1)


def diffrax_lorenz(y0, p, solver, controller, dt0, ts, t1=1.0):
    def one(y, pp):
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(lorenz),
            solver,
            0.0,
            t1,
            dt0,
            y,
            args=pp,
            saveat=diffrax.SaveAt(ts=ts),
            stepsize_controller=controller,
            max_steps=100_000,
        )
        return sol.ys, sol.stats["num_steps"]

    return jax.jit(jax.vmap(one))(y0, p)


# ----------------------------------------------------------------------------- tableaus


def _order_conditions(A, b, c):
    """Residuals of the Runge-Kutta order conditions for orders 1..5 (17 trees)."""
    e = np.ones_like(c)
    Ac = A @ c
    rows = [
        (1, b @ e, 1),
        (2, b @ c, 1 / 2),
        (3, b @ c**2, 1 / 3),
        (3, b @ Ac, 1 / 6),
        (4, b @ c**3, 1 / 4),
        (4, b @ (c * Ac), 1 / 8),
        (4, b @ (A @ c**2), 1 / 12),
        (4, b @ (A @ Ac), 1 / 24),
        (5, b @ c**4, 1 / 5),
        (5, b @ (c**2 * Ac), 1 / 10),
        (5, b @ (c * (A @ c**2)), 1 / 15),
        (5, b @ (c * (A @ Ac)), 1 / 30),
        (5, b @ Ac**2, 1 / 20),
        (5, b @ (A @ c**3), 1 / 20),
        (5, b @ (A @ (c * Ac)), 1 / 40),
        (5, b @ (A @ (A @ c**2)), 1 / 60),
        (5, b @ (A @ (A @ Ac)), 1 / 120),
    ]
    return [(order, abs(val - want)) for order, val, want in rows]


@pytest.mark.parametrize("name", sorted(TABLEAUS))
def test_tableau_order_conditions(name):
    tab = TABLEAUS[name]
    s = tab.stages
    A = np.zeros((s, s))
    for i, row in enumerate(tab.a):
        A[i, : len(row)] = row
    c = np.asarray(tab.c)
    np.testing.assert_allclose(A.sum(axis=1), c, atol=1e-15)
    weights = [(np.asarray(tab.b), tab.order)]
    if tab.adaptive:
        weights.append((np.asarray(tab.b) - np.asarray(tab.b_err), tab.embedded_order))
        if tab.fsal:  # last row of A is b: the last stage is f(t + h, y1)
            np.testing.assert_array_equal(np.asarray(tab.a[-1] + (0.0,)), np.asarray(tab.b))
    for b, order in weights:
        res = _order_conditions(A, b, c)
        assert max(r for o, r in res if o <= order) < 1e-14
        # ... and not of higher order (the conditions do constrain the coefficients).
        if order < 5:
            assert max(r for o, r in res if o == order + 1) > 1e-4


def test_tsit5_dopri5_match_diffrax_tableaus():
    # Same propagated weights as diffrax's (typed independently from the papers).
    for tab, theirs in ((TSIT5, diffrax.Tsit5.tableau), (DOPRI5, diffrax.Dopri5.tableau)):
        np.testing.assert_allclose(tab.b, theirs.b_sol, rtol=1e-15, atol=1e-16)
        np.testing.assert_allclose(tab.c[1:], theirs.c, rtol=1e-15)
        for mine, ref in zip(tab.a[1:], theirs.a_lower, strict=False):
            np.testing.assert_allclose(mine, ref, rtol=1e-15, atol=1e-17)
    np.testing.assert_allclose(TSIT5.b_err, diffrax.Tsit5.tableau.b_error, rtol=1e-14, atol=1e-17)


@pytest.mark.parametrize("name", sorted(TABLEAUS))
def test_convergence_order(name):
    """y' = y cos t, y(0)=1, exact exp(sin t) on [0, 10]: halving dt divides the error by 2^p.

    Checked on the finest pair before rounding matters (errors 1e-9..1e-12): the observed order
    is within 0.25 of p (Tsit5 and RK4 approach p from a pre-asymptotic regime).
    """
    tab = TABLEAUS[name]
    y0 = jnp.ones((1, 1))
    p = jnp.zeros((1,))
    errs = []
    for n_steps in (100, 200, 400):
        ys = _fused.fixed_step_solve(
            cos_growth, tab, y0, p, t0=0.0, dt=10.0 / n_steps, save_steps=(n_steps,)
        )
        errs.append(abs(float(ys[0, -1, 0]) - np.exp(np.sin(10.0))))
    orders = np.log2(np.asarray(errs[:-1]) / np.asarray(errs[1:]))
    assert abs(orders[-1] - tab.order) < 0.25, orders
    assert np.all(orders > tab.order - 0.7), orders


# ----------------------------------------------------------------------------- closed forms


def test_exponential_decay_fixed_and_adaptive():
    k = jnp.array([0.1, 1.0, 3.0, 10.0])
    prob = ODEProblem(decay, jnp.ones(1), jnp.array(1.0), 0.0, 2.0)
    ts = jnp.array([0.0, 0.5, 1.0, 2.0])
    exact = np.exp(-np.outer(np.asarray(k), np.asarray(ts)))[:, :, None]
    # Fixed Tsit5, dt = 1e-3: local error ~ (k dt)^6 -> global error < 1e-12.
    sol = solve_ensemble_fused(prob, params=k, fixed_step=True, dt0=1e-3, saveat=ts)
    np.testing.assert_allclose(sol.ys, exact, rtol=0, atol=1e-12)
    # Adaptive, rtol = atol = 1e-10: global error a small multiple of the tolerance.
    for solver in ("tsit5", "dopri5"):
        sol = solve_ensemble_fused(prob, params=k, rtol=1e-10, atol=1e-10, saveat=ts, solver=solver)
        np.testing.assert_allclose(sol.ys, exact, rtol=0, atol=1e-9)
        assert np.all(np.asarray(sol.success))


def test_harmonic_oscillator_fixed_and_adaptive():
    w = jnp.array([0.5, 1.0, 2.0, 4.0])
    x0 = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0], [0.3, 2.0]])
    prob = ODEProblem(oscillator, jnp.zeros(2), jnp.array(1.0), 0.0, 3.0)
    ts = np.linspace(0.0, 3.0, 7)
    wn, x0n = np.asarray(w)[:, None], np.asarray(x0)
    x = x0n[:, :1] * np.cos(wn * ts) + x0n[:, 1:] / wn * np.sin(wn * ts)
    v = -x0n[:, :1] * wn * np.sin(wn * ts) + x0n[:, 1:] * np.cos(wn * ts)
    exact = np.stack([x, v], axis=-1)
    for solver in ("tsit5", "dopri5", "rk4"):
        sol = solve_ensemble_fused(
            prob, y0=x0, params=w, solver=solver, fixed_step=True, dt0=1e-3, saveat=ts
        )
        # RK4 global error ~ (w dt)^4 w t ~ 3e-9 at w=4; the 5th-order pairs far below.
        np.testing.assert_allclose(sol.ys, exact, rtol=0, atol=1e-8)
    sol = solve_ensemble_fused(prob, y0=x0, params=w, rtol=1e-10, atol=1e-10, saveat=ts)
    np.testing.assert_allclose(sol.ys, exact, rtol=0, atol=1e-8)
    np.testing.assert_allclose(sol.ts, ts)


# ----------------------------------------------------------------------------- vs diffrax


@pytest.mark.parametrize("tab,solver", [(TSIT5, diffrax.Tsit5()), (DOPRI5, diffrax.Dopri5())])
def test_fixed_step_matches_diffrax_to_rounding(tab, solver):
    y0, p = lorenz_members(6)
    ts = jnp.array([0.0, 0.25, 1.0])
    ref, _ = diffrax_lorenz(y0, p, solver, diffrax.ConstantStepSize(), 1e-3, ts)
    sol = solve_ensemble_fused(
        lorenz_problem(), y0=y0, params=p, solver=tab.name, fixed_step=True, dt0=1e-3, saveat=ts
    )
    # 1000 steps of a chaotic system to t = 1: rounding differences (order of operations)
    # grow to ~1e-13 relative; 1e-12 of the state scale is "equal to rounding".
    scale = float(jnp.max(jnp.abs(ref)))
    assert float(jnp.max(jnp.abs(sol.ys - ref))) < 1e-12 * scale


def test_rk4_fixed_step_matches_textbook_loop():
    y0, p = lorenz_members(4)
    sol = solve_ensemble_fused(
        lorenz_problem(), y0=y0, params=p, solver="rk4", fixed_step=True, dt0=1e-3
    )
    f = jax.jit(jax.vmap(lorenz, in_axes=(None, 0, 0)))
    y, h = np.asarray(y0), 1e-3
    for i in range(1000):  # classical RK4, written out independently
        t = i * h
        k1 = np.asarray(f(t, y, p))
        k2 = np.asarray(f(t + h / 2, y + h / 2 * k1, p))
        k3 = np.asarray(f(t + h / 2, y + h / 2 * k2, p))
        k4 = np.asarray(f(t + h, y + h * k3, p))
        y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    assert np.max(np.abs(np.asarray(sol.ys[:, -1]) - y)) < 1e-12 * np.max(np.abs(y))


def test_adaptive_tsit5_matches_diffrax_pid_exactly():
    """Same initial step (dt0 = 0.01) and saves at t1: the same step sequence as diffrax."""
    y0, p = lorenz_members(16)
    for ctrl in (
        diffrax.PIDController(rtol=1e-8, atol=1e-8),
        diffrax.PIDController(
            rtol=1e-6, atol=1e-7, pcoeff=0.3, icoeff=0.4, dcoeff=0.1, factormax=5.0
        ),
    ):
        ref, nsteps = diffrax_lorenz(y0, p, diffrax.Tsit5(), ctrl, 0.01, jnp.array([1.0]))
        sol = solve_ensemble_fused(lorenz_problem(), y0=y0, params=p, controller=ctrl, dt0=0.01)
        np.testing.assert_array_equal(sol.num_steps, nsteps)
        np.testing.assert_allclose(sol.ys, ref, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("tab,solver", [(TSIT5, diffrax.Tsit5()), (DOPRI5, diffrax.Dopri5())])
def test_adaptive_matches_diffrax_within_tolerance(tab, solver):
    y0, p = lorenz_members(16)
    ts = jnp.array([0.0, 0.3, 0.7, 1.0])
    rtol = 1e-8
    ref, nsteps = diffrax_lorenz(
        y0, p, solver, diffrax.PIDController(rtol=rtol, atol=rtol), None, ts
    )
    sol = solve_ensemble_fused(
        lorenz_problem(), y0=y0, params=p, solver=tab.name, rtol=rtol, atol=rtol, saveat=ts
    )
    # Two solutions each within ~rtol * (error growth, ~e^(0.9 t) with amplification ~10) of
    # the truth; 1e3 * rtol * |y| bounds their difference with margin.
    assert float(jnp.max(jnp.abs(sol.ys - ref))) < 1e3 * rtol * float(jnp.max(jnp.abs(ref)))
    ratio = np.asarray(sol.num_steps) / np.asarray(nsteps)
    # Different initial step (diffrax 0.7.2 starts at 0.01), clipped saves, and for Dopri5 a
    # different embedded pair: step counts within 20%.
    assert np.all((ratio > 0.8) & (ratio < 1.2)), ratio


@pytest.mark.parametrize("fixed", [True, False])
def test_lorenz_vs_scipy_dop853(fixed):
    y0, p = lorenz_members(3)
    t1 = 2.0
    prob = lorenz_problem(t1)
    ts = np.array([0.5, 1.0, 2.0])
    if fixed:
        sol = solve_ensemble_fused(prob, y0=y0, params=p, fixed_step=True, dt0=1e-3, saveat=ts)
    else:
        sol = solve_ensemble_fused(prob, y0=y0, params=p, rtol=1e-10, atol=1e-10, saveat=ts)
    for i in range(3):
        ref = solve_ivp(
            lorenz_np,
            (0.0, t1),
            np.asarray(y0[i]),
            method="DOP853",
            rtol=1e-13,
            atol=1e-13,
            t_eval=ts,
        )
        # Tsit5 global error to t=2 (|y| ~ 20): fixed dt=1e-3 measured ~1e-11, adaptive at
        # tol 1e-10 ~2e-9; bounds with ~50x margin (a wrong coefficient gives >> 1e-6).
        np.testing.assert_allclose(
            np.asarray(sol.ys[i]), ref.y.T, rtol=0, atol=1e-9 if fixed else 1e-7
        )


# ----------------------------------------------------------------------------- per member


def test_per_member_steps_differ_and_are_independent():
    k = jnp.array([0.1, 1.0, 10.0, 100.0, 1.0, 0.1])
    prob = ODEProblem(decay, jnp.ones(1), jnp.array(1.0), 0.0, 1.0)
    sol = solve_ensemble_fused(prob, params=k, rtol=1e-8, atol=1e-8)
    steps = np.asarray(sol.num_steps)
    assert steps[3] > 4 * steps[0]  # stiffer members take many more steps
    assert steps[0] == steps[5] and steps[1] == steps[4]
    # Global error a few times atol (1e-8) for each member.
    np.testing.assert_allclose(sol.ys[:, 0, 0], np.exp(-np.asarray(k)), rtol=1e-6, atol=1e-7)
    # Each member alone takes exactly the steps it took inside the batch.
    for i in (0, 3):
        alone = solve_ensemble_fused(prob, params=k[i : i + 1], rtol=1e-8, atol=1e-8)
        assert int(alone.num_steps[0]) == steps[i]
        np.testing.assert_array_equal(alone.ys[0], sol.ys[i])
    np.testing.assert_array_equal(sol.num_steps, sol.num_accepted + sol.num_rejected)


def test_regrouping_gives_identical_results(monkeypatch):
    calls = []
    take = _fused._take

    def counting_take(*args):
        calls.append(args[2].shape[0])
        return take(*args)

    monkeypatch.setattr(_fused, "_take", counting_take)
    n = 32
    k = jnp.logspace(-1, 2.5, n)  # step counts spread from ~10 to ~400
    prob = ODEProblem(decay, jnp.ones(1), jnp.array(1.0), 0.0, 1.0)
    ts = jnp.array([0.25, 0.5, 1.0])
    kw = dict(params=k, rtol=1e-9, atol=1e-9, saveat=ts, segment_steps=8)
    a = solve_ensemble_fused(prob, regroup=False, **kw)
    assert calls == []
    b = _fused.adaptive_solve(
        decay,
        TSIT5,
        jnp.ones((n, 1)),
        k,
        t0=0.0,
        t1=1.0,
        cfg=_fused.ControllerConfig(1e-9, 1e-9),
        save_ts=np.asarray(ts),
        segment_steps=8,
        regroup=True,
        min_bucket=2,
        regroup_cost=0,  # regroup whenever it saves work (the default weighs the host cost)
    )
    assert len(calls) >= 2 and calls == sorted(calls, reverse=True)  # it did shrink the batch
    np.testing.assert_array_equal(a.ys, b.ys)
    np.testing.assert_array_equal(a.num_steps, b.num_steps)
    np.testing.assert_array_equal(a.num_rejected, b.num_rejected)
    # Regrouping with each segment sharded over the 8 test devices (bucket sizes are multiples
    # of 8): still the same answer.
    calls.clear()
    c = _fused.adaptive_solve(
        decay,
        TSIT5,
        jnp.ones((n, 1)),
        k,
        t0=0.0,
        t1=1.0,
        cfg=_fused.ControllerConfig(1e-9, 1e-9),
        save_ts=np.asarray(ts),
        segment_steps=8,
        regroup=True,
        min_bucket=2,
        regroup_cost=0,
        shard=True,
    )
    assert len(calls) >= 1 and all(m % 8 == 0 for m in calls)
    np.testing.assert_array_equal(a.ys, c.ys)
    np.testing.assert_array_equal(a.num_steps, c.num_steps)


def test_regroup_only_when_the_predicted_saving_beats_its_cost(monkeypatch):
    # 64 members of y' = -k y: 60 slow ones (k = 1, few steps) and 4 stiff-ish ones that need
    # ~10x more steps. After the first 8-step segment only the 4 are running.
    calls = []
    take = _fused._take
    monkeypatch.setattr(_fused, "_take", lambda *a: calls.append(a[2].shape[0]) or take(*a))
    k = jnp.concatenate([jnp.ones(60), jnp.full(4, 300.0)])
    kw = dict(
        t0=0.0, t1=1.0, cfg=_fused.ControllerConfig(1e-9, 1e-9), segment_steps=8, min_bucket=4
    )

    def run(cost):
        calls.clear()
        return _fused.adaptive_solve(decay, TSIT5, jnp.ones((64, 1)), k, regroup_cost=cost, **kw)

    # Predicted saving: (64 - 4) members x the stragglers' remaining steps (they have covered
    # a small part of [0, 1]); far more than 100 member-steps, far less than 1e9.
    cheap = run(100.0)
    assert calls == [4]
    costly = run(1e9)
    assert calls == []
    np.testing.assert_array_equal(cheap.num_steps, costly.num_steps)
    np.testing.assert_array_equal(cheap.ys, costly.ys)
    assert int(cheap.num_steps[-1]) > 5 * int(cheap.num_steps[0])
    # The prediction itself: a member at t = 0.25 after 10 steps needs ~30 more; one that has
    # not moved is unknown (capped at the steps max_steps still allows).
    left = _fused._predicted_steps_left(np.array([0.25, 0.0]), np.array([10, 3]), 0.0, 1.0, 50)
    assert left == 47.0
    left = _fused._predicted_steps_left(np.array([0.25]), np.array([10]), 0.0, 1.0, 50)
    assert left == pytest.approx(30.0)


# ----------------------------------------------------------------------------- gradients


def test_gradient_fixed_step_analytic_and_vs_diffrax():
    # d/dk of sum_i y_i(1) for y' = -k y: -sum_i exp(-k_i).
    prob = ODEProblem(decay, jnp.ones(1), jnp.array(1.0), 0.0, 1.0)
    k = jnp.array([0.5, 1.0, 2.0])

    def loss(kk):
        ts, ys = solve_ensemble(prob, params=kk, fixed_step=True, dt0=0.01, shard=False)
        return jnp.sum(ys)

    g = jax.grad(loss)(k)
    np.testing.assert_allclose(g, -np.exp(-np.asarray(k)), rtol=1e-9)
    # Lorenz: gradient w.r.t. (sigma, rho, beta) equals diffrax's through the same steps.
    y0, p = lorenz_members(3)

    def mine(pp):
        return jnp.sum(
            _fused.fixed_step_solve(lorenz, TSIT5, y0, pp, t0=0.0, dt=1e-2, save_steps=(50,)) ** 2
        )

    def theirs(pp):
        ys, _ = diffrax_lorenz(
            y0, pp, diffrax.Tsit5(), diffrax.ConstantStepSize(), 1e-2, jnp.array([0.5]), t1=0.5
        )
        return jnp.sum(ys**2)

    np.testing.assert_allclose(jax.grad(mine)(p), jax.grad(theirs)(p), rtol=1e-9)


@pytest.mark.slow  # default-suite time; fused gradients are covered by the fixed-step test
def test_adaptive_gradient_falls_back_to_diffrax():
    prob = ODEProblem(decay, jnp.ones(1), jnp.array(1.0), 0.0, 1.0)
    k = jnp.array([0.5, 2.0])

    def loss(kk):
        ts, ys = solve_ensemble(prob, params=kk, rtol=1e-10, atol=1e-10, shard=False)
        return jnp.sum(ys)

    np.testing.assert_allclose(jax.grad(loss)(k), -np.exp(-np.asarray(k)), rtol=1e-6)
    with pytest.raises(simkit.SimkitInputError, match="method='diffrax'"):
        jax.grad(lambda kk: jnp.sum(solve_ensemble(prob, params=kk, method="fused")[1]))(k)


# ----------------------------------------------------------------------------- dtype, dispatch


def test_float32_path():
    y0, p = lorenz_members(8, jnp.float32)
    prob = lorenz_problem()
    ref = solve_ensemble_fused(
        prob, y0=y0.astype(jnp.float64), params=p.astype(jnp.float64), fixed_step=True, dt0=1e-3
    )
    fixed = solve_ensemble_fused(prob, y0=y0, params=p, fixed_step=True, dt0=1e-3)
    adapt = solve_ensemble_fused(prob, y0=y0, params=p, rtol=1e-5, atol=1e-5)
    for sol in (fixed, adapt):
        assert sol.ys.dtype == jnp.float32 and sol.ts.dtype == jnp.float32
        # float32 rounding (~1e-7) amplified over t=1 of Lorenz, or tolerance 1e-5: 1e-3 rel.
        scale = float(jnp.max(jnp.abs(ref.ys)))
        assert float(jnp.max(jnp.abs(sol.ys - ref.ys))) < 1e-3 * scale
    with pytest.raises(simkit.SimkitInputError, match="dtype"):
        solve_ensemble_fused(prob, y0=y0, params=p.astype(jnp.float64), fixed_step=True, dt0=1e-3)


def test_dispatch_and_sharding():
    y0, p = lorenz_members(13)  # not a multiple of the 8 test devices
    prob = lorenz_problem()
    ts = jnp.array([0.5, 1.0])
    for kw in (dict(fixed_step=True, dt0=1e-3), dict(rtol=1e-7, atol=1e-7)):
        _, unsharded = solve_ensemble(prob, y0=y0, params=p, saveat=ts, shard=False, **kw)
        _, sharded = solve_ensemble(prob, y0=y0, params=p, saveat=ts, shard=True, **kw)
        fused = solve_ensemble_fused(prob, y0=y0, params=p, saveat=ts, **kw)
        np.testing.assert_allclose(sharded, unsharded, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(unsharded, fused.ys)
    _, via_diffrax = solve_ensemble(
        prob, y0=y0, params=p, saveat=ts, shard=False, method="diffrax", rtol=1e-7, atol=1e-7
    )
    # Both within ~1e-6 of the truth at rtol = atol = 1e-7 (Lorenz, t <= 1).
    np.testing.assert_allclose(unsharded, via_diffrax, rtol=0, atol=1e-4)
    # Solvers without a fused kernel go to diffrax (Bosh3 is explicit 3rd order).
    _, ys = solve_ensemble(
        prob, y0=y0, params=p, solver=diffrax.Bosh3(), rtol=1e-7, atol=1e-7, shard=False, saveat=ts
    )
    np.testing.assert_allclose(ys, fused.ys, rtol=0, atol=1e-4)


def lorenz_hand(t, y, p):
    x, yy, z = y[:, 0], y[:, 1], y[:, 2]
    return jnp.stack([p[:, 0] * (yy - x), x * (p[:, 1] - z) - yy, x * yy - p[:, 2] * z], axis=1)


def test_hand_batched_field_gives_same_results():
    y0, p = lorenz_members(5)
    prob = lorenz_problem()
    for kw in (dict(fixed_step=True, dt0=1e-3), dict(rtol=1e-8, atol=1e-8)):
        a = solve_ensemble_fused(prob, y0=y0, params=p, **kw)
        b = solve_ensemble_fused(prob, y0=y0, params=p, batched_field=lorenz_hand, **kw)
        np.testing.assert_allclose(a.ys, b.ys, rtol=1e-12, atol=1e-12)
    with pytest.raises(simkit.SimkitInputError, match="batched_field"):
        solve_ensemble_fused(prob, y0=y0, params=p, batched_field=lambda t, y, p: y[:, :2])


# ----------------------------------------------------------------------------- cache blocking


def test_block_sizes():
    # 512 state elements per block, a power of two of members; small batches are not cut.
    assert _fused.fixed_block_size(100_000, 3) == 128
    assert _fused.fixed_block_size(100, 3) == 100
    assert _fused.fixed_block_size(100_000, 1) == 512
    assert _fused.fixed_block_size(100_000, 1000) == 100_000  # state too large to block
    assert _fused.adaptive_block_size(100_000, 3) == 256
    assert _fused.adaptive_block_size(50, 3) == 50


@pytest.mark.slow  # default-suite time; blocking: test_adaptive_blocking_gives_identical_steps
@pytest.mark.parametrize("batched", [False, True])
def test_fixed_step_blocking_does_not_change_results(batched):
    # 13 members in blocks of 4: the last block is padded with 3 copies of member 12.
    y0, p = lorenz_members(13)
    field = lorenz_hand if batched else lorenz
    kw = dict(t0=0.0, dt=1e-3, save_steps=(0, 100, 250), batched=batched)
    whole = _fused.fixed_step_solve(field, TSIT5, y0, p, block=0, **kw)
    assert whole.shape == (13, 3, 3)
    for block in (4, 8, 13, 64):
        blocked = _fused.fixed_step_solve(field, TSIT5, y0, p, block=block, **kw)
        # Same operations per member: equal up to rounding (250 Lorenz steps, 1e-13 relative).
        np.testing.assert_allclose(blocked, whole, rtol=1e-13, atol=1e-13)
    # Sharded over the 8 test devices with blocks of 4 (2 members per device, padded).
    run = jax.jit(lambda y, pp: _fused.fixed_step_solve(field, TSIT5, y, pp, block=4, **kw))
    sharded = sharded_call(run, y0, p)
    np.testing.assert_allclose(sharded, whole, rtol=1e-13, atol=1e-13)


@pytest.mark.slow  # default-suite time; fused gradients: test_gradient_fixed_step_analytic_and_vs_diffrax
def test_fixed_step_blocking_gradients():
    # Padding copies of the last member must not leak gradient into it: blocked (5 members,
    # blocks of 2) and unblocked gradients agree w.r.t. both y0 and params.
    y0, p = lorenz_members(5)

    def loss(block):
        def f(yy, pp):
            ys = _fused.fixed_step_solve(
                lorenz, TSIT5, yy, pp, t0=0.0, dt=1e-2, save_steps=(20, 50), block=block
            )
            return jnp.sum(ys**2)

        return f

    g_whole = jax.grad(loss(0), argnums=(0, 1))(y0, p)
    g_block = jax.grad(loss(2), argnums=(0, 1))(y0, p)
    for a, b in zip(g_block, g_whole, strict=False):
        np.testing.assert_allclose(a, b, rtol=1e-11)


def test_adaptive_blocking_gives_identical_steps():
    n = 13
    k = jnp.logspace(-1, 2.5, n)
    ts = np.array([0.25, 0.5, 1.0])
    cfg = _fused.ControllerConfig(1e-9, 1e-9)

    def run(block, **kw):
        return _fused.adaptive_solve(
            decay,
            TSIT5,
            jnp.ones((n, 1)),
            k,
            t0=0.0,
            t1=1.0,
            cfg=cfg,
            save_ts=ts,
            segment_steps=8,
            min_bucket=2,
            block=block,
            **kw,
        )

    whole = run(0, regroup=False)
    for block, kw in (
        (4, dict(regroup=False)),
        (4, dict(regroup=True, regroup_cost=0)),
        (3, dict(regroup=True, regroup_cost=0, shard=True)),
    ):
        sol = run(block, **kw)
        # Each member takes its own steps, whichever block it is in: identical step counts,
        # values equal to rounding (vector width differs with the batch shape).
        np.testing.assert_array_equal(sol.num_steps, whole.num_steps)
        np.testing.assert_array_equal(sol.num_rejected, whole.num_rejected)
        np.testing.assert_allclose(sol.ys, whole.ys, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(
        whole.ys[:, :, 0], np.exp(-np.outer(np.asarray(k), ts)), rtol=1e-7, atol=1e-8
    )


def test_saves_at_t0_and_repeated_times():
    prob = ODEProblem(decay, jnp.ones(1), jnp.array(1.0), 0.0, 1.0)
    k = jnp.array([1.0, 3.0])
    ts = jnp.array([0.0, 0.5, 0.5, 1.0])
    for kw in (dict(fixed_step=True, dt0=0.01), dict(rtol=1e-9, atol=1e-9)):
        sol = solve_ensemble_fused(prob, y0=jnp.array([[2.0], [3.0]]), params=k, saveat=ts, **kw)
        np.testing.assert_array_equal(sol.ys[:, 0, 0], [2.0, 3.0])
        np.testing.assert_array_equal(sol.ys[:, 1], sol.ys[:, 2])
        exact = np.array([[2.0], [3.0]]) * np.exp(-np.outer(np.asarray(k), np.asarray(ts)))
        np.testing.assert_allclose(sol.ys[..., 0], exact, rtol=1e-7)


# ----------------------------------------------------------------------------- bad input


def test_bad_inputs():
    prob = lorenz_problem()
    y0, p = lorenz_members(4)
    with pytest.raises(simkit.SimkitInputError, match="disagree on the number of members"):
        solve_ensemble_fused(prob, y0=y0, params=jnp.broadcast_to(LORENZ_P, (5, 3)))
    with pytest.raises(simkit.SimkitInputError, match="saveat\\[1\\] = 0.1234"):
        solve_ensemble_fused(
            prob, y0=y0, params=p, fixed_step=True, dt0=1e-2, saveat=jnp.array([0.1, 0.1234])
        )
    with pytest.raises(simkit.SimkitInputError, match="whole number of steps"):
        solve_ensemble_fused(prob, y0=y0, params=p, fixed_step=True, dt0=0.3)
    with pytest.raises(simkit.SimkitInputError, match="max_steps"):
        solve_ensemble_fused(prob, y0=y0, params=p, fixed_step=True, dt0=1e-3, max_steps=10)
    with pytest.raises(simkit.SimkitInputError, match="no embedded error estimate"):
        solve_ensemble_fused(prob, y0=y0, params=p, solver="rk4")
    with pytest.raises(simkit.SimkitInputError, match="supports 'tsit5'"):
        solve_ensemble_fused(prob, y0=y0, params=p, solver=diffrax.Kvaerno5())
    with pytest.raises(simkit.SimkitInputError, match="method must be"):
        solve_ensemble(prob, y0=y0, params=p, method="fast")
    with pytest.raises(simkit.SimkitInputError, match="method='fused' is not possible"):
        solve_ensemble(prob, y0=y0, params=p, solver=diffrax.Kvaerno5(), method="fused")
    with pytest.raises(simkit.SimkitInputError, match="solver names"):
        solve_ensemble(prob, y0=y0, params=p, solver="rk45")


def test_max_steps_reached_raises_with_stiff_hint():
    # y' = -1e6 y with an explicit method: stability limits dt to ~3e-6, so 200 steps fail.
    prob = ODEProblem(decay, jnp.ones(1), jnp.array(1.0), 0.0, 1.0)
    k = jnp.array([1.0, 1e6])
    with pytest.raises(RuntimeError, match="1 ensemble member.*stiff solver"):
        solve_ensemble(prob, params=k, max_steps=200, shard=False)
    sol = solve_ensemble_fused(prob, params=k, max_steps=200, throw=False)
    np.testing.assert_array_equal(sol.success, [True, False])
    assert int(sol.num_steps[1]) == 200
    assert not np.isfinite(float(sol.ys[1, 0, 0]))  # unreached save stays inf, as in diffrax


def test_controller_root_matches_float64_power_to_a_few_ulps():
    # The controller's x ** (1/5) (float32 root + two float64 Newton steps) against NumPy's
    # correctly rounded-to-~1-ulp pow, over the range where the step factor is not clipped
    # (inverse scaled errors ~5e-4 to ~2e5 for the defaults) and well beyond it.
    x = np.logspace(-30, 30, 100_001)
    r = np.asarray(_fused._power(jnp.asarray(x), 0.2))
    ref = x**0.2
    ulps = np.abs(r - ref) / np.spacing(x**0.2)
    assert np.max(ulps) <= 16  # measured 8 (near 1e-29)
    relevant = (x > 1e-4) & (x < 1e6)
    assert np.max(ulps[relevant]) <= 4  # measured 3
    # Ends: 0 and inf map to themselves (the factor is then clipped to factormin / factormax).
    ends = np.asarray(_fused._power(jnp.array([0.0, np.inf, 1.0]), 0.2))
    np.testing.assert_array_equal(ends, [0.0, np.inf, 1.0])
    # Other exponents (PID coefficients) and float32 take exp(c log x).
    np.testing.assert_allclose(np.asarray(_fused._power(jnp.asarray(x), 0.3)), x**0.3, rtol=1e-13)
    x32 = jnp.asarray(np.logspace(-5, 5, 101), jnp.float32)
    np.testing.assert_allclose(
        np.asarray(_fused._power(x32, 0.2)), np.asarray(x32) ** 0.2, rtol=1e-5
    )


def test_a_nan_step_is_rejected_and_shrunk_not_propagated():
    # y' = -p y, with a field that is NaN for y < 0 (unphysical; the true solution stays
    # positive). A first step of 5 puts stage states below 0, so the step's error estimate is
    # NaN: the controller must count that as an infinite error, reject the step, shrink it by
    # factormin and go on to the right answer at t1.
    def field(t, y, p):
        return jnp.where(y < 0, jnp.nan, -p * y)

    prob = ODEProblem(field, jnp.ones(1), jnp.array(1.0), 0.0, 1.0)
    k = jnp.array([1.0, 2.0])
    sol = solve_ensemble_fused(prob, params=k, rtol=1e-8, atol=1e-8, dt0=5.0)
    np.testing.assert_allclose(sol.ys[:, 0, 0], np.exp(-np.asarray(k)), rtol=1e-7)
    assert bool(sol.success.all())
    assert int(sol.num_rejected.min()) >= 1  # the NaN steps were rejected, not accepted
