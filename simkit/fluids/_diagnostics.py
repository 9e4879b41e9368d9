"""Flow diagnostics shared by the fluid solvers (jittable; lattice or reduced units)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float


def vorticity_2d(
    velocity: Float[Array, "nx ny 2"],
    periodic: Sequence[bool] = (True, True),
    spacing: float = 1.0,
) -> Float[Array, "nx ny"]:
    """Vorticity w = dv/dx - du/dy of a 2-D velocity field by second-order central differences.

    Args:
        velocity: `(nx, ny, 2)` velocity (length / time), axis 0 is x.
        periodic: per axis; a periodic axis wraps, the others use one-sided differences at
            their ends (first order there).
        spacing: grid spacing (length).

    Returns:
        `(nx, ny)` vorticity (1 / time).

    Example (a lid-driven cavity: walls in both directions):
        >>> w = vorticity_2d(velocity, periodic=(False, False))  # velocity (nx, ny, 2)
    """

    def d(field: Array, axis: int) -> Array:
        if periodic[axis]:
            return (jnp.roll(field, -1, axis) - jnp.roll(field, 1, axis)) / (2.0 * spacing)
        return cast(Array, jnp.gradient(field, spacing, axis=axis))  # one axis: one array

    return d(velocity[..., 1], 0) - d(velocity[..., 0], 1)


def kinetic_energy(
    density: Float[Array, "*grid"],
    velocity: Float[Array, "*grid d"],
    weight: Float[Array, "*grid"] | None = None,
) -> Float[Array, ""]:
    """Total kinetic energy sum(rho |u|^2 / 2) over the cells (times `weight` per cell, e.g. a
    fluid mask or the cell volume). Units: density * velocity^2 * volume.

    Example:
        >>> rho, u = stepper.macroscopic(state, params)  # LBM: (nx, ny), (nx, ny, 2)
        >>> e = kinetic_energy(rho, u, weight=(state.flags == 0).astype(rho.dtype))  # fluid
    """
    e = 0.5 * density * jnp.sum(velocity * velocity, axis=-1)
    if weight is not None:
        e = e * weight
    return jnp.sum(e)


def energy_spectrum(
    velocity: Float[Array, "nx ny 2"], spacing: float = 1.0
) -> tuple[np.ndarray, Float[Array, " nshell"]]:
    """Shell-averaged energy spectrum of a doubly periodic 2-D velocity field, from either solver
    (a periodic lattice Boltzmann run, or `spectral` fields read back from a file).

    Args:
        velocity: `(nx, ny, 2)` velocity (length / time) on a periodic grid, axis 0 = x.
        spacing: grid spacing (length); the box is `(nx spacing, ny spacing)`.

    Returns:
        `(k, E)`: shell centres k_s = s 2 pi / max(Lx, Ly) (1 / length, numpy) and E(k_s)
        (velocity^2 x length) with sum(E) dk = <|u|^2> / 2, the box-mean kinetic energy
        (without density; the same definition as `spectral.energy_spectrum`).

    Example (a periodic lattice Boltzmann velocity field, `(nx, ny, 2)`):
        >>> k, e_k = energy_spectrum(u)
    """
    from .spectral import _diagnostics as sd
    from .spectral._grid import SpectralGrid

    nx, ny = velocity.shape[0], velocity.shape[1]
    grid = SpectralGrid((nx, ny), (nx * spacing, ny * spacing))
    uv_hat = grid.to_spectral(jnp.moveaxis(jnp.asarray(velocity), -1, 0))
    n2 = float(nx * ny) ** 2
    power = 0.5 * jnp.sum(jnp.abs(uv_hat) ** 2, axis=0) / n2
    return sd.shell_wavenumbers(grid), sd.shell_spectrum(grid, power)
