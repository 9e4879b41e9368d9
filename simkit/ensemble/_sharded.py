"""Batched calls whose leading (ensemble) axis is spread over a 1-D device mesh.

Contract shared by `sharded_call` and `sharded_vmap`:

* Every array leaf of the batched arguments has the same leading ensemble axis `n >= 1`.
* Values that are *not* batched (step sizes, shared parameters, tables) go in `broadcast=`: they
  are replicated on every device and passed to `fn` after the batched arguments. Python numbers
  given there become (weakly typed) arrays. Non-array configuration (solver objects, flags, ...)
  must be closed over by `fn`; a new closure per call defeats the compile cache, so build `fn`
  once and reuse it.
* The ensemble axis is padded up to a multiple of the mesh size by repeating the *last member*
  (never zeros or NaN, which can blow up solvers); padded members are computed and then dropped.
* One process: outputs are `jax.Array`s with the leading axis `n`.
* Several processes (`jax.process_count() > 1`, after `initialize_distributed`): every process
  calls with the same full (global) host inputs, in the same order; each process feeds only the
  shards its own devices hold (`jax.make_array_from_callback`), and every process gets the full
  outputs back as host `numpy.ndarray`s (gathered with
  `jax.experimental.multihost_utils.process_allgather`).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.core
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from jaxtyping import PyTree

from .._checks import SimkitInputError
from ._mesh import DEFAULT_AXIS, make_mesh

_CACHE_SIZE = 64
_jit_cache: OrderedDict[Any, Callable] = OrderedDict()
_vmap_cache: OrderedDict[Any, Callable] = OrderedDict()


def _cache_get(cache: OrderedDict, key: Any, build: Callable[[], Callable]) -> Callable:
    """Small LRU: return `cache[key]`, building it on a miss; unhashable keys are not cached."""
    try:
        hit = cache.get(key)
    except TypeError:
        return build()
    if hit is not None:
        cache.move_to_end(key)
        return hit
    value = build()
    cache[key] = value
    if len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)
    return value


def clear_cache() -> None:
    """Forget every cached jitted function (frees the functions and meshes they hold).

    Example:
        >>> clear_cache()  # e.g. between tests that build many meshes
    """
    _jit_cache.clear()
    _vmap_cache.clear()


def _leaf_name(prefix: str, path) -> str:
    return prefix + jax.tree_util.keystr(path)


def _ensemble_size(args: tuple) -> int:
    """Validate the batched arguments and return their common leading-axis size."""
    leaves = jax.tree_util.tree_flatten_with_path(args)[0]
    if not leaves:
        raise SimkitInputError(
            "sharded_call needs at least one array argument with a leading ensemble axis, got "
            "none (no array leaves in the batched arguments)."
        )
    sizes: dict[str, int] = {}
    for path, leaf in leaves:
        name = _leaf_name("args", path)
        if not isinstance(leaf, (jax.Array, np.ndarray)):
            raise SimkitInputError(
                f"sharded_call batched argument {name} is a {type(leaf).__name__} ({leaf!r:.60}), "
                "not an array; every leaf of the batched arguments must be an array with a "
                "leading ensemble axis. Pass unbatched values with broadcast=(...) or close over "
                "them in fn."
            )
        if leaf.ndim == 0:
            raise SimkitInputError(
                f"sharded_call batched argument {name} is 0-d (a scalar); every leaf needs a "
                "leading ensemble axis. Pass unbatched values with broadcast=(...) or close over "
                "them in fn."
            )
        sizes[name] = int(leaf.shape[0])
    distinct = sorted(set(sizes.values()))
    if len(distinct) > 1:
        groups = {s: [k for k, v in sizes.items() if v == s] for s in distinct}
        desc = "; ".join(
            f"n={s}: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
            for s, names in groups.items()
        )
        raise SimkitInputError(
            f"sharded_call inputs disagree on the ensemble size (leading axis), sizes seen "
            f"{distinct} ({desc}). Every batched leaf needs the same leading axis."
        )
    n = distinct[0]
    if n < 1:
        raise SimkitInputError(
            "ensemble size must be >= 1, got 0 members (leading axis of length 0)."
        )
    return n


def _check_broadcast(broadcast: tuple) -> tuple:
    """Broadcast leaves must be arrays or Python/numpy numbers; numbers become arrays."""

    def conv(path, leaf):
        if isinstance(leaf, (jax.Array, np.ndarray)):
            return leaf
        if isinstance(leaf, (bool, int, float, complex, np.generic)):
            return jnp.asarray(leaf)
        raise SimkitInputError(
            f"sharded_call broadcast value {_leaf_name('broadcast', path)} is a "
            f"{type(leaf).__name__}, not an array or number; close over non-array values in fn."
        )

    return jax.tree_util.tree_map_with_path(conv, broadcast)


def _pad_leaf(x, n_pad: int):
    """Pad the leading axis to `n_pad` by repeating the last member."""
    extra = n_pad - x.shape[0]
    if extra == 0:
        return x
    if isinstance(x, np.ndarray):
        return np.concatenate([x, np.repeat(x[-1:], extra, axis=0)], axis=0)
    return jnp.concatenate([x, jnp.repeat(x[-1:], extra, axis=0)], axis=0)


def _check_outputs(out: PyTree, n_pad: int) -> None:
    """At trace time: every output leaf must keep the leading ensemble axis."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(out)[0]:
        shape = getattr(leaf, "shape", None)
        if shape is None or len(shape) == 0 or shape[0] != n_pad:
            raise SimkitInputError(
                f"sharded_call: fn's output {_leaf_name('out', path)} has shape {shape}, but "
                f"every output leaf must keep the leading ensemble axis (length {n_pad} here, "
                "including padding). Return per-member results and reduce them after the call."
            )


