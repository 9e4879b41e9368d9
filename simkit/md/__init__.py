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
    energy_all_pairs as energy_all_pairs,
    energy_virial as energy_virial,
    forces as forces,
)
from ._integrators import (
    Langevin as Langevin,
    NoseHooverChain as NoseHooverChain,
    VelocityVerlet as VelocityVerlet,
)
from ._minimise import FIRE as FIRE, minimise as minimise
from ._neighbors import (
    NeighborList as NeighborList,
    brute_force_pairs as brute_force_pairs,
    build as build_neighbor_list,  # noqa: F401 - public name for the list build
)
from ._observables import (
    block_average as block_average,
    kinetic_energy as kinetic_energy,
    mean_squared_displacement as mean_squared_displacement,
    pressure as pressure,
    radial_distribution as radial_distribution,
    temperature as temperature,
)
from ._potentials import (
    WCA as WCA,
    LennardJones as LennardJones,
    Morse as Morse,
    PairFunction as PairFunction,
    PairPotential as PairPotential,
    SoftSphere as SoftSphere,
)
from ._setup import lattice as lattice, maxwell_boltzmann as maxwell_boltzmann, random_packing as random_packing
from ._space import displacement as displacement, unwrap as unwrap, volume as volume, wrap as wrap
from ._stepper import MDState as MDState, MDStepper as MDStepper
