"""Members of an ensemble split over the host's cores, one thread per chunk, on one CPU device.

XLA's CPU backend runs a compiled ensemble kernel on one core: the kernels are many small fused
elementwise loops (a few hundred members in cache at a time), far below the size at which XLA
splits a loop over its intra-op threads. Two calls of a compiled function from two Python
threads do run at the same time (jax releases the GIL while XLA executes), so cutting the
members into one equal chunk per core and running each chunk's call in its own thread uses the
whole machine, without asking the user to start jax with several virtual CPU devices
(`--xla_force_host_platform_device_count`, which must be set before jax is imported).

Members are independent, so a member's result does not depend on the chunk it ran in; chunks
have equal sizes (the last one padded by repeating its last member, never zeros or NaN), so
one compiled shape serves every chunk.

Caveat (measured on a 2-core KVM guest): with jax's default asynchronous CPU dispatch, XLA runs
each call on its own worker threads, and two calls issued together sometimes run one after the
other, mostly right after other jax work. The gain is then reliable only for large chunks
(several milliseconds each); callers set their `min_chunk` from measurements. With
`jax_cpu_enable_async_dispatch=False` (set before jax starts) calls run on the calling thread
and chunks run side by side every time.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jax
import jax.core
import jax.numpy as jnp
import numpy as np
from jaxtyping import PyTree

from .._checks import SimkitInputError


def host_cores() -> int:
    """Cores this process may run on (its CPU affinity, which container limits also set)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def check_threads(threads: Any) -> None:
    """`threads` must be None (automatic) or an integer >= 1."""
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise SimkitInputError(
            f"threads must be None (one per core when it pays) or an integer >= 1, got {threads!r}."
        )


def chunk_count(n: int, min_chunk: int, threads: int | None, *trees: PyTree) -> int:
    """How many threads to split `n` members over.

    Args:
        n: ensemble size.
        min_chunk: fewest members a chunk may have: below it the thread start-up and the
            per-call host work (~0.1 ms) outweigh the kernel time saved.
        threads: None (automatic: one per core, if every chunk keeps `min_chunk` members) or
            the number of threads asked for (at most `n`).
        *trees: the call's inputs; any traced leaf (inside `jit`, `grad`, `vmap`) or any
            array not on one CPU device gives 1: threads only split concrete host calls.

    Returns:
        the number of chunks, >= 1 (1: call once, no thread).
    """
    check_threads(threads)
    # Cheapest tests first: most calls are small ensembles that never split (issue 13's
    # entry-point overhead budget is a few microseconds).
    if threads is None:
        want = min(host_cores(), n // max(1, min_chunk))
    else:
        want = min(int(threads), n)
    if want <= 1:
        return 1
    if threading.current_thread().name.startswith(_WORKER_PREFIX):
        return 1  # inside a chunk already: a nested split would wait on its own pool
    for x in jax.tree_util.tree_leaves(trees):
        if isinstance(x, jax.core.Tracer):
            return 1
        if isinstance(x, jax.Array):
            devices = x.devices()
            if len(devices) != 1 or next(iter(devices)).platform != "cpu":
                return 1
    if threads is None and jax.default_backend() != "cpu":
        return 1
    return want


def split_members(tree: PyTree, n: int, chunks: int) -> list[PyTree]:
    """`tree` (every array leaf `(n, ...)`) cut into `chunks` pieces of `ceil(n / chunks)`
    members; the last piece is padded by repeating its last member."""
    if chunks == 1:
        return [tree]
    size = -(-n // chunks)
    pieces = []
    for c in range(chunks):
        lo, hi = c * size, min((c + 1) * size, n)
        take = np.minimum(np.arange(lo, lo + size), hi - 1)
        contiguous = hi - lo == size

        def cut(x, lo=lo, hi=hi, take=take, contiguous=contiguous):
            return x[lo:hi] if contiguous else x[take]

        pieces.append(jax.tree_util.tree_map(cut, tree))
    return pieces


# Worker threads, kept between calls: a call on fresh threads measured ~10 % slower (1000
# Lorenz-63 members, 2 chunks: 3.9 vs 3.5 ms; thread start-up and XLA's per-thread state).
# Idle workers only wait on a queue (Python joins them when the interpreter exits).
_WORKER_PREFIX = "simkit-chunk"
_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    with _pools_lock:
        pool = _pools.get(workers)
        if pool is None:
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=_WORKER_PREFIX)
            _pools[workers] = pool
        return pool


def run_chunks(fn: Callable[..., Any], pieces: Sequence[tuple]) -> list[Any]:
    """`[fn(*piece) for piece in pieces]`, each call in its own thread (the first in this one).

    An exception in any call is raised here, after every call has ended.
    """
    if len(pieces) == 1:
        return [fn(*pieces[0])]
    futures = [_pool(len(pieces) - 1).submit(fn, *p) for p in pieces[1:]]
    try:
        first = fn(*pieces[0])
    finally:
        done = [_wait(f) for f in futures]
    errors = [e for _, e in done if e is not None]
    if errors:
        raise errors[0]
    return [first, *(r for r, _ in done)]


def _wait(future) -> tuple[Any, BaseException | None]:
    try:
        return future.result(), None
    except BaseException as exc:  # re-raised by run_chunks once every chunk has ended
        return None, exc


def join_members(outputs: Sequence[PyTree], n: int) -> PyTree:
    """Per-chunk outputs (every array leaf with the chunk's leading member axis) joined along
    that axis and trimmed to the first `n` members (the padding dropped)."""
    if len(outputs) == 1:
        return outputs[0]

    def join(*xs):
        return jnp.concatenate(xs, axis=0)[:n]

    return jax.tree_util.tree_map(join, *outputs)
