"""Ensembles split over host threads (`simkit.ensemble._threads`): the split and join, when
threads are used, and that the fused ODE engine and `fit_batch` give every member the same
answer whatever the number of threads (members are independent)."""

from __future__ import annotations

import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_fit import T_EXP, exp_model  # shared fixtures

from simkit import SimkitInputError
from simkit.ensemble._threads import (
    chunk_count,
    join_members,
    run_chunks,
    split_members,
)
from simkit.fit import fit_batch, fit_multistart
from simkit.ode import ODEProblem, solve_ensemble, solve_ensemble_fused


def lorenz(t, y, p):
    return jnp.stack([p[0] * (y[1] - y[0]), y[0] * (p[1] - y[2]) - y[1], y[0] * y[1] - p[2] * y[2]])


def lorenz_members(n):
    y0 = 1.0 + 0.5 * jax.random.normal(jax.random.PRNGKey(3), (n, 3), dtype=jnp.float64)
    p = jnp.broadcast_to(jnp.array([10.0, 28.0, 8.0 / 3.0]), (n, 3))
    # a few members 10x faster: stragglers for the adaptive engine's regrouping
    p = p.at[::9, 0].set(100.0)
    return y0, p


PROBLEM = ODEProblem(lorenz, jnp.ones(3), jnp.array([10.0, 28.0, 8.0 / 3.0]), 0.0, 0.5)


def test_split_and_join_round_trip_with_padding():
    """11 members in 3 chunks of 4: the last chunk repeats its last member; the join drops it."""
    tree = {"a": jnp.arange(11.0), "b": jnp.arange(22).reshape(11, 2)}
    pieces = split_members(tree, 11, 3)
    assert [p["a"].shape[0] for p in pieces] == [4, 4, 4]
    np.testing.assert_array_equal(pieces[2]["a"], [8.0, 9.0, 10.0, 10.0])
    joined = join_members(pieces, 11)
    np.testing.assert_array_equal(joined["a"], tree["a"])
    np.testing.assert_array_equal(joined["b"], tree["b"])
    assert split_members(tree, 11, 1)[0] is not None
    assert join_members([tree], 11) is tree


def test_chunk_count_rules():
    x = jnp.zeros((1000, 3))
    assert chunk_count(1000, 256, 1, x) == 1
    assert chunk_count(1000, 256, 3, x) == 3  # explicit: as asked, whatever the chunk size
    assert chunk_count(5, 256, 8, jnp.zeros((5, 3))) == 5  # never more chunks than members
    assert chunk_count(100, 256, None, jnp.zeros((100, 3))) == 1  # too few members to pay
    seen = []
    jax.jit(lambda y: seen.append(chunk_count(1000, 1, 4, y)) or y)(x)
    assert seen == [1]  # traced: never threads
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(SimkitInputError, match="threads"):
            chunk_count(10, 1, bad, x)


def test_run_chunks_runs_concurrently_and_raises_errors():
    barrier = threading.Barrier(3, timeout=10)

    def meet(i):
        barrier.wait()  # deadlocks (and times out) unless all three calls run at once
        return i

    assert run_chunks(meet, [(0,), (1,), (2,)]) == [0, 1, 2]

    def fail(i):
        if i == 1:
            raise ValueError("chunk 1 failed")
        return i

    with pytest.raises(ValueError, match="chunk 1 failed"):
        run_chunks(fail, [(0,), (1,), (2,)])


@pytest.mark.parametrize("fixed_step", [True, False])
def test_fused_ensemble_same_bits_with_threads(fixed_step):
    """Every member's states and step counts are identical with 1, 2 or 3 threads."""
    n = 301
    y0, p = lorenz_members(n)
    kw = {"fixed_step": True, "dt0": 1e-3} if fixed_step else {"rtol": 1e-8, "atol": 1e-8}
    saveat = jnp.array([0.1, 0.25, 0.5])
    ref = solve_ensemble_fused(PROBLEM, y0=y0, params=p, saveat=saveat, threads=1, **kw)
    for threads in (2, 3):
        sol = solve_ensemble_fused(PROBLEM, y0=y0, params=p, saveat=saveat, threads=threads, **kw)
        np.testing.assert_array_equal(sol.ys, ref.ys)
        np.testing.assert_array_equal(sol.ts, ref.ts)
        for name in ("num_steps", "num_accepted", "num_rejected", "success"):
            np.testing.assert_array_equal(getattr(sol, name), getattr(ref, name))
    if not fixed_step:
        steps = np.asarray(ref.num_steps)
        assert steps.max() > 1.6 * np.median(steps)  # stragglers present
    ts, ys = solve_ensemble(PROBLEM, y0=y0, params=p, saveat=saveat, threads=2, **kw)
    np.testing.assert_array_equal(ys, ref.ys)


