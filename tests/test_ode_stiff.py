"""Stiff ODE solves: the Rodas5 Rosenbrock solver, `solve_stiff` and `solve_stiff_ensemble`.

References used here are computed independently in the test (SciPy's Radau IIA at rtol 1e-13,
with the analytic Jacobian) or are closed-form solutions; every tolerance is stated next to its
assertion.
"""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import simkit
from simkit.ode import ODEProblem, Rodas5, Rodas5P, solve, solve_stiff, solve_stiff_ensemble

# Robertson's chemical kinetics (H. H. Robertson, "The solution of a set of reaction rate
# equations", in Numerical Analysis: an Introduction, Academic Press 1966, pp. 178-182), in the
# form of Hairer & Wanner, Solving ODEs II, Sec. IV.1, eq. (1.4): k = (0.04, 3e7, 1e4).
K_ROBERTSON = (0.04, 3.0e7, 1.0e4)
RTOL, ATOL = 1e-8, 1e-12


def robertson(t, y, k):
    r1 = k[0] * y[0]
    r2 = k[1] * y[1] ** 2
    r3 = k[2] * y[1] * y[2]
    return jnp.stack([-r1 + r3, r1 - r2 - r3, r2])


def _robertson_np(k):
    def f(t, y):
        return [
            -k[0] * y[0] + k[2] * y[1] * y[2],
            k[0] * y[0] - k[1] * y[1] ** 2 - k[2] * y[1] * y[2],
            k[1] * y[1] ** 2,
        ]

    def jac(t, y):
        return [
            [-k[0], k[2] * y[2], k[2] * y[1]],
            [k[0], -2 * k[1] * y[1] - k[2] * y[2], -k[2] * y[1]],
            [0.0, 2 * k[1] * y[1], 0.0],
        ]

    return f, jac


def radau_reference(k, ts, rtol=1e-13, atol=1e-16):
    """Independent reference: SciPy Radau IIA (order 5) at rtol 1e-13, analytic Jacobian."""
    f, jac = _robertson_np(k)
    ref = solve_ivp(
        f,
        (0.0, float(ts[-1])),
        [1.0, 0.0, 0.0],
        method="Radau",
        rtol=rtol,
        atol=atol,
        jac=jac,
        t_eval=ts,
    )
    assert ref.success
    return ref.y.T


def robertson_problem(t1=4e5, dtype=jnp.float64, k=K_ROBERTSON):
    return ODEProblem(robertson, jnp.array([1.0, 0.0, 0.0], dtype), jnp.array(k, dtype), 0.0, t1)


# Hairer & Wanner's output times for Robertson are 0.4 * 10^j; we check three decades apart.
TS = np.array([0.4, 40.0, 4e5])


@pytest.fixture(scope="module")
def robertson_ref():
    return radau_reference(K_ROBERTSON, TS)


def test_robertson_values_against_radau(robertson_ref):
    sol = solve_stiff(robertson_problem(), rtol=RTOL, atol=ATOL, saveat=TS)
    ys = np.asarray(sol.ys)
    # Tolerance: 5x the local error target (atol + rtol*|y|) per component; the global error of
    # a tolerance-controlled solve is of the order of the local target (measured: <= 1.1x).
    bound = 5 * (ATOL + RTOL * np.abs(robertson_ref))
    np.testing.assert_array_less(np.abs(ys - robertson_ref), bound)


def test_robertson_conservation_at_every_save_time():
    ts = np.concatenate([[0.0], np.logspace(-6, 5, 120), [4e5]])
    sol = solve_stiff(robertson_problem(), rtol=RTOL, atol=ATOL, saveat=ts)
    total = np.asarray(sol.ys).sum(axis=1)
    # Rosenbrock stages (and the dense output built from them) lie in the kernel of every linear
    # invariant of f, so y1 + y2 + y3 = 1 holds up to round-off: 1e-12 (~5000 eps) is generous.
    np.testing.assert_array_less(np.abs(total - 1.0), 1e-12)


