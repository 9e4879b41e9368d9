"""The repeat-call fast paths of solve_stiff, solve and solve_ensemble (issue 13: host overhead
within 1.2x of the bare jitted call) must keep every per-call guarantee of the checked path:
values are checked on every call, mutable save times are re-checked, tolerances are not mixed up
between cached configurations, results equal the checked path's, a solve under the caller's jit
still raises through eqx.error_if, and the caches neither leak tracers nor keep arrays alive."""

from __future__ import annotations

import gc
import weakref

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simkit import SimkitInputError
from simkit.ode import ODEProblem, Rodas5, solve, solve_ensemble, solve_stiff


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
    for _ in range(2):  # the second call is the remembered last call
        sol = solve_stiff(prob, solver=SOLVER, rtol=1e-6, atol=1e-9, saveat=ts)
        np.testing.assert_allclose(sol.ts, ts)
    ts[2] = 0.6  # mutated in place to other valid times: solved at those
    sol = solve_stiff(prob, solver=SOLVER, rtol=1e-6, atol=1e-9, saveat=ts)
    np.testing.assert_allclose(sol.ts, ts)
    np.testing.assert_allclose(sol.ys[2], np.array([1.0, 0.5]) * np.exp(-1.2), rtol=1e-5)
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


def test_first_call_of_a_configuration_inside_the_callers_jit_leaks_no_tracer():
    # The fast path caches device arrays (tolerances, save times) per configuration; built
    # inside a trace they must still be concrete, or the next plain call fails with a leaked
    # tracer. rtol 1e-7 and these save times are used by no other test here.
    prob = _problem([1.0, 0.5])
    ts = jnp.linspace(0.0, 1.0, 7)

    @jax.jit
    def final(scale):
        return scale * solve_stiff(prob, solver=SOLVER, rtol=1e-7, atol=1e-9, saveat=ts).ys[-1]

    inside = final(1.0)
    outside = solve_stiff(prob, solver=SOLVER, rtol=1e-7, atol=1e-9, saveat=ts).ys[-1]
    np.testing.assert_allclose(outside, inside, rtol=1e-12)
    sol = solve(prob, rtol=1e-7, atol=1e-9, saveat=ts)  # the same for solve
    np.testing.assert_allclose(
        sol.ys[-1],
        jax.jit(lambda: solve(prob, rtol=1e-7, atol=1e-9, saveat=ts).ys[-1])(),
        rtol=1e-12,
    )


def test_cached_save_times_do_not_keep_the_callers_array_alive():
    prob = _problem([1.0, 0.5])
    ts = jnp.linspace(0.0, 1.0, 4)
    solve_stiff(prob, solver=SOLVER, rtol=1e-6, atol=1e-9, saveat=ts)
    solve(prob, rtol=1e-6, atol=1e-9, saveat=ts)
    _forget_last_calls(prob)
    ref = weakref.ref(ts)
    del ts
    gc.collect()
    assert ref() is None


