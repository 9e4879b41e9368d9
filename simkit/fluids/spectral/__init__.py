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
    dissipation as dissipation,
    energy as energy,
    energy_spectrum as energy_spectrum,
    enstrophy as enstrophy,
    shell_wavenumbers as shell_wavenumbers,
)
from ._forcing import Kolmogorov as Kolmogorov, curl as curl
from ._grid import SpectralGrid as SpectralGrid
from ._initial import random_vorticity as random_vorticity, taylor_green as taylor_green
from ._stepper import (
    FFTS_PER_STEP as FFTS_PER_STEP,
    MAX_CFL as MAX_CFL,
    NavierStokes2D as NavierStokes2D,
    SpectralState as SpectralState,
    cfl_number as cfl_number,
    stable_time_step as stable_time_step,
)
from ._grid3d import SpectralGrid3D as SpectralGrid3D
from ._ns3d import (
    FFTS_PER_STEP_3D as FFTS_PER_STEP_3D,
    NavierStokes3D as NavierStokes3D,
    SpectralState3D as SpectralState3D,
    abc_flow as abc_flow,
    box_mean_product_3d as box_mean_product_3d,
    cfl_number_3d as cfl_number_3d,
    energy_3d as energy_3d,
    energy_spectrum_3d as energy_spectrum_3d,
    random_velocity_3d as random_velocity_3d,
    shell_wavenumbers_3d as shell_wavenumbers_3d,
    taylor_green_3d as taylor_green_3d,
)
