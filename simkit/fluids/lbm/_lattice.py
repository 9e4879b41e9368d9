"""Discrete velocity sets (DdQq lattices): velocities, weights and opposite directions."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

# Every lattice here has the speed of sound c_s^2 = 1/3 (lattice units: dx = dt = 1).
CS2 = 1.0 / 3.0


@dataclasses.dataclass(frozen=True, eq=False)
class Lattice:
    """A DdQq velocity set (static: hashable, compared by name).

    Attributes:
        name: e.g. "D2Q9".
        velocities: `(Q, D)` integer lattice velocities c_i (cells per step); c_0 = 0.
        weights: `(Q,)` quadrature weights w_i (sum 1).
        opposite: `(Q,)` index of -c_i.
        cs2: squared lattice speed of sound (1/3).

    Example:
        >>> D2Q9.q, D2Q9.d, D2Q9.velocities[1], D2Q9.opposite[1]
    """

    name: str
    velocities: np.ndarray
    weights: np.ndarray

    @property
    def d(self) -> int:
        """Number of spatial dimensions."""
        return self.velocities.shape[1]

    @property
    def q(self) -> int:
        """Number of discrete velocities."""
        return self.velocities.shape[0]

    @property
    def w(self) -> tuple[float, ...]:
        """Weights as Python floats (weakly typed in jax: they never promote float32 to 64)."""
        return tuple(float(x) for x in self.weights)

    @property
    def cs2(self) -> float:
        """Squared lattice speed of sound c_s^2 = 1/3 (cells^2 / step^2)."""
        return CS2

    @property
    def opposite(self) -> np.ndarray:
        """`(Q,)` index of the velocity -c_i, for each i (bounce-back pairs)."""
        c = self.velocities
        return np.array([int(np.flatnonzero((c == -ci).all(axis=1))[0]) for ci in c])

    def __hash__(self):
        return hash(self.name)

    def __eq__(self, other):
        return isinstance(other, Lattice) and other.name == self.name

    def __repr__(self):
        return self.name


def _make(name: str, d: int, allowed_norms: dict[int, float]) -> Lattice:
    # Velocities with |c|^2 in `allowed_norms`, weight by |c|^2; rest particle first, then the
    # rest in a fixed (lexicographic) order so that index i means the same thing everywhere.
    cs = [
        c for c in itertools.product((0, 1, -1), repeat=d) if sum(x * x for x in c) in allowed_norms
    ]
    cs.sort(key=lambda c: (sum(x * x for x in c), [(-x) % 3 for x in c]))
    velocities = np.array(cs, dtype=np.int32)
    weights = np.array([allowed_norms[sum(x * x for x in c)] for c in cs], dtype=np.float64)
    assert abs(weights.sum() - 1.0) < 1e-14
    return Lattice(name, velocities, weights)


# Weights: Qian, d'Humieres & Lallemand (1992), Europhys. Lett. 17:479.
D2Q9 = _make("D2Q9", 2, {0: 4 / 9, 1: 1 / 9, 2: 1 / 36})
"""The 2-D lattice of 9 velocities (rest, 4 axis, 4 diagonal)."""
D3Q19 = _make("D3Q19", 3, {0: 1 / 3, 1: 1 / 18, 2: 1 / 36})
"""The 3-D lattice of 19 velocities (rest, 6 face, 12 edge neighbours)."""
D3Q27 = _make("D3Q27", 3, {0: 8 / 27, 1: 2 / 27, 2: 1 / 54, 3: 1 / 216})
"""The 3-D lattice of 27 velocities (rest, 6 face, 12 edge, 8 corner neighbours)."""

LATTICES = {lat.name: lat for lat in (D2Q9, D3Q19, D3Q27)}


def lattice(name: str | Lattice) -> Lattice:
    """The lattice called `name` ("D2Q9", "D3Q19", "D3Q27"), or `name` itself if a Lattice."""
    if isinstance(name, Lattice):
        return name
    try:
        return LATTICES[str(name).upper()]
    except KeyError:
        from ..._checks import SimkitInputError

        raise SimkitInputError(
            f"unknown lattice {name!r}; choose one of {', '.join(LATTICES)}."
        ) from None
