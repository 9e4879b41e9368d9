"""XLA compile options for simkit's hot CPU kernels (passed per function to `jax.jit`, never set
globally: the user's other jax code compiles as it always does).

`xla_cpu_prefer_vector_width=512`: XLA's CPU backend asks LLVM for 256-bit vectors by default;
on a CPU with AVX-512 the elementwise loops of the fused ensemble kernels then use half the
register width. Measured on the 2-core AMD EPYC (Zen 5, AVX-512) with 1000 Lorenz-63 members,
Tsit5, 1000 fixed steps: 6.5 ms -> 4.1 ms per solve, bit-identical results (the same operations,
wider registers). On a CPU without AVX-512 the preference is moot (LLVM uses the widest vectors
there are). The tuned twins run only where the default backend is the CPU.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax

CPU_KERNEL_OPTIONS: dict[str, int | bool] = {"xla_cpu_prefer_vector_width": 512}

# The fixed-step kernel also asks XLA's copy insertion for its region analysis (a finer alias
# analysis of loop-carried buffers: fewer copies in the step loop). Same machine and workload:
# 3.66 -> 3.33 ms, bit-identical. Not for the adaptive segments, where it measured 3-5% slower.
FIXED_STEP_OPTIONS: dict[str, int | bool] = {
    **CPU_KERNEL_OPTIONS,
    "xla_cpu_copy_insertion_use_region_analysis": True,
}


def at_top_level() -> bool:
    """Whether no jax transformation (jit, grad, vmap, ...) is tracing at this point: only a
    top-level `jax.jit` may carry compiler options (a nested one raises), so a kernel compiled
    with `CPU_KERNEL_OPTIONS` is called only then, and its plain twin otherwise.

    Uses `jax._src.core.trace_state_clean` (no public equivalent); if a jax release drops it,
    this answers False and the plain kernels run, as before the options existed.
    """
    try:
        from jax._src.core import trace_state_clean
    except ImportError:  # pragma: no cover - depends on the jax release
        return False
    return bool(trace_state_clean())


def with_cpu_options(
    jit: Callable[..., Callable],
    fun: Callable,
    *,
    options: dict[str, int | bool] = CPU_KERNEL_OPTIONS,
    **jit_kwargs,
) -> Callable:
    """`jit(fun, **jit_kwargs)` that runs a twin compiled with `options` (default
    `CPU_KERNEL_OPTIONS`) when called at top level (see `at_top_level`), and the plain one
    inside a caller's transformation."""
    plain = jit(fun, **jit_kwargs)
    tuned = jit(fun, compiler_options=options, **jit_kwargs)

    @functools.wraps(fun)
    def call(*args, **kwargs):
        # CPU options only where the default backend is the CPU (an accelerator's compiler has
        # no use for them; the plain twin is what ran before they existed).
        use_tuned = at_top_level() and jax.default_backend() == "cpu"
        return (tuned if use_tuned else plain)(*args, **kwargs)

    call.plain = plain  # type: ignore[attr-defined]
    return call
