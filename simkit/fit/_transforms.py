"""Parameter transforms: bounded / positive parameters mapped to an unconstrained vector.

The optimiser works on an unconstrained flat vector `u` (shape `(p,)`); the user's parameters are
`x = T(u)`, element by element:

| bounds          | x = T(u)                          | u = T^-1(x)                       |
|-----------------|-----------------------------------|-----------------------------------|
| none            | u                                 | x                                 |
| lower lo        | lo + exp(u)  (log transform)      | log(x - lo)                       |
| upper hi        | hi - exp(u)                       | log(hi - x)                       |
| both lo < hi    | lo + (hi - lo) * sigmoid(u)       | logit((x - lo) / (hi - lo))       |

Positivity is `(0, None)`: the classic log transform of rate constants, which also makes the
optimiser scale-invariant in that parameter. Starting values must lie strictly inside their bounds.

Covariance is reported in the user's (constrained) space. By the delta method,
`cov_x = D cov_u D` with `D = diag(dx/du)`; because the residual Jacobians obey `J_u = J_x D`, this
is exactly `s^2 (J_x^T J_x)^-1`, which is what `simkit.fit` evaluates (it stays finite even when a
sigmoid saturates near a bound, where `D -> 0` and `cov_u` blows up).
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PyTree

from .._checks import SimkitInputError

_NONE, _LOWER, _UPPER, _BOTH = 0, 1, 2, 3


def _is_bound_leaf(b: Any) -> bool:
    """A bounds leaf is None or a 2-tuple of (None | number | array)."""
    if b is None:
        return True
    if isinstance(b, tuple) and len(b) == 2:
        return all(
            e is None or isinstance(e, (int, float, np.ndarray, np.generic, jax.Array)) for e in b
        )
    return False


def leaf_names(params: PyTree) -> tuple[str, ...]:
    """Names of the flat parameter vector's entries, in `ravel_pytree` order, e.g. `['k'][1]`."""
    names = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        base = jax.tree_util.keystr(path) or "params"
        size = int(np.size(leaf))
        if np.ndim(leaf) == 0:
            names.append(base)
        else:
            names.extend(f"{base}[{i}]" for i in range(size))
    return tuple(names)


