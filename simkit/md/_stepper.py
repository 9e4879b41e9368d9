"""The MD state and the stepper base class every integrator shares (init, checks, forces with a
self-updating neighbor list, observables, overflow and growth for the run driver)."""

from __future__ import annotations

import abc
import math
from typing import Any

import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from .._checks import SimkitInputError, require_positive
from ..io import Variable
from ..run import AbstractStepper
from . import _neighbors as nb
from . import _observables as obs
from ._forces import energy_virial, forces
from ._potentials import WCA, LennardJones, PairPotential, check_params
from ._space import unwrap, wrap


class MDState(eqx.Module):
    """State of an MD system (a pytree of arrays; `vmap` over a leading replica axis works).

    Attributes:
        positions: `(N, D)` positions wrapped into the box (length units).
        velocities: `(N, D)` (length / time).
        forces: `(N, D)` forces at `positions` (energy / length).
        image: `(N, D)` int32 box crossings: unwrapped = positions + image * box.
        origin: `(N, D)` unwrapped positions at step 0 (for the mean squared displacement).
        species: `(N,)` int32 species index into the parameter tables.
        mass: `(N,)` masses (mass units).
        neighbors: the neighbor list (capacities are its array shapes).
        step: integer step count; model time is `step * dt`.
        key: PRNG key (stochastic integrators).
        extra: integrator variables (thermostat chain, FIRE time step...), a dict of arrays.

    Example:
        >>> state = stepper.init(positions, params, velocities)
        >>> state.positions.shape, state.neighbors.capacity  # (N, D), K neighbor slots
    """

    positions: Float[Array, "N D"]
    velocities: Float[Array, "N D"]
    forces: Float[Array, "N D"]
    image: Int[Array, "N D"]
    origin: Float[Array, "N D"]
    species: Int[Array, " N"]
    mass: Float[Array, " N"]
    neighbors: nb.NeighborList
    step: Int[Array, ""]
    key: Array
    extra: dict


