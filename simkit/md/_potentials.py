"""Pair potentials: Lennard-Jones (truncated, energy- or force-shifted, with analytic tail
corrections), WCA, Morse, soft sphere, and any user function of r.

A potential is static configuration (its form, cutoff and shift); its parameters (epsilon,
sigma, ...) live in a params dict of arrays so `jax.grad` reaches them. Each parameter is a
scalar (one species) or a symmetric `(S, S)` table over species pairs.

Everything is written in terms of the squared distance `r2`, so the hot loop needs no square
root for Lennard-Jones; the pair force comes from `dU/d(r2)`, taken by forward-mode autodiff of
the elementwise energy (exact, and it fuses into the same loop as the energy).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Mapping
from typing import ClassVar

import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import SimkitInputError

Params = Mapping[str, Array]

_SHIFTS = ("none", "energy", "force")


class PairPotential(eqx.Module):
    """Base class of isotropic pair potentials U(r), zero beyond `cutoff`.

    Subclasses define `param_names`, `defaults` and `raw(r2, p)` (the untruncated energy).

    Attributes:
        cutoff: interaction range (length units), > 0. Pairs at `r >= cutoff` do not interact.
        shift: "none" (plain truncation: U jumps at the cutoff), "energy" (U(r) - U(rc): energy
            continuous, the usual choice for NVE), or "force" (U(r) - U(rc) - (r - rc) U'(rc):
            force continuous as well).

    Example (a subclass; `PairFunction` does the same from a function):
        >>> class Gaussian(PairPotential):
        ...     param_names = ("epsilon", "sigma")
        ...     defaults = (1.0, 1.0)
        ...     def raw(self, r2, p):
        ...         return p["epsilon"] * jnp.exp(-r2 / (2 * p["sigma"] ** 2))
        >>> params = Gaussian(cutoff=3.0, shift="energy").params(epsilon=2.0)
    """

    cutoff: float = eqx.field(static=True)
    shift: str = eqx.field(static=True, default="none")

    #: names of the parameters, and their default values for `params()`.
    param_names: ClassVar[tuple[str, ...]] = ()
    defaults: ClassVar[tuple[float, ...]] = ()

    def __check_init__(self):
        if not (
            isinstance(self.cutoff, (int, float)) and math.isfinite(self.cutoff) and self.cutoff > 0
        ):
            raise SimkitInputError(f"cutoff must be a finite number > 0, got {self.cutoff!r}.")
        if self.shift not in _SHIFTS:
            raise SimkitInputError(f"shift must be one of {_SHIFTS}, got {self.shift!r}.")

    @abc.abstractmethod
    def raw(self, r2: Array, p: Params) -> Array:
        """Untruncated pair energy at squared distance `r2` (energy units)."""

    def pair_cutoff2(self, p: Params) -> Array:
        """Squared cutoff of each pair (default: the potential's `cutoff`, for all pairs)."""
        return jnp.asarray(self.cutoff**2)

    def params(self, dtype=jnp.float32, **values) -> dict[str, Array]:
        """Parameter dict with defaults for names not given, e.g. `lj.params(epsilon=1.0)`.

        Values are scalars or symmetric `(S, S)` species tables, stored with `dtype` (float32
        by default; pass `jnp.float64` for double-precision runs).
        """
        unknown = set(values) - set(self.param_names)
        if unknown:
            raise SimkitInputError(
                f"{type(self).__name__} has parameters {self.param_names}; got unknown "
                f"{sorted(unknown)}."
            )
        out = {}
        for name, default in zip(self.param_names, self.defaults, strict=False):
            v = values.get(name, default)
            out[name] = jnp.asarray(v, dtype)
        return out

    def energy(self, r2: Array, p: Params) -> Array:
        """Truncated (and shifted) pair energy; 0 at and beyond the pair's cutoff."""
        rc2 = self.pair_cutoff2(p)
        inside = r2 < rc2
        r2s = jnp.where(inside, r2, rc2)  # keep the unused branch finite (no NaN gradients)
        u = self.raw(r2s, p)
        if self.shift != "none":
            u = u - self.raw(rc2, p)
        if self.shift == "force":
            # U'(rc) (r - rc) with dU/dr = 2 r dU/d(r2)
            _, du_dr2_c = jax.jvp(lambda x: self.raw(x, p), (rc2,), (jnp.ones_like(rc2),))
            rc = jnp.sqrt(rc2)
            u = u - 2.0 * rc * du_dr2_c * (jnp.sqrt(r2s) - rc)
        return jnp.where(inside, u, 0.0)

    def energy_and_derivative(self, r2: Array, p: Params) -> tuple[Array, Array]:
        """(U, dU/d(r2)) elementwise; the pair force on i from j is `-2 dU/d(r2) (ri - rj)`."""
        return jax.jvp(lambda x: self.energy(x, p), (r2,), (jnp.ones_like(r2),))


def _pow6(r2, sigma):
    s2 = sigma * sigma / r2
    return s2 * s2 * s2


class LennardJones(PairPotential):
    """U(r) = 4 epsilon [(sigma/r)^12 - (sigma/r)^6], truncated at `cutoff` (length units).

    Parameters: `epsilon` (energy units), `sigma` (length units). Analytic tail corrections for
    the plain-truncated potential: `tail_energy` and `tail_pressure`.

    Example:
        >>> lj = LennardJones(cutoff=2.5)
        >>> params = lj.params(epsilon=1.0, sigma=1.0)
    """

    param_names: ClassVar[tuple[str, ...]] = ("epsilon", "sigma")
    defaults: ClassVar[tuple[float, ...]] = (1.0, 1.0)

    def raw(self, r2, p):
        s6 = _pow6(r2, p["sigma"])
        return 4.0 * p["epsilon"] * (s6 * s6 - s6)

    def tail_energy(self, density, p, fractions=None) -> Array:
        """Energy per particle missing beyond the cutoff, assuming g(r) = 1 there (energy units):
        (8/3) pi rho sum_ij x_i x_j eps_ij sigma_ij^3 [(1/3)(sigma/rc)^9 - (sigma/rc)^3].

        Allen & Tildesley, Computer Simulation of Liquids (2nd ed., 2017), eq. 2.144.
        """
        return _mix(
            fractions,
            p,
            lambda e, s: (
                (8.0 / 3.0)
                * jnp.pi
                * density
                * e
                * s**3
                * ((s / self.cutoff) ** 9 / 3.0 - (s / self.cutoff) ** 3)
            ),
        )

    def tail_pressure(self, density, p, fractions=None) -> Array:
        """Pressure missing beyond the cutoff (energy / length^D):
        (16/3) pi rho^2 sum_ij x_i x_j eps_ij sigma_ij^3 [(2/3)(sigma/rc)^9 - (sigma/rc)^3].

        Allen & Tildesley (2017), eq. 2.145.
        """
        return _mix(
            fractions,
            p,
            lambda e, s: (
                (16.0 / 3.0)
                * jnp.pi
                * density**2
                * e
                * s**3
                * (2.0 * (s / self.cutoff) ** 9 / 3.0 - (s / self.cutoff) ** 3)
            ),
        )


def _mix(fractions, p, term):
    e, s = jnp.asarray(p["epsilon"]), jnp.asarray(p["sigma"])
    t = term(e, s)
    if t.ndim == 0:
        return t
    x = jnp.asarray(fractions)
    return x @ t @ x


class WCA(PairPotential):
    """Weeks-Chandler-Andersen: Lennard-Jones cut at its minimum 2^(1/6) sigma and shifted up by
    epsilon, purely repulsive. `cutoff` must be >= 2^(1/6) x the largest sigma (default for
    sigma = 1); each pair uses its own 2^(1/6) sigma_ij.

    Example:
        >>> wca = WCA()  # cutoff 2^(1/6), shifted
        >>> stepper = Langevin(wca, box=box, dt=0.005, kT=1.0)
        >>> params = wca.params(epsilon=1.0, sigma=1.0)
    """

    cutoff: float = eqx.field(static=True, default=2.0 ** (1.0 / 6.0))
    shift: str = eqx.field(static=True, default="energy")
    param_names: ClassVar[tuple[str, ...]] = ("epsilon", "sigma")
    defaults: ClassVar[tuple[float, ...]] = (1.0, 1.0)

    def raw(self, r2, p):
        s6 = _pow6(r2, p["sigma"])
        return 4.0 * p["epsilon"] * (s6 * s6 - s6)

    def pair_cutoff2(self, p):
        return 2.0 ** (1.0 / 3.0) * jnp.asarray(p["sigma"]) ** 2


class Morse(PairPotential):
    """U(r) = epsilon [(1 - exp(-alpha (r - r0)))^2 - 1]: well depth `epsilon` (energy) at `r0`
    (length), stiffness `alpha` (1/length).

    Example:
        >>> morse = Morse(cutoff=2.5, shift="energy")
        >>> params = morse.params(epsilon=1.0, alpha=5.0, r0=1.0)
    """

    param_names: ClassVar[tuple[str, ...]] = ("epsilon", "alpha", "r0")
    defaults: ClassVar[tuple[float, ...]] = (1.0, 5.0, 1.0)

    def raw(self, r2, p):
        x = jnp.exp(-p["alpha"] * (jnp.sqrt(r2) - p["r0"]))
        return p["epsilon"] * ((1.0 - x) ** 2 - 1.0)


class SoftSphere(PairPotential):
    """U(r) = (epsilon / alpha) (1 - r / sigma)^alpha for r < sigma, else 0 (harmonic for
    alpha = 2): jammed-packing and granular models. Each pair is cut at its own `sigma_ij`;
    `cutoff` must be >= the largest sigma.

    Example (a 50:50 mixture of diameters 1 and 1.4, as an `(S, S)` table of sigma_ij):
        >>> soft = SoftSphere(cutoff=1.4)
        >>> params = soft.params(sigma=jnp.array([[1.0, 1.2], [1.2, 1.4]]))
    """

    cutoff: float = eqx.field(static=True, default=1.0)
    alpha: float = eqx.field(static=True, default=2.0)
    param_names: ClassVar[tuple[str, ...]] = ("epsilon", "sigma")
    defaults: ClassVar[tuple[float, ...]] = (1.0, 1.0)

    def raw(self, r2, p):
        x = jnp.maximum(1.0 - jnp.sqrt(r2) / p["sigma"], 0.0)
        return p["epsilon"] / self.alpha * x**self.alpha

    def pair_cutoff2(self, p):
        return jnp.asarray(p["sigma"]) ** 2


class PairFunction(PairPotential):
    """Any pair potential `fn(r, **params) -> energy` (elementwise in `r`), truncated at
    `cutoff` and optionally shifted. Forces come from autodiff of `fn`.

    Example:
        >>> yukawa = PairFunction(lambda r, A, kappa: A * jnp.exp(-kappa * r) / r, cutoff=4.0,
        ...                       shift="energy", param_names=("A", "kappa"), defaults=(1.0, 1.0))
    """

    # kw_only: fields without defaults after the base's `shift` (the __init__ below sets them)
    fn: Callable[..., Float[Array, "..."]] = eqx.field(static=True, kw_only=True)
    param_names: tuple[str, ...] = eqx.field(static=True, kw_only=True)
    defaults: tuple[float, ...] = eqx.field(static=True, kw_only=True)

    def __init__(
        self,
        fn: Callable[..., Float[Array, "..."]],
        cutoff: float,
        shift: str = "none",
        *,
        param_names: tuple[str, ...] = (),
        defaults: tuple[float, ...] = (),
    ):
        if len(defaults) != len(param_names):
            raise SimkitInputError(
                f"give one default per parameter: {len(param_names)} names, {len(defaults)} "
                "defaults."
            )
        self.fn = fn
        self.cutoff = cutoff
        self.shift = shift
        self.param_names = tuple(param_names)
        self.defaults = tuple(defaults)

    def raw(self, r2, p):
        return self.fn(jnp.sqrt(r2), **p)


def pair_params(p: Params, species_i: Array | None, species_j: Array | None) -> dict[str, Array]:
    """Per-pair parameters: scalars pass through, `(S, S)` tables are gathered at (si, sj)."""
    out = {}
    for k, v in p.items():
        v = jnp.asarray(v)
        out[k] = v if v.ndim == 0 else v[species_i, species_j]
    return out


def check_params(potential: PairPotential, p: Params, n_species: int) -> None:
    """Host-side check of a params dict: names, shapes (scalar or (S, S)), finiteness, and that
    per-pair cutoffs (WCA, soft sphere) fit inside the potential's cutoff."""
    import numpy as np

    names = set(potential.param_names)
    if set(p) != names:
        raise SimkitInputError(
            f"{type(potential).__name__} params must have exactly {sorted(names)}, got {sorted(p)}."
        )
    for k, v in p.items():
        if isinstance(v, jax.core.Tracer):
            continue
        a = np.asarray(v)
        if a.ndim not in (0, 2) or (a.ndim == 2 and a.shape != (n_species, n_species)):
            raise SimkitInputError(
                f"parameter {k!r} must be a scalar or a ({n_species}, {n_species}) species table "
                f"for {n_species} species, got shape {a.shape}."
            )
        if not np.all(np.isfinite(a)):
            raise SimkitInputError(f"parameter {k!r} contains NaN/inf.")
        if a.ndim == 2 and not np.allclose(a, a.T):
            raise SimkitInputError(f"species table {k!r} must be symmetric.")
    if any(isinstance(v, jax.core.Tracer) for v in p.values()):
        return
    rc2 = np.asarray(potential.pair_cutoff2({k: jnp.asarray(v) for k, v in p.items()}))
    if np.any(rc2 > potential.cutoff**2 * (1 + 1e-6)):
        raise SimkitInputError(
            f"{type(potential).__name__}: a pair's own cutoff ({float(np.sqrt(rc2.max())):.4g}) "
            f"exceeds cutoff={potential.cutoff}; raise cutoff."
        )
