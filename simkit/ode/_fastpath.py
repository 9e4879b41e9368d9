"""Repeat-call fast paths of the ODE entry points (issue 13: every entry point within 1.2x of
the bare jitted call it wraps).

What depends only on a call's static configuration (vector field, time span, solver, options,
and the shapes and dtypes of y0 and params) is checked once per configuration; what depends on
the values is checked on every call: y0 and params finite (skipped only for the very jax arrays
checked before: they are immutable) and the save times (cached per immutable jax array, or per
content of a NumPy array, which may be mutated between calls).
"""

from __future__ import annotations

import dataclasses
import weakref
from typing import Any

import jax
import jax.core
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from .._checks import SimkitInputError, require_finite
from ._problem import ODEProblem, validate_problem


def _as_jax(x) -> Array:
    # jnp.asarray of a jax array still costs ~10 us (a device_put path); skip it.
    return x if isinstance(x, jax.Array) else jnp.asarray(x)


class IdentityCache:
    """Values cached per live jax array, by identity (jax arrays are immutable, so a value
    computed from one stays valid); an entry is dropped when its array is garbage collected,
    so the cache never keeps a caller's array alive."""

    def __init__(self):
        self._entries: dict[tuple, tuple] = {}

    def get(self, x, extra: tuple = ()):
        hit = self._entries.get((id(x), *extra))
        return hit[1] if hit is not None and hit[0]() is x else None

    def put(self, x, value, extra: tuple = ()) -> None:
        entries, key = self._entries, (id(x), *extra)
        if len(entries) >= 4 * FAST_CACHE_SIZE:
            entries.clear()
        entries[key] = (weakref.ref(x, lambda _: entries.pop(key, None)), value)


_finite_seen = IdentityCache()


def require_finite_once(name: str, tree) -> None:
    """`require_finite`, skipping the jax arrays (immutable) already found finite, so that a
    repeated call with the same arrays does not copy and scan them again; new arrays and every
    NumPy array (mutable) are checked."""
    for x in jax.tree_util.tree_leaves(tree):
        if isinstance(x, jax.core.Tracer):
            continue
        cached = isinstance(x, jax.Array)
        if cached and _finite_seen.get(x) is not None:
            continue
        try:
            ok = known_finite((x,), (None,))
        except (TypeError, ValueError):  # e.g. PRNG keys: require_finite knows what to skip
            ok = False
        if not ok:
            require_finite(name, tree)  # raises, naming the leaf
        elif cached:
            _finite_seen.put(x, True)


FAST_CACHE_SIZE = 64


NUMBER_TYPES = (float, int)


# Types whose every instance is a concrete array (checking `type(x)` in a set is ~10x cheaper
# than the abstract-class `isinstance` checks, a few microseconds per call over all leaves).
_CONCRETE_TYPES: set[type] = {np.ndarray}


def is_concrete_array(x) -> bool:
    """A jax or NumPy array that is not traced (the only inputs the fast paths take)."""
    t = type(x)
    if t in _CONCRETE_TYPES:
        return True
    if isinstance(x, (jax.Array, np.ndarray)) and not isinstance(x, jax.core.Tracer):
        _CONCRETE_TYPES.add(t)  # a jax.Array type that is no Tracer type is never traced
        return True
    return False


def input_key(vector_field, t0, t1, y0, params) -> tuple[tuple, list, bool]:
    """The static structure of an ODE's inputs as a hashable key: vector field, time span,
    params' tree structure, and the shape and dtype of `y0` and of every params leaf.

    Returns:
        (key, params leaves, concrete): `concrete` is True when `y0` and every leaf are concrete
        arrays (`is_concrete_array`).
    """
    leaves, treedef = jax.tree_util.tree_flatten(params)
    concrete = True
    parts = []
    for x in (y0, *leaves):
        if is_concrete_array(x):
            parts.append((x.shape, x.dtype))
        else:
            concrete = False
            parts.append((jnp.shape(x), jnp.result_type(x)))
    return (vector_field, t0, t1, treedef, *parts), leaves, concrete