class ParamTransform(eqx.Module):
    """Elementwise bijection between unconstrained `u` `(p,)` and the user's flat params `(p,)`.

    Build it with `ParamTransform.build(params0, bounds)`; `to_params(u)` returns the user's
    pytree, `to_unconstrained(params)` the vector `u`.

    Example:
        >>> tr = ParamTransform.build({"a": 1.0, "k": 2.0}, {"a": None, "k": (0.0, None)})
        >>> u = tr.to_unconstrained({"a": 1.0, "k": 2.0})  # (2,): k enters as log(k)
        >>> tr.to_params(u)["k"]  # 2.0
    """

    # numpy arrays as built by `build`, jax arrays once passed through jit/vmap
    kind: Array | np.ndarray  # (p,) int: 0 none, 1 lower, 2 upper, 3 both
    lower: Array | np.ndarray  # (p,) float, -inf where absent
    upper: Array | np.ndarray  # (p,) float, +inf where absent
    treedef: Any = eqx.field(static=True)
    shapes: tuple[tuple[int, ...], ...] = eqx.field(static=True)
    dtypes: tuple[Any, ...] = eqx.field(static=True)
    names: tuple[str, ...] = eqx.field(static=True)

    @classmethod
    def build(cls, params0: PyTree, bounds: PyTree | None) -> "ParamTransform":
        """Validate `bounds` against `params0` and build the transform.

        Args:
            params0: the starting parameters (pytree of float arrays).
            bounds: None, or a pytree with the structure of `params0` (or a prefix of it) whose
                leaves are `(lower, upper)` pairs; either side may be None (unbounded), and each
                side is a number or an array broadcastable to the parameter leaf. `(0, None)`
                means positive.

        Raises:
            SimkitInputError: bounds with lower >= upper, NaN bounds, or a starting value that is
                not strictly inside its bounds (the message names the parameter).
        """
        flat0, treedef, shapes, dtypes = ravel_host(params0)
        names = leaf_names(params0)
        p = int(flat0.shape[0])
        if bounds is None:
            lo = np.full(p, -np.inf)
            hi = np.full(p, np.inf)
        else:
            try:
                pairs = jax.tree_util.tree_map(
                    lambda b, leaf: _broadcast_bound(b, leaf),
                    bounds,
                    params0,
                    is_leaf=_is_bound_leaf,
                )
            except ValueError as exc:
                raise SimkitInputError(
                    "bounds must have the structure of params (or a prefix of it) with "
                    f"(lower, upper) pairs as leaves; could not match them: {exc}"
                ) from None
            lo_tree = jax.tree_util.tree_map(lambda b: b[0], pairs, is_leaf=_is_pair)
            hi_tree = jax.tree_util.tree_map(lambda b: b[1], pairs, is_leaf=_is_pair)
            lo = np.concatenate([np.ravel(x) for x in _expand(lo_tree, params0)] or [np.zeros(0)])
            hi = np.concatenate([np.ravel(x) for x in _expand(hi_tree, params0)] or [np.zeros(0)])
        if np.any(np.isnan(lo)) or np.any(np.isnan(hi)):
            raise SimkitInputError("bounds contain NaN; use None (or +-inf) for an open side.")
        for i, name in enumerate(names):
            if not lo[i] < hi[i]:
                raise SimkitInputError(
                    f"parameter {name}: lower bound {lo[i]} must be < upper bound {hi[i]}."
                )
        check_start(names, lo, hi, flat0)
        kind = np.isfinite(lo).astype(np.int32) + 2 * np.isfinite(hi).astype(np.int32)
        dtype = flat0.dtype
        return cls(
            np.asarray(kind),
            np.asarray(lo, dtype=dtype),
            np.asarray(hi, dtype=dtype),
            treedef,
            shapes,
            dtypes,
            names,
        )

    @property
    def size(self) -> int:
        """Number of flat parameters `p`."""
        return len(self.names)

    def to_flat(self, u: Float[Array, " p"]) -> Float[Array, " p"]:
        """Constrained flat parameters x = T(u)."""
        k, lo, hi = self.kind, self.lower, self.upper
        # Each branch sees safe inputs so that no NaN/inf leaks into the selected gradient: the
        # exponential is taken of u only where a one-sided bound uses it (of 0 elsewhere), so an
        # unbounded u = 1000 does not overflow exp(u) in the unused branch, whose zero cotangent
        # times inf would be NaN in reverse mode.
        lo_s = jnp.where(jnp.isfinite(lo), lo, 0.0)
        hi_s = jnp.where(jnp.isfinite(hi), hi, 0.0)
        e = jnp.exp(jnp.where((k == _LOWER) | (k == _UPPER), u, 0.0))
        x_low = lo_s + e
        x_up = hi_s - e
        x_both = lo_s + (hi_s - lo_s) * jax.nn.sigmoid(jnp.where(k == _BOTH, u, 0.0))
        return jnp.where(
            k == _NONE, u, jnp.where(k == _LOWER, x_low, jnp.where(k == _UPPER, x_up, x_both))
        )

    def from_flat(self, x: Float[Array, " p"]) -> Float[Array, " p"]:
        """Unconstrained u = T^-1(x) (x strictly inside the bounds)."""
        k, lo, hi = self.kind, self.lower, self.upper
        lo_s = jnp.where(jnp.isfinite(lo), lo, 0.0)
        hi_s = jnp.where(jnp.isfinite(hi), hi, 1.0)
        width = jnp.where(k == _BOTH, hi_s - lo_s, 1.0)
        safe_low = jnp.where(k == _LOWER, x - lo_s, 1.0)
        safe_up = jnp.where(k == _UPPER, hi_s - x, 1.0)
        frac = jnp.where(k == _BOTH, (x - lo_s) / width, 0.5)
        return jnp.where(
            k == _NONE,
            x,
            jnp.where(
                k == _LOWER,
                jnp.log(safe_low),
                jnp.where(k == _UPPER, jnp.log(safe_up), jnp.log(frac) - jnp.log1p(-frac)),
            ),
        )

    def derivative(self, u: Float[Array, " p"]) -> Float[Array, " p"]:
        """dx/du elementwise (the diagonal of the delta-method matrix D)."""
        return jax.jvp(self.to_flat, (u,), (jnp.ones_like(u),))[1]

    def unravel(self, flat: Float[Array, " p"]) -> PyTree:
        """Split a flat vector `(p,)` back into the parameter pytree (leaf dtypes restored)."""
        leaves, start = [], 0
        for shape, dtype in zip(self.shapes, self.dtypes, strict=False):
            size = int(np.prod(shape, dtype=np.int64))
            leaves.append(jnp.reshape(flat[start : start + size], shape).astype(dtype))
            start += size
        return jax.tree_util.tree_unflatten(self.treedef, leaves)

    def to_params(self, u: Float[Array, " p"]) -> PyTree:
        """The user's parameter pytree from unconstrained `u` `(p,)`."""
        return self.unravel(self.to_flat(u))

    def to_unconstrained(self, params: PyTree) -> Float[Array, " p"]:
        """Unconstrained `u` `(p,)` of a parameter pytree strictly inside the bounds."""
        return self.from_flat(ravel(params)[0])