def _jitted(fn: Callable, mesh: Mesh, axis_name: str, n_batched: int, n_broadcast: int):
    batched = NamedSharding(mesh, P(axis_name))
    replicated = NamedSharding(mesh, P())

    def build():
        def run(*flat):
            n_pad = jax.tree_util.tree_leaves(flat[:n_batched])[0].shape[0]
            out = fn(*flat)
            _check_outputs(out, n_pad)
            return out

        return jax.jit(
            run,
            in_shardings=(batched,) * n_batched + (replicated,) * n_broadcast,
            out_shardings=batched,
        )

    return _cache_get(_jit_cache, (fn, mesh, axis_name, n_batched, n_broadcast), build)


def _host_array(name: str, x) -> np.ndarray:
    if isinstance(x, jax.core.Tracer):
        raise SimkitInputError(
            f"sharded_call across several processes needs concrete host inputs, but {name} is "
            "traced; call it outside jit/vmap/grad."
        )
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        raise SimkitInputError(
            f"sharded_call across several processes takes the full (global) inputs as host "
            f"data on every process, but {name} is a global jax.Array this process cannot read; "
            "pass numpy arrays (the same on every process)."
        )
    x = np.asarray(x)
    return x.astype(jax.dtypes.canonicalize_dtype(x.dtype), copy=False)


def _global_array(x: np.ndarray, sharding: NamedSharding) -> jax.Array:
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def _sharded_call_padded(
    fn: Callable, args: tuple, mesh: Mesh | None, axis_name: str, broadcast: Sequence[PyTree]
) -> tuple[PyTree, int, Mesh]:
    """Run `fn` with inputs padded and sharded; return (padded outputs, ensemble size n, mesh).

    Outputs are the jitted function's sharded arrays (leading axis padded to a multiple of the
    mesh size), before any gathering or slicing.
    """
    if not callable(fn):
        raise SimkitInputError(f"sharded_call needs a callable fn, got {type(fn).__name__}.")
    if not isinstance(broadcast, (tuple, list)):
        raise SimkitInputError(
            f"broadcast must be a tuple of extra (unbatched) arguments, got "
            f"{type(broadcast).__name__}; wrap a single value as broadcast=(value,)."
        )
    broadcast = tuple(broadcast)
    if mesh is None:
        mesh = make_mesh(axis_name=axis_name)
    if not isinstance(mesh, Mesh):
        raise SimkitInputError(
            f"mesh must be a jax.sharding.Mesh (see simkit.ensemble.make_mesh), got "
            f"{type(mesh).__name__}."
        )
    if axis_name not in mesh.axis_names:
        raise SimkitInputError(
            f"axis_name {axis_name!r} is not an axis of the mesh (axes {mesh.axis_names}); pass "
            "the axis name the mesh was built with."
        )
    n = _ensemble_size(args)
    broadcast = _check_broadcast(broadcast)
    n_dev = int(mesh.shape[axis_name])
    n_pad = math.ceil(n / n_dev) * n_dev
    batched = NamedSharding(mesh, P(axis_name))
    replicated = NamedSharding(mesh, P())

    if mesh.is_multi_process:

        def pad_host(path, x):
            return _pad_leaf(_host_array(_leaf_name("args", path), x), n_pad)

        host_args = jax.tree_util.tree_map_with_path(pad_host, args)
        host_bc = jax.tree_util.tree_map_with_path(
            lambda p, x: _host_array(_leaf_name("broadcast", p), x), broadcast
        )
        placed = jax.tree_util.tree_map(lambda x: _global_array(x, batched), host_args)
        placed_bc = jax.tree_util.tree_map(lambda x: _global_array(x, replicated), host_bc)
    else:
        placed = jax.device_put(
            jax.tree_util.tree_map(lambda x: _pad_leaf(x, n_pad), args), batched
        )
        placed_bc = jax.device_put(broadcast, replicated)

    run = _jitted(fn, mesh, axis_name, len(args), len(broadcast))
    return run(*placed, *placed_bc), n, mesh


