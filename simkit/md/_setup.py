"""Initial configurations: crystal lattices, random packings without overlaps, and
Maxwell-Boltzmann velocities."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._checks import SimkitInputError, require_positive

_BASIS = {
    "sc": [(0.0, 0.0, 0.0)],
    "bcc": [(0.0, 0.0, 0.0), (0.5, 0.5, 0.5)],
    "fcc": [(0.0, 0.0, 0.0), (0.5, 0.5, 0.0), (0.5, 0.0, 0.5), (0.0, 0.5, 0.5)],
    "square": [(0.0, 0.0)],
}


def lattice(
    kind: str,
    n_cells,
    *,
    density: float | None = None,
    lattice_constant: float | None = None,
    dtype=jnp.float32,
) -> tuple[Float[Array, "N D"], tuple[float, ...]]:
    """Particles on a cubic lattice filling a periodic box.

    Args:
        kind: "fcc", "bcc", "sc" (3D) or "square" (2D).
        n_cells: unit cells per axis, an int or a tuple of D ints.
        density: number density (particles per length^D); gives the lattice constant
            (basis / density)^(1/D), as LAMMPS's `lattice fcc 0.8442` does in LJ units.
        lattice_constant: the unit-cell edge (length), instead of `density`.

    Returns:
        (positions (N, D), box edges (D,) as a tuple of floats), N = basis x prod(n_cells).

    Example:
        >>> positions, box = lattice("fcc", 20, density=0.8442)   # LAMMPS in.lj, N = 32 000
    """
    if kind not in _BASIS:
        raise SimkitInputError(f"unknown lattice {kind!r}; choose one of {sorted(_BASIS)}.")
    basis = np.asarray(_BASIS[kind])
    dim = basis.shape[1]
    cells = (n_cells,) * dim if isinstance(n_cells, (int, np.integer)) else tuple(n_cells)
    if len(cells) != dim or any(not isinstance(c, (int, np.integer)) or c < 1 for c in cells):
        raise SimkitInputError(
            f"n_cells must be a positive int or {dim} positive ints, got {n_cells!r}."
        )
    if (density is None) == (lattice_constant is None):
        raise SimkitInputError("give exactly one of density and lattice_constant.")
    if density is not None:
        require_positive("density", density)
        a = (len(basis) / density) ** (1.0 / dim)
    else:
        assert lattice_constant is not None  # exactly one of the two is given
        require_positive("lattice_constant", lattice_constant)
        a = float(lattice_constant)
    grid = np.stack(np.meshgrid(*[np.arange(c) for c in cells], indexing="ij"), -1).reshape(-1, dim)
    pos = (grid[:, None, :] + basis[None, :, :]).reshape(-1, dim) * a
    box = tuple(float(c * a) for c in cells)
    return jnp.asarray(pos, dtype), box


def random_packing(
    key: Array, n: int, box, *, min_distance: float = 0.9, max_tries: int = 200, dtype=jnp.float32
) -> Float[Array, "N D"]:
    """`n` uniformly random positions in a periodic `box` with no pair closer than
    `min_distance` (random sequential insertion on the host with a cell grid; O(n)).

    Raises:
        SimkitInputError: the packing is too dense for insertion (random sequential addition
            jams near a packing fraction of 0.38 in 3D, 0.55 in 2D); use a lattice and melt it.

    Example:
        >>> positions = random_packing(jax.random.key(0), 1000, (12.0, 12.0, 12.0))  # (1000, 3)
    """
    require_positive("n", n, integer=True)
    require_positive("min_distance", min_distance)
    box = np.asarray(box, np.float64)
    dim = box.size
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
    grid = np.maximum((box // min_distance).astype(int), 1)
    cell = box / grid
    cells: dict[tuple, list[int]] = {}
    pos = np.empty((n, dim))
    offsets = np.array(np.meshgrid(*[[-1, 0, 1]] * dim, indexing="ij")).reshape(dim, -1).T
    for i in range(n):
        for _ in range(max_tries):
            x = rng.random(dim) * box
            c = tuple((x // cell).astype(int) % grid)
            ok = True
            for off in offsets:
                for j in cells.get(tuple((np.array(c) + off) % grid), ()):
                    d = x - pos[j]
                    d -= box * np.round(d / box)
                    if d @ d < min_distance**2:
                        ok = False
                        break
                if not ok:
                    break
            if ok:
                pos[i] = x
                cells.setdefault(c, []).append(i)
                break
        else:
            frac = i * (math.pi / 6 if dim == 3 else math.pi / 4) * min_distance**dim / np.prod(box)
            raise SimkitInputError(
                f"random_packing placed only {i} of {n} particles (packing fraction {frac:.3f} "
                f"with min_distance {min_distance}): too dense for random insertion. Use a "
                "lattice and melt it, a larger box, or a smaller min_distance."
            )
    return jnp.asarray(pos, dtype)


def maxwell_boltzmann(
    key: Array,
    shape: tuple[int, int],
    kT: float,
    mass=1.0,
    *,
    exact: bool = True,
    dtype=jnp.float32,
) -> Float[Array, "N D"]:
    """Velocities `(N, D)` drawn from the Maxwell-Boltzmann distribution at `kT` (energy units)
    with zero total momentum.

    With `exact=True` (default) they are rescaled so the kinetic temperature, with
    D (N - 1) degrees of freedom, is exactly `kT` (as LAMMPS's `velocity create` does).

    Example:
        >>> v0 = maxwell_boltzmann(jax.random.key(87287), positions.shape, kT=1.44)
    """
    n, dim = shape
    if not (math.isfinite(kT) and kT >= 0):
        raise SimkitInputError(f"kT must be a finite number >= 0, got {kT!r}.")
    m = jnp.broadcast_to(jnp.asarray(mass, dtype), (n,))[:, None]
    v = jax.random.normal(key, (n, dim), dtype) * jnp.sqrt(kT / m)
    v = v - (jnp.sum(m * v, 0) / jnp.sum(m))[None, :]  # zero momentum
    if exact and n > 1 and kT > 0:
        t = jnp.sum(m * v * v) / (dim * (n - 1))
        v = v * jnp.sqrt(kT / t)
    return v
