"""Host-side checks of a fitting problem and the weighted residual function shared by all fits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PyTree

from .._checks import SimkitInputError, require_finite, require_positive
from ._transforms import ParamTransform

Model = Callable[..., PyTree]


def require_x64() -> None:
    """Fitting needs float64 (covariances from `J^T J` lose half the digits): insist on it."""
    if not jax.config.jax_enable_x64:
        raise SimkitInputError(
            "simkit.fit needs float64: J^T J squares the condition number, so float32 fits give "
            "unreliable covariances. Call jax.config.update('jax_enable_x64', True) at start-up "
            "(or set JAX_ENABLE_X64=1)."
        )


def require_float_tree(name: str, tree: PyTree) -> None:
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    if not leaves:
        raise SimkitInputError(f"{name} has no array leaves.")
    for path, leaf in leaves:
        dtype = leaf.dtype if hasattr(leaf, "dtype") else np.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise SimkitInputError(
                f"{name}{jax.tree_util.keystr(path)} must be floating point, got dtype {dtype}; "
                "pass e.g. 1.0 instead of 1."
            )
    require_finite(name, tree)


def require_step_limit(name: str, value) -> None:
    """A positive integer below 2**31: step counters are int32 (a larger limit would wrap)."""
    require_positive(name, value, integer=True)
    if value >= 2**31:
        raise SimkitInputError(
            f"{name} must be < 2**31 (step counters are 32-bit), got {value!r}; a limit that "
            "large never stops a fit anyway: use e.g. 10**6."
        )


def call_model(model: Model, params: PyTree, args: Any, has_args: bool) -> PyTree:
    return model(params, args) if has_args else model(params)


def _struct(tree: PyTree) -> PyTree:
    """Shapes and dtypes of the array-like leaves; other leaves (functions, strings, static
    configuration in `args`) are kept as they are: they are passed to the model unchanged."""

    def one(x):
        if not eqx.is_array_like(x):
            return x
        return jax.ShapeDtypeStruct(
            np.shape(x),
            jax.dtypes.canonicalize_dtype(
                np.result_type(x) if not hasattr(x, "dtype") else x.dtype
            ),
        )

    return jax.tree_util.tree_map(one, tree)


def _struct_key(tree: PyTree):
    """Hashable key of a `_struct` tree (raises TypeError for an unhashable static leaf)."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    key = tuple(
        (tuple(x.shape), str(x.dtype)) if isinstance(x, jax.ShapeDtypeStruct) else ("static", x)
        for x in leaves
    )
    hash(key)
    return treedef, key


def eval_shape_static(fn: Callable, *trees: PyTree) -> PyTree:
    """`jax.eval_shape(fn, *trees)` where the trees may hold non-array leaves (e.g. a function
    in `args`): those are closed over, only the `ShapeDtypeStruct`/array leaves are traced."""
    is_struct = lambda x: isinstance(x, jax.ShapeDtypeStruct) or eqx.is_array_like(x)  # noqa: E731
    dyn, static = eqx.partition(trees, is_struct)
    return jax.eval_shape(lambda d: fn(*eqx.combine(d, static)), dyn)


_CHECKED: dict = {}


def check_model_output(
    model: Model, params: PyTree, args: Any, has_args: bool, data_struct: PyTree
) -> None:
    """Trace `model` once (no compute) and compare its output structure/shapes with the data's.

    Successful checks are remembered per (model, input and data layouts), so a Python loop of
    fits with one model traces it once, not once per fit.

    Args:
        data_struct: a pytree of `jax.ShapeDtypeStruct` describing ONE fit's data.
    """
    p_struct, a_struct = _struct(params), _struct(args)
    try:
        key = (
            model,
            has_args,
            _struct_key(p_struct),
            _struct_key(a_struct),
            _struct_key(data_struct),
        )
        hash(key)
    except TypeError:  # unhashable model (rare): just check every time
        key = None
    if key is not None and key in _CHECKED:
        return
    _check_model_output(model, p_struct, a_struct, has_args, data_struct)
    if key is not None:
        if len(_CHECKED) > 256:
            _CHECKED.clear()
        _CHECKED[key] = True