def test_robertson_float32_at_loose_tolerance(robertson_ref):
    prob = robertson_problem(dtype=jnp.float32)
    sol = solve_stiff(prob, rtol=1e-4, atol=1e-8, saveat=TS.astype(np.float32))
    ys = np.asarray(sol.ys)
    assert ys.dtype == np.float32  # never silently upcast
    # rtol 1e-4 -> relative error within 10x rtol; conservation limited by float32 round-off
    # accumulated over ~60 steps: 1e-5 (~80 eps32).
    np.testing.assert_array_less(np.abs(ys - robertson_ref) / np.abs(robertson_ref), 1e-3)
    np.testing.assert_array_less(np.abs(ys.sum(axis=1) - 1.0), 1e-5)


def test_float32_with_tight_rtol_is_refused():
    with pytest.raises(simkit.SimkitInputError, match=r"rtol=1e-08 .*float32.*jax_enable_x64"):
        solve_stiff(robertson_problem(dtype=jnp.float32), rtol=1e-8, atol=1e-12)


def _linear_stiff(lam=1000.0):
    """y' = -lam (y - cos t), y(0) = 0: closed form y = A cos t + B sin t - A exp(-lam t) with
    A = lam^2 / (1 + lam^2), B = lam / (1 + lam^2) (solve the linear ODE by undetermined
    coefficients)."""
    a, b = lam**2 / (1 + lam**2), lam / (1 + lam**2)

    def exact(t):
        return a * np.cos(t) + b * np.sin(t) - a * np.exp(-lam * t)

    prob = ODEProblem(
        lambda t, y, p: -p * (y - jnp.cos(t)), jnp.zeros(1), jnp.asarray(lam), 0.0, 10.0
    )
    return prob, exact


@pytest.mark.parametrize("solver", [Rodas5(), Rodas5P()])
def test_linear_stiff_problem_against_closed_form(solver):
    prob, exact = _linear_stiff()
    ts = np.linspace(0.0, 10.0, 41)
    sol = solve_stiff(prob, solver=solver, rtol=RTOL, atol=1e-10, saveat=ts)
    err = np.abs(np.asarray(sol.ys)[:, 0] - exact(ts))
    # 5x the local target (atol + rtol*|y|), as for Robertson; |y| <= 1.
    np.testing.assert_array_less(err, 5 * (1e-10 + RTOL * np.abs(exact(ts))))


def test_rodas5p_avoids_order_reduction_on_forced_stiff_problem():
    # y' = -1000 (y - cos t) is of Prothero-Robinson type: Rodas5 loses order there (Steinebach
    # 2023, see simkit/ode/_rosenbrock.py), Rodas5P keeps it. Measured steps at rtol 1e-8:
    # Rodas5 ~2200, Rodas5P ~200 (Radau IIA in SciPy: ~280).
    prob, _ = _linear_stiff()
    n5 = int(solve_stiff(prob, solver=Rodas5(), rtol=RTOL, atol=1e-10).stats["num_steps"])
    n5p = int(solve_stiff(prob, solver=Rodas5P(), rtol=RTOL, atol=1e-10).stats["num_steps"])
    assert n5p < 400
    assert n5 > 4 * n5p


def _fixed_step_errors(solver, n_steps_list):
    """Errors at t1 and at interior (interpolated) times of fixed-step Rodas5 on a non-stiff
    linear problem with closed form y = (cos t + exp(-3 t), exp(-t))."""

    def f(t, y, args):
        return jnp.stack([-3.0 * (y[0] - jnp.cos(t)) - jnp.sin(t), -y[1]])

    def exact(t):
        return np.stack([np.cos(t) + np.exp(-3.0 * t), np.exp(-t)], axis=-1)

    t_mid = np.array([0.33, 1.07, 1.71])  # never on a step boundary for the step counts used
    end, mid = [], []
    for n in n_steps_list:
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(f),
            solver,
            0.0,
            2.0,
            jnp.asarray(2.0 / n),
            jnp.array([2.0, 1.0]),
            saveat=diffrax.SaveAt(ts=np.append(t_mid, 2.0)),
            max_steps=1000,
        )
        err = np.abs(np.asarray(sol.ys) - exact(np.append(t_mid, 2.0)))
        end.append(err[-1].max())
        mid.append(err[:-1].max())
    return np.array(end), np.array(mid)


