"""Box-averaged flow diagnostics of a spectral vorticity field, by Parseval (no FFT needed).

All are means over the box (per unit area, unit density): energy E = <|u|^2> / 2, enstrophy
Z = <w^2> / 2, viscous dissipation eps = nu <w^2> = 2 nu Z, and the shell-averaged energy
spectrum E(k) with sum_k E(k) dk = E. Jittable, vmappable and differentiable.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float

from ._grid import SpectralGrid, _real_dtype, lift


def box_mean_product(
    grid: SpectralGrid, a_hat: Complex[Array, "*b nx nk"], b_hat: Complex[Array, "*b nx nk"]
) -> Float[Array, "*b"]:
    """<a b>, the box mean of the product of two real fields given by their rfft2 (Parseval).

    Example (the box-mean of u v from two velocity components, `(nx, ny)` each):
        >>> uv = box_mean_product(grid, grid.to_spectral(u), grid.to_spectral(v))
    """
    n2 = float(grid.shape[0] * grid.shape[1]) ** 2
    w = lift(grid.rfft_weights().astype(_real_dtype(a_hat)) / n2, a_hat)
    return jnp.sum(w * jnp.real(jnp.conj(a_hat) * b_hat), axis=(-2, -1))


def energy(grid: SpectralGrid, vorticity_hat: Complex[Array, "*b nx nk"]) -> Float[Array, "*b"]:
    """Kinetic energy per unit area <u^2 + v^2> / 2 (velocity^2), of each field of a batch.

    Example:
        >>> e = energy(ns.grid, state.vorticity_hat)  # () for one state
    """
    psi = grid.streamfunction_hat(vorticity_hat)
    return 0.5 * box_mean_product(grid, psi, vorticity_hat)  # <psi w> = <|u|^2>


def enstrophy(grid: SpectralGrid, vorticity_hat: Complex[Array, "*b nx nk"]) -> Float[Array, "*b"]:
    """Enstrophy per unit area <w^2> / 2 (1 / time^2), of each field of a batch.

    Example:
        >>> z = enstrophy(ns.grid, state.vorticity_hat)
    """
    return 0.5 * box_mean_product(grid, vorticity_hat, vorticity_hat)


def dissipation(
    grid: SpectralGrid,
    vorticity_hat: Complex[Array, "*b nx nk"],
    viscosity: Float[Array, ""] | float,
) -> Float[Array, "*b"]:
    """Viscous energy dissipation rate nu <w^2> (velocity^2 / time): in a periodic box
    nu <|grad u|^2> = nu <w^2>.

    Example:
        >>> eps = dissipation(ns.grid, state.vorticity_hat, params["viscosity"])
    """
    return 2.0 * viscosity * enstrophy(grid, vorticity_hat)


def shell_wavenumbers(grid: SpectralGrid) -> np.ndarray:
    """Centres k_s = s dk of the spectrum's shells, dk = 2 pi / max(Lx, Ly) (1 / length).

    Example:
        >>> k = shell_wavenumbers(SpectralGrid((128, 128)))  # numpy (n_shells,): 0, 1, 2, ...
    """
    dk = 2 * math.pi / max(grid.box)
    return np.arange(_n_shells(grid)) * dk


def _n_shells(grid: SpectralGrid) -> int:
    kx, ky = grid.wavenumbers()
    dk = 2 * math.pi / max(grid.box)
    return int(np.rint(math.sqrt(np.max(kx**2) + np.max(ky**2)) / dk)) + 1


def _shell_index(grid: SpectralGrid) -> np.ndarray:
    dk = 2 * math.pi / max(grid.box)
    return np.rint(np.sqrt(grid.k_squared()) / dk).astype(np.int32)


def shell_spectrum(
    grid: SpectralGrid, power: Float[Array, "*b nx nk"]
) -> Float[Array, "*b nshell"]:
    """Sum a per-mode quantity `power` (already normalised as a box mean, rfft2 layout) over
    shells |k| in [k_s - dk/2, k_s + dk/2), divided by dk, counting each stored coefficient's
    conjugate partner. Returns `(..., n_shells)` with sum(result) * dk = sum over all modes."""
    dk = 2 * math.pi / max(grid.box)
    index = _shell_index(grid).reshape(-1)
    weighted = power * lift(grid.rfft_weights().astype(power.dtype), power)
    flat = weighted.reshape(weighted.shape[:-2] + (-1,))
    summed = jax.ops.segment_sum(jnp.moveaxis(flat, -1, 0), index, num_segments=_n_shells(grid))
    return jnp.moveaxis(summed, 0, -1) / dk


def energy_spectrum(
    grid: SpectralGrid, vorticity_hat: Complex[Array, "*b nx nk"]
) -> Float[Array, "*b nshell"]:
    """Shell-averaged energy spectrum E(k_s) (velocity^2 x length) at `shell_wavenumbers(grid)`:
    sum_s E(k_s) dk equals `energy`. E(k) of one mode of wavenumber k is its energy / dk.

    Example:
        >>> k = shell_wavenumbers(ns.grid)
        >>> e_k = energy_spectrum(ns.grid, state.vorticity_hat)  # (len(k),)
    """
    n2 = float(grid.shape[0] * grid.shape[1]) ** 2
    psi = grid.streamfunction_hat(vorticity_hat)
    power = 0.5 * jnp.real(jnp.conj(psi) * vorticity_hat) / n2  # |u_hat|^2 / 2 per mode
    return shell_spectrum(grid, power)
