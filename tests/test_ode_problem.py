"""ODE problem definition and the plain diffrax path: closed forms and input checks."""

import diffrax
import jax.numpy as jnp
import numpy as np
import pytest

from simkit import SimkitInputError
from simkit.ode import ODEProblem, solve


def decay(t, y, p):
    return -p["k"] * y


def oscillator(t, y, p):
    return jnp.stack([y[1], -(p["omega"] ** 2) * y[0]])


def test_exponential_decay_closed_form():
    # y(t) = y0 exp(-k t); adaptive Tsit5 at rtol = atol = 1e-10 should agree to ~1e-9.
    prob = ODEProblem(decay, jnp.asarray([1.0, 2.0]), {"k": jnp.asarray(1.5)}, 0.0, 2.0)
    ts = jnp.linspace(0.0, 2.0, 9)
    sol = solve(prob, rtol=1e-10, atol=1e-10, saveat=ts)
    expected = np.asarray([1.0, 2.0])[None, :] * np.exp(-1.5 * np.asarray(ts))[:, None]
    np.testing.assert_allclose(sol.ys, expected, rtol=1e-9, atol=1e-12)


def test_harmonic_oscillator_closed_form_and_stiff_default():
    # x(t) = cos(omega t), v(t) = -omega sin(omega t) for x0 = 1, v0 = 0.
    prob = ODEProblem(oscillator, jnp.asarray([1.0, 0.0]), {"omega": jnp.asarray(3.0)}, 0.0, 5.0)
    ts = jnp.linspace(0.0, 5.0, 11)
    for kw in ({}, {"stiff": True}):
        sol = solve(prob, rtol=1e-10, atol=1e-10, saveat=ts, **kw)
        np.testing.assert_allclose(sol.ys[:, 0], np.cos(3.0 * ts), atol=1e-8)
        np.testing.assert_allclose(sol.ys[:, 1], -3.0 * np.sin(3.0 * ts), atol=3e-8)


def test_fixed_step_and_dense_output():
    prob = ODEProblem(decay, jnp.asarray([1.0]), {"k": jnp.asarray(1.0)}, 0.0, 1.0)
    sol = solve(prob, dt0=1e-2, fixed_step=True, dense=True)
    assert float(sol.stats["num_steps"]) == 100
    np.testing.assert_allclose(sol.evaluate(0.5), [np.exp(-0.5)], rtol=1e-8)


def test_event_stops_the_solve():
    # Ball thrown up from height h = 1 at v0 = 10 under g = 9.81 lands (y = 0) at
    # t = (v0 + sqrt(v0^2 + 2 g h)) / g.
    import optimistix as optx

    def ball(t, y, p):
        return jnp.stack([y[1], -p["g"]])

    prob = ODEProblem(ball, jnp.asarray([1.0, 10.0]), {"g": jnp.asarray(9.81)}, 0.0, 10.0)
    event = diffrax.Event(lambda t, y, args, **kw: y[0], root_finder=optx.Newton(1e-12, 1e-12))
    sol = solve(prob, event=event, rtol=1e-10, atol=1e-10)
    expected = (10.0 + np.sqrt(100.0 + 2 * 9.81)) / 9.81
    np.testing.assert_allclose(sol.ts[-1], expected, rtol=1e-9)


@pytest.mark.parametrize(
    "t0, t1", [(1.0, 1.0), (2.0, 1.0), (0.0, float("nan")), (0.0, float("inf"))]
)
def test_time_span_must_be_increasing_and_finite(t0, t1):
    with pytest.raises(SimkitInputError, match="t1 must be greater than t0|must be finite"):
        ODEProblem(decay, jnp.ones(1), {"k": jnp.asarray(1.0)}, t0, t1)


def test_problem_input_errors():
    good = {"k": jnp.asarray(1.0)}
    with pytest.raises(SimkitInputError, match=r"y0 must have shape \(dim,\)"):
        solve(ODEProblem(decay, jnp.ones((2, 2)), good, 0.0, 1.0))
    with pytest.raises(SimkitInputError, match=r"y0.*NaN"):
        solve(ODEProblem(decay, jnp.asarray([1.0, jnp.nan]), good, 0.0, 1.0))
    with pytest.raises(SimkitInputError, match=r"params\['k'\].*NaN"):
        solve(ODEProblem(decay, jnp.ones(2), {"k": jnp.asarray(jnp.inf)}, 0.0, 1.0))
    with pytest.raises(SimkitInputError, match="vector_field returned shape"):
        solve(ODEProblem(lambda t, y, p: jnp.sum(y), jnp.ones(2), good, 0.0, 1.0))
    with pytest.raises(SimkitInputError, match="failed to evaluate"):
        solve(ODEProblem(lambda t, y, p: y * p["missing"], jnp.ones(2), good, 0.0, 1.0))
    with pytest.raises(SimkitInputError, match="dt0 must be > 0"):
        solve(ODEProblem(decay, jnp.ones(1), good, 0.0, 1.0), dt0=-0.1)
    with pytest.raises(SimkitInputError, match="fixed_step=True needs dt0"):
        solve(ODEProblem(decay, jnp.ones(1), good, 0.0, 1.0), fixed_step=True)
    with pytest.raises(SimkitInputError, match=r"saveat times must lie inside \[t0, t1\]"):
        solve(ODEProblem(decay, jnp.ones(1), good, 0.0, 1.0), saveat=jnp.asarray([0.5, 1.5]))
    with pytest.raises(SimkitInputError, match="non-decreasing"):
        solve(ODEProblem(decay, jnp.ones(1), good, 0.0, 1.0), saveat=jnp.asarray([0.5, 0.2]))


def test_explicit_solver_on_stiff_problem_suggests_stiff_solver():
    # y' = -1e6 (y - cos t): explicit Tsit5 needs ~1e6 steps; with max_steps=2000 it must fail
    # with a message that names max_steps and recommends a stiff solver.
    prob = ODEProblem(
        lambda t, y, p: -p["lam"] * (y - jnp.cos(t)),
        jnp.zeros(1),
        {"lam": jnp.asarray(1e6)},
        0.0,
        10.0,
    )
    with pytest.raises(RuntimeError, match="max_steps=2000.*stiff solver"):
        solve(prob, solver=diffrax.Tsit5(), max_steps=2000)
    sol = solve(prob, stiff=True, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(sol.ys[-1], [np.cos(10.0)], atol=1e-5)