def _forget_last_calls(prob):
    """A call with other inputs replaces each entry point's remembered last call."""
    other = _problem([0.25, 0.5])
    solve_stiff(other, solver=SOLVER, rtol=1e-6, atol=1e-9)
    solve(other, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("stiff", [False, True])
def test_solve_fast_path_keeps_every_per_call_check(stiff):
    prob = _problem([1.0, 0.5])
    kw = {"stiff": stiff, "rtol": 1e-6, "atol": 1e-9}
    first = solve(prob, **kw)
    again = solve(prob, **kw)
    # np.float64 tolerances take the checked path: the same compiled solve, the same numbers.
    checked = solve(prob, stiff=stiff, rtol=np.float64(1e-6), atol=np.float64(1e-9))
    np.testing.assert_array_equal(again.ys, first.ys)
    np.testing.assert_array_equal(again.ys, checked.ys)
    np.testing.assert_allclose(again.ys[-1], np.array([1.0, 0.5]) * np.exp(-2.0), rtol=1e-5)
    with pytest.raises(SimkitInputError, match=r"y0.*NaN"):
        solve(_problem([np.nan, 0.5]), **kw)
    with pytest.raises(SimkitInputError, match=r"params.*NaN"):
        solve(_problem([1.0, 0.5], k=np.inf), **kw)
    loose = solve(prob, stiff=stiff, rtol=1e-3, atol=1e-6)
    assert int(loose.stats["num_steps"]) < int(first.stats["num_steps"])
    with pytest.raises(SimkitInputError, match="rtol"):
        solve(prob, stiff=stiff, rtol=-1e-6, atol=1e-9)
    ts = np.linspace(0.0, 1.0, 5)
    np.testing.assert_allclose(solve(prob, saveat=ts, **kw).ts, ts)
    np.testing.assert_allclose(solve(prob, saveat=ts, **kw).ts, ts)  # remembered
    ts[2] = 0.6  # mutated in place to other valid times: solved at those
    sol = solve(prob, saveat=ts, **kw)
    np.testing.assert_allclose(sol.ts, ts)
    np.testing.assert_allclose(sol.ys[2], np.array([1.0, 0.5]) * np.exp(-1.2), rtol=1e-5)
    ts[2] = 5.0  # mutated in place: seen
    with pytest.raises(SimkitInputError, match=r"inside \[t0, t1\]"):
        solve(prob, saveat=ts, **kw)
    jts = jnp.linspace(0.0, 1.0, 3)
    np.testing.assert_allclose(solve(prob, saveat=jts, **kw).ts, np.asarray(jts))
    with pytest.raises(SimkitInputError, match="non-decreasing"):
        solve(prob, saveat=jts[::-1], **kw)


def test_a_params_dict_mutated_inside_the_same_problem_is_checked_again():
    # The problem is frozen, but a dict inside it is not: the remembered last call must not
    # skip the check of a leaf swapped in place.
    params = {"k": jnp.asarray([2.0])}
    prob = ODEProblem(lambda t, y, p: -p["k"] * y, jnp.asarray([1.0, 0.5]), params, 0.0, 1.0)
    solve(prob, rtol=1e-6, atol=1e-9)
    solve_stiff(prob, solver=SOLVER, rtol=1e-6, atol=1e-9)
    params["k"] = jnp.asarray([np.nan])
    with pytest.raises(SimkitInputError, match=r"params.*NaN"):
        solve(prob, rtol=1e-6, atol=1e-9)
    with pytest.raises(SimkitInputError, match=r"params.*NaN"):
        solve_stiff(prob, solver=SOLVER, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(
    ("method", "fixed_step"),
    [("diffrax", False), ("diffrax", True), ("auto", False), ("auto", True)],
)
def test_solve_ensemble_fast_path_keeps_every_per_call_check(method, fixed_step):
    prob = _problem([1.0, 0.5])
    ks = jnp.linspace(1.0, 3.0, 16)[:, None]
    kw = {"method": method, "fixed_step": fixed_step, "dt0": 0.125 if fixed_step else None}
    ts = np.linspace(0.0, 1.0, 5)  # on the fixed-step grid
    _, first = solve_ensemble(prob, params=ks, saveat=ts, rtol=1e-6, atol=1e-9, **kw)
    ts_a, again = solve_ensemble(prob, params=ks, saveat=ts, rtol=1e-6, atol=1e-9, **kw)
    # np.float64 tolerances take the checked path: the same numbers.
    ts_c, checked = solve_ensemble(
        prob, params=ks, saveat=ts, rtol=np.float64(1e-6), atol=np.float64(1e-9), **kw
    )
    np.testing.assert_array_equal(again, first)
    np.testing.assert_array_equal(again, checked)
    np.testing.assert_array_equal(ts_a, ts_c)
    exact = np.array([1.0, 0.5]) * np.exp(-np.asarray(ks)[:, :1] * ts[:, None, None])
    # fixed step: 8 RK steps of a 5th-order method, ~1e-6 relative; adaptive: rtol 1e-6
    np.testing.assert_allclose(again, np.moveaxis(exact, 0, 1), rtol=1e-4)
    bad = ks.at[3, 0].set(jnp.nan)  # a new params array with a NaN member
    with pytest.raises(SimkitInputError, match=r"ensemble params.*NaN"):
        solve_ensemble(prob, params=bad, saveat=ts, rtol=1e-6, atol=1e-9, **kw)
    ts[2] = 5.0  # mutated in place: seen
    with pytest.raises(SimkitInputError, match=r"inside \[t0, t1\]"):
        solve_ensemble(prob, params=ks, saveat=ts, rtol=1e-6, atol=1e-9, **kw)
    if not fixed_step:  # another tolerance is another configuration
        _, loose = solve_ensemble(prob, params=ks, saveat=ts[:2], rtol=1e-2, atol=1e-2, **kw)
        _, tight = solve_ensemble(prob, params=ks, saveat=ts[:2], rtol=1e-6, atol=1e-9, **kw)
        assert not np.array_equal(loose, tight)
