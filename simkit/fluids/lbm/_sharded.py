"""One large lattice Boltzmann grid split along one axis over devices, with halo exchange.

The fused update of `_stream.py` runs unchanged on each device's slab inside `jax.shard_map`;
only its `shift` differs: along the sharded axis the one-cell boundary layer a slab needs from
its neighbour arrives by `lax.ppermute` (a collective permute on a ring, the last device
feeding the first, which is exactly what `jnp.roll` does on one device); along the other axes
it is the same `jnp.roll` as the single-device step. Same operations in the same order, so the
populations equal the single-device ones to rounding: bitwise when the compiler may not contract
a*b+c into fused multiply-adds (CPU with `XLA_FLAGS=--xla_cpu_max_isa=AVX`); with FMA the two
programs fuse differently and round differently, as two compilations of the single-device step
already do (jitted vs eager, one step vs a loop of steps), by a few ulps per step.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from jaxtyping import Array

from ..._checks import SimkitInputError
from ...ensemble._mesh import make_mesh
from ...io import Variable
from ...run import AbstractStepper
from ._geometry import parse_side
from ._stepper import LBMState, LBMStepper
from ._stream import roll_shift, update

DEFAULT_AXIS_NAME = "grid"

# Observables as one program: called outside jit on a sharded state (the driver's first frame),
# op-by-op dispatch would compile a partitioned program per operation. Inside jit it inlines.
_observe = jax.jit(lambda stepper, state, params: stepper.observe(state, params), static_argnums=0)
_obstacle_force = jax.jit(lambda stepper, state: stepper.obstacle_force(state), static_argnums=0)
_macroscopic = jax.jit(
    lambda stepper, state, params: stepper.macroscopic(state, params), static_argnums=0
)


@functools.lru_cache(maxsize=16)
def _mesh(device_ids: tuple[int, ...], axis_name: str) -> Mesh:
    by_id = {d.id: d for d in jax.devices()}
    return make_mesh([by_id[i] for i in device_ids], axis_name=axis_name)


def halo_shift(axis: int, axis_name: str, n_devices: int):
    """A `shift(a, c)[x] = a[x - c]` for slabs of a grid split along `axis` over the mesh axis
    `axis_name` (inside `shard_map`): the |c[axis]| boundary layers cross to the neighbouring
    device by `lax.ppermute` on a ring; the other axes roll locally."""
    to_right = [(i, (i + 1) % n_devices) for i in range(n_devices)]
    to_left = [(i, (i - 1) % n_devices) for i in range(n_devices)]

    def shift(a, c):
        s = int(c[axis])
        if s:
            k = a.shape[axis]
            w = abs(s)
            if w > k:
                raise ValueError(
                    f"a shift of {s} cells needs slabs of at least {w} cells, got {k}."
                )
            if s > 0:  # out[x] = a[x - s]: the first s layers are the left neighbour's last s
                halo = lax.ppermute(lax.slice_in_dim(a, k - w, k, axis=axis), axis_name, to_right)
                a = jnp.concatenate([halo, lax.slice_in_dim(a, 0, k - w, axis=axis)], axis=axis)
            else:  # out[x] = a[x + w]: the last w layers are the right neighbour's first w
                halo = lax.ppermute(lax.slice_in_dim(a, 0, w, axis=axis), axis_name, to_left)
                a = jnp.concatenate([lax.slice_in_dim(a, w, k, axis=axis), halo], axis=axis)
        return roll_shift(a, [0 if b == axis else int(cb) for b, cb in enumerate(c)])

    return shift


class ShardedLBMStepper(AbstractStepper):
    """An `LBMStepper` whose grid is split along one axis over the devices of a 1-D mesh.

    Each device holds a slab of `shape[axis] / n_devices` cells along `axis` (populations and
    flags); params are replicated (an inlet velocity profile is split like its face). A step is
    one `jax.shard_map` of the single-device fused update, with a halo exchange of one cell
    layer per population that crosses the slab boundary. The populations equal `LBMStepper`'s:
    bitwise without FMA contraction, else to a few ulps (measured on 8 CPU devices: at most
    15 eps * max|f| after 10 to 1000 steps, BGK/TRT/regularised, float32 and float64; that is
    also how far two compilations of the single-device step differ). Observables
    (`observe`, `macroscopic`, `obstacle_force`) are the `LBMStepper` ones applied to the global
    sharded arrays (GSPMD partitions them; sums reduce across devices, so they agree with the
    single-device values to rounding, not bitwise).

    It is a `simkit.run.AbstractStepper`: `simkit.run.run` and `simkit.run.simulate` drive it
    like any stepper (the state stays sharded across chunks and checkpoints).

    Memory per device: 1 / n_devices of the single-device step's, plus one face layer per
    crossing population: the state's slab is Q * itemsize * N / n_devices bytes (N cells; D2Q9
    float32: 36 B per cell). Compiled step, D2Q9 1024^2 float32 over 8 devices, per device:
    4.5 MiB state in, 4.5 MiB out, 5.5 MiB temporaries (single device: 36, 36, 44 MiB). The
    initial state (`init`) is built whole on the default device and then split, so it must
    fit there once.

    Communication per step: no all-gather; for each population with c_i[axis] != 0 (D2Q9: 6
    of 9, D3Q19: 10 of 19, D3Q27: 18 of 27) one collective permute of one face layer (N /
    shape[axis] cells) to the next or previous device on a ring; with solids, two more of the
    int8 flags (XLA merges the identical ones). D2Q9 1024^2 float32: 6 x 4 KiB (+ 2 x 1 KiB
    with walls) sent per device per step, against 2 x 36 MiB / n_devices of local memory
    traffic. The ring also joins the last device to the first on a non-periodic split axis
    (as `jnp.roll` does on one device; the end walls absorb it).

    Args:
        stepper: the single-device `LBMStepper` (its configuration is used as is).
        axis: grid axis to split (0 = x, default; or "x", "y", "z"). `shape[axis]` must be a
            multiple of the device count; an inlet or outlet may not lie on this axis's faces
            (split along another axis instead: faces on other axes are local slices).
        mesh: a 1-D `jax.sharding.Mesh` (default: `simkit.ensemble.make_mesh` over every device,
            axis name "grid").

    Raises:
        SimkitInputError: `stepper` is not an `LBMStepper`, an unknown axis, a multi-axis mesh,
            a grid whose `shape[axis]` does not divide over the devices, an inlet or outlet on
            the split axis.

    Example (a 1024 x 1024 periodic grid over 8 devices, split along x):
        >>> stepper = lbm.LBMStepper(lbm.D2Q9, (1024, 1024))
        >>> sharded = lbm.ShardedLBMStepper(stepper, axis=0)
        >>> params = sharded.params(viscosity=0.01)
        >>> state = sharded.init(params, velocity=u0)          # u0: (1024, 1024, 2)
        >>> state = jax.jit(sharded.advance, static_argnums=2)(state, params, 1000)
        >>> result = simkit.run.run(sharded, state, params, 10_000, save_every=1000)
    """

    stepper: LBMStepper = eqx.field(static=True)
    axis: int = eqx.field(static=True)
    devices: tuple[int, ...] = eqx.field(static=True)  # device ids, in mesh order
    axis_name: str = eqx.field(static=True)

    def __init__(self, stepper: LBMStepper, axis: int | str = 0, *, mesh: Mesh | None = None):
        if not isinstance(stepper, LBMStepper):
            raise SimkitInputError(
                f"ShardedLBMStepper wraps an LBMStepper, got {type(stepper).__name__}."
            )
        d = stepper.lattice.d
        names = "xyz"[:d]
        if isinstance(axis, str) and axis in names:
            axis = names.index(axis)
        if (
            isinstance(axis, bool)
            or not isinstance(axis, (int, np.integer))
            or not 0 <= int(axis) < d
        ):
            raise SimkitInputError(
                f"axis must be one of 0..{d - 1} or {', '.join(names)} for "
                f"a {d}-D grid, got {axis!r}."
            )
        axis = int(axis)
        if mesh is None:
            mesh = make_mesh(axis_name=DEFAULT_AXIS_NAME)
        if not isinstance(mesh, Mesh) or len(mesh.axis_names) != 1:
            raise SimkitInputError(
                f"mesh must be a 1-D jax.sharding.Mesh (e.g. simkit.ensemble.make_mesh()), got "
                f"{getattr(mesh, 'shape', mesh)!r}."
            )
        n = mesh.devices.size
        size = stepper.shape[axis]
        if size % n:
            lower, upper = (size // n) * n, (size // n + 1) * n
            options = [m for m in (lower, upper) if m >= 3]
            raise SimkitInputError(
                f"the grid {stepper.shape} has {size} cells along axis {names[axis]}, which do "
                f"not divide over {n} devices; use a multiple of {n} along {names[axis]} (e.g. "
                f"{' or '.join(map(str, options))}), split along an axis whose size is a "
                f"multiple of {n}, or use fewer devices."
            )
        for label, side in (("inlet", stepper.inlet), ("outlet", stepper.outlet)):
            if side is not None and parse_side(side, d)[0] == axis:
                others = [names[a] for a in range(d) if a != axis]
                raise SimkitInputError(
                    f"the {label} is on side {side!r}, a face of the split axis {names[axis]}: "
                    f"only the end devices hold it. Split along {' or '.join(others)} instead "
                    f"(ShardedLBMStepper(stepper, axis={others[0]!r})), where the face is a "
                    f"local slice on every device."
                )
        self.stepper = stepper
        self.axis = axis
        self.devices = tuple(int(dev.id) for dev in mesh.devices.flat)
        self.axis_name = str(mesh.axis_names[0])

    # ---- layout ---------------------------------------------------------------------------

    @property
    def mesh(self) -> Mesh:
        """The 1-D device mesh (rebuilt from the device ids; cached)."""
        return _mesh(self.devices, self.axis_name)

    def _grid_spec(self) -> P:
        spec: list[str | None] = [None] * self.stepper.lattice.d
        spec[self.axis] = self.axis_name
        return P(*spec)

    def _specs(self, params) -> tuple[P, P, dict[str, P]]:
        grid = self._grid_spec()
        f_spec = P(None, *grid)
        p_spec = {k: P() for k in params}
        v = params.get("inlet_velocity")
        if v is not None and jnp.ndim(v) > 1:
            # A profile (*face_shape, D): the face is the grid without the inlet's axis.
            assert self.stepper.inlet is not None  # params() refuses inlet_velocity otherwise
            inlet_axis, _ = parse_side(self.stepper.inlet, self.stepper.lattice.d)
            p_spec["inlet_velocity"] = P(*[s for a, s in enumerate(grid) if a != inlet_axis], None)
        return f_spec, grid, p_spec

    def shard(self, state: LBMState) -> LBMState:
        """`state` placed on the mesh: populations and flags split along `axis`, step replicated."""
        f_spec, grid, _ = self._specs({})
        mesh = self.mesh
        return LBMState(
            f=jax.device_put(state.f, NamedSharding(mesh, f_spec)),
            flags=None
            if state.flags is None
            else jax.device_put(state.flags, NamedSharding(mesh, grid)),
            step=jax.device_put(state.step, NamedSharding(mesh, P())),
        )

    def shard_params(self, params: Mapping[str, Array]) -> dict[str, Array]:
        """`params` placed on the mesh (replicated; an inlet velocity profile split)."""
        _, _, p_spec = self._specs(params)
        return {
            k: jax.device_put(v, NamedSharding(self.mesh, p_spec[k])) for k, v in params.items()
        }

    # ---- parameters and initial state (checked by the wrapped stepper) --------------------

    def params(self, viscosity: float, **kwargs: Any) -> dict[str, Array]:
        """`LBMStepper.params`, placed on the mesh."""
        return self.shard_params(self.stepper.params(viscosity, **kwargs))

    def init(
        self, params: Mapping[str, Array], density: Any = 1.0, velocity: Any = None, **kwargs: Any
    ) -> LBMState:
        """`LBMStepper.init` (same arguments and checks), split over the mesh."""
        return self.shard(self.stepper.init(params, density, velocity, **kwargs))

    def tau(self, params) -> Array:
        """Relaxation time tau = 3 nu + 1/2 of `params` (as `LBMStepper.tau`)."""
        return self.stepper.tau(params)

    # ---- the step -------------------------------------------------------------------------

    def _local(self, params, n_steps: int | None):
        """shard_map of `n_steps` local updates (None: one step)."""
        stepper, q = self.stepper, self.stepper.lattice.q
        shift = halo_shift(self.axis, self.axis_name, len(self.devices))

        def one(f, flags, p):
            return jnp.stack(update(stepper, [f[i] for i in range(q)], flags, p, shift=shift))

        def body(f, flags, p):
            if n_steps is None:
                return one(f, flags, p)
            return lax.fori_loop(0, n_steps, lambda _, g: one(g, flags, p), f)

        f_spec, grid, p_spec = self._specs(params)
        return jax.shard_map(
            body, mesh=self.mesh, in_specs=(f_spec, grid, p_spec), out_specs=f_spec
        )

    def step(self, state: LBMState, params) -> LBMState:
        """One fused step on the sharded grid (pure, jittable): `LBMStepper.step`'s result."""
        f = self._local(params, None)(state.f, state.flags, dict(params))
        return LBMState(f=f, flags=state.flags, step=state.step + 1)

    def advance(self, state: LBMState, params, n_steps: int) -> LBMState:
        """`n_steps` steps in one `shard_map` (a `fori_loop` per device, halo exchange each step).

        Pure and jittable with `n_steps` static (`jax.jit(sharded.advance, static_argnums=2)`);
        reverse-mode differentiable (the loop is a scan). Equal to `n_steps` calls of `step`.
        """
        if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 0:
            raise SimkitInputError(f"n_steps must be an integer >= 0, got {n_steps!r}.")
        f = self._local(params, int(n_steps))(state.f, state.flags, dict(params))
        return LBMState(f=f, flags=state.flags, step=state.step + int(n_steps))

    def time(self, state: LBMState) -> Array:
        return self.stepper.time(state)

    # ---- observables (the LBMStepper ones, on the global sharded arrays) -------------------

    def macroscopic(self, state: LBMState, params) -> tuple[Array, Array]:
        """`LBMStepper.macroscopic` on the sharded state (density, velocity stay split)."""
        return _macroscopic(self.stepper, state, params)

    def obstacle_force(self, state: LBMState) -> Array:
        """`LBMStepper.obstacle_force` (the sum reduces across devices)."""
        return _obstacle_force(self.stepper, state)

    def observe(self, state: LBMState, params) -> dict[str, Array]:
        """`LBMStepper.observe` on the sharded state, as one jitted program."""
        return _observe(self.stepper, state, params)

    def save_groups(self) -> dict[str, tuple[str, ...]]:
        return self.stepper.save_groups()

    def variables(self, state: LBMState, params) -> dict[str, Variable]:
        return self.stepper.variables(state, params)

    def coords(self, state, params) -> dict[str, tuple[Any, str]]:
        return self.stepper.coords(state, params)

    def time_units(self) -> str:
        return self.stepper.time_units()

    def blow_up_hint(self) -> str:
        return self.stepper.blow_up_hint()
