"""Lattice Boltzmann (`simkit.fluids.lbm`): D2Q9/D3Q19/D3Q27, BGK/TRT/regularised collisions,
Guo forcing, halfway bounce-back walls (stationary and moving) on arbitrary masks, Zou-He velocity
inlets and pressure outlets, in one fused step. `LBMStepper` is a `simkit.run.AbstractStepper`:
`simkit.run.run` gives it chunked runs, HDF5 + XDMF output (`simkit.io.FieldStore`), checkpoints
and resume; `simkit.run.simulate` is the differentiable counterpart.

Lattice units throughout (dx = dt = 1, c_s^2 = 1/3, viscosity nu = (tau - 1/2) / 3);
`simkit.fluids.lattice_units` converts a physical set-up.
"""

from ._collision import BGK as BGK
from ._collision import TRT as TRT
from ._collision import Regularized as Regularized
from ._collision import equilibrium as equilibrium
from ._collision import moments as moments
from ._geometry import (
    box as box,
)
from ._geometry import (
    box_walls as box_walls,
)
from ._geometry import (
    cylinder as cylinder,
)
from ._geometry import (
    face as face,
)
from ._geometry import (
    sphere as sphere,
)
from ._lattice import D2Q9 as D2Q9
from ._lattice import D3Q19 as D3Q19
from ._lattice import D3Q27 as D3Q27
from ._lattice import Lattice as Lattice
from ._sharded import ShardedLBMStepper as ShardedLBMStepper
from ._stepper import LBMState as LBMState
from ._stepper import LBMStepper as LBMStepper