def test_fused_threads_keep_failures_and_gradients():
    """A member hitting max_steps is reported with its index from any chunk; under jax.grad
    (traced inputs) the fixed-step engine runs unthreaded and differentiates as before."""
    y0, p = lorenz_members(40)
    with pytest.raises(RuntimeError, match="first: member 0"):
        solve_ensemble_fused(PROBLEM, y0=y0, params=p, rtol=1e-10, atol=1e-10, max_steps=20,
                             threads=4)  # fmt: skip
    sol = solve_ensemble_fused(PROBLEM, y0=y0, params=p, rtol=1e-8, atol=1e-8, max_steps=120,
                               threads=4, throw=False)  # fmt: skip
    ref = solve_ensemble_fused(PROBLEM, y0=y0, params=p, rtol=1e-8, atol=1e-8, max_steps=120,
                               threads=1, throw=False)  # fmt: skip
    np.testing.assert_array_equal(sol.success, ref.success)
    assert 0 < int(np.sum(~np.asarray(sol.success))) < 40

    def loss(y0):
        sol = solve_ensemble_fused(PROBLEM, y0=y0, params=p, fixed_step=True, dt0=1e-2,
                                   threads=4)  # fmt: skip
        return jnp.sum(sol.ys[:, -1, 0])

    g = jax.grad(loss)(y0)
    assert g.shape == y0.shape and bool(jnp.all(jnp.isfinite(g)))


def test_bad_threads_named_before_compute():
    y0, p = lorenz_members(4)
    for bad in (0, 2.0):
        with pytest.raises(SimkitInputError, match="threads"):
            solve_ensemble_fused(PROBLEM, y0=y0, params=p, threads=bad)
        with pytest.raises(SimkitInputError, match="threads"):
            solve_ensemble(PROBLEM, y0=y0, params=p, threads=bad)
        with pytest.raises(SimkitInputError, match="threads"):
            fit_batch(exp_model, {"a": jnp.ones(2), "k": jnp.ones(2)}, jnp.ones((2, 40)),
                      threads=bad)  # fmt: skip


def test_fit_batch_same_answers_with_threads():
    """Each fit is its own problem: 2 or 3 threads give every member the unthreaded answer."""
    n = 37
    rng = np.random.default_rng(4)
    k_true = np.linspace(0.5, 3.0, n)
    y = 2.0 * np.exp(-k_true[:, None] * T_EXP[None]) + 0.01 * rng.normal(size=(n, T_EXP.size))
    starts = {"a": jnp.ones(n), "k": jnp.where(jnp.arange(n) % 5 == 0, 6.0, 1.0)}
    bounds = {"a": (0.0, None), "k": (0.0, None)}
    ref = fit_batch(exp_model, starts, jnp.asarray(y), bounds=bounds, threads=1)
    for threads in (2, 3):
        res = fit_batch(exp_model, starts, jnp.asarray(y), bounds=bounds, threads=threads)
        # tolerance: compaction differs per chunk (batch sizes), so batched linear algebra may
        # round differently; the fits themselves are the same
        for k in ("a", "k"):
            np.testing.assert_allclose(res.params[k], ref.params[k], rtol=1e-10)
            np.testing.assert_allclose(res.stderr[k], ref.stderr[k], rtol=1e-8)
        np.testing.assert_array_equal(res.status, ref.status)
        assert res.param_names == ref.param_names and res.dof == ref.dof


def test_nested_split_runs_inline():
    """A chunk that itself asks for threads runs unsplit (it would otherwise wait on the pool
    whose worker it occupies)."""

    def inner(i):
        return chunk_count(1000, 1, 4, jnp.zeros((3,)))

    assert run_chunks(inner, [(0,), (1,)]) == [4, 1]  # this thread splits, the worker does not


def test_fit_multistart_same_best_with_threads():
    """Starts split over threads: the same best fit and the same per-start answers."""
    rng = np.random.default_rng(6)
    y = 2.0 * np.exp(-1.3 * T_EXP) + 0.01 * rng.normal(size=T_EXP.size)
    starts = {"a": jnp.linspace(0.5, 3.0, 9), "k": jnp.linspace(0.2, 4.0, 9)}
    bounds = {"a": (0.0, None), "k": (0.0, None)}
    best1, all1 = fit_multistart(exp_model, starts, jnp.asarray(y), bounds=bounds,
                                 threads=1, return_all=True)  # fmt: skip
    best3, all3 = fit_multistart(exp_model, starts, jnp.asarray(y), bounds=bounds,
                                 threads=3, return_all=True)  # fmt: skip
    np.testing.assert_allclose(best3.params["k"], best1.params["k"], rtol=1e-10)
    np.testing.assert_allclose(all3.chi2, all1.chi2, rtol=1e-9)
    np.testing.assert_array_equal(all3.status, all1.status)
    with pytest.raises(SimkitInputError, match="threads"):
        fit_multistart(exp_model, starts, jnp.asarray(y), threads=0)
