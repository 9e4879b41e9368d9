"""Attribute encoding shared by every HDF5 writer: JSON for nested settings, fingerprints."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np


def to_jsonable(value: Any) -> Any:
    """Convert numpy/jax scalars and arrays (and nested dicts/lists) to plain JSON types."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "__array__") and not isinstance(value, (str, bytes)):
        arr = np.asarray(value)
        return arr.item() if arr.ndim == 0 else arr.tolist()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def fingerprint(config: dict) -> str:
    """Stable short hash of a JSON-able configuration (key order does not matter).

    Example:
        >>> fingerprint({"dt": 0.01, "n": 8}) == fingerprint({"n": 8, "dt": 0.01})
        True
    """
    blob = json.dumps(to_jsonable(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def config_difference(stored: dict, requested: dict) -> list[str]:
    """Human-readable list of settings that differ between two configurations."""
    stored, requested = to_jsonable(stored), to_jsonable(requested)
    diffs = []
    for key in sorted(set(stored) | set(requested)):
        a, b = stored.get(key, "<absent>"), requested.get(key, "<absent>")
        if a != b:
            if (
                isinstance(a, list)
                and isinstance(b, list)
                and all(isinstance(x, str) for x in a + b)
            ):  # pytree structures: name the keys
                diffs.append(f"{key}: {structure_difference(a, b)}")
            else:
                diffs.append(f"{key}: file has {a!r}, this run has {b!r}")
    return diffs


def structure_difference(stored: list[str], requested: list[str]) -> str:
    """What differs between two lists of pytree paths, e.g. "the file has ['rho'] which this
    run lacks; this run has ['r'] which the file lacks"."""
    missing = [p for p in stored if p not in requested]
    unexpected = [p for p in requested if p not in stored]
    parts = []
    if missing:
        parts.append("the file has " + ", ".join(missing) + " which this run lacks")
    if unexpected:
        parts.append("this run has " + ", ".join(unexpected) + " which the file lacks")
    return "; ".join(parts) or "the same entries in another order"


def write_attrs(obj, attrs: dict) -> None:
    """Write attributes to an h5py object: scalars/strings as is, everything else as JSON text."""
    for key, value in attrs.items():
        value = to_jsonable(value)
        if isinstance(value, (str, int, float, bool)):
            obj.attrs[key] = value
        elif value is None:
            obj.attrs[key] = "None"
        elif isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
            obj.attrs[key] = np.asarray(value)
        else:
            obj.attrs[key] = json.dumps(value, sort_keys=True)