@pytest.mark.parametrize("solver", [Rodas5(), Rodas5P()])
def test_convergence_orders(solver):
    end, mid = _fixed_step_errors(solver, [10, 20, 40, 80])
    # Both methods are order 5: halving h divides the global error by ~2^5; we require an
    # observed order >= 4.6. The dense output is 4th order: observed order >= 3.6.
    order_end = np.log2(end[:-1] / end[1:])
    order_mid = np.log2(mid[:-1] / mid[1:])
    assert np.all(order_end > 4.6), order_end
    assert np.all(order_mid > 3.6), order_mid


def test_unrolled_small_lu_solves_with_pivoting():
    from simkit.ode._rosenbrock import _factor

    rng = np.random.default_rng(0)
    mats = [rng.normal(size=(n, n)) for n in (1, 2, 3, 5, 8)]
    mats.append(np.array([[0.0, 2.0, 1.0], [1.0, 1e-12, 3.0], [4.0, 1.0, 0.0]]))  # zero pivot
    solve = jax.jit(lambda m, b: _factor(m)(b))
    for m in mats:
        b = rng.normal(size=m.shape[0])
        x = np.asarray(solve(jnp.asarray(m), jnp.asarray(b)))
        # Backward-stable elimination: residual at round-off level relative to |m| |x|.
        assert np.abs(m @ x - b).max() <= 1e-13 * (1 + np.abs(m).max() * np.abs(x).max())


def test_large_system_uses_lapack_path_and_matches_matrix_exponential():
    # dim 12 > the unrolled-LU limit: y' = A y with eigenvalues from -1 to -1e4 (stiff), exact
    # solution y(t) = expm(A t) y0 (scipy.linalg.expm, Al-Mohy & Higham 2009).
    from scipy.linalg import expm

    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    a = q @ np.diag(-np.geomspace(1.0, 1e4, 12)) @ q.T
    y0 = rng.normal(size=12)
    prob = ODEProblem(lambda t, y, m: m @ y, jnp.asarray(y0), jnp.asarray(a), 0.0, 2.0)
    sol = solve_stiff(prob, rtol=RTOL, atol=1e-10, saveat=np.array([0.5, 2.0]))
    exact = np.stack([expm(a * t) @ y0 for t in (0.5, 2.0)])
    # 5x the local target, as above (|y| <= ~3 here).
    np.testing.assert_array_less(
        np.abs(np.asarray(sol.ys) - exact), 5 * (1e-10 + RTOL * np.abs(exact))
    )


def test_dense_output_equals_solution_at_step_ends():
    # Saving at many times must not change the solution at t1 (dense output, not clipping).
    prob = robertson_problem(t1=40.0)
    sparse = solve_stiff(prob, rtol=RTOL, atol=ATOL)
    dense = solve_stiff(prob, rtol=RTOL, atol=ATOL, saveat=np.linspace(0.0, 40.0, 500))
    assert int(dense.stats["num_steps"]) == int(sparse.stats["num_steps"])
    np.testing.assert_allclose(dense.ys[-1], sparse.ys[-1], rtol=1e-14, atol=1e-20)


