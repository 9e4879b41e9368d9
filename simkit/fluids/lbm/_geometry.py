"""Solid masks from simple shapes (boolean arrays over the grid, axis 0 = x).

Cell (i, j[, k]) has its centre at (i, j[, k]) in lattice units. Halfway bounce-back puts the
wall surface half a cell outside the outermost fluid cells.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..._checks import SimkitInputError

SIDES = ("x-", "x+", "y-", "y+", "z-", "z+")


def parse_side(side: str, ndim: int) -> tuple[int, int]:
    """`"x-"` -> (axis 0, end -1); `"y+"` -> (axis 1, end +1). Refuses unknown sides."""
    if side not in SIDES[: 2 * ndim]:
        raise SimkitInputError(
            f"unknown side {side!r} for a {ndim}-D grid; use one of {', '.join(SIDES[: 2 * ndim])}."
        )
    return "xyz".index(side[0]), (-1 if side[1] == "-" else 1)


def face(shape: Sequence[int], side: str, thickness: int = 1) -> np.ndarray:
    """Mask of the `thickness` outermost cell layers on `side` ("x-", "x+", "y-", ...).

    Example:
        >>> lid = face((66, 66), "y+")  # bool (66, 66), True on the top row
    """
    shape = tuple(int(n) for n in shape)
    axis, end = parse_side(side, len(shape))
    mask = np.zeros(shape, bool)
    index = [slice(None)] * len(shape)
    index[axis] = slice(0, thickness) if end < 0 else slice(shape[axis] - thickness, None)
    mask[tuple(index)] = True
    return mask


def box_walls(shape: Sequence[int], sides: Sequence[str] | None = None) -> np.ndarray:
    """Mask of one-cell-thick walls on the given sides (default: every side of the grid).

    Example (a channel along x: walls at the bottom and the top only):
        >>> walls = box_walls((256, 34), sides=("y-", "y+"))
    """
    shape = tuple(int(n) for n in shape)
    sides = SIDES[: 2 * len(shape)] if sides is None else tuple(sides)
    mask = np.zeros(shape, bool)
    for side in sides:
        mask |= face(shape, side)
    return mask


def box(shape: Sequence[int], lower: Sequence[float], upper: Sequence[float]) -> np.ndarray:
    """Mask of the cells whose centres lie in the box `lower <= x <= upper` (lattice units).

    Example (a square obstacle of 8 x 8 cells):
        >>> obstacle = box((128, 64), lower=(20, 28), upper=(27, 35))
    """
    shape = tuple(int(n) for n in shape)
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    mask = np.ones(shape, bool)
    for g, lo, hi in zip(grids, lower, upper, strict=True):
        mask &= (g >= lo) & (g <= hi)
    return mask


def cylinder(shape: Sequence[int], center: Sequence[float], radius: float) -> np.ndarray:
    """Mask of the cells whose centres lie within `radius` of `center` (2-D: a disc; 3-D: a
    cylinder along z through `center = (x, y)`). Lattice units.

    Example (the cylinder of a wake benchmark, diameter 20 cells):
        >>> obstacle = cylinder((400, 82), center=(40.0, 40.5), radius=10.0)
    """
    shape = tuple(int(n) for n in shape)
    if not radius > 0:
        raise SimkitInputError(f"cylinder radius must be > 0, got {radius}.")
    x, y = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    disc = (x - center[0]) ** 2 + (y - center[1]) ** 2 <= radius**2
    if len(shape) == 2:
        return disc
    return np.broadcast_to(disc[:, :, None], shape).copy()


def sphere(shape: Sequence[int], center: Sequence[float], radius: float) -> np.ndarray:
    """Mask of the cells whose centres lie within `radius` of `center` (3-D; in 2-D a disc).

    Example:
        >>> ball = sphere((64, 64, 64), center=(31.5, 31.5, 31.5), radius=8.0)
    """
    shape = tuple(int(n) for n in shape)
    if not radius > 0:
        raise SimkitInputError(f"sphere radius must be > 0, got {radius}.")
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    r2 = sum((g - c) ** 2 for g, c in zip(grids, center, strict=True))
    return np.asarray(r2 <= radius**2)
