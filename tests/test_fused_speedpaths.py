"""The fused kernels' speed paths (issue 13): compiler options only at top level, and adaptive
segments that run on while a block's members are about to finish. Neither may change a result."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from simkit._compile import at_top_level, with_cpu_options
from simkit.ode import ODEProblem, _fused, solve_ensemble_fused
from simkit.ode._tableau import TSIT5


def lorenz(t, y, p):
    return jnp.stack([p[0] * (y[1] - y[0]), y[0] * (p[1] - y[2]) - y[1], y[0] * y[1] - p[2] * y[2]])


def members(n):
    y0 = 1.0 + 0.5 * jax.random.normal(jax.random.PRNGKey(5), (n, 3), dtype=jnp.float64)
    return y0, jnp.broadcast_to(jnp.array([10.0, 28.0, 8.0 / 3.0]), (n, 3))


def test_at_top_level_only_outside_transformations():
    seen = {}
    assert at_top_level()
    jax.jit(lambda x: seen.setdefault("jit", at_top_level()) or x)(1.0)
    jax.grad(lambda x: seen.setdefault("grad", at_top_level()) or x)(1.0)
    jax.vmap(lambda x: seen.setdefault("vmap", at_top_level()) or x)(jnp.ones(2))
    assert seen == {"jit": False, "grad": False, "vmap": False}


def test_tuned_kernel_nests_in_jit_and_grad_with_the_same_bits():
    """`compiler_options` on a nested jit raise in jax; the twin without them runs there, with
    the same result as the tuned top-level call (wider vectors, same operations)."""
    f = with_cpu_options(jax.jit, lambda x: jnp.sin(x) * x + 1.0)
    x = jnp.linspace(0.0, 3.0, 1001)
    top = f(x)
    np.testing.assert_array_equal(jax.jit(f)(x), top)
    np.testing.assert_array_equal(jax.grad(lambda x: f(x).sum())(x), jnp.sin(x) + x * jnp.cos(x))
    y0, p = members(300)

    def solve(y0):
        return _fused.fixed_step_solve(lorenz, TSIT5, y0, p, t0=0.0, dt=1e-3, save_steps=(500,))

    np.testing.assert_array_equal(jax.jit(solve)(y0), solve(y0))
    g = jax.grad(lambda y: solve(y).sum())(y0)
    assert bool(jnp.all(jnp.isfinite(g)))


def test_segments_run_on_for_members_about_to_finish(monkeypatch):
    """Lorenz-63 to t = 0.5 at rtol 1e-8 takes 54-82 steps per member: with segments of 72
    steps the members about to finish are carried to the end in the first segment (one segment,
    no second host round trip); the states and step counts equal those of long and short
    segments bit for bit (segmenting never changes a member's steps)."""
    y0, p = members(200)
    prob = ODEProblem(lorenz, y0[0], p[0], 0.0, 0.5)
    segments = []
    seg_fn = _fused._segment_fn

    def counting(*args, **kwargs):
        seg = seg_fn(*args, **kwargs)

        def run(*a):
            segments.append(a[0].t.shape[0])
            return seg(*a)

        return run

    monkeypatch.setattr(_fused, "_segment_fn", counting)
    kw = {"y0": y0, "params": p, "rtol": 1e-8, "atol": 1e-8, "threads": 1}
    ref = solve_ensemble_fused(prob, segment_steps=4096, **kw)
    steps = np.asarray(ref.num_steps)
    assert 72 < steps.max() <= 72 + 72 // 4, steps  # the premise of the test
    segments.clear()
    sol = solve_ensemble_fused(prob, segment_steps=72, **kw)
    assert len(segments) == 1
    short = solve_ensemble_fused(prob, segment_steps=8, **kw)
    for other in (sol, short):
        np.testing.assert_array_equal(other.ys, ref.ys)
        np.testing.assert_array_equal(other.num_steps, ref.num_steps)
        np.testing.assert_array_equal(other.num_rejected, ref.num_rejected)
