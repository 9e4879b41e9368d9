"""Initial vorticity fields: Taylor-Green vortices and seeded random fields with a prescribed
energy spectrum. Pure JAX, so a batch of seeds is one `vmap`."""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.core
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike
from jaxtyping import Array, Float

from ..._checks import SimkitInputError
from . import _diagnostics as diag
from ._grid import SpectralGrid


def taylor_green(
    grid: SpectralGrid, wavenumber: int = 1, amplitude: float = 1.0, dtype: str = "float64"
) -> np.ndarray:
    """The Taylor-Green vortex u = A sin(k x) cos(k y), v = -A cos(k x) sin(k y) as a vorticity
    field w = 2 A k sin(k x) sin(k y) `(nx, ny)` (1 / time), with k = 2 pi n / L per axis.

    An exact solution of the Navier-Stokes equations with a vanishing nonlinear term: the
    vorticity decays as exp(-nu (kx^2 + ky^2) t) (exp(-2 nu k^2 t) on a square box).

    Args:
        grid: the `SpectralGrid`.
        wavenumber: integer periods n across the box per axis (>= 1, kept by the 2/3 rule).
        amplitude: A (velocity).

    Example:
        >>> ns = NavierStokes2D((64, 64), dt=1e-2)
        >>> state = ns.init(ns.params(viscosity=1e-2), vorticity=taylor_green(ns.grid))
    """
    if (
        isinstance(wavenumber, bool)
        or not isinstance(wavenumber, (int, np.integer))
        or wavenumber < 1
    ):
        raise SimkitInputError(f"wavenumber must be a positive integer, got {wavenumber!r}.")
    if 3 * wavenumber >= min(grid.shape):
        raise SimkitInputError(
            f"wavenumber {wavenumber} is removed by the 2/3 rule on grid "
            f"{grid.shape}: it needs more than {3 * wavenumber} points per axis."
        )
    x, y = grid.mesh()
    kx, ky = (2 * math.pi * wavenumber / b for b in grid.box)
    # w = dv/dx - du/dy = A kx sin(kx x) sin(ky y) + A ky sin(kx x) sin(ky y)
    w = amplitude * (kx + ky) * np.sin(kx * x) * np.sin(ky * y)
    return w.astype(dtype)


def default_spectrum(peak_wavenumber: float) -> Callable[[Array], Array]:
    """E(k) proportional to k^4 exp(-2 (k / k_p)^2), peaked at k_p: a common initial spectrum
    for decaying 2-D turbulence (e.g. McWilliams 1984, J. Fluid Mech. 146:21 uses a similar
    narrow-band spectrum)."""

    def spectrum(k):
        return k**4 * jnp.exp(-2.0 * (k / peak_wavenumber) ** 2)

    return spectrum


def random_vorticity(
    grid: SpectralGrid,
    seed: int | Array = 0,
    *,
    energy: float = 0.5,
    peak_wavenumber: float = 4.0,
    spectrum: Callable[[Array], Array] | None = None,
    dtype: DTypeLike | None = None,
) -> Float[Array, "nx ny"]:
    """A Gaussian random vorticity field `(nx, ny)` with a prescribed energy spectrum.

    The phases are random (from `seed`), the shell-averaged energy spectrum follows `spectrum`
    up to sampling noise, the total energy <|u|^2>/2 is exactly `energy`, and the modes the 2/3
    rule removes are zero. Jittable and vmappable over `seed` (a key or an int array).

    Args:
        grid: the `SpectralGrid`.
        seed: an int or a `jax.random` key.
        energy: total kinetic energy per unit area (velocity^2), > 0.
        peak_wavenumber: k_p of the default spectrum k^4 exp(-2 (k/k_p)^2) (1 / length).
        spectrum: instead, a function E(k) of the wavenumber magnitude (jnp, vectorised).
        dtype: of the result (default: jax's default float). The random numbers are drawn in
            float32 either way, so a seed gives the same field (to rounding) in both.

    Example (8 fields at once, vmapped over the seed):
        >>> w0 = random_vorticity(ns.grid, seed=0, energy=0.5, peak_wavenumber=4)  # (nx, ny)
        >>> ws = jax.vmap(lambda s: random_vorticity(ns.grid, s))(jnp.arange(8))  # (8, nx, ny)
    """
    if not isinstance(energy, jax.core.Tracer):
        try:
            energy_f = float(energy)
        except (TypeError, ValueError):
            energy_f = math.nan
        if isinstance(energy, (bool, str)) or not (math.isfinite(energy_f) and energy_f > 0):
            raise SimkitInputError(f"energy must be a finite number > 0, got {energy!r}.")
    if spectrum is None:
        if (
            isinstance(peak_wavenumber, (bool, str))
            or not isinstance(peak_wavenumber, (int, float, np.integer, np.floating))
            or not (math.isfinite(peak_wavenumber) and peak_wavenumber > 0)
        ):
            raise SimkitInputError(f"peak_wavenumber must be > 0, got {peak_wavenumber!r}.")
        spectrum = default_spectrum(peak_wavenumber)
    seed_dtype = getattr(seed, "dtype", None)
    is_key = seed_dtype is not None and jnp.issubdtype(seed_dtype, jax.dtypes.prng_key)
    if not is_key and (
        isinstance(seed, (bool, float, str))
        or (seed_dtype is not None and not jnp.issubdtype(seed_dtype, jnp.integer))
    ):
        raise SimkitInputError(f"seed must be an integer or a jax.random key, got {seed!r}.")
    key = seed if is_key else jax.random.key(seed)
    dtype = jnp.dtype(dtype or jnp.zeros(()).dtype)
    # Drawn in float32 whatever `dtype`: one seed gives the same field in float32 and float64.
    noise = jax.random.normal(key, grid.shape, jnp.float32).astype(dtype)
    k = np.sqrt(grid.k_squared())
    # A shell of radius k holds ~2 pi k / dk modes: energy per mode ~ E(k) / k, and
    # |w_hat|^2 = k^2 |u_hat|^2, so |w_hat| ~ sqrt(k E(k)).
    amp = jnp.where(k > 0, jnp.sqrt(jnp.maximum(k * spectrum(jnp.asarray(k, dtype)), 0.0)), 0.0)
    if not isinstance(amp, jax.core.Tracer):  # checked when called eagerly (traced under jit)
        kept = np.asarray(amp)[grid.dealias_mask()]
        if not np.all(np.isfinite(kept)) or not np.any(kept > 0):
            raise SimkitInputError(
                "the spectrum must be finite and > 0 on at least one mode the 2/3 rule keeps "
                f"(|k| up to {float(np.max(k[grid.dealias_mask()])):.3g} on this grid); got "
                + ("NaN/inf values." if not np.all(np.isfinite(kept)) else "zero on all of them.")
            )
    w_hat = grid.to_spectral(noise) * amp * grid.dealias_mask()
    scale = jnp.sqrt(energy / diag.energy(grid, w_hat))
    return grid.to_physical(w_hat * scale).astype(dtype)
