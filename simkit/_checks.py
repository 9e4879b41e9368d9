"""Input validation shared by every solver family.

Checks here run on the host, before anything is compiled, so a user learns about a bad input in
milliseconds instead of after a long compile and a NaN-filled run. Every message says what was
wrong, the value seen, and what to do instead.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.core
import numpy as np


class SimkitInputError(ValueError):
    """A user input is invalid. The message names the input, the value seen and the fix."""


def require_positive(name: str, value: Any, *, integer: bool = False) -> None:
    """Raise `SimkitInputError` unless `value` is a finite number > 0 (an int if `integer`).

    Example:
        >>> require_positive("dt", 0.01)
        >>> require_positive("n_steps", 10.0, integer=True)  # raises: must be a positive integer
    """
    if integer:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise SimkitInputError(f"{name} must be a positive integer, got {value!r}.")
    else:
        try:
            value_f = float(value)
        except (TypeError, ValueError):
            raise SimkitInputError(f"{name} must be a positive number, got {value!r}.") from None
        if not math.isfinite(value_f):
            raise SimkitInputError(f"{name} must be finite, got {value!r}.")
    if value <= 0:
        raise SimkitInputError(f"{name} must be > 0, got {value!r}.")


def require_finite(name: str, tree: Any) -> None:
    """Raise `SimkitInputError` if any array leaf of `tree` holds NaN or inf.

    Only concrete (non-traced) leaves are checked; under `jit` the check is skipped, since the
    driver and the public entry points call this before tracing.

    Example:
        >>> require_finite("params", {"k": jnp.array([1.0, jnp.nan])})  # raises, naming params['k']
    """
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    for path, leaf in leaves:
        if isinstance(leaf, jax.core.Tracer):
            continue
        if hasattr(leaf, "dtype") and jax.numpy.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            continue  # PRNG keys have no NaN
        if isinstance(leaf, (float, int, np.ndarray, np.generic, jax.Array)):
            arr = np.asarray(leaf)
            if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
                where = jax.tree_util.keystr(path) or "(the array itself)"
                n_bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
                raise SimkitInputError(
                    f"{name}{where} contains {n_bad} NaN/inf value(s); all inputs must be finite."
                )


def require_time_span(t0: Any, t1: Any) -> None:
    """Raise `SimkitInputError` unless t0 < t1, both finite."""
    for nm, v in (("t0", t0), ("t1", t1)):
        if not math.isfinite(float(v)):
            raise SimkitInputError(f"{nm} must be finite, got {v!r}.")
    if not float(t1) > float(t0):
        raise SimkitInputError(f"t1 must be greater than t0, got t0={t0!r}, t1={t1!r}.")
