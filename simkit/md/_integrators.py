"""Integrators: velocity Verlet (NVE), Langevin BAOAB (NVT), Nose-Hoover chain (NVT).

Each is an `MDStepper`: one `step` is one time step `dt`, with the neighbor list updated on
device when needed. All are pure functions of (state, params), so `jit`, `vmap` over replicas
and `grad` with respect to the potential's parameters apply.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import SimkitInputError, require_positive
from ._stepper import MDState, MDStepper


def _require_kT(kT):
    if not (isinstance(kT, (int, float)) and math.isfinite(kT) and kT >= 0):
        raise SimkitInputError(f"kT must be a finite number >= 0, got {kT!r}.")


class VelocityVerlet(MDStepper):
    """Velocity-Verlet NVE integration (symplectic, time-reversible; energy error O(dt^2)).

    Example:
        >>> lj = LennardJones(cutoff=2.5, shift="energy")
        >>> positions, box = lattice("fcc", (6, 6, 6), density=0.8442)
        >>> stepper = VelocityVerlet(lj, box=box, dt=0.005)
        >>> state = stepper.init(positions, lj.params(),
        ...                      maxwell_boltzmann(jax.random.key(0), positions.shape, kT=1.44))
        >>> state = stepper.step(state, lj.params())
    """

    def step(self, state: MDState, params) -> MDState:
        dt = jnp.asarray(self.dt, state.positions.dtype)
        inv_m = (1.0 / state.mass)[:, None]
        v_half = state.velocities + 0.5 * dt * state.forces * inv_m
        x, image = self.move(state, dt * v_half)
        f, nbrs = self.compute_forces(state, params, x)
        v = v_half + 0.5 * dt * f * inv_m
        return eqx.tree_at(
            lambda s: (s.positions, s.velocities, s.forces, s.image, s.neighbors, s.step),
            state,
            (x, v, f, image, nbrs, state.step + 1),
        )


class Langevin(MDStepper):
    """Langevin dynamics by the BAOAB splitting (Leimkuhler & Matthews, Appl. Math. Res. Express
    2013, 34): exact Ornstein-Uhlenbeck velocity update between two half drifts; samples the
    canonical distribution at temperature `kT` with O(dt^2) configurational error.

    Attributes:
        kT: temperature (energy units), >= 0.
        gamma: friction (1 / time), > 0.

    Example:
        >>> stepper = Langevin(lj, box=box, dt=0.005, kT=1.0, gamma=1.0)
        >>> state = stepper.init(positions, lj.params(), key=jax.random.key(0))
    """

    kT: float = eqx.field(static=True, kw_only=True)
    gamma: float = eqx.field(static=True, default=1.0, kw_only=True)

    def __check_init__(self):
        _require_kT(self.kT)
        require_positive("gamma", self.gamma)

    def dof(self, n, dim):
        return dim * n  # the thermostat does not conserve momentum

    def step(self, state: MDState, params) -> MDState:
        dtype = state.positions.dtype
        dt = jnp.asarray(self.dt, dtype)
        inv_m = (1.0 / state.mass)[:, None]
        v = state.velocities + 0.5 * dt * state.forces * inv_m  # B
        drift = 0.5 * dt * v  # A
        key, sub = jax.random.split(state.key)
        c1 = jnp.asarray(math.exp(-self.gamma * self.dt), dtype)
        c2 = jnp.sqrt((1.0 - c1 * c1) * jnp.asarray(self.kT, dtype) * inv_m)
        v = c1 * v + c2 * jax.random.normal(sub, v.shape, dtype)  # O
        x, image = self.move(state, drift + 0.5 * dt * v)  # A
        f, nbrs = self.compute_forces(state, params, x)
        v = v + 0.5 * dt * f * inv_m  # B
        return eqx.tree_at(
            lambda s: (s.positions, s.velocities, s.forces, s.image, s.neighbors, s.step, s.key),
            state,
            (x, v, f, image, nbrs, state.step + 1, key),
        )


class NoseHooverChain(MDStepper):
    """Nose-Hoover chain NVT (Martyna, Klein & Tuckerman, J. Chem. Phys. 97, 2635 (1992)):
    velocity Verlet wrapped in two half-step updates of a chain of `chain_length` thermostats
    (Trotter splitting, Tuckerman et al., J. Phys. A 39, 5629 (2006)). Deterministic, time
    reversible; the extended energy `conserved_energy` is conserved (observed with thermo).

    Attributes:
        kT: temperature (energy units), > 0.
        tau: thermostat relaxation time (time units), > 0; masses Q_1 = dof kT tau^2,
            Q_k = kT tau^2.
        chain_length: thermostats in the chain, >= 1.

    Example:
        >>> stepper = NoseHooverChain(lj, box=box, dt=0.005, kT=1.0, tau=0.5)
        >>> state = stepper.init(positions, lj.params(), v0)
        >>> stepper.thermo(state, lj.params())["conserved_energy"]
    """

    kT: float = eqx.field(static=True, kw_only=True)
    tau: float = eqx.field(static=True, default=0.5, kw_only=True)
    chain_length: int = eqx.field(static=True, default=3, kw_only=True)

    def __check_init__(self):
        _require_kT(self.kT)
        require_positive("kT", self.kT)
        require_positive("tau", self.tau)
        require_positive("chain_length", self.chain_length, integer=True)

    def _masses(self, n, dim, dtype):
        dof = self.dof(n, dim)
        q = jnp.full(self.chain_length, self.kT * self.tau**2, dtype)
        return q.at[0].set(dof * self.kT * self.tau**2), dof

    def init_extra(self, state, params):
        z = jnp.zeros(self.chain_length, state.positions.dtype)
        return eqx.tree_at(lambda s: s.extra, state, {"xi": z, "v_xi": z})

    def _chain(self, v, mass, xi, v_xi, half_dt):
        """Half-step chain update; scales the particle velocities. (Trotter factorisation of
        the chain Liouvillian, one Suzuki-Yoshida stage.)"""
        n, dim = v.shape
        q, dof = self._masses(n, dim, v.dtype)
        kT = jnp.asarray(self.kT, v.dtype)
        m = self.chain_length
        ke2 = jnp.sum(mass[:, None] * v * v)
        quarter = 0.5 * half_dt

        def g(k, ke2, v_xi):
            return (ke2 - dof * kT) / q[0] if k == 0 else (q[k - 1] * v_xi[k - 1] ** 2 - kT) / q[k]

        # downward sweep
        v_xi = v_xi.at[m - 1].add(quarter * g(m - 1, ke2, v_xi))
        for k in range(m - 2, -1, -1):
            s = jnp.exp(-0.5 * quarter * v_xi[k + 1])
            v_xi = v_xi.at[k].set((v_xi[k] * s + quarter * g(k, ke2, v_xi)) * s)
        scale = jnp.exp(-half_dt * v_xi[0])
        v = v * scale
        ke2 = ke2 * scale * scale
        xi = xi + half_dt * v_xi
        # upward sweep
        for k in range(m - 1):
            s = jnp.exp(-0.5 * quarter * v_xi[k + 1])
            v_xi = v_xi.at[k].set((v_xi[k] * s + quarter * g(k, ke2, v_xi)) * s)
        v_xi = v_xi.at[m - 1].add(quarter * g(m - 1, ke2, v_xi))
        return v, xi, v_xi

    def step(self, state: MDState, params) -> MDState:
        dtype = state.positions.dtype
        dt = jnp.asarray(self.dt, dtype)
        half = 0.5 * dt
        inv_m = (1.0 / state.mass)[:, None]
        v, xi, v_xi = self._chain(
            state.velocities, state.mass, state.extra["xi"], state.extra["v_xi"], half
        )
        v = v + half * state.forces * inv_m
        x, image = self.move(state, dt * v)
        f, nbrs = self.compute_forces(state, params, x)
        v = v + half * f * inv_m
        v, xi, v_xi = self._chain(v, state.mass, xi, v_xi, half)
        return eqx.tree_at(
            lambda s: (s.positions, s.velocities, s.forces, s.image, s.neighbors, s.step, s.extra),
            state,
            (x, v, f, image, nbrs, state.step + 1, {"xi": xi, "v_xi": v_xi}),
        )

    def extra_observables(self, state, params, potential_energy):
        n, dim = state.positions.shape
        q, dof = self._masses(n, dim, state.positions.dtype)
        xi, v_xi = state.extra["xi"], state.extra["v_xi"]
        ke = self.kinetic_energy(state)
        h = (
            ke
            + potential_energy
            + 0.5 * jnp.sum(q * v_xi**2)
            + self.kT * (dof * xi[0] + jnp.sum(xi[1:]))
        )
        return {"conserved_energy": h / n}

    def extra_names(self):
        return ("conserved_energy",)