def validate_problem_once(problem: ODEProblem) -> None:
    """`validate_problem`, with the costly part (tracing the vector field to check its output
    shape) done once per `input_key`; the values of `y0` and `params` are still checked for
    NaN/inf on every call (skipped only for the very jax arrays found finite last time for
    this key: they are immutable)."""
    if _validate_last.repeat((problem,), (), (problem.y0, problem.params)) is not None:
        return  # the very problem and params arrays of the last call (jax: immutable)
    try:
        key, leaves, _ = input_key(
            problem.vector_field, problem.t0, problem.t1, problem.y0, problem.params
        )
        checked = _validated.get(key)
    except (TypeError, ValueError):  # unhashable vector field or params: validate every time
        validate_problem(problem)
        return
    arrays = (problem.y0, *leaves)
    if checked is not None:
        if any(x is not c for x, c in zip(arrays, checked, strict=True)):
            if not known_finite(arrays, checked):
                validate_problem(problem)  # raises, naming the leaf
            _validated[key] = checked_arrays(arrays)
        _validate_last.remember((problem,), (), (problem.y0, problem.params), True, True)
        return
    validate_problem(problem)
    if len(_validated) > 4 * FAST_CACHE_SIZE:
        _validated.clear()
    _validated[key] = checked_arrays(arrays)
    _validate_last.remember((problem,), (), (problem.y0, problem.params), True, True)


def checked_arrays(arrays: tuple) -> tuple:
    """What `known_finite` remembers of arrays found finite: the concrete jax arrays
    (immutable) only; never a tracer, which must not outlive its trace."""
    return tuple(
        x if isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer) else None
        for x in arrays
    )


def known_finite(arrays: tuple, checked: tuple) -> bool:
    """True when every array is finite: it is the very jax array checked before (`checked`,
    from `checked_arrays`), or its values are finite now. False names no culprit: the caller
    then runs its full checks, which do."""
    for x, c in zip(arrays, checked, strict=True):
        if x is c or isinstance(x, jax.core.Tracer):  # a traced value is checked by its caller
            continue
        a = np.asarray(x)  # jax keeps this host copy on the array: a repeat is free
        if a.dtype.kind in "fc" and not np.isfinite(a).all():
            return False
    return True


def check_save_times(t0: float, t1: float, saveat: ArrayLike, dtype) -> np.ndarray:
    """Save times `(n_save,)` checked on the host (no jax op): a non-empty 1-D array of finite,
    non-decreasing times inside `[t0, t1]`, returned in `dtype`."""
    ts = np.asarray(saveat, dtype=float)
    if ts.ndim != 1 or ts.shape[0] == 0:
        raise SimkitInputError(
            f"saveat must be a non-empty 1-D array of times, got shape {ts.shape}."
        )
    require_finite("saveat", ts)
    if ts.min() < t0 or ts.max() > t1:
        raise SimkitInputError(
            f"saveat times must lie inside [t0, t1] = [{t0}, {t1}], got min "
            f"{ts.min()}, max {ts.max()}; change saveat or the problem's time span."
        )
    if np.any(np.diff(ts) < 0):
        raise SimkitInputError("saveat times must be non-decreasing; sort them first.")
    return ts.astype(dtype)


def device_save_times(t0: float, t1: float, saveat: ArrayLike, dtype) -> Array:
    """`check_save_times` on the device, cached: a jax array (immutable) by identity, a NumPy
    array (mutable: a later call may hold other values) by its contents."""
    if type(saveat) is np.ndarray and saveat.size <= 4096:  # first: its key is rebuilt per call
        key = (saveat.tobytes(), saveat.shape, saveat.dtype, t0, t1, dtype)
    elif isinstance(saveat, jax.Array) and not isinstance(saveat, jax.core.Tracer):
        extra = (t0, t1, dtype)
        ts = _device_ts_of.get(saveat, extra)
        if ts is None:
            ts = device_constant(check_save_times(t0, t1, saveat, dtype))
            _device_ts_of.put(saveat, ts, extra)
        return ts
    else:
        return jnp.asarray(check_save_times(t0, t1, saveat, dtype))
    ts = _device_ts.get(key)
    if ts is None:
        ts = device_constant(check_save_times(t0, t1, saveat, dtype))
        _cache_put(_device_ts, key, ts)
    return ts


