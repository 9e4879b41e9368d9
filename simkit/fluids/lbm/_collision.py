"""Equilibrium, Guo body forcing, and the collision operators (BGK, TRT, regularised BGK).

Every function works on a *list* of Q grid-shaped arrays (one per direction) rather than one
`(Q, ...)` array: written that way, XLA fuses the whole collision into the streaming loop without
materialising a stacked copy (see `_stream.py`). Units are lattice units (dx = dt = 1, c_s^2 = 1/3).
"""

from __future__ import annotations

import dataclasses

from ..._checks import SimkitInputError
from ._lattice import Lattice


def moments(lattice: Lattice, f, force=None):
    """Density `rho` and velocity `u` (a list of D arrays) from stored populations `f` (list of Q
    arrays of deviations f_i - w_i, see `LBMState`).

    With a body force (D scalars, force per volume), u = (sum_i f_i c_i + F/2) / rho: Guo,
    Zheng & Shi (2002), Phys. Rev. E 65:046308, eq. (20); this is the physical velocity.
    Lattice units (density 1 at rest, velocity in cells per step).

    Example:
        >>> rho, (ux, uy) = moments(D2Q9, list(state.f))  # rho, ux, uy: (nx, ny)
    """
    return _moments(lattice, f, force)[1:]


def _moments(lattice, f, force):
    drho = f[0]
    for fi in f[1:]:
        drho = drho + fi
    rho = 1.0 + drho  # sum_i w_i = 1 and sum_i w_i c_i = 0: the weights add 1 to rho only
    u = []
    for a in range(lattice.d):
        j = None
        for i, ci in enumerate(lattice.velocities):
            if ci[a] == 0:
                continue
            term = f[i] if ci[a] > 0 else -f[i]
            j = term if j is None else j + term
        if force is not None:
            j = j + 0.5 * force[a]
        u.append(j / rho)
    return drho, rho, u


def _dot(ci, u):
    out = None
    for a, ca in enumerate(ci):
        if ca == 0:
            continue
        term = u[a] if ca > 0 else -u[a]
        out = term if out is None else out + term
    return out


def equilibrium(lattice: Lattice, rho, u, *, deviation: bool = False, drho=None):
    """Second-order Maxwell-Boltzmann equilibrium f_i^eq(rho, u) (list of Q arrays).

    f_i^eq = w_i rho (1 + c.u / cs2 + (c.u)^2 / (2 cs4) - u.u / (2 cs2)); with `deviation`,
    f_i^eq - w_i, the form the solver stores (computed without the cancellation). `rho` and
    each of the D arrays of `u` share one shape; lattice units.

    Example (a uniform flow at 0.05 cells per step on a 16 x 16 grid):
        >>> rho = jnp.ones((16, 16))
        >>> feq = equilibrium(D2Q9, rho, [jnp.full((16, 16), 0.05), jnp.zeros((16, 16))])
        >>> f0 = jnp.stack(equilibrium(D2Q9, rho, [0.05, 0.0], deviation=True))  # (9, 16, 16)
    """
    usq = u[0] * u[0]
    for ua in u[1:]:
        usq = usq + ua * ua
    if drho is None:
        drho = rho - 1.0
    out = []
    for ci, wi in zip(lattice.velocities, lattice.w, strict=False):
        cu = _dot(ci, u)
        terms = -1.5 * usq if cu is None else cu * (3.0 + 4.5 * cu) - 1.5 * usq
        if deviation:
            out.append(wi * (drho + rho * terms))
        else:
            out.append(wi * rho * (1.0 + terms))
    return out


def guo_source(lattice: Lattice, u, force):
    """Guo forcing terms split in (symmetric, antisymmetric) parts, each a list of Q arrays or
    scalars (without the (1 - omega/2) prefactor):
        S_i = w_i [3 (c_i - u).F + 9 (c_i.u)(c_i.F)],  antisymmetric part 3 w_i c_i.F.
    """
    uf = u[0] * force[0]
    for a in range(1, lattice.d):
        uf = uf + u[a] * force[a]
    sym, anti = [], []
    for ci, wi in zip(lattice.velocities, lattice.w, strict=False):
        cf = sum(float(ca) * force[a] for a, ca in enumerate(ci) if ca != 0)
        cu = _dot(ci, u)
        if cu is None:
            sym.append(-3.0 * wi * uf)
            anti.append(0.0)
        else:
            sym.append(wi * (9.0 * cu * cf - 3.0 * uf))
            anti.append(3.0 * wi * cf)
    return sym, anti


@dataclasses.dataclass(frozen=True)
class BGK:
    """Single-relaxation-time (BGK) collision: f* = f - (f - f^eq) / tau (+ Guo forcing).

    Bhatnagar, Gross & Krook (1954); kinematic viscosity nu = c_s^2 (tau - 1/2). Refuses
    tau < `min_tau` (default 0.51): closer to 1/2 the scheme is unstable at any useful Mach.

    Example:
        >>> stepper = LBMStepper(D2Q9, (128, 64), BGK())  # the default collision
    """

    min_tau: float = 0.51

    def relax(self, lattice, f, feq, tau, source):
        """Post-collision populations (list of Q arrays) from `f`, `feq` (lists of Q arrays, the
        same grid shape), `tau` and the Guo `source` terms (None without a body force)."""
        omega = 1.0 / tau
        out = []
        for i in range(lattice.q):
            post = f[i] + omega * (feq[i] - f[i])
            if source is not None:
                sym, anti = source[0], source[1]
                post = post + (1.0 - 0.5 * omega) * (sym[i] + anti[i])
            out.append(post)
        return out


