"""`LBMStepper`: the lattice Boltzmann solver as a `simkit.run.AbstractStepper`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ..._checks import SimkitInputError
from ...io import Variable
from ...run import AbstractStepper
from .._diagnostics import kinetic_energy, vorticity_2d
from .._units import MAX_MACH
from ._collision import BGK, COLLISIONS, equilibrium, moments
from ._geometry import parse_side
from ._lattice import Lattice
from ._lattice import lattice as _lattice
from ._stream import FLUID, MOVING, OBSTACLE, WALL, block_rows, roll_shift, update, update_blocked

_NAMES_TAKEN = ("viscosity", "force", "inlet_velocity", "outlet_density")


class LBMState(eqx.Module):
    """State of a lattice Boltzmann run (a pytree of arrays; `vmap` over a leading axis works).

    Attributes:
        f: `(Q, *shape)` populations after streaming, stored as deviations from the rest
            weights, f_i - w_i (density units; a cell's density is 1 + their sum). Storing
            deviations keeps float32's digits for the small changes that carry the flow: a
            Poiseuille profile at |u| ~ 1e-3 is 5x more accurate than with f_i itself.
            Memory: Q * itemsize bytes per cell (D2Q9 float32: 36 B; D3Q19: 76 B).
        flags: `shape` int8 node types (0 fluid, 1 wall, 2 obstacle, 3 + k moving wall k), or
            None on a fully periodic grid without solids.
        step: int32 step count; model time is `step` (lattice units, dt = 1).

    Example:
        >>> state = stepper.init(params, walls=walls)
        >>> state.f.shape, state.step  # (9, nx, ny) for D2Q9, 0
    """

    f: Float[Array, "Q *shape"]  # noqa: F821 (a jaxtyping shape, not an expression)
    flags: Int[Array, "*shape"] | None
    step: Int[Array, ""]


class LBMStepper(AbstractStepper):
    """Lattice Boltzmann for weakly compressible flow, in lattice units (dx = dt = 1, c_s^2 = 1/3).

    One step is one jitted function (collide, pull-stream, bounce-back, inlet/outlet) on the
    populations, Q * itemsize bytes per cell (D2Q9 float32: 36 B). Grids whose populations
    exceed 256 KiB each are stepped in cache-sized strips along x (`blocking`), written back in
    place inside a loop of steps. Memory: the state, plus about 1.2 states of temporaries for
    the plain step (compiled, D2Q9 1024^2 float32: 36 MiB state, 44 MiB temporaries), plus the
    output state when a single step is called outside a loop.

    Args:
        lattice: `D2Q9`, `D3Q19`, `D3Q27` (or their names).
        shape: grid cells per axis `(nx, ny[, nz])`; axis 0 is x.
        collision: `BGK()` (default), `TRT(magic=...)` or `Regularized()`.
        periodic: per axis. A non-periodic axis needs both end faces covered by solid cells
            (walls) or by the inlet/outlet; `init` checks it.
        dtype: "float32" (default) or "float64".
        body_force: include Guo forcing with a uniform force `params["force"]` (D,).
        moving_walls: names of moving walls; each gets a mask in `init(moving={name: mask})` and a
            velocity `params[name]` (D,).
        inlet: side ("x-", ...) with a Zou-He velocity inlet, velocity `params["inlet_velocity"]`
            (D,) or a profile `(*face_shape, D)`.
        outlet: side with a Zou-He pressure outlet, density `params["outlet_density"]`.
        blocking: "auto" (default), "off", or rows per strip: large grids step in strips of a
            few cells along x so that the Q populations of a strip stay in cache (same physics,
            same result to rounding; on CPU 2.5-3x faster for D2Q9 1024^2, 1.25x for D3Q19 64^3
            float32). "auto" blocks when one population exceeds 256 KiB and strips of at least
            2 rows fit 64 KiB per population (not D3Q19 128^3, where it gained nothing).

    Params (from `stepper.params(...)`): `viscosity` (lattice units, nu = (tau - 1/2) / 3),
    `force`, the moving walls' velocities, `inlet_velocity`, `outlet_density`: array leaves,
    so `jax.grad` reaches all of them.

    Example (lid-driven cavity, Re = 100 on 64 fluid cells):
        >>> import simkit.fluids.lbm as lbm
        >>> n = 66                                      # 64 fluid cells + 2 wall layers
        >>> stepper = lbm.LBMStepper(lbm.D2Q9, (n, n), periodic=(False, False),
        ...                          moving_walls=("lid",))
        >>> params = stepper.params(viscosity=0.1 * 64 / 100, lid=(0.1, 0.0))
        >>> lid = lbm.face((n, n), "y+")
        >>> walls = lbm.box_walls((n, n)) & ~lid
        >>> state = stepper.init(params, walls=walls, moving={"lid": lid})
        >>> state = stepper.step(state, params)
    """

    lattice: Lattice = eqx.field(static=True)
    shape: tuple[int, ...] = eqx.field(static=True)
    collision: Any = eqx.field(static=True, default=BGK())
    periodic: tuple[bool, ...] = eqx.field(static=True, default=())  # set by __init__
    dtype: str = eqx.field(static=True, default="float32")
    body_force: bool = eqx.field(static=True, default=False)
    moving_walls: tuple[str, ...] = eqx.field(static=True, default=())
    inlet: str | None = eqx.field(static=True, default=None)
    outlet: str | None = eqx.field(static=True, default=None)
    blocking: int | str = eqx.field(static=True, default="auto")

    def __init__(
        self,
        lattice: Lattice | str,
        shape: Sequence[int],
        collision: Any = None,
        *,
        periodic: Sequence[bool] | bool = True,
        dtype: str = "float32",
        body_force: bool = False,
        moving_walls: Sequence[str] = (),
        inlet: str | None = None,
        outlet: str | None = None,
        blocking: int | str = "auto",
    ):
        self.lattice = _lattice(lattice)
        d = self.lattice.d
        try:
            shape = tuple(int(n) for n in shape)
        except (TypeError, ValueError):
            raise SimkitInputError(
                f"shape must be a sequence of {d} integers, got {shape!r}."
            ) from None
        if len(shape) != d:
            raise SimkitInputError(f"{self.lattice.name} needs a {d}-D grid shape, got {shape}.")
        if any(n < 3 for n in shape):
            raise SimkitInputError(f"every axis needs at least 3 cells, got shape {shape}.")
        self.shape = shape
        self.collision = BGK() if collision is None else collision
        if not isinstance(self.collision, COLLISIONS):
            raise SimkitInputError(
                f"collision must be BGK(), TRT() or Regularized(), got {self.collision!r}."
            )
        if isinstance(periodic, bool):
            periodic = (periodic,) * d
        periodic = tuple(bool(p) for p in periodic)
        if len(periodic) != d:
            raise SimkitInputError(f"periodic needs {d} entries, got {periodic}.")
        self.periodic = periodic
        if str(np.dtype(dtype)) not in ("float32", "float64"):
            raise SimkitInputError(f"dtype must be float32 or float64, got {dtype!r}.")
        self.dtype = str(np.dtype(dtype))
        self.body_force = bool(body_force)
        self.moving_walls = tuple(str(m) for m in moving_walls)
        for name in self.moving_walls:
            if name in _NAMES_TAKEN or not name.isidentifier():
                raise SimkitInputError(
                    f"moving wall name {name!r} is not allowed "
                    f"(an identifier other than {', '.join(_NAMES_TAKEN)})."
                )
        if len(set(self.moving_walls)) != len(self.moving_walls):
            raise SimkitInputError(f"moving wall names must differ: {self.moving_walls}.")
        if len(self.moving_walls) > 120:
            raise SimkitInputError("at most 120 moving walls (their ids are int8).")
        for label, side in (("inlet", inlet), ("outlet", outlet)):
            if side is None:
                continue
            axis, _ = parse_side(side, d)
            if periodic[axis]:
                raise SimkitInputError(
                    f"the {label} is on side {side!r} but axis {'xyz'[axis]} is periodic; pass "
                    f"periodic={tuple(p if a != axis else False for a, p in enumerate(periodic))}."
                )
        if inlet is not None and inlet == outlet:
            raise SimkitInputError(f"inlet and outlet cannot share side {inlet!r}.")
        self.inlet, self.outlet = inlet, outlet
        if blocking not in ("auto", "off") and (
            isinstance(blocking, bool)
            or not isinstance(blocking, (int, np.integer))
            or int(blocking) < 1
        ):
            raise SimkitInputError(
                f'blocking must be "auto", "off" or a positive number of rows, got {blocking!r}.'
            )
        self.blocking = blocking if isinstance(blocking, str) else int(blocking)

    # ---- parameters and initial state ------------------------------------------------------

    def params(
        self,
        viscosity: float,
        *,
        force: Sequence[float] | None = None,
        inlet_velocity: Any = None,
        outlet_density: float = 1.0,
        **wall_velocities: Sequence[float],
    ) -> dict[str, Array]:
        """Checked run parameters (lattice units) as a dict of arrays.

        Args:
            viscosity: kinematic viscosity nu > 0 (cells^2 / step); tau = 3 nu + 1/2 must reach
                the collision's `min_tau`.
            force: body force per volume (D,), only with `body_force=True`.
            inlet_velocity: (D,) or `(*face_shape, D)` velocity at the inlet (cells / step).
            outlet_density: density at the outlet (pressure p = rho / 3).
            **wall_velocities: `name=(ux, uy[, uz])` for each moving wall.

        Raises:
            SimkitInputError: a non-positive or non-finite viscosity, tau below the collision's
                limit, a lattice Mach number |u| / c_s above 0.3, a missing or unknown entry.
        """
        d = self.lattice.d
        dt = self.dtype
        try:
            nu = float(viscosity)
        except (TypeError, ValueError):
            raise SimkitInputError(f"viscosity must be a number, got {viscosity!r}.") from None
        if not (math.isfinite(nu) and nu > 0):
            raise SimkitInputError(f"viscosity must be finite and > 0, got {viscosity}.")
        tau = 3.0 * nu + 0.5
        if tau < self.collision.min_tau:
            raise SimkitInputError(
                f"tau = 3 * viscosity + 1/2 = {tau:.5g} is below {self.collision.min_tau} for "
                f"{type(self.collision).__name__}: the run would be unstable. Raise the "
                f"resolution or lower the lattice velocity (both raise the lattice viscosity "
                f"at fixed Re), or use a more stable collision (TRT, Regularized)."
            )
        out = {"viscosity": jnp.asarray(nu, dt)}
        if force is not None and not self.body_force:
            raise SimkitInputError(
                "a force was given but the stepper has body_force=False; "
                "build it with LBMStepper(..., body_force=True)."
            )
        if self.body_force:
            out["force"] = self._vector("force", (0.0,) * d if force is None else force)
        for name in self.moving_walls:
            if name not in wall_velocities:
                raise SimkitInputError(
                    f"missing velocity of moving wall {name!r}: "
                    f"pass params(..., {name}=(ux, uy{', uz' if d == 3 else ''}))."
                )
            out[name] = self._vector(name, wall_velocities.pop(name))
            self._check_mach(name, out[name])
        if wall_velocities:
            raise SimkitInputError(
                f"unknown parameters {sorted(wall_velocities)}; moving walls "
                f"declared on the stepper: {list(self.moving_walls)}."
            )
        if self.inlet is not None:
            if inlet_velocity is None:
                raise SimkitInputError(
                    "the stepper has an inlet: pass params(..., inlet_velocity=...)."
                )
            face_shape = self._face_shape(self.inlet)
            v = jnp.asarray(inlet_velocity, dt)
            if v.shape not in ((d,), face_shape + (d,)):
                raise SimkitInputError(
                    f"inlet_velocity must have shape ({d},) or {face_shape + (d,)}, got {v.shape}."
                )
            if not bool(jnp.all(jnp.isfinite(v))):
                raise SimkitInputError("inlet_velocity contains NaN or inf.")
            self._check_mach("inlet_velocity", v)
            axis, end = parse_side(self.inlet, d)
            if bool(jnp.any(-end * v[..., axis] < 0)):
                raise SimkitInputError(
                    f"inlet_velocity points out of the domain on the {self.inlet} face (its "
                    f"{'xyz'[axis]} component must be {'>=' if end < 0 else '<='} 0); an outflow "
                    f"face takes an outlet instead."
                )
            out["inlet_velocity"] = v
        elif inlet_velocity is not None:
            raise SimkitInputError("inlet_velocity given but the stepper has no inlet.")
        if self.outlet is not None:
            rho = float(outlet_density)
            if not (math.isfinite(rho) and rho > 0):
                raise SimkitInputError(
                    f"outlet_density must be finite and > 0, got {outlet_density}."
                )
            out["outlet_density"] = jnp.asarray(rho, dt)
        return out

    def tau(self, params) -> Array:
        """Relaxation time tau = 3 nu + 1/2 of `params`."""
        return 3.0 * params["viscosity"] + 0.5

    def _vector(self, name, value):
        v = jnp.asarray(value, self.dtype)
        if v.shape != (self.lattice.d,):
            raise SimkitInputError(f"{name} must have shape ({self.lattice.d},), got {v.shape}.")
        if not bool(jnp.all(jnp.isfinite(v))):
            raise SimkitInputError(f"{name} contains NaN or inf: {value}.")
        return v

    def _check_mach(self, name, velocity):
        speed = float(
            jnp.max(jnp.linalg.norm(jnp.reshape(velocity, (-1, self.lattice.d)), axis=-1))
        )
        mach = speed * math.sqrt(3.0)
        if mach > MAX_MACH:
            raise SimkitInputError(
                f"{name}: lattice Mach number |u| / c_s = {mach:.3g} exceeds {MAX_MACH}; the "
                f"weakly compressible scheme is inaccurate and unstable there. Lower the lattice "
                f"velocity (|u| <= {MAX_MACH / math.sqrt(3):.3f}) and raise the resolution or "
                f"the number of steps instead."
            )

    def _face_shape(self, side):
        axis, _ = parse_side(side, self.lattice.d)
        return tuple(n for a, n in enumerate(self.shape) if a != axis)

    def init(
        self,
        params: Mapping[str, Array],
        density: Any = 1.0,
        velocity: Any = None,
        *,
        walls: Any = None,
        obstacle: Any = None,
        moving: Mapping[str, Any] | None = None,
    ) -> LBMState:
        """The initial state: populations at equilibrium with `density` and `velocity`.

        Args:
            params: from `params()`.
            density: scalar or `shape` array (> 0).
            velocity: None (rest), (D,) or `(*shape, D)` (cells / step).
            walls: boolean `shape` mask of stationary bounce-back cells.
            obstacle: boolean `shape` mask of stationary bounce-back cells whose force
                (momentum exchange) is observed as `obstacle_force`.
            moving: `{name: mask}` for each moving wall declared on the stepper.

        Raises:
            SimkitInputError: wrong shapes, NaN, non-positive density, overlapping masks, an
                all-solid grid, a non-periodic face left open, a solid cell inside an inlet
                or outlet face, a Mach number above 0.3.
        """
        d, shape, dt = self.lattice.d, self.shape, self.dtype
        rho = jnp.asarray(density, dt)
        if rho.shape not in ((), shape):
            raise SimkitInputError(
                f"density must be a scalar or have shape {shape}, got {rho.shape}."
            )
        if not bool(jnp.all(jnp.isfinite(rho))) or not bool(jnp.all(rho > 0)):
            raise SimkitInputError("density must be finite and > 0 everywhere.")
        u = jnp.zeros((d,), dt) if velocity is None else jnp.asarray(velocity, dt)
        if u.shape not in ((d,), shape + (d,)):
            raise SimkitInputError(
                f"velocity must have shape ({d},) or {shape + (d,)}, got {u.shape}."
            )
        if not bool(jnp.all(jnp.isfinite(u))):
            raise SimkitInputError("velocity contains NaN or inf.")
        self._check_mach("velocity", u)
        flags = self._flags(walls, obstacle, moving or {})
        rho = jnp.broadcast_to(rho, shape)
        u = jnp.broadcast_to(u, shape + (d,))
        if flags is not None:
            fluid = flags == FLUID
            rho = jnp.where(fluid, rho, 1.0)
            u = jnp.where(fluid[..., None], u, 0.0)
        feq = equilibrium(self.lattice, rho, [u[..., a] for a in range(d)], deviation=True)
        if self.body_force:
            # Equilibrium at the physical velocity: shift the stored momentum by -F/2.
            g = params["force"]
            feq = [
                fi - 0.5 * 3.0 * wi * sum(float(ca) * g[a] for a, ca in enumerate(ci) if ca)
                for fi, wi, ci in zip(feq, self.lattice.w, self.lattice.velocities, strict=False)
            ]
        f = jnp.stack(feq).astype(dt)
        if flags is not None:
            f = jnp.where(flags[None] == FLUID, f, 0.0)
        return LBMState(f=f, flags=flags, step=jnp.asarray(0, jnp.int32))

    def _mask(self, name, mask):
        m = np.asarray(mask)
        if m.shape != self.shape:
            raise SimkitInputError(
                f"{name} mask must have the grid shape {self.shape}, got {m.shape}."
            )
        if m.dtype != bool:
            raise SimkitInputError(f"{name} mask must be boolean, got dtype {m.dtype}.")
        return m

    def _flags(self, walls, obstacle, moving):
        unknown = set(moving) - set(self.moving_walls)
        if unknown:
            raise SimkitInputError(
                f"masks for undeclared moving walls {sorted(unknown)}; declare "
                f"them with LBMStepper(..., moving_walls=...)."
            )
        missing = set(self.moving_walls) - set(moving)
        if missing:
            raise SimkitInputError(
                f"no mask for moving walls {sorted(missing)}: pass "
                f"init(..., moving={{name: mask}})."
            )
        layers = []
        if walls is not None:
            layers.append(("walls", self._mask("walls", walls), WALL))
        if obstacle is not None:
            layers.append(("obstacle", self._mask("obstacle", obstacle), OBSTACLE))
        for k, name in enumerate(self.moving_walls):
            layers.append(
                (
                    f"moving wall {name!r}",
                    self._mask(f"moving wall {name!r}", moving[name]),
                    MOVING + k,
                )
            )
        if not layers:
            flags = None
            solid = np.zeros(self.shape, bool)
        else:
            flags = np.zeros(self.shape, np.int8)
            for a, (name_a, m_a, _) in enumerate(layers):
                for name_b, m_b, _ in layers[a + 1 :]:
                    if np.any(m_a & m_b):
                        raise SimkitInputError(
                            f"the {name_a} and {name_b} masks overlap in "
                            f"{int(np.sum(m_a & m_b))} cells; each cell is one kind."
                        )
            for _, m, value in layers:
                flags[m] = value
            solid = flags != FLUID
            if solid.all():
                raise SimkitInputError("every cell is solid: no fluid left to simulate.")
        self._check_faces(solid)
        return None if flags is None else jnp.asarray(flags)

    def _check_faces(self, solid):
        d = self.lattice.d
        open_sides = {s for s in (self.inlet, self.outlet) if s is not None}
        for axis in range(d):
            if self.periodic[axis]:
                continue
            for end, sign in ((0, "-"), (self.shape[axis] - 1, "+")):
                side = "xyz"[axis] + sign
                layer = np.take(solid, end, axis=axis)
                if side in open_sides:
                    # Solid cells on an inlet/outlet face are allowed only where the face meets
                    # a wall of a non-periodic transverse axis (the channel's corners).
                    inner = layer.copy()
                    for b, t in enumerate(a_ for a_ in range(d) if a_ != axis):
                        if not self.periodic[t]:
                            inner = (
                                np.delete(inner, [0, inner.shape[b] - 1], axis=b)
                                if inner.shape[b] > 2
                                else inner[(slice(None),) * b + (slice(0, 0),)]
                            )
                    if inner.size and inner.any():
                        raise SimkitInputError(
                            f"{int(inner.sum())} solid cells lie on the {side} face, which is an "
                            f"{'inlet' if side == self.inlet else 'outlet'}; move the solid "
                            f"away from the face (at least one cell)."
                        )
                elif not layer.all():
                    raise SimkitInputError(
                        f"axis {'xyz'[axis]} is not periodic but face {side} has "
                        f"{int((~layer).sum())} fluid cells and no inlet/outlet: cover it with "
                        f"walls (e.g. lbm.box_walls(shape, [{side!r}])), put an inlet or outlet "
                        f"there, or make the axis periodic."
                    )

    # ---- the step -------------------------------------------------------------------------

    def step(self, state: LBMState, params) -> LBMState:
        """One fused lattice Boltzmann step (collide, stream, boundaries). Pure and jittable."""
        rows = block_rows(self)
        if rows:
            new = update_blocked(self, state.f, state.flags, params, rows)
            return LBMState(f=new, flags=state.flags, step=state.step + 1)
        f = [state.f[i] for i in range(self.lattice.q)]
        new = update(self, f, state.flags, params)
        return LBMState(f=jnp.stack(new), flags=state.flags, step=state.step + 1)

    def time(self, state: LBMState) -> Array:
        return state.step.astype(self.dtype)

    # ---- observables ----------------------------------------------------------------------

    def macroscopic(self, state: LBMState, params) -> tuple[Array, Array]:
        """Density `shape` and velocity `(*shape, D)` (with the Guo half-force correction);
        solid cells report density 1 and their wall velocity (0 for walls and obstacles)."""
        d = self.lattice.d
        f = [state.f[i] for i in range(self.lattice.q)]
        force = [params["force"][a] for a in range(d)] if self.body_force else None
        rho, u = moments(self.lattice, f, force)
        u = jnp.stack(u, axis=-1)
        if state.flags is not None:
            fluid = state.flags == FLUID
            rho = jnp.where(fluid, rho, 1.0)
            uw = jnp.zeros_like(u)
            for k, name in enumerate(self.moving_walls):
                uw = jnp.where((state.flags == MOVING + k)[..., None], params[name], uw)
            u = jnp.where(fluid[..., None], u, uw)
        return rho, u

    def obstacle_force(self, state: LBMState) -> Array:
        """Force on the obstacle cells by momentum exchange (D,), lattice units.

        Ladd (1994), J. Fluid Mech. 271:285: each fluid-to-obstacle link i at a fluid cell x
        carries 2 f*_i(x) c_i, and after streaming f_opp(i)(x) holds f*_i(x).
        """
        lat = self.lattice
        if state.flags is None:
            return jnp.zeros((lat.d,), self.dtype)
        fluid = state.flags == FLUID
        total = [jnp.zeros((), self.dtype) for _ in range(lat.d)]
        for i in range(1, lat.q):
            ci = lat.velocities[i]
            behind = roll_shift(state.flags, -ci) == OBSTACLE  # cell x + c_i
            population = state.f[lat.opposite[i]] + lat.w[i]  # stored as f - w
            contrib = jnp.sum(jnp.where(fluid & behind, population, 0.0))
            for a in range(lat.d):
                if ci[a]:
                    total[a] = total[a] + 2.0 * float(ci[a]) * contrib
        return jnp.stack(total)

    def observe(self, state: LBMState, params) -> dict[str, Array]:
        rho, u = self.macroscopic(state, params)
        weight = None if state.flags is None else (state.flags == FLUID).astype(self.dtype)
        out = {"velocity": u, "density": rho}
        if self.lattice.d == 2:
            out["vorticity"] = vorticity_2d(u, self.periodic)
        speed = jnp.sqrt(jnp.sum(u * u, axis=-1))
        if weight is not None:
            speed = speed * weight
        out.update(
            kinetic_energy=kinetic_energy(rho, u, weight),
            mass=jnp.sum(rho if weight is None else rho * weight),
            max_mach=jnp.max(speed) * math.sqrt(3.0),
            obstacle_force=self.obstacle_force(state),
        )
        return out

    def save_groups(self) -> dict[str, tuple[str, ...]]:
        fields = ("velocity", "density") + (("vorticity",) if self.lattice.d == 2 else ())
        return {
            "fields": fields,
            "diagnostics": ("kinetic_energy", "mass", "max_mach", "obstacle_force"),
        }

    def variables(self, state: LBMState, params) -> dict[str, Variable]:
        grid = tuple("xyz"[: self.lattice.d])
        shape, dt, d = self.shape, self.dtype, self.lattice.d
        out = {
            "velocity": Variable(
                grid + ("component",),
                shape + (d,),
                dt,
                "1",
                "velocity (lattice units: cells per step)",
            ),
            "density": Variable(grid, shape, dt, "1", "density (lattice units)"),
        }
        if d == 2:
            out["vorticity"] = Variable(grid, shape, dt, "1", "vorticity dv/dx - du/dy (1/step)")
        out.update(
            kinetic_energy=Variable((), (), dt, "1", "kinetic energy of the fluid cells"),
            mass=Variable((), (), dt, "1", "total mass of the fluid cells"),
            max_mach=Variable((), (), dt, "1", "largest lattice Mach number |u| / c_s"),
            obstacle_force=Variable(
                ("component",), (d,), dt, "1", "force on the obstacle (momentum exchange)"
            ),
        )
        return out

    def coords(self, state, params) -> dict[str, tuple[Any, str]]:
        out: dict[str, tuple[Any, str]] = {
            "xyz"[a]: (np.arange(n, dtype=np.float64), "1") for a, n in enumerate(self.shape)
        }
        out["component"] = (list("xyz"[: self.lattice.d]), "")
        return out

    def time_units(self) -> str:
        return "1"

    def blow_up_hint(self) -> str:
        return (
            "Lattice Boltzmann is unstable at high lattice Mach number or tau close to 1/2: "
            "lower the lattice velocity, raise the resolution or the viscosity, use TRT or "
            "Regularized collisions, or start an inflow from rest and ramp it up."
        )
