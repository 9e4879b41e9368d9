"""Fluid solvers: lattice Boltzmann (`simkit.fluids.lbm`), pseudo-spectral Navier-Stokes
(`simkit.fluids.spectral`), the units helpers and diagnostics they
share, and published reference data (`GHIA_*`) used by the validations."""

from . import lbm as lbm
from . import spectral as spectral
from ._diagnostics import (
    energy_spectrum as energy_spectrum,
)
from ._diagnostics import (
    kinetic_energy as kinetic_energy,
)
from ._diagnostics import (
    vorticity_2d as vorticity_2d,
)
from ._reference import (
    GHIA_U as GHIA_U,
)
from ._reference import (
    GHIA_V as GHIA_V,
)
from ._reference import (
    GHIA_X as GHIA_X,
)
from ._reference import (
    GHIA_Y as GHIA_Y,
)
from ._units import LatticeUnits as LatticeUnits
from ._units import lattice_units as lattice_units