def device_constant(x, dtype=None) -> Array:
    """`x` as a concrete device array to keep in a cache, even when built inside the caller's
    `jit` (there `jnp.asarray` would give a tracer that must not outlive the trace)."""
    with jax.ensure_compile_time_eval():
        return jnp.asarray(x, dtype)


def save_times_token(saveat):
    """What `LastCall` compares of the save times besides their identity: None for None or a
    jax array (immutable), the contents of a small NumPy array (it may have been changed in
    place since: a C-level bytes comparison sees that), else `NOT_REMEMBERED` (not remembered)."""
    if saveat is None or isinstance(saveat, jax.Array):
        return None
    if type(saveat) is np.ndarray and saveat.size <= 4096:
        return (saveat.tobytes(), saveat.shape, saveat.dtype)
    return NOT_REMEMBERED


def plain_options(rtol, atol, dt0, max_steps) -> bool:
    """Options the fast paths take: Python numbers (an array or traced tolerance, or a NumPy
    scalar, takes the checked path)."""
    return (
        type(rtol) in NUMBER_TYPES
        and type(atol) in NUMBER_TYPES
        and type(max_steps) is int
        and (dt0 is None or type(dt0) in NUMBER_TYPES)
    )


class LastCall:
    """The last fast-path call of one entry point, served again without rebuilding its key.

    Right after a compiled solve every host-side Python operation runs several times slower
    than in isolation (measured on a shared 2-core CPU: ~10 us instead of ~1 us each, the XLA
    worker threads still competing for the cores), so a repeat of the very same call (same
    problem object, solver, options and save-time object) is served by a few identity checks.
    Only immutable inputs qualify: y0, every params leaf and the save times must be jax arrays
    (NumPy arrays may be mutated in place between calls and take the keyed path, which checks
    their values). The params leaves are compared again on every call, since a params dict
    inside the (frozen) problem can be mutated.
    """

    __slots__ = ("_call", "_result")

    def __init__(self):
        self._call: tuple | None = None
        self._result: Any = None

    def repeat(self, same: tuple, options: tuple, tree):
        """The result remembered for this exact call, or None.

        Args:
            same: objects that must be the very ones of the remembered call (the problem, the
                solver, the save times, ...).
            options: numbers that must equal the remembered ones.
            tree: arrays (pytree) whose structure must equal the remembered one (a dict inside
                a frozen problem can still be changed in place) and whose leaves must be the
                very remembered arrays.
        """
        call = self._call
        if call is None:
            return None
        held_same, held_options, held_leaves, held_treedef = call
        for x, held in zip(same, held_same, strict=True):
            if x is not held:
                return None
        if options != held_options:
            return None
        leaves, treedef = jax.tree_util.tree_flatten(tree)
        if treedef != held_treedef:
            return None
        for x, held in zip(leaves, held_leaves, strict=True):  # same structure: same length
            if x is not held:
                return None
        return self._result

    def remember(self, same: tuple, options: tuple, tree, immutable: bool, result) -> None:
        """Keep this call (`tree`: as for `repeat`, its arrays all found finite) when all its
        inputs are `immutable`; otherwise forget the last call."""
        leaves, treedef = jax.tree_util.tree_flatten(tree)
        if immutable and all(
            isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer) for x in leaves
        ):
            self._call = (same, options, leaves, treedef)
            self._result = result
        else:
            self._call = self._result = None


def _cache_put(cache: dict, key, value) -> None:
    if len(cache) >= FAST_CACHE_SIZE:
        cache.clear()
    cache[key] = value


