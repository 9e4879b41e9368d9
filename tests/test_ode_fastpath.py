"""solve_stiff's repeat-call fast path (issue 13: host overhead within 1.2x of the bare jitted
call) must keep every per-call guarantee of the checked path: values are checked on every call,
mutable save times are re-checked, tolerances are not mixed up between cached configurations,
and a solve under the caller's jit still raises through eqx.error_if."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simkit import SimkitInputError
from simkit.ode import ODEProblem, Rodas5, solve_stiff


def decay(t, y, k):
    return -k * y


SOLVER = Rodas5()


def _problem(y0, k=2.0):
    return ODEProblem(decay, jnp.asarray(y0), jnp.asarray([k]), 0.0, 1.0)


def test_repeat_calls_check_values_every_time_and_keep_configurations_apart():
    prob = _problem([1.0, 0.5])
    first = solve_stiff(prob, solver=SOLVER, rtol=1e-6, atol=1e-9)
    again = solve_stiff(prob, solver=SOLVER, rtol=1e-6, atol=1e-9)  # the cached configuration
    np.testing.assert_array_equal(first.ys, again.ys)
    # exact: y(1) = y0 exp(-2); tolerance 1e-5 relative (rtol 1e-6, 5th-order method)
    np.testing.assert_allclose(again.ys[-1], np.array([1.0, 0.5]) * np.exp(-2.0), rtol=1e-5)
    # A new y0 with a NaN, same shapes: refused before solving, naming y0.
    with pytest.raises(SimkitInputError, match=r"y0.*NaN"):
        solve_stiff(_problem([np.nan, 0.5]), solver=SOLVER, rtol=1e-6, atol=1e-9)
    with pytest.raises(SimkitInputError, match=r"params.*NaN"):
        solve_stiff(_problem([1.0, 0.5], k=np.inf), solver=SOLVER, rtol=1e-6, atol=1e-9)
    # Another tolerance is another configuration: its steps differ from the first one's.
    loose = solve_stiff(prob, solver=SOLVER, rtol=1e-3, atol=1e-6)
    assert int(loose.stats["num_steps"]) < int(first.stats["num_steps"])
    # Bad scalar options are still refused on a configuration seen before.
    with pytest.raises(SimkitInputError, match="rtol"):
        solve_stiff(prob, solver=SOLVER, rtol=-1e-6, atol=1e-9)


def test_save_times_are_rechecked_when_mutable_and_cached_when_immutable():
    prob = _problem([1.0, 0.5])
    ts = np.linspace(0.0, 1.0, 5)
    sol = solve_stiff(prob, solver=SOLVER, rtol=1e-6, atol=1e-9, saveat=ts)
    np.testing.assert_allclose(sol.ts, ts)
    ts[2] = 5.0  # mutated in place: the next call must see it
    with pytest.raises(SimkitInputError, match=r"inside \[t0, t1\]"):
        solve_stiff(prob, solver=SOLVER, rtol=1e-6, atol=1e-9, saveat=ts)
    jts = jnp.linspace(0.0, 1.0, 3)
    for _ in range(2):
        sol = solve_stiff(prob, solver=SOLVER, rtol=1e-6, atol=1e-9, saveat=jts)
        np.testing.assert_allclose(sol.ts, np.asarray(jts))
    with pytest.raises(SimkitInputError, match="non-decreasing"):
        solve_stiff(prob, solver=SOLVER, rtol=1e-6, atol=1e-9, saveat=jts[::-1])


def test_fast_path_under_the_callers_jit_raises_through_error_if():
    prob = _problem([1.0, 0.5])
    solve_stiff(prob, solver=SOLVER, rtol=1e-6, atol=1e-9, max_steps=3, throw=False)

    @jax.jit
    def final(scale):
        sol = solve_stiff(prob, solver=SOLVER, rtol=1e-6, atol=1e-9, max_steps=3)
        return scale * sol.ys[-1]

    with pytest.raises(Exception, match="max_steps=3"):
        jax.block_until_ready(final(1.0))
