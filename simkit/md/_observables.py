"""Observables usable inside jitted code: kinetic energy, temperature, pressure, radial
distribution function, mean squared displacement."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._space import displacement, unwrap


def kinetic_energy(
    velocities: Float[Array, "N D"], mass: float | Float[Array, " N"] = 1.0
) -> Float[Array, ""]:
    """sum m v^2 / 2 (energy units); `mass` a number or `(N,)`.

    Example:
        >>> ke = kinetic_energy(state.velocities, state.mass)
    """
    m = jnp.broadcast_to(jnp.asarray(mass, velocities.dtype), velocities.shape[:1])
    return 0.5 * jnp.sum(m[:, None] * velocities**2)


def temperature(
    velocities: Float[Array, "N D"], mass=1.0, *, dof: int | None = None
) -> Float[Array, ""]:
    """Kinetic temperature 2 KE / dof (energy units); dof defaults to D (N - 1).

    Example:
        >>> v = maxwell_boltzmann(jax.random.key(0), (500, 3), kT=1.5)
        >>> temperature(v)  # 1.5 (exact=True rescales to it)
    """
    n, dim = velocities.shape
    return 2.0 * kinetic_energy(velocities, mass) / (dof if dof is not None else dim * (n - 1))


def radial_distribution(
    positions: Float[Array, "N D"], box, *, r_max: float, bins: int = 100, block: int = 512
) -> tuple[Float[Array, " bins"], Float[Array, " bins"]]:
    """Radial distribution function g(r) of one configuration in a periodic box.

    All pairs are histogrammed in row blocks (O(N^2) work, O(N x block) memory), so it is
    exact; average over frames for a smooth curve. `r_max` must be <= half the shortest edge.

    Returns:
        (r (bins,) bin centres, g (bins,)) with g -> 1 for an ideal gas.

    Example (averaged over the saved frames of a run):
        >>> gs = [radial_distribution(x, box, r_max=3.0, bins=150)[1] for x in frames]
        >>> r = radial_distribution(frames[0], box, r_max=3.0, bins=150)[0]
    """
    n, dim = positions.shape
    box_a = jnp.asarray(box, positions.dtype)
    edges = jnp.linspace(0.0, r_max, bins + 1, dtype=positions.dtype)
    pad = (-n) % block
    rows = jnp.concatenate([positions, jnp.full((pad, dim), jnp.nan, positions.dtype)])

    def body(hist, xb):
        d = displacement(xb[:, None, :], positions[None, :, :], box_a)
        r = jnp.sqrt(jnp.sum(d * d, -1))
        r = jnp.where((r > 0) & jnp.isfinite(r), r, r_max * 2)  # drop self and padding
        h = jnp.histogram(r.ravel(), bins=edges)[0]
        return hist + h.astype(hist.dtype), None

    # counts are exact in float32 up to 2^24 pairs per bin
    hist, _ = jax.lax.scan(body, jnp.zeros(bins, positions.dtype), rows.reshape(-1, block, dim))
    rho = n / jnp.prod(box_a)
    if dim == 3:
        shell = 4.0 / 3.0 * jnp.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    else:
        shell = jnp.pi * (edges[1:] ** 2 - edges[:-1] ** 2)
    g = hist / (n * rho * shell)
    return 0.5 * (edges[1:] + edges[:-1]), g


def mean_squared_displacement(
    positions: Float[Array, "N D"], image, origin: Float[Array, "N D"], box
) -> Float[Array, ""]:
    """Mean over particles of |unwrapped position - origin|^2 (length^2).

    Example:
        >>> msd = mean_squared_displacement(state.positions, state.image, state.origin, box)
    """
    d = (
        unwrap(positions, image, None if box is None else jnp.asarray(box, positions.dtype))
        - origin
    )
    return jnp.mean(jnp.sum(d * d, -1))


def pressure(kinetic: Float[Array, ""], virial: Float[Array, ""], box) -> Float[Array, ""]:
    """Pressure (2 KE + W) / (D V) from the kinetic energy and the virial W = sum r_ij . F_ij.

    Units: energy / length^D.

    Example:
        >>> u, w = energy_virial(lj, params, x, idx, species, box)
        >>> p = pressure(kinetic_energy(v), w, box)
    """
    box_a = jnp.asarray(box)
    return (2.0 * kinetic + virial) / (box_a.size * jnp.prod(box_a))


def block_average(samples, n_blocks: int = 10) -> tuple[float, float]:
    """Mean of a correlated time series and its standard error by block averaging (Flyvbjerg &
    Petersen, J. Chem. Phys. 91, 461 (1989)): the series is cut into `n_blocks` equal blocks
    (longer than the correlation time, or the error is underestimated) and the error is the
    standard deviation of the block means over sqrt(n_blocks - 1). Host-side (NumPy).

    Returns:
        (mean, standard error), floats in the units of `samples`.

    Example (the saved temperature series of a run, after equilibration):
        >>> mean, err = block_average(temperatures[200:], n_blocks=10)
    """
    import numpy as np

    x = np.asarray(samples, np.float64).ravel()
    if n_blocks < 2 or x.size < n_blocks:
        raise ValueError(f"need at least n_blocks >= 2 samples, got {x.size} for {n_blocks} blocks")
    m = x.size // n_blocks
    means = x[: m * n_blocks].reshape(n_blocks, m).mean(axis=1)
    return float(x.mean()), float(means.std(ddof=1) / np.sqrt(n_blocks))