def check_start(names: tuple[str, ...], lo: np.ndarray, hi: np.ndarray, x0: np.ndarray) -> None:
    """Raise `SimkitInputError` naming the first flat parameter not strictly inside its bounds."""
    inside = (x0 > lo) & (x0 < hi)
    if not np.all(inside):
        i = int(np.flatnonzero(~inside)[0])
        raise SimkitInputError(
            f"parameter {names[i]} starts at {float(x0[i])!r}, outside its open bounds "
            f"({lo[i]}, {hi[i]}); start strictly inside the bounds."
        )


def ravel_host(params: PyTree):
    """`ravel` on the host with numpy (no device dispatch).

    Returns:
        (flat `(p,)`, treedef, shapes, dtypes)
    """
    leaves, treedef = jax.tree_util.tree_flatten(params)
    if not leaves:
        raise SimkitInputError("params has no array leaves: there is nothing to fit.")
    arrays = [np.asarray(x) for x in leaves]
    dtypes = tuple(np.dtype(jax.dtypes.canonicalize_dtype(a.dtype)) for a in arrays)
    shapes = tuple(tuple(a.shape) for a in arrays)
    dtype = np.result_type(*dtypes)
    flat = np.concatenate([np.ravel(a).astype(dtype) for a in arrays])
    return flat, treedef, shapes, dtypes


def ravel(params: PyTree):
    """Flatten a pytree of arrays to `(p,)` (common float dtype); returns the metadata to undo it.

    Unlike `jax.flatten_util.ravel_pytree` the metadata is hashable (treedef, shapes, dtypes), so
    jitted fits with the same parameter layout share one compilation.
    """
    leaves, treedef = jax.tree_util.tree_flatten(params)
    arrays = [jnp.asarray(x) for x in leaves]
    shapes = tuple(tuple(a.shape) for a in arrays)
    dtypes = tuple(a.dtype for a in arrays)
    if not arrays:
        raise SimkitInputError("params has no array leaves: there is nothing to fit.")
    dtype = jnp.result_type(*dtypes)
    flat = jnp.concatenate([jnp.ravel(a).astype(dtype) for a in arrays])
    return flat, treedef, shapes, dtypes


def _is_pair(b: Any) -> bool:
    return isinstance(b, tuple) and len(b) == 2 and all(isinstance(e, np.ndarray) for e in b)


def _broadcast_bound(b: Any, leaf_or_subtree: PyTree):
    """Turn one bounds leaf into a subtree of (lo, hi) numpy pairs matching `leaf_or_subtree`."""

    def one(leaf):
        shape = np.shape(leaf)
        if b is None:
            return (np.full(shape, -np.inf), np.full(shape, np.inf))
        lo = -np.inf if b[0] is None else np.asarray(b[0], dtype=np.float64)
        hi = np.inf if b[1] is None else np.asarray(b[1], dtype=np.float64)
        try:
            return (np.broadcast_to(lo, shape).copy(), np.broadcast_to(hi, shape).copy())
        except ValueError:
            raise SimkitInputError(
                f"bounds {b!r} cannot be broadcast to a parameter of shape {shape}."
            ) from None

    return jax.tree_util.tree_map(one, leaf_or_subtree)


def _expand(tree: PyTree, params0: PyTree) -> list[np.ndarray]:
    """Leaves of a bounds tree (already expanded to the params structure) in params order."""
    leaves = jax.tree_util.tree_leaves(tree)
    n_params = len(jax.tree_util.tree_leaves(params0))
    if len(leaves) != n_params:
        raise SimkitInputError(
            f"bounds expand to {len(leaves)} leaves but params has {n_params}; give one "
            "(lower, upper) pair per parameter leaf (or per subtree)."
        )
    return leaves
