"""Pseudo-spectral incompressible Navier-Stokes (`simkit.fluids.spectral`): 2-D vorticity form
on a doubly periodic box of any aspect ratio, Fourier in space with 2/3-rule dealiasing,
integrating-factor RK4 in time, Kolmogorov or user-given forcing and linear drag.

`NavierStokes2D` is a `simkit.run.AbstractStepper`: `simkit.run.run` gives it chunked runs,
HDF5 + XDMF output (`simkit.io.FieldStore`) with fields, diagnostics and spectra at their own
rates, checkpoints and resume; `simkit.run.simulate` is the differentiable counterpart
(`checkpoint="sqrt"` for long gradients) and `simkit.ensemble.sharded_vmap` runs ensembles.
The diagnostics (`energy`, `enstrophy`, `dissipation`, `energy_spectrum`) work on any spectral
vorticity inside jitted code.
"""

from ._diagnostics import (
    box_mean_product as box_mean_product,
)
from ._diagnostics import (
    dissipation as dissipation,
)
from ._diagnostics import (
    energy as energy,
)
from ._diagnostics import (
    energy_spectrum as energy_spectrum,
)
from ._diagnostics import (
    enstrophy as enstrophy,
)
from ._diagnostics import (
    shell_wavenumbers as shell_wavenumbers,
)
from ._forcing import Kolmogorov as Kolmogorov
from ._forcing import curl as curl
from ._grid import SpectralGrid as SpectralGrid
from ._grid3d import SpectralGrid3D as SpectralGrid3D
from ._initial import random_vorticity as random_vorticity
from ._initial import taylor_green as taylor_green
from ._ns3d import (
    FFTS_PER_STEP_3D as FFTS_PER_STEP_3D,
)
from ._ns3d import (
    NavierStokes3D as NavierStokes3D,
)
from ._ns3d import (
    SpectralState3D as SpectralState3D,
)
from ._ns3d import (
    abc_flow as abc_flow,
)
from ._ns3d import (
    box_mean_product_3d as box_mean_product_3d,
)
from ._ns3d import (
    cfl_number_3d as cfl_number_3d,
)
from ._ns3d import (
    energy_3d as energy_3d,
)
from ._ns3d import (
    energy_spectrum_3d as energy_spectrum_3d,
)
from ._ns3d import (
    random_velocity_3d as random_velocity_3d,
)
from ._ns3d import (
    shell_wavenumbers_3d as shell_wavenumbers_3d,
)
from ._ns3d import (
    taylor_green_3d as taylor_green_3d,
)
from ._stepper import (
    FFTS_PER_STEP as FFTS_PER_STEP,
)
from ._stepper import (
    MAX_CFL as MAX_CFL,
)
from ._stepper import (
    NavierStokes2D as NavierStokes2D,
)
from ._stepper import (
    SpectralState as SpectralState,
)
from ._stepper import (
    cfl_number as cfl_number,
)
from ._stepper import (
    stable_time_step as stable_time_step,
)