def test_rodas5_works_through_simkit_solve():
    prob = robertson_problem(t1=40.0)
    via_solve = solve(prob, solver=Rodas5(), rtol=RTOL, atol=ATOL)
    via_stiff = solve_stiff(prob, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(via_solve.ys, via_stiff.ys, rtol=1e-12, atol=1e-20)


@pytest.mark.parametrize(
    "shard, solver", [pytest.param(True, Rodas5(), marks=pytest.mark.slow), (False, Rodas5P())]
)  # sharding: test_ode_fused
def test_ensemble_over_rate_constants_equals_single_solves(shard, solver):
    k1 = 0.04 * np.array([0.1, 0.5, 1.0, 3.0, 10.0])
    ks = np.stack([k1, np.full(5, 3e7), np.full(5, 1e4)], axis=1)
    prob = robertson_problem(t1=4e3)
    ts = np.array([1.0, 100.0, 4e3])
    ts_out, ys = solve_stiff_ensemble(
        prob, params=ks, solver=solver, rtol=RTOL, atol=ATOL, saveat=ts, shard=shard
    )
    assert ys.shape == (5, 3, 3)
    np.testing.assert_array_equal(ts_out, ts)
    for i in range(5):
        one = solve_stiff(
            robertson_problem(t1=4e3, k=tuple(ks[i])),
            solver=solver,
            rtol=RTOL,
            atol=ATOL,
            saveat=ts,
        )
        # Same arithmetic per member; batching may reorder floating-point sums (the error
        # norm), so allow round-off-level differences only.
        np.testing.assert_allclose(ys[i], one.ys, rtol=1e-10, atol=1e-18)
    # A larger k1 converts species 1 faster: y1(t1) decreases along the sweep.
    assert np.all(np.diff(np.asarray(ys[:, -1, 0])) < 0)


def test_ensemble_over_initial_states():
    y0s = np.array([[1.0, 0.0, 0.0], [0.5, 0.0, 0.5]])
    _, ys = solve_stiff_ensemble(robertson_problem(t1=10.0), y0=y0s, rtol=RTOL, atol=ATOL)
    # Each member conserves its own total (1.0 for both here).
    np.testing.assert_allclose(np.asarray(ys[:, -1]).sum(axis=1), [1.0, 1.0], atol=1e-12)
    assert not np.allclose(ys[0], ys[1])


@pytest.mark.slow  # default-suite time; stiff gradients: test_ode_regressions / test_ode_corners
def test_gradient_with_respect_to_rate_constant():
    # d y1(t=10) / d k1 by reverse mode through the Rodas5 solve (diffrax's default
    # RecursiveCheckpointAdjoint), against the forward sensitivity s = dy/dk1 from
    # s' = J s + df/dk1 (df/dk1 = (-y1, y1, 0)) integrated with SciPy Radau at rtol 1e-12.
    k = K_ROBERTSON

    def y1_final(k1):
        kk = jnp.stack([k1, jnp.asarray(k[1]), jnp.asarray(k[2])])
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(robertson),
            Rodas5(),
            0.0,
            10.0,
            None,
            jnp.array([1.0, 0.0, 0.0]),
            args=kk,
            stepsize_controller=diffrax.PIDController(rtol=RTOL, atol=ATOL),
            max_steps=500,
        )
        return sol.ys[-1, 0]

    g = float(jax.grad(y1_final)(jnp.asarray(k[0])))
    f, jac = _robertson_np(k)

    def augmented(t, z):
        y, s = z[:3], z[3:]
        return np.concatenate([f(t, y), np.asarray(jac(t, y)) @ s + [-y[0], y[0], 0.0]])

    ref = solve_ivp(
        augmented, (0.0, 10.0), [1.0, 0, 0, 0, 0, 0], method="Radau", rtol=1e-12, atol=1e-16
    )
    assert ref.success
    # The gradient of the discrete solution approximates the exact sensitivity to about the
    # solve's tolerance (rtol 1e-8); measured agreement 3e-9 relative, we require 1e-6.
    np.testing.assert_allclose(g, ref.y[3, -1], rtol=1e-6)


# Published reference solution of ROBER at t = 1e11: F. Mazzia and C. Magherini, "Test Set for
# Initial Value Problem Solvers", release 2.4, University of Bari (2008), problem ROBER.
ROBER_1E11 = np.array([0.2083340149701255e-07, 0.8333360770334713e-13, 0.9999999791665050])


def test_robertson_at_1e11_against_published_reference():
    sol = solve_stiff(robertson_problem(t1=1e11), rtol=RTOL, atol=1e-14)
    y = np.asarray(sol.ys[-1])
    # 5x the local error target per component, as above.
    np.testing.assert_array_less(np.abs(y - ROBER_1E11), 5 * (1e-14 + RTOL * ROBER_1E11))
    assert abs(y.sum() - 1.0) < 1e-12


# --- failures and bad input -------------------------------------------------------------------


def test_explicit_solver_on_stiff_problem_says_use_a_stiff_solver():
    with pytest.raises(RuntimeError, match=r"max_steps=200.*Tsit5 is explicit.*stiff solver"):
        solve(
            robertson_problem(t1=1e3), solver=diffrax.Tsit5(), rtol=1e-6, atol=1e-8, max_steps=200
        )


