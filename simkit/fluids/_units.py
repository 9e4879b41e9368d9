"""Physical set-ups to lattice units and back, with the stability checks a user needs up front.

A lattice Boltzmann run has three knobs in lattice units: the resolution (cells per length
L), the lattice velocity u of the characteristic speed U, and the relaxation time tau. They are
tied by Re = U L / nu = u N / nu_lattice with nu_lattice = (tau - 1/2) / 3. Two independent
choices fix everything; `lattice_units` takes the resolution and either the lattice velocity or
tau, and refuses combinations that are unstable or inaccurate (tau too close to 1/2, Mach too
high) with a message that says which knob to turn.
"""

from __future__ import annotations

import dataclasses
import math

from .._checks import SimkitInputError
from .lbm._collision import COLLISIONS

CS = 1.0 / math.sqrt(3.0)  # lattice speed of sound
MAX_MACH = 0.3
# The smallest tau each collision model accepts (its `min_tau` default).
MIN_TAU = {c.__name__: c().min_tau for c in COLLISIONS}


@dataclasses.dataclass(frozen=True)
class LatticeUnits:
    """A physical set-up expressed in lattice units.

    Attributes:
        dx: physical length of one cell (length units).
        dt: physical time of one step (time units).
        resolution: cells per characteristic length L.
        velocity: lattice velocity of the characteristic speed U (cells / step).
        viscosity: lattice kinematic viscosity (cells^2 / step).
        tau: BGK relaxation time, 3 * viscosity + 1/2.
        reynolds: U L / nu (the same in both unit systems).
        mach: lattice Mach number velocity / c_s.

    Example:
        >>> units = lattice_units(length=0.1, velocity=0.5, reynolds=100, resolution=64)
        >>> n_steps = units.steps(2.0)  # 2 s of physical time
        >>> u_lid = units.to_lattice_velocity(0.5)  # cells per step
    """

    dx: float
    dt: float
    resolution: float
    velocity: float
    viscosity: float
    tau: float
    reynolds: float
    mach: float

    def to_lattice_velocity(self, u: float) -> float:
        """Physical velocity -> cells per step."""
        return u * self.dt / self.dx

    def to_physical_velocity(self, u: float) -> float:
        """Cells per step -> physical velocity."""
        return u * self.dx / self.dt

    def to_physical_time(self, steps: float) -> float:
        """Steps -> physical time."""
        return steps * self.dt

    def steps(self, time: float) -> int:
        """Physical time -> number of steps (rounded up)."""
        return int(math.ceil(time / self.dt - 1e-9))

    def to_lattice_force(self, g: float, density: float = 1.0) -> float:
        """Physical body force per mass (acceleration) -> lattice force per volume at the
        lattice density `density` (the lattice density stands for the physical one)."""
        return density * g * self.dt**2 / self.dx


def lattice_units(
    *,
    length: float,
    velocity: float,
    resolution: int,
    viscosity: float | None = None,
    reynolds: float | None = None,
    lattice_velocity: float | None = None,
    tau: float | None = None,
    collision: str = "BGK",
) -> LatticeUnits:
    """Convert a physical set-up to lattice units and check it is stable.

    Args:
        length: characteristic length L (e.g. channel height, cylinder diameter), length units.
        velocity: characteristic speed U (length / time).
        resolution: cells per L (> 0).
        viscosity: kinematic viscosity (length^2 / time); or give `reynolds` instead.
        reynolds: U L / nu; or give `viscosity`.
        lattice_velocity: U in cells per step (default 0.1 unless `tau` is given).
        tau: the relaxation time instead of `lattice_velocity`.
        collision: "BGK", "TRT" or "Regularized" (sets the smallest tau accepted).

    Raises:
        SimkitInputError: non-positive or non-finite inputs, both or neither of viscosity and
            reynolds, tau below the collision's limit, lattice Mach above 0.3. The message says
            what to change.

    Example:
        >>> units = lattice_units(length=1.0, velocity=1.0, reynolds=100, resolution=64)
        >>> round(units.tau, 4), round(units.mach, 3)
        (0.692, 0.173)
    """
    for name, value in (("length", length), ("velocity", velocity), ("resolution", resolution)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise SimkitInputError(f"{name} must be a finite number > 0, got {value!r}.")
    if (viscosity is None) == (reynolds is None):
        raise SimkitInputError("give exactly one of viscosity and reynolds.")
    if viscosity is not None:
        if not (math.isfinite(viscosity) and viscosity > 0):
            raise SimkitInputError(f"viscosity must be finite and > 0, got {viscosity!r}.")
        reynolds = velocity * length / viscosity
    else:
        assert reynolds is not None  # exactly one of viscosity and reynolds is given
        if not (math.isfinite(reynolds) and reynolds > 0):
            raise SimkitInputError(f"reynolds must be finite and > 0, got {reynolds!r}.")
    if collision not in MIN_TAU:
        raise SimkitInputError(f"collision must be one of {', '.join(MIN_TAU)}, got {collision!r}.")
    if lattice_velocity is not None and tau is not None:
        raise SimkitInputError("give at most one of lattice_velocity and tau.")
    if tau is not None:
        if not (math.isfinite(tau) and tau > 0.5):
            raise SimkitInputError(f"tau must be > 1/2, got {tau!r}.")
        nu_lat = (tau - 0.5) / 3.0
        u_lat = reynolds * nu_lat / resolution
    else:
        u_lat = 0.1 if lattice_velocity is None else float(lattice_velocity)
        if not (math.isfinite(u_lat) and u_lat > 0):
            raise SimkitInputError(f"lattice_velocity must be finite and > 0, got {u_lat!r}.")
        nu_lat = u_lat * resolution / reynolds
        tau = 3.0 * nu_lat + 0.5
    mach = u_lat / CS
    if mach > MAX_MACH:
        raise SimkitInputError(
            f"lattice Mach number {mach:.3g} (lattice velocity {u_lat:.3g}) exceeds {MAX_MACH}: "
            f"compressibility errors and instability. Lower the lattice velocity below "
            f"{MAX_MACH * CS:.3f}, or raise tau or the resolution."
        )
    if tau < MIN_TAU[collision]:
        need = math.ceil((MIN_TAU[collision] - 0.5) * 3.0 * reynolds / u_lat)
        raise SimkitInputError(
            f"tau = {tau:.5g} is below {MIN_TAU[collision]} for {collision} "
            f"at Re = {reynolds:.4g}: "
            f"the run would be unstable. Raise the resolution to at least {need} cells per "
            f"length at this lattice velocity, or lower the lattice velocity, or use "
            f"collision='TRT' / 'Regularized'."
        )
    dx = length / resolution
    dt = u_lat * dx / velocity
    return LatticeUnits(
        dx=dx,
        dt=dt,
        resolution=float(resolution),
        velocity=u_lat,
        viscosity=nu_lat,
        tau=tau,
        reynolds=reynolds,
        mach=mach,
    )