@dataclasses.dataclass(frozen=True)
class TRT:
    """Two-relaxation-time collision: symmetric and antisymmetric parts relax at omega+ (from
    the viscosity) and omega- (from the "magic" parameter
    Lambda = (1/omega+ - 1/2)(1/omega- - 1/2)).

    Ginzburg, Verhaeghe & d'Humieres (2008), Commun. Comput. Phys. 3:427. Lambda = 1/4 (default)
    is the most stable choice; Lambda = 3/16 puts halfway bounce-back walls exactly halfway for
    Poiseuille flow, making its profile exact. Refuses tau < `min_tau` (default 0.505).

    Example (a channel whose Poiseuille profile is exact):
        >>> stepper = LBMStepper(D2Q9, (32, 34), TRT(magic=3 / 16), periodic=(True, False),
        ...                      body_force=True)
    """

    magic: float = 0.25
    min_tau: float = 0.505

    def __post_init__(self):
        if not self.magic > 0:
            raise SimkitInputError(f"TRT magic parameter must be > 0, got {self.magic}.")

    def relax(self, lattice, f, feq, tau, source):
        """Post-collision populations (list of Q arrays) from `f`, `feq` (lists of Q arrays, the
        same grid shape), `tau` and the Guo `source` terms (None without a body force)."""
        omega_p = 1.0 / tau
        omega_m = 1.0 / (self.magic / (tau - 0.5) + 0.5)
        opp = lattice.opposite
        out = []
        for i in range(lattice.q):
            j = opp[i]
            fp, fm = 0.5 * (f[i] + f[j]), 0.5 * (f[i] - f[j])
            ep, em = 0.5 * (feq[i] + feq[j]), 0.5 * (feq[i] - feq[j])
            post = f[i] + omega_p * (ep - fp) + omega_m * (em - fm)
            if source is not None:
                sym, anti = source[0], source[1]
                post = post + (1.0 - 0.5 * omega_p) * sym[i] + (1.0 - 0.5 * omega_m) * anti[i]
            out.append(post)
        return out


@dataclasses.dataclass(frozen=True)
class Regularized:
    """Regularised BGK: the non-equilibrium part is projected onto its second-order Hermite
    moment before relaxing, which removes the ghost modes that make BGK unstable at low
    viscosity. Latt & Chopard (2006), Math. Comput. Simul. 72:165.
    f* = f^eq + (1 - omega) f^(1) + S / 2, with
    f_i^(1) = w_i / (2 cs4) (c_i c_i - cs2 I) : Pi^neq and Pi^neq = sum_i (f_i - f_i^eq) c_i c_i
    + (u F + F u) / 2: BGK with Guo forcing is f* = f^eq + (1 - omega) g + S/2 for
    g = f - f^eq + S/2, whose second moment is Pi^neq; regularising g gives this form.
    Refuses tau < `min_tau` (default 0.505).

    Example:
        >>> stepper = LBMStepper(D3Q19, (64, 64, 64), Regularized())
    """

    min_tau: float = 0.505

    def relax(self, lattice, f, feq, tau, source):
        """Post-collision populations (list of Q arrays) from `f`, `feq` (lists of Q arrays, the
        same grid shape), `tau` and the Guo `source` terms (None without a body force)."""
        omega = 1.0 / tau
        d = lattice.d
        c = lattice.velocities
        neq = [f[i] - feq[i] for i in range(lattice.q)]
        pi = {}
        for a in range(d):
            for b in range(a, d):
                acc = None
                for i in range(lattice.q):
                    cc = int(c[i, a] * c[i, b])
                    if cc == 0:
                        continue
                    term = neq[i] if cc > 0 else -neq[i]
                    acc = term if acc is None else acc + term
                if source is not None:
                    u, force = source[2], source[3]
                    acc = acc + 0.5 * (u[a] * force[b] + u[b] * force[a])
                pi[a, b] = acc
        out = []
        for i in range(lattice.q):
            contraction = None
            for a in range(d):
                for b in range(a, d):
                    qab = float(c[i, a] * c[i, b]) - (1.0 / 3.0 if a == b else 0.0)
                    if qab == 0.0:
                        continue
                    factor = qab if a == b else 2.0 * qab
                    term = factor * pi[a, b]
                    contraction = term if contraction is None else contraction + term
            post = feq[i] + (1.0 - omega) * 4.5 * lattice.w[i] * contraction
            if source is not None:
                post = post + 0.5 * (source[0][i] + source[1][i])
            out.append(post)
        return out


COLLISIONS = (BGK, TRT, Regularized)


def collide(lattice: Lattice, collision, f, tau, force=None):
    """One local collision. Returns (post-collision populations, rho, u) as lists of arrays.

    Args:
        lattice: the velocity set.
        collision: `BGK()`, `TRT()` or `Regularized()`.
        f: list of Q arrays of the same grid shape, the deviations f_i - w_i (every collision
            here is linear in f - f^eq, so it relaxes deviations as it would populations).
        tau: relaxation time (scalar); viscosity nu = cs2 (tau - 1/2).
        force: None or D scalars (uniform body force per volume, lattice units).
    """
    drho, rho, u = _moments(lattice, f, force)
    feq = equilibrium(lattice, rho, u, deviation=True, drho=drho)
    source = None
    if force is not None:
        sym, anti = guo_source(lattice, u, force)
        source = (sym, anti, u, force)
    return collision.relax(lattice, f, feq, tau, source), rho, u