class MDStepper(AbstractStepper):
    """Base of the MD integrators: static configuration shared by all of them.

    Attributes:
        potential: the pair potential (static form; its parameters are the run's `params`).
        box: orthorhombic periodic box edges `(D,)` (length units), or None for free space.
        dt: time step (time units), > 0.
        skin: neighbor-list skin (length), >= 0; the list holds pairs within cutoff + skin and
            is rebuilt when a particle has moved more than skin / 2.
        tail_correction: add the analytic long-range corrections to the reported potential
            energy and pressure (Lennard-Jones with plain truncation only).

    Example (any integrator; here NVT with a Langevin thermostat):
        >>> stepper = Langevin(LennardJones(cutoff=2.5), box=box, dt=0.005, kT=1.0, gamma=1.0)
        >>> state = stepper.init(positions, params, key=jax.random.key(0))
        >>> stepper.thermo(state, params)["temperature"]
    """

    potential: PairPotential = eqx.field(static=True)
    box: tuple[float, ...] | None = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    skin: float = eqx.field(static=True, default=0.3, kw_only=True)
    tail_correction: bool = eqx.field(static=True, default=False, kw_only=True)

    def __check_init__(self):
        require_positive("dt", self.dt)
        if not (
            isinstance(self.skin, (int, float)) and math.isfinite(self.skin) and self.skin >= 0
        ):
            raise SimkitInputError(f"skin must be a finite number >= 0, got {self.skin!r}.")
        if self.box is not None:
            if len(self.box) not in (2, 3):
                raise SimkitInputError(f"box must have 2 or 3 edges, got {self.box!r}.")
            nb.check_box(self.box, self.potential.cutoff, self.skin)
        if self.tail_correction and not (
            isinstance(self.potential, LennardJones) and self.potential.shift == "none"
        ):
            raise SimkitInputError(
                "tail_correction needs LennardJones with shift='none' (the analytic correction "
                "assumes the plain-truncated potential)."
            )
        if self.tail_correction and self.box is None:
            raise SimkitInputError("tail_correction needs a periodic box (a bulk density).")

    # ---- static helpers ----------------------------------------------------------------
    @property
    def r_list(self) -> float:
        """Neighbor-list radius cutoff + skin (length units)."""
        return self.potential.cutoff + self.skin

    @property
    def grid(self):
        """Cells per axis of the cell list, or None (free space or a box under 3 cells wide)."""
        return nb.cell_grid(self.box, self.r_list)

    def _box(self, dtype):
        return None if self.box is None else jnp.asarray(self.box, dtype)

    def dof(self, n: int, dim: int) -> int:
        """Degrees of freedom for the temperature: D (N - 1), total momentum being conserved."""
        return dim * (n - 1) if n > 1 else dim

    # ---- construction ------------------------------------------------------------------
    def init(
        self,
        positions: Float[Array, "N D"],
        params: dict,
        velocities: Float[Array, "N D"] | None = None,
        *,
        species: Int[Array, " N"] | None = None,
        mass: float | Float[Array, " N"] = 1.0,
        key: Array | None = None,
        min_distance: float | None = None,
        capacity: int | None = None,
        cell_capacity: int | None = None,
    ) -> MDState:
        """Check the inputs and build the initial state (forces and neighbor list included).

        Args:
            positions: `(N, D)` (length units); in a periodic box they are wrapped into it.
            params: the potential's parameters (`potential.params(...)`).
            velocities: `(N, D)`, default zero.
            species: `(N,)` ints in [0, S) for (S, S) parameter tables; default all 0.
            mass: scalar or `(N,)`, > 0.
            key: PRNG key for stochastic integrators (default `jax.random.key(0)`).
            min_distance: refuse pairs closer than this (length); default half the smallest
                sigma for Lennard-Jones / WCA, no check for other potentials.
            capacity: neighbors per particle (default: estimated from the density with
                headroom; the driver grows it if needed).
            cell_capacity: particles per cell of the cell list (default and growth as for
                `capacity`).

        Raises:
            SimkitInputError: wrong shapes, NaN/inf, species out of range or not matching the
                parameter tables, mass <= 0, overlapping particles, or a density too high for
                the cell list.
        """
        positions = jnp.asarray(positions)
        if positions.ndim != 2 or positions.shape[1] not in (2, 3) or positions.shape[0] < 2:
            raise SimkitInputError(
                f"positions must have shape (N, D) with N >= 2 and D = 2 or 3, got "
                f"{tuple(positions.shape)}."
            )
        if not jnp.issubdtype(positions.dtype, jnp.floating):
            positions = positions.astype(jnp.float32)
        n, dim = positions.shape
        dtype = positions.dtype
        if self.box is not None and len(self.box) != dim:
            raise SimkitInputError(f"positions are {dim}-D but the box has {len(self.box)} edges.")
        _require_finite_array("positions", positions)
        velocities = (
            jnp.zeros_like(positions) if velocities is None else jnp.asarray(velocities, dtype)
        )
        if velocities.shape != positions.shape:
            raise SimkitInputError(
                f"velocities must have the shape of positions {tuple(positions.shape)}, got "
                f"{tuple(velocities.shape)}."
            )
        _require_finite_array("velocities", velocities)
        species = jnp.zeros(n, jnp.int32) if species is None else jnp.asarray(species, jnp.int32)
        n_species = _n_species(params)
        if species.shape != (n,):
            raise SimkitInputError(f"species must have shape ({n},), got {tuple(species.shape)}.")
        if int(species.min()) < 0 or int(species.max()) >= n_species:
            raise SimkitInputError(
                f"species must be in [0, {n_species}) to match the ({n_species}, {n_species}) "
                f"parameter tables, got values in [{int(species.min())}, {int(species.max())}]."
            )
        check_params(self.potential, params, n_species)
        mass = jnp.broadcast_to(jnp.asarray(mass, dtype), (n,))
        _require_finite_array("mass", mass)
        if float(mass.min()) <= 0:
            raise SimkitInputError(f"mass must be > 0, got min {float(mass.min())}.")
        box = self._box(dtype)
        positions, image = wrap(positions, box)
        image = jnp.zeros((n, dim), jnp.int32) if image is None else image
        grid = self.grid
        k_est, c_est = nb.estimate_capacities(n, self.box, self.r_list, grid)
        if grid is not None:
            self._check_cell_density(n)
            # Lattice starts put whole planes of atoms on cell faces, so the fullest cell can
            # hold far more than the mean (62 against 32 for fcc 6^3 at rho 0.8442): count it on
            # the host so the first build fits and the list is not compiled twice (~5 s each
            # at N = 864 on 2 cores).
            occupancy = nb.max_cell_occupancy(positions, self.box, grid)
            c_est = min(n, max(c_est, occupancy * 5 // 4 + 2))
        k = capacity or k_est
        c = cell_capacity or c_est
        nbrs = _allocate(positions, self.box, grid, self.r_list, k, c)
        while bool(nbrs.overflow):  # size to the actual configuration before any compute
            nbrs = nb.grown(nbrs, positions, self.box, grid, self.r_list)
        self._check_overlaps(positions, nbrs, params, species, min_distance)
        f = _forces(self.potential, params, positions, nbrs.idx, species, self.box)
        step0 = jnp.asarray(0, jnp.int64 if jax.config.jax_enable_x64 else jnp.int32)
        state = MDState(
            positions=positions,
            velocities=velocities,
            forces=f,
            image=image,
            origin=unwrap(positions, image, box),
            species=species,
            mass=mass,
            neighbors=nbrs,
            step=step0,
            key=jax.random.key(0) if key is None else key,
            extra={},
        )
        return self.init_extra(state, params)

    def init_extra(self, state: MDState, params) -> MDState:
        """Integrator-specific variables (override)."""
        return state

    def _check_cell_density(self, n: int) -> None:
        # A cell of side >= cutoff + skin cannot hold more particles than close packing allows;
        # a mean occupancy far beyond that means positions are nonsense or the box is wrong.
        grid = self.grid
        assert grid is not None  # called only with a cell list
        per_cell = n / float(np.prod(grid))
        cell_vol = float(np.prod(np.asarray(self.box) / np.asarray(grid)))
        if per_cell > 64 * max(cell_vol, 1.0):
            raise SimkitInputError(
                f"density too high for the cell list: {per_cell:.0f} particles per cell of volume "
                f"{cell_vol:.3g} (N = {n}, box {self.box}). Check the box and the positions."
            )

    def _check_overlaps(self, positions, nbrs, params, species, min_distance):
        if min_distance is None:
            if not isinstance(self.potential, (LennardJones, WCA)):
                return
            sig = params["sigma"]
            min_distance = 0.5 * float(jnp.min(jnp.asarray(sig)))
        if min_distance <= 0:
            return
        r2_min, i, j = _closest_pair(positions, nbrs.idx, self.box)
        r = math.sqrt(float(r2_min))
        i, j = int(i), int(j)
        if r < min_distance:
            raise SimkitInputError(
                f"particles {i} and {j} are {r:.4g} apart, closer than min_distance = "
                f"{min_distance:.4g}: the first force would blow the run up. Minimise the energy "
                f"first (simkit.md.FIRE), or pass min_distance=0 to skip this check."
            )

    # ---- dynamics helpers --------------------------------------------------------------
    def compute_forces(self, state: MDState, params, positions) -> tuple[Array, nb.NeighborList]:
        """Update the neighbor list if needed (on device) and return forces at `positions`."""
        nbrs = nb.update(state.neighbors, positions, self.box, self.grid, self.r_list, self.skin)
        f = forces(
            self.potential, params, positions, nbrs.idx, state.species, self._box(positions.dtype)
        )
        return f, nbrs

    def move(self, state: MDState, displacement_: Array) -> tuple[Array, Array]:
        """Positions after a displacement, wrapped, with updated image counts."""
        x, image = wrap(
            state.positions + displacement_, self._box(state.positions.dtype), state.image
        )
        assert image is not None  # wrap returns the image count it is given, updated
        return x, image

    def time(self, state: MDState) -> Array:
        return state.step.astype(state.positions.dtype) * jnp.asarray(
            self.dt, state.positions.dtype
        )

    @abc.abstractmethod
    def step(self, state: MDState, params) -> MDState: ...

    # ---- capacity: the driver's overflow contract --------------------------------------
    def overflowed(self, state: MDState) -> Bool[Array, ""]:
        return state.neighbors.overflow

    def grow(self, state: MDState) -> tuple["MDStepper", MDState]:
        """Larger neighbor-list capacities, rebuilt at `state` (a chunk-start state, whose forces
        were computed before the overflow with a complete list, so they stay valid)."""
        nbrs = nb.grown(state.neighbors, state.positions, self.box, self.grid, self.r_list)
        return self, eqx.tree_at(lambda s: s.neighbors, state, nbrs)

    def resizable(self, path: str) -> bool:
        """Checkpoint entries whose shape may differ from a fresh state (grown capacities)."""
        return ".neighbors." in path

    # ---- observables -------------------------------------------------------------------
    def kinetic_energy(self, state: MDState) -> Float[Array, ""]:
        """sum m v^2 / 2 (energy units)."""
        return obs.kinetic_energy(state.velocities, state.mass)

    def thermo(self, state: MDState, params) -> dict[str, Array]:
        """Kinetic, potential and total energy per particle, temperature, pressure, MSD."""
        n, dim = state.positions.shape
        dtype = state.positions.dtype
        box = self._box(dtype)
        u, w = energy_virial(
            self.potential, params, state.positions, state.neighbors.idx, state.species, box
        )
        ke = self.kinetic_energy(state)
        temperature = 2.0 * ke / self.dof(n, dim)
        out = {"kinetic_energy": ke / n, "potential_energy": u / n}
        if box is not None:
            vol = jnp.prod(box)
            pressure = obs.pressure(ke, w, box)
            if self.tail_correction:
                assert isinstance(self.potential, LennardJones)  # checked in __init__
                rho = n / vol
                frac = jnp.bincount(state.species, length=_n_species(params)) / n
                out["potential_energy"] = out["potential_energy"] + self.potential.tail_energy(
                    rho, params, frac
                )
                pressure = pressure + self.potential.tail_pressure(rho, params, frac)
            out["pressure"] = pressure
        out["total_energy"] = out["kinetic_energy"] + out["potential_energy"]
        out["temperature"] = temperature
        out["msd"] = obs.mean_squared_displacement(state.positions, state.image, state.origin, box)
        out.update(self.extra_observables(state, params, u))
        return {k: jnp.asarray(v, dtype) for k, v in out.items()}

    def extra_observables(self, state: MDState, params, potential_energy) -> dict[str, Array]:
        """Integrator-specific thermo quantities (named by `extra_names`); default none."""
        return {}

    def observe(self, state: MDState, params) -> dict[str, Array]:
        out = {
            "position": state.positions,
            "velocity": state.velocities,
            "image": state.image,
            "species": state.species,
        }
        out.update(self.thermo(state, params))
        return out

    def save_groups(self) -> dict[str, tuple[str, ...]]:
        thermo = (
            ("kinetic_energy", "potential_energy", "total_energy", "temperature", "msd")
            + (("pressure",) if self.box is not None else ())
            + self.extra_names()
        )
        return {"trajectory": ("position", "velocity", "image", "species"), "thermo": thermo}

    def extra_names(self) -> tuple[str, ...]:
        """Names of `extra_observables`, saved in the thermo group; default none."""
        return ()

    def variables(self, state: MDState, params) -> dict[str, Variable]:
        """Saved quantities. Reduced (Lennard-Jones) units carry no `unit` attribute in the file:
        H5MD reads a missing unit as dimensionless, and MDAnalysis then converts nothing
        (it refuses unit strings it does not know, such as "sigma")."""
        n, dim = state.positions.shape
        dt = state.positions.dtype.name
        vec = ("particle", "spatial")
        out = {
            "position": Variable(vec, (n, dim), dt),
            "velocity": Variable(vec, (n, dim), dt),
            "image": Variable(vec, (n, dim), "int32"),
            "species": Variable(("particle",), (n,), "int32"),
        }
        for name in self.save_groups()["thermo"]:
            out[name] = Variable((), (), dt)
        return out

    def time_units(self) -> str:
        return ""  # reduced units: tau = sigma sqrt(m / epsilon)

    def h5md_options(self) -> dict[str, Any]:
        """`store_options` for `simkit.io.H5MDStore`: the box and boundaries, and the particle
        group named "trajectory", the name MDAnalysis (2.11) looks for when it builds a
        Universe from an H5MD file alone."""
        common = {"particle_group": "trajectory"}
        if self.box is None:
            return common | {"boundary": "none"}
        return common | {"box": list(self.box), "boundary": "periodic"}


# Compiled once per shape and static configuration: run op by op, a build of a few thousand
# particles takes seconds of dispatch before the first step.
_allocate = nb.allocate_jit
_forces = jax.jit(forces, static_argnums=(0, 5))


@jax.jit(static_argnums=2)
def _closest_pair(positions, idx, box):
    """(smallest squared distance in the list, i, j) for the overlap check at init."""
    from ._space import displacement

    n = positions.shape[0]
    xj = positions[jnp.minimum(idx, n - 1)]
    box_a = None if box is None else jnp.asarray(box, positions.dtype)
    d = displacement(positions[:, None, :], xj, box_a)
    r2 = jnp.where(idx < n, jnp.sum(d * d, -1), jnp.inf)
    flat = jnp.argmin(r2)
    i, slot = flat // r2.shape[1], flat % r2.shape[1]
    return r2[i, slot], i, idx[i, slot]


def _n_species(params) -> int:
    for v in params.values():
        if jnp.ndim(v) == 2:
            return int(jnp.shape(v)[0])
    return 1


def _require_finite_array(name, x):
    if isinstance(x, jax.core.Tracer):
        return
    bad = ~np.isfinite(np.asarray(x))
    if bad.any():
        where = np.argwhere(bad)[0]
        raise SimkitInputError(
            f"{name} contains {int(bad.sum())} NaN/inf value(s), the first at index "
            f"{tuple(int(i) for i in where)}."
        )