def sharded_call(
    fn: Callable[..., PyTree],
    *args: PyTree,
    mesh: Mesh | None = None,
    axis_name: str = DEFAULT_AXIS,
    broadcast: Sequence[PyTree] = (),
) -> PyTree:
    """Call an already-batched `fn` with its ensemble axis spread over the devices of `mesh`.

    `fn(*args, *broadcast)` is run once under `jax.jit`, with each batched input placed as
    `NamedSharding(mesh, P(axis_name))` (members split over devices) and each broadcast input
    replicated. The result equals `fn(*args, *broadcast)` computed on one device.

    Args:
        fn: a batched function, e.g. `jax.vmap(f)`: takes the batched args (every leaf with a
            leading axis `n`) then the broadcast args, and returns a pytree whose every array
            leaf has the leading axis `n`. Keep the same `fn` object between calls: compiled
            code is cached per `(fn, mesh, axis_name)` and input shapes.
        *args: pytrees whose array leaves (numpy or jax arrays) all have shape `(n, ...)`,
            `n >= 1`. Python scalars are rejected: use `broadcast`.
        mesh: device mesh (see `make_mesh`); default: every device (every process's devices in
            a multi-process run).
        axis_name: mesh axis that carries the ensemble.
        broadcast: tuple of unbatched pytrees (arrays or numbers), replicated on every device
            and appended to fn's arguments.

    Returns:
        fn's outputs, every leaf of shape `(n, ...)`: `jax.Array`s in a single process; host
        `numpy.ndarray`s, identical on every process, when the mesh spans several processes
        (every process must make the same call with the same full inputs).

    Raises:
        SimkitInputError: no array inputs, a non-array or 0-d batched leaf, leaves disagreeing
            on `n`, `n == 0`, a mesh without `axis_name`, or an output leaf without the leading
            ensemble axis.

    Example:
        >>> f = jax.vmap(lambda x, a: a * jnp.sin(x), in_axes=(0, None))
        >>> y = sharded_call(f, jnp.linspace(0.0, 1.0, 13), broadcast=(2.0,))  # y.shape == (13,)
    """
    out, n, mesh = _sharded_call_padded(fn, args, mesh, axis_name, broadcast)
    if mesh.is_multi_process:
        out = multihost_utils.process_allgather(out, tiled=True)
    leaves = jax.tree_util.tree_leaves(out)
    if leaves and leaves[0].shape[0] == n:
        return out
    return jax.tree_util.tree_map(lambda x: x[:n], out)


def _vmapped(f: Callable, in_axes: tuple) -> Callable:
    """`jax.vmap(f, in_axes)` reordered so batched args come first, then broadcast args."""

    def build():
        vf = jax.vmap(f, in_axes=in_axes)
        batched_pos = [i for i, a in enumerate(in_axes) if a == 0]
        bcast_pos = [i for i, a in enumerate(in_axes) if a is None]

        def call(*ordered):
            full: list[Any] = [None] * len(in_axes)
            for k, i in enumerate(batched_pos + bcast_pos):
                full[i] = ordered[k]
            return vf(*full)

        return call

    return _cache_get(_vmap_cache, (f, in_axes), build)


def sharded_vmap(
    f: Callable[..., PyTree],
    *args: PyTree,
    mesh: Mesh | None = None,
    axis_name: str = DEFAULT_AXIS,
    in_axes: int | Sequence[int | None] = 0,
) -> PyTree:
    """`jax.vmap(f, in_axes)(*args)`, sharded over `mesh`: shorthand for `sharded_call`.

    Args:
        f: the per-member function.
        *args: positional arguments; those with in_axes 0 have every leaf batched `(n, ...)`,
            those with in_axes `None` are passed unbatched (replicated) to every member.
        mesh: as in `sharded_call`.
        axis_name: as in `sharded_call`.
        in_axes: `0` (every arg batched) or one entry per positional arg, each `0` or `None`.
            Other axes: move them to the front first (`jnp.moveaxis`).

    Returns:
        f's outputs stacked along a leading axis `(n, ...)`.

    Example:
        >>> ys = sharded_vmap(lambda x, k: jnp.exp(-k * x), xs, 0.5, in_axes=(0, None))
    """
    if in_axes == 0:
        axes: tuple = (0,) * len(args)
    elif isinstance(in_axes, (tuple, list)):
        axes = tuple(in_axes)
    else:
        raise SimkitInputError(
            f"sharded_vmap in_axes must be 0 or a tuple of 0/None per argument, got {in_axes!r}."
        )
    if len(axes) != len(args):
        raise SimkitInputError(
            f"sharded_vmap in_axes has {len(axes)} entries but {len(args)} arguments were given."
        )
    for a in axes:
        if not (a is None or (isinstance(a, int) and not isinstance(a, bool) and a == 0)):
            raise SimkitInputError(
                f"sharded_vmap in_axes entries must be 0 (batched on the leading axis) or None "
                f"(unbatched), got {a!r}; move other batch axes to the front with jnp.moveaxis."
            )
    if not any(a == 0 for a in axes):
        raise SimkitInputError("sharded_vmap needs at least one batched argument (in_axes 0).")
    batched = tuple(x for x, a in zip(args, axes, strict=False) if a == 0)
    bcast = tuple(x for x, a in zip(args, axes, strict=False) if a is None)
    return sharded_call(
        _vmapped(f, axes), *batched, mesh=mesh, axis_name=axis_name, broadcast=bcast
    )
