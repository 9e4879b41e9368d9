"""Forcing of the vorticity equation: Kolmogorov shear forcing or a user-given field.

A force field f (per unit mass) enters the vorticity equation through its curl,
F = df_y/dx - df_x/dy. Both forcings are steady; their amplitude lives in the run params so
that `jax.grad` reaches it.
"""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float

from ..._checks import SimkitInputError
from ._grid import SpectralGrid


@dataclasses.dataclass(frozen=True)
class Kolmogorov:
    """Kolmogorov forcing f = (A sin(k_f y), 0), with A = `params["forcing_amplitude"]`.

    Its curl is F = -A k_f cos(k_f y). With viscosity nu and linear drag mu the laminar steady
    state is u = A / (nu k_f^2 + mu) sin(k_f y) (`laminar_velocity`).

    Args:
        wavenumber: integer number of forcing periods across the box in y (k_f = 2 pi n / Ly).

    Example:
        >>> ns = NavierStokes2D((128, 128), dt=5e-3, forcing=Kolmogorov(4))
        >>> params = ns.params(viscosity=1e-3, drag=0.1, forcing_amplitude=1.0)
    """

    wavenumber: int = 4

    def __post_init__(self):
        if (
            isinstance(self.wavenumber, bool)
            or not isinstance(self.wavenumber, (int, np.integer))
            or self.wavenumber < 1
        ):
            raise SimkitInputError(
                f"Kolmogorov wavenumber must be a positive integer (periods across the box), "
                f"got {self.wavenumber!r}."
            )

    def k_f(self, grid: SpectralGrid) -> float:
        """The forcing wavenumber 2 pi n / Ly (1 / length)."""
        return 2 * math.pi * self.wavenumber / grid.box[1]

    def check(self, grid: SpectralGrid) -> None:
        """Refuse a forcing mode that the 2/3 rule removes on this grid."""
        if 3 * self.wavenumber >= grid.shape[1]:
            raise SimkitInputError(
                f"Kolmogorov forcing at {self.wavenumber} periods needs ny > {3 * self.wavenumber} "
                f"points (the 2/3 rule keeps |m| < ny / 3), got ny = {grid.shape[1]}."
            )

    def curl_hat(self, grid: SpectralGrid) -> np.ndarray:
        """rfft2 of the curl for unit amplitude, -k_f cos(k_f y), computed exactly (complex128)."""
        _, y = grid.mesh()
        k = self.k_f(grid)
        return np.fft.rfft2(-k * np.cos(k * y))

    def laminar_velocity(
        self, grid: SpectralGrid, amplitude: float, viscosity: float, drag: float = 0.0
    ) -> np.ndarray:
        """The laminar steady state `(nx, ny, 2)`: u = A / (nu k_f^2 + mu) sin(k_f y), v = 0."""
        _, y = grid.mesh()
        k = self.k_f(grid)
        u = amplitude / (viscosity * k * k + drag) * np.sin(k * y)
        return np.stack([u, np.zeros_like(u)], axis=-1)

    def reynolds(self, grid: SpectralGrid, amplitude: float, viscosity: float) -> float:
        """Re = U / (nu k_f) with the laminar amplitude U = A / (nu k_f^2): Re = A / (nu^2 k_f^3)
        (without drag). The laminar flow is stable for Re < sqrt(2) on every box (Meshalkin &
        Sinai 1961, J. Appl. Math. Mech. 25:1700; the threshold is reached for perturbations
        much longer than the forcing period)."""
        k = self.k_f(grid)
        return amplitude / (viscosity**2 * k**3)


def curl(grid: SpectralGrid, force: Float[Array, "nx ny 2"]) -> Float[Array, "nx ny"]:
    """The curl df_y/dx - df_x/dy of a physical force field `(nx, ny, 2)`, spectrally; what
    `NavierStokes2D(forcing="field")` takes as `params["forcing"]` (force per mass / length).

    Example (a shear force f = (sin y, 0)):
        >>> ns = NavierStokes2D((64, 64), dt=1e-2, forcing="field")
        >>> x, y = ns.grid.mesh()
        >>> force = jnp.stack([jnp.sin(y), jnp.zeros_like(y)], axis=-1)  # (64, 64, 2)
        >>> params = ns.params(viscosity=1e-2, forcing=curl(ns.grid, force))
    """
    f_hat = grid.to_spectral(jnp.moveaxis(jnp.asarray(force), -1, 0))
    kx, ky = grid.wavenumbers()
    return grid.to_physical(f_hat[1] * (1j * kx) - f_hat[0] * (1j * ky))


def forcing_hat(grid: SpectralGrid, forcing, params, dtype) -> Complex[Array, "nx nk"] | None:
    """The spectral vorticity forcing of `params` (dealiased), or None without forcing."""
    if forcing is None:
        return None
    mask = grid.dealias_mask()
    if isinstance(forcing, Kolmogorov):
        shape_hat = (forcing.curl_hat(grid) * mask).astype(dtype)
        return params["forcing_amplitude"] * shape_hat
    # "field": a user-given curl in physical space, differentiable through params["forcing"].
    return grid.to_spectral(params["forcing"]) * mask
