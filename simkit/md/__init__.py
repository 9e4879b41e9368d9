"""Molecular dynamics: space, pair potentials, neighbor lists, integrators, minimisation,
set-up and observables. Every integrator is a `simkit.run.AbstractStepper`, so `simkit.run.run`
gives it chunked jitted runs, H5MD output, checkpoints, resume, and neighbor-list overflow
recovery without user code.

Example (LAMMPS's in.lj benchmark set-up, 4 000 atoms):
    >>> import jax, simkit.md as md
    >>> from simkit.run import simulate
    >>> positions, box = md.lattice("fcc", 10, density=0.8442)
    >>> lj = md.LennardJones(cutoff=2.5)
    >>> params = lj.params(epsilon=1.0, sigma=1.0)
    >>> stepper = md.VelocityVerlet(lj, box=box, dt=0.005, skin=0.3)
    >>> v0 = md.maxwell_boltzmann(jax.random.key(87287), positions.shape, kT=1.44)
    >>> state = stepper.init(positions, params, v0)
    >>> final, frames = simulate(stepper, state, params, 100, {"thermo": 10,
    ...                              "trajectory": 100})
"""

from ._forces import (
    energy as energy,
)
from ._forces import (
    energy_all_pairs as energy_all_pairs,
)
from ._forces import (
    energy_virial as energy_virial,
)
from ._forces import (
    forces as forces,
)
from ._integrators import (
    Langevin as Langevin,
)
from ._integrators import (
    NoseHooverChain as NoseHooverChain,
)
from ._integrators import (
    VelocityVerlet as VelocityVerlet,
)
from ._minimise import FIRE as FIRE
from ._minimise import minimise as minimise
from ._neighbors import (
    NeighborList as NeighborList,
)
from ._neighbors import (
    brute_force_pairs as brute_force_pairs,
)
from ._neighbors import (
    build as build_neighbor_list,  # noqa: F401 - public name for the list build
)
from ._observables import (
    block_average as block_average,
)
from ._observables import (
    kinetic_energy as kinetic_energy,
)
from ._observables import (
    mean_squared_displacement as mean_squared_displacement,
)
from ._observables import (
    pressure as pressure,
)
from ._observables import (
    radial_distribution as radial_distribution,
)
from ._observables import (
    temperature as temperature,
)
from ._potentials import (
    WCA as WCA,
)
from ._potentials import (
    LennardJones as LennardJones,
)
from ._potentials import (
    Morse as Morse,
)
from ._potentials import (
    PairFunction as PairFunction,
)
from ._potentials import (
    PairPotential as PairPotential,
)
from ._potentials import (
    SoftSphere as SoftSphere,
)
from ._setup import (
    lattice as lattice,
)
from ._setup import (
    maxwell_boltzmann as maxwell_boltzmann,
)
from ._setup import (
    random_packing as random_packing,
)
from ._space import displacement as displacement
from ._space import unwrap as unwrap
from ._space import volume as volume
from ._space import wrap as wrap
from ._stepper import MDState as MDState
from ._stepper import MDStepper as MDStepper
