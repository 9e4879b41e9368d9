"""`SpectralGrid`: a periodic 2-D box, its wavenumbers, the 2/3-rule mask and the transforms.

Conventions (shared by every spectral routine in simkit):

- Array axis 0 is x, axis 1 is y; grid points sit at x_i = i Lx / nx, y_j = j Ly / ny (nodes,
  starting at 0).
- Spectral fields are `jnp.fft.rfft2` of the physical field over both axes, shape
  `(nx, ny // 2 + 1)`: axis 0 holds kx in FFT order, axis 1 the ky >= 0 half. The
  unnormalised forward transform is used (a mode's coefficient is nx ny times its amplitude).
- Vorticity w = dv/dx - du/dy; the streamfunction psi solves lap psi = -w, and
  u = d psi/dy, v = -d psi/dx.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float

from ._checks import MIN_POINTS as MIN_POINTS
from ._checks import check_grid


class SpectralGrid(eqx.Module):
    """A doubly periodic box `[0, Lx) x [0, Ly)` sampled on `nx x ny` points.

    Any aspect ratio and any sizes >= 8 (odd sizes work; even sizes, powers of two best, are
    fastest for the FFT). Wavenumbers are `2 pi m / L` for integer m.

    Args:
        shape: points per axis `(nx, ny)`.
        box: box lengths `(Lx, Ly)` (length units; default `(2 pi, 2 pi)`).

    Example:
        >>> grid = SpectralGrid((256, 256))           # 2 pi x 2 pi
        >>> w_hat = grid.to_spectral(w)               # (256, 129) complex
        >>> w = grid.to_physical(w_hat)               # (256, 256) real
    """

    shape: tuple[int, int] = eqx.field(static=True)
    box: tuple[float, float] = eqx.field(static=True)

    def __init__(self, shape: Sequence[int], box: Sequence[float] = (2 * math.pi, 2 * math.pi)):
        shape, box = check_grid(shape, box, 2)  # checked: two entries each
        self.shape, self.box = cast(tuple[int, int], shape), cast(tuple[float, float], box)

    # ---- geometry -------------------------------------------------------------------------

    @property
    def spacing(self) -> tuple[float, float]:
        """Grid spacing `(dx, dy)` (length)."""
        return (self.box[0] / self.shape[0], self.box[1] / self.shape[1])

    @property
    def spectral_shape(self) -> tuple[int, int]:
        """Shape of a spectral field, `(nx, ny // 2 + 1)`."""
        return (self.shape[0], self.shape[1] // 2 + 1)

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """1-D coordinates `(x (nx,), y (ny,))` of the grid points (length), float64."""
        x, y = (np.arange(n) * (b / n) for n, b in zip(self.shape, self.box, strict=False))
        return x, y

    def mesh(self) -> tuple[np.ndarray, np.ndarray]:
        """2-D coordinates `(X, Y)`, each `(nx, ny)` (length), float64, axis 0 = x."""
        x, y = self.points()
        return np.meshgrid(x, y, indexing="ij")

    # ---- wavenumbers (numpy, float64: constants folded into the compiled step) -------------

    def mode_numbers(self) -> tuple[np.ndarray, np.ndarray]:
        """Integer mode numbers `(mx (nx, 1), my (1, ny//2+1))` in rfft2 layout."""
        nx, ny = self.shape
        mx = np.fft.fftfreq(nx, 1.0 / nx).round().astype(np.int64)[:, None]
        my = np.fft.rfftfreq(ny, 1.0 / ny).round().astype(np.int64)[None, :]
        return mx, my

    def wavenumbers(self) -> tuple[np.ndarray, np.ndarray]:
        """Wavenumbers `(kx (nx, 1), ky (1, ny//2+1))` (1 / length), float64.

        The Nyquist mode of an even axis (|m| = n/2) is set to 0 for derivatives: its sign is
        ambiguous and the 2/3 rule removes it anyway.
        """
        mx, my = self.mode_numbers()
        kx = np.where(2 * np.abs(mx) == self.shape[0], 0, mx) * (2 * math.pi / self.box[0])
        ky = np.where(2 * np.abs(my) == self.shape[1], 0, my) * (2 * math.pi / self.box[1])
        return kx.astype(np.float64), ky.astype(np.float64)

    def k_squared(self) -> np.ndarray:
        """|k|^2 on the rfft2 layout `(nx, ny//2+1)` (1 / length^2)."""
        kx, ky = self.wavenumbers()
        return kx * kx + ky * ky

    def dealias_mask(self) -> np.ndarray:
        """The 2/3 rule (Orszag 1971, J. Atmos. Sci. 28:1074) as a boolean `(nx, ny//2+1)` mask:
        keep modes with 3 |m| < n on both axes, so that a product of two kept fields aliases
        only onto removed modes."""
        mx, my = self.mode_numbers()
        return (3 * np.abs(mx) < self.shape[0]) & (3 * np.abs(my) < self.shape[1])

    def rfft_weights(self) -> np.ndarray:
        """Multiplicity of each rfft2 coefficient in the full spectrum `(1, ny//2+1)`: 2 for the
        ky columns whose conjugate partner is not stored, 1 for ky = 0 and an even Nyquist."""
        ny = self.shape[1]
        w = np.full((1, ny // 2 + 1), 2.0)
        w[0, 0] = 1.0
        if ny % 2 == 0:
            w[0, -1] = 1.0
        return w

    # ---- transforms -----------------------------------------------------------------------

    def to_spectral(self, field: Float[Array, "*batch nx ny"]) -> Complex[Array, "*batch nx nk"]:
        """rfft2 over the last two axes (unnormalised)."""
        return jnp.fft.rfft2(field, axes=(-2, -1))

    def to_physical(
        self, field_hat: Complex[Array, "*batch nx nk"]
    ) -> Float[Array, "*batch nx ny"]:
        """irfft2 over the last two axes back to `(nx, ny)`."""
        return jnp.fft.irfft2(field_hat, s=self.shape, axes=(-2, -1))

    def streamfunction_hat(
        self, vorticity_hat: Complex[Array, "*batch nx nk"]
    ) -> Complex[Array, "*batch nx nk"]:
        """psi_hat = w_hat / |k|^2 (the k = 0 mode set to 0)."""
        k2 = self.k_squared()
        inv = np.where(k2 > 0, 1.0 / np.where(k2 > 0, k2, 1.0), 0.0)
        return vorticity_hat * lift(inv.astype(_real_dtype(vorticity_hat)), vorticity_hat)

    def velocity_hat(
        self, vorticity_hat: Complex[Array, "*batch nx nk"]
    ) -> tuple[Complex[Array, "*batch nx nk"], Complex[Array, "*batch nx nk"]]:
        """(u_hat, v_hat) = (i ky psi_hat, -i kx psi_hat) from the vorticity."""
        kx, ky = (
            lift(k.astype(_real_dtype(vorticity_hat)), vorticity_hat) for k in self.wavenumbers()
        )
        psi = self.streamfunction_hat(vorticity_hat)
        return psi * (1j * ky), psi * (-1j * kx)

    def velocity(
        self, vorticity_hat: Complex[Array, "*batch nx nk"]
    ) -> Float[Array, "*batch nx ny 2"]:
        """Physical velocity `(..., nx, ny, 2)` (length / time) from a spectral vorticity."""
        u_hat, v_hat = self.velocity_hat(vorticity_hat)
        uv = self.to_physical(jnp.stack([u_hat, v_hat], axis=-3))
        return jnp.moveaxis(uv, -3, -1)

    def vorticity_hat_from_velocity(
        self, velocity: Float[Array, "*batch nx ny 2"]
    ) -> Complex[Array, "*batch nx nk"]:
        """Spectral vorticity i kx v_hat - i ky u_hat of a physical velocity `(..., nx, ny, 2)`
        (its divergent part has no vorticity and is dropped)."""
        uv_hat = self.to_spectral(jnp.moveaxis(velocity, -1, -3))
        kx, ky = (
            lift(k.astype(_real_dtype(uv_hat)), uv_hat[..., 0, :, :]) for k in self.wavenumbers()
        )
        return uv_hat[..., 1, :, :] * (1j * kx) - uv_hat[..., 0, :, :] * (1j * ky)


def lift(constant: np.ndarray, x) -> np.ndarray:
    """`constant` (a 2-D grid array) with leading unit axes to match the rank of `x`, so that
    batched inputs `(..., nx, nk)` work under `jax_numpy_rank_promotion="raise"`."""
    return np.reshape(constant, (1,) * (np.ndim(x) - constant.ndim) + constant.shape)


def _real_dtype(x) -> np.dtype:
    """The real dtype matching a (complex or real) array."""
    return np.finfo(np.dtype(x.dtype)).dtype