def test_solve_stiff_max_steps_reached():
    with pytest.raises(
        RuntimeError,
        match=r"solve_stiff: Rodas5 reached max_steps=10 .*raise "
        r"max_steps",
    ):
        solve_stiff(robertson_problem(), rtol=RTOL, atol=ATOL, max_steps=10)
    sol = solve_stiff(robertson_problem(), rtol=RTOL, atol=ATOL, max_steps=10, throw=False)
    assert sol.result == diffrax.RESULTS.max_steps_reached


def test_ensemble_failure_names_the_members():
    ks = np.array([[0.04, 3e7, 1e4], [0.04, 3e7, 1e4]])
    with pytest.raises(RuntimeError, match=r"in 2 of 2 members \(first: \[0, 1\]\)"):
        solve_stiff_ensemble(robertson_problem(), params=ks, rtol=RTOL, atol=ATOL, max_steps=10)


def test_t1_not_after_t0_is_refused():
    with pytest.raises(simkit.SimkitInputError, match="t1 must be greater than t0"):
        ODEProblem(robertson, jnp.array([1.0, 0.0, 0.0]), jnp.array(K_ROBERTSON), 1.0, 1.0)


def test_nan_in_params_is_refused():
    prob = ODEProblem(
        robertson, jnp.array([1.0, 0.0, 0.0]), jnp.array([0.04, jnp.nan, 1e4]), 0.0, 1.0
    )
    with pytest.raises(simkit.SimkitInputError, match=r"params.*1 NaN/inf"):
        solve_stiff(prob)


def test_nan_in_ensemble_params_is_refused():
    ks = np.array([[0.04, 3e7, 1e4], [np.nan, 3e7, 1e4]])
    with pytest.raises(simkit.SimkitInputError, match="NaN/inf"):
        solve_stiff_ensemble(robertson_problem(), params=ks)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"rtol": -1e-8}, r"rtol must be > 0, got -1e-08"),
        ({"rtol": float("nan")}, r"rtol must be finite"),
        ({"atol": 0.0}, r"atol must be finite and > 0"),
        ({"atol": np.ones(2)}, r"atol must be a number or an array of shape \(3,\)"),
        ({"atol": "tight"}, r"atol must be a number or an array of numbers, got 'tight'"),
        ({"max_steps": 0}, r"max_steps must be > 0"),
        ({"max_steps": 10.5}, r"max_steps must be a positive integer"),
        ({"dt0": -1.0}, r"dt0 must be > 0"),
        ({"saveat": np.array([0.0, 5e5])}, r"saveat times must lie inside \[t0, t1\]"),
        ({"saveat": np.array([2.0, 1.0])}, r"non-decreasing"),
        ({"saveat": np.zeros((2, 2))}, r"non-empty 1-D array"),
        ({"solver": diffrax.Kvaerno5()}, r"Rodas5\(\) or Rodas5P\(\).*got Kvaerno5"),
    ],
)
def test_bad_solver_options_are_refused(kwargs, pattern):
    with pytest.raises(simkit.SimkitInputError, match=pattern):
        solve_stiff(robertson_problem(), **kwargs)


def test_ensemble_params_without_member_axis_are_refused():
    with pytest.raises(simkit.SimkitInputError, match="leading ensemble axis"):
        solve_stiff_ensemble(robertson_problem(), params=np.array(K_ROBERTSON))


def test_per_component_atol_is_accepted(robertson_ref):
    atol = np.array([1e-10, 1e-14, 1e-10])  # y2 is ~1e-5 smaller than y1, y3
    sol = solve_stiff(robertson_problem(), rtol=RTOL, atol=atol, saveat=TS)
    bound = 5 * (atol + RTOL * np.abs(robertson_ref))
    np.testing.assert_array_less(np.abs(np.asarray(sol.ys) - robertson_ref), bound)


