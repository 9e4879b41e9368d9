"""Space: periodic (orthorhombic) and free boundaries, minimum-image displacements, wrapping.

Every function here is pure and differentiable in `positions` and `box`. `box` is the array of
edge lengths `(D,)` of an orthorhombic periodic cell (reduced length units), or `None` for free
boundaries (no images).
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float, Int


def displacement(
    ri: Float[Array, "... D"], rj: Float[Array, "... D"], box: Float[Array, " D"] | None
) -> Float[Array, "... D"]:
    """Minimum-image displacement `ri - rj` (length units).

    With a periodic `box` each component is folded into `[-L/2, L/2]`, which is the true minimum
    image for orthorhombic cells. With `box=None` (free space) it is the plain difference.
    The gradient is 1 (resp. -1) almost everywhere, so forces by autodiff are exact.

    Example:
        >>> box = jnp.array([10.0, 10.0, 10.0])
        >>> displacement(jnp.array([9.5, 0.0, 0.0]), jnp.array([0.5, 0.0, 0.0]), box)
        >>> # [-1, 0, 0]: the image of 0.5 at 10.5 is the nearest
    """
    dr = ri - rj
    if box is None:
        return dr
    box = jnp.broadcast_to(jnp.asarray(box, dr.dtype), dr.shape)
    return dr - box * jnp.round(dr / box)


def wrap(
    positions: Float[Array, "N D"],
    box: Float[Array, " D"] | None,
    image: Int[Array, "N D"] | None = None,
) -> tuple[Float[Array, "N D"], Int[Array, "N D"] | None]:
    """Fold `positions` into the primary cell `[0, L)` and count the boxes crossed.

    Returns:
        (wrapped positions, image) with `unwrapped = wrapped + image * box`; `image` is the given
        count plus the crossings (int32), or `None` when `box` is None (free space: unchanged).

    Example:
        >>> x, image = wrap(jnp.array([[10.5, -0.5]]), jnp.array([10.0, 10.0]))
        >>> x, image  # [[0.5, 9.5]], [[1, -1]]
    """
    if box is None:
        return positions, image
    box = jnp.broadcast_to(jnp.asarray(box, positions.dtype), positions.shape)
    shift = jnp.floor(positions / box)
    wrapped = positions - shift * box
    # floor can leave x == L after the subtraction when x is a hair below 0 in float32; fold it
    # back and count the crossing, or unwrap would be off by one box length.
    over = wrapped >= box
    wrapped = jnp.where(over, wrapped - box, wrapped)
    shift = jnp.where(over, shift + 1, shift)
    shift_i = shift.astype(jnp.int32)
    return wrapped, shift_i if image is None else image + shift_i


def unwrap(
    positions: Float[Array, "N D"], image: Int[Array, "N D"], box: Float[Array, " D"] | None
) -> Float[Array, "N D"]:
    """Unwrapped positions `positions + image * box` (for diffusion / MSD).

    Example:
        >>> r = unwrap(state.positions, state.image, jnp.asarray(box))  # (N, D), length units
    """
    if box is None:
        return positions
    box = jnp.broadcast_to(jnp.asarray(box, positions.dtype), positions.shape)
    return positions + image.astype(positions.dtype) * box


def volume(box: Float[Array, " D"]) -> Float[Array, ""]:
    """Volume (area in 2D) of an orthorhombic box, length units^D.

    Example:
        >>> density = positions.shape[0] / volume(jnp.asarray(box))
    """
    return jnp.prod(jnp.asarray(box))