def check_once_per_structure(tag: str, check, vector_field, t0, t1, y0, params) -> None:
    """Run `check()` (a host-side check that depends only on shapes and dtypes, such as
    tracing the vector field) once per `tag` and `input_key` of (y0, params); every call when
    the structure is unhashable."""
    try:
        key = (tag, input_key(vector_field, t0, t1, y0, params)[0])
        seen = key in _checked_once
    except (TypeError, ValueError):
        check()
        return
    if seen:
        return
    check()
    if len(_checked_once) > 4 * FAST_CACHE_SIZE:
        _checked_once.clear()
    _checked_once.add(key)


def constant_array(shape: tuple, value, dtype) -> Array:
    """A device array filled with `value`, cached (jax arrays are immutable, so one array can
    serve every call; building it costs a dispatch each time, ~10 us)."""
    key = (shape, value, np.dtype(dtype).str)
    out = _constants.get(key)
    if out is None:
        out = device_constant(np.full(shape, value, dtype))
        _cache_put(_constants, key, out)
    return out


def output_save_times(t0: float, t1: float, saveat, dtype) -> Array:
    """The checked save times on the device (`device_save_times`), or `[t1]` when `saveat` is
    None, in `dtype`."""
    if saveat is None:
        return constant_array((1,), t1, dtype)
    return device_save_times(t0, t1, saveat, dtype)


_UNSEEN = (None, None)


def build_module(cls, **fields):
    """`cls(**fields)` for an `eqx.Module` whose fields are all arrays (no static fields,
    converters or checks), built by unflattening its cached tree structure: ~4 us instead of
    the ~60 us of equinox's `__init__` for six fields, which a repeated ensemble call pays."""
    known = _module_trees.get(cls, _UNSEEN)
    if known is _UNSEEN:
        obj = cls(**fields)
        leaves, treedef = jax.tree_util.tree_flatten(obj)
        names = tuple(f.name for f in dataclasses.fields(cls))
        plain = len(leaves) == len(names) and all(
            leaf is fields[name] for leaf, name in zip(leaves, names, strict=True)
        )
        _module_trees[cls] = (treedef, names) if plain else None
        return obj
    if known is None or not all(isinstance(v, jax.Array) for v in fields.values()):
        return cls(**fields)
    treedef, names = known
    return jax.tree_util.tree_unflatten(treedef, [fields[name] for name in names])


def memo_on_save_times(key: tuple, saveat, compute):
    """`compute(save_ts)` with `save_ts` the save times as a NumPy array (or None), cached per
    `key` (everything else it depends on) and save-time array: a jax array by identity, a
    NumPy array by content. For host-side plans that depend on nothing else."""
    if saveat is None:
        out = _plans.get(key)
        if out is None:
            out = compute(None)
            _cache_put(_plans, key, out)
        return out
    if isinstance(saveat, jax.Array) and not isinstance(saveat, jax.core.Tracer):
        out = _plans_of.get(saveat, key)
        if out is None:
            out = compute(np.asarray(saveat))
            _plans_of.put(saveat, out, key)
        return out
    if isinstance(saveat, np.ndarray) and saveat.size <= 4096:
        full = (*key, saveat.dtype.str, saveat.shape, saveat.tobytes())
        out = _plans.get(full)
        if out is None:
            out = compute(saveat.copy())
            _cache_put(_plans, full, out)
        return out
    return compute(np.asarray(saveat))


# Per-configuration caches of the fast paths (bounded by FAST_CACHE_SIZE where they grow).
# input_key -> the arrays last found finite for it (`checked_arrays`).
_validated: dict[tuple, tuple] = {}
_device_ts: dict[tuple, Array] = {}
_device_ts_of = IdentityCache()
NOT_REMEMBERED = object()
_validate_last = LastCall()
_checked_once: set[tuple] = set()
_constants: dict[tuple, Array] = {}
_module_trees: dict[type, tuple | None] = {}
_plans: dict[tuple, Any] = {}
_plans_of = IdentityCache()