def test_rodas5_matrix_state_equals_the_flattened_solve():
    # Rodas works on the raveled state (issue 13, defect 3): a (2, 2) state is 4 ODEs.
    a = jnp.array([[0.0, 1.0], [-1.0, 0.0]])
    y0 = jnp.array([[1.0, 0.0], [0.0, 1.0]])

    def run(y):
        if y.ndim == 2:
            vf = lambda t, y, _: a @ y  # noqa: E731
        else:
            vf = lambda t, y, _: (a @ y.reshape(2, 2)).ravel()  # noqa: E731
        return diffrax.diffeqsolve(diffrax.ODETerm(vf), Rodas5(), 0.0, 1.0, 0.1, y).ys[0]

    np.testing.assert_allclose(np.asarray(run(y0)).ravel(), np.asarray(run(y0.ravel())), rtol=1e-12)


# --- long-time validation -----------------------------------------------------------------------


@pytest.mark.slow
def test_robertson_long_time_to_4e10():
    ts = 0.4 * 10.0 ** np.arange(0, 11)  # 0.4 ... 4e10, Hairer & Wanner's output times
    ref = radau_reference(K_ROBERTSON, ts)
    sol = solve_stiff(robertson_problem(t1=4e10), rtol=RTOL, atol=1e-14, saveat=ts)
    ys = np.asarray(sol.ys)
    np.testing.assert_array_less(np.abs(ys - ref), 5 * (1e-14 + RTOL * np.abs(ref)))
    np.testing.assert_array_less(np.abs(ys.sum(axis=1) - 1.0), 1e-12)


@pytest.mark.slow
def test_van_der_pol_mu_1000_against_radau():
    mu = 1000.0

    def vdp_np(t, y):
        return [y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]]

    def vdp_jac(t, y):
        return [[0.0, 1.0], [-2 * mu * y[0] * y[1] - 1.0, mu * (1 - y[0] ** 2)]]

    ts = np.linspace(0.0, 3000.0, 31)
    ref = solve_ivp(
        vdp_np,
        (0.0, 3000.0),
        [2.0, 0.0],
        method="Radau",
        rtol=1e-12,
        atol=1e-12,
        jac=vdp_jac,
        t_eval=ts,
    )
    assert ref.success
    prob = ODEProblem(
        lambda t, y, m: jnp.stack([y[1], m * (1 - y[0] ** 2) * y[1] - y[0]]),
        jnp.array([2.0, 0.0]),
        jnp.asarray(mu),
        0.0,
        3000.0,
    )
    sol = solve_stiff(prob, rtol=1e-8, atol=1e-10, saveat=ts)
    # The solution has near-discontinuous relaxation jumps; compare y1 (order-1 amplitude) at a
    # tolerance 1000x the local target, since errors in the jump times amplify at the jumps.
    np.testing.assert_allclose(np.asarray(sol.ys)[:, 0], ref.y[0], atol=1e-5)


# --- the problem script -------------------------------------------------------------------------


def _load_robertson_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "problems" / "robertson.py"
    spec = importlib.util.spec_from_file_location("robertson_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_problem_script_writes_a_conserving_sweep(tmp_h5, capsys):
    import h5py

    script = _load_robertson_script()
    argv = [
        "--members",
        "6",
        "--chunk",
        "4",
        "--t1",
        "1e3",
        "--n-save",
        "8",
        "--out",
        str(tmp_h5),
        "--no-progress",
    ]
    assert script.main(argv) == 0
    with h5py.File(tmp_h5, "r") as f:
        y = f["y"][:]
        assert y.shape == (6, 9, 3)  # members, save times (t = 0 plus n-save), species
        assert f["y"].attrs["units"] == "1"
        np.testing.assert_array_less(np.abs(f["conservation_error"][:]), 1e-12)
        # Members are ordered by increasing k1: less y1 left at t1.
        assert np.all(np.diff(y[:, -1, 0]) < 0)
    assert "conservation" in capsys.readouterr().out
    with pytest.raises(simkit.SimkitInputError, match="already exists.*--overwrite"):
        script.main(argv)


def test_problem_script_refuses_bad_sweep(tmp_h5):
    script = _load_robertson_script()
    with pytest.raises(simkit.SimkitInputError, match=r"--k1-max \(0.5\) must be >= --k1-min"):
        script.main(["--k1-min", "2", "--k1-max", "0.5", "--out", str(tmp_h5)])
    with pytest.raises(simkit.SimkitInputError, match="--members must be > 0"):
        script.main(["--members", "0", "--out", str(tmp_h5)])
