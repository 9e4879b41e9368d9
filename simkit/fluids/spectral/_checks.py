"""Input checks shared by the 2-D and 3-D spectral solvers (one message per mistake, the same in
both)."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.core
import numpy as np

from ..._checks import SimkitInputError

MIN_POINTS = 8  # per axis: the 2/3 rule keeps |m| < n / 3, so 8 points keep modes |m| <= 2
_WORDS = {2: ("two", "(nx, ny)", "(Lx, Ly)"), 3: ("three", "(nx, ny, nz)", "(Lx, Ly, Lz)")}


def check_grid(shape: Any, box: Any, d: int) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """`(shape, box)` of a d-dimensional periodic grid as int and float tuples, or a
    `SimkitInputError` naming what is wrong (non-integer sizes, fewer than `MIN_POINTS`, a box
    of the wrong length or with non-positive lengths)."""
    count, axes, lengths = _WORDS[d]
    try:
        entries = tuple(shape)
    except TypeError:
        entries = ()
    if len(entries) != d or not all(
        isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in entries
    ):
        raise SimkitInputError(f"shape must be {count} integers {axes}, got {shape!r}.")
    shape = tuple(int(n) for n in entries)
    if any(n < MIN_POINTS for n in shape):
        raise SimkitInputError(
            f"every axis needs at least {MIN_POINTS} points (the resolution), got shape "
            f"{shape}; the 2/3 dealiasing rule keeps only |m| < n / 3 of them."
        )
    try:
        box = tuple(float(b) for b in box)
        if len(box) != d:
            raise TypeError
    except (TypeError, ValueError):
        raise SimkitInputError(f"box must be {count} lengths {lengths}, got {box!r}.") from None
    if not all(math.isfinite(b) and b > 0 for b in box):
        raise SimkitInputError(f"box lengths must be finite and > 0, got {box}.")
    return shape, box


def check_dt(dt: Any) -> float:
    """The time step as a float > 0, or a `SimkitInputError`."""
    value = real_number(dt)
    if value is None:
        raise SimkitInputError(f"dt must be a number, got {dt!r}.")
    if not (math.isfinite(value) and value > 0):
        raise SimkitInputError(f"dt must be finite and > 0, got {dt!r}.")
    return value


def check_dtype(dtype: Any) -> str:
    """ "float32" or "float64", or a `SimkitInputError`."""
    try:
        name = None if dtype is None else str(np.dtype(dtype))
    except TypeError:
        name = None
    if name not in ("float32", "float64"):
        raise SimkitInputError(f"dtype must be float32 or float64, got {dtype!r}.")
    return name


def round_down(x: float, digits: int = 3) -> float:
    """`x` > 0 to `digits` significant digits, rounded down (a suggested dt must pass)."""
    unit = 10.0 ** (math.floor(math.log10(x)) - digits + 1)
    r = float(f"{x:.{digits}g}")
    return r if r <= x else float(f"{r - unit:.{digits}g}")


def real_number(value: Any) -> float | None:
    """`float(value)` for a real scalar (Python, numpy or a concrete 0-d array), else None
    (bools, strings, complex numbers, arrays with more than one element, tracers)."""
    if isinstance(value, (bool, np.bool_, str, bytes, jax.core.Tracer)):
        return None
    if np.ndim(value) != 0 or np.iscomplexobj(value):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