def _check_model_output(model, params, args, has_args, data_struct) -> None:
    try:
        out = eval_shape_static(lambda p, a: call_model(model, p, a, has_args), params, args)
    except Exception as exc:  # the user's function failed to trace: say where
        call = "model(params, args)" if has_args else "model(params)"
        raise SimkitInputError(
            f"{call} failed to evaluate at the start parameters: {type(exc).__name__}: {exc}"
        ) from exc
    out_leaves, out_def = jax.tree_util.tree_flatten(out)
    data_leaves, data_def = jax.tree_util.tree_flatten(data_struct)
    if out_def != data_def:
        raise SimkitInputError(
            f"model output structure {out_def} does not match the data structure {data_def}; "
            "return predictions shaped exactly like the data."
        )
    for i, (o, d) in enumerate(zip(out_leaves, data_leaves, strict=False)):
        if tuple(o.shape) != tuple(d.shape):
            where = "" if len(out_leaves) == 1 else f" (leaf {i})"
            raise SimkitInputError(
                f"model output shape {tuple(o.shape)} does not match data shape "
                f"{tuple(d.shape)}{where}; the model must predict every data point, in the same "
                "layout (e.g. (n_times, n_observables))."
            )


def inverse_sigma(sigma: PyTree | None, data: PyTree, *, batch_axes: int = 0) -> PyTree | None:
    """Validate sigma against the data and return 1/sigma broadcast to each data leaf.

    sigma is None (unit weights), a positive scalar, or a pytree like `data` whose leaves are
    scalars or arrays of the data leaf's shape (`batch_axes` leading axes are allowed to be
    present on the data only, meaning sigma is shared by every member of a batch).
    """
    if sigma is None:
        return None
    data_leaves, data_def = jax.tree_util.tree_flatten(data)
    if np.ndim(sigma) == 0 and not isinstance(sigma, (dict, list, tuple)):
        sig_leaves = [sigma] * len(data_leaves)
    else:
        sig_leaves, sig_def = jax.tree_util.tree_flatten(sigma)
        if sig_def != data_def:
            raise SimkitInputError(
                f"sigma structure {sig_def} does not match the data structure {data_def}."
            )
    out = []
    for s, d in zip(sig_leaves, data_leaves, strict=False):
        s = np.asarray(s)
        d_shape = tuple(np.shape(d))
        allowed = {(), d_shape, d_shape[batch_axes:]}
        if tuple(s.shape) not in allowed:
            raise SimkitInputError(
                f"sigma shape {tuple(s.shape)} does not match data shape {d_shape}; give a "
                "scalar or one sigma per data point."
            )
        if not np.issubdtype(s.dtype, np.floating):
            s = s.astype(np.float64)
        if not np.all(np.isfinite(s)) or not np.all(s > 0):
            raise SimkitInputError(
                f"sigma must be finite and > 0 everywhere, got min {float(np.min(s))!r}; use a "
                "large sigma (not 0 or inf) to down-weight a point."
            )
        out.append(1.0 / s)  # numpy on the host: no device dispatch per fit
    return jax.tree_util.tree_unflatten(data_def, out)


def weighted_residual(
    model: Model,
    has_args: bool,
    transform: ParamTransform,
    u: Float[Array, " p"],
    data: PyTree,
    inv_sigma: PyTree | None,
    args: Any,
) -> Float[Array, " m"]:
    """Flat weighted residuals `(model(T(u)) - data) / sigma`, shape `(m,)`."""
    pred = call_model(model, transform.to_params(u), args, has_args)
    return flat_weighted_residual(pred, data, inv_sigma)


def flat_weighted_residual(pred: PyTree, data: PyTree, inv_sigma: PyTree | None):
    diff = jax.tree_util.tree_map(lambda a, b: a - b, pred, data)
    if inv_sigma is not None:
        diff = jax.tree_util.tree_map(lambda a, w: a * w, diff, inv_sigma)
    return jnp.concatenate([jnp.ravel(x) for x in jax.tree_util.tree_leaves(diff)])


def member_struct(tree: PyTree, batch_axes: int) -> PyTree:
    """ShapeDtypeStruct of one member (dropping `batch_axes` leading axes)."""
    return jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(tuple(np.shape(x))[batch_axes:], jnp.asarray(x).dtype), tree
    )
