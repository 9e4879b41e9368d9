"""`VmappedStepper`: an ensemble of independent runs of one stepper as one stepper, so the run
driver gives an ensemble (seeds, parameter sweeps) the guarantees of a single run: chunks,
checks, HDF5 output, checkpoints and bitwise resume.

The state (and, unless shared, the params) carry a leading member axis; `step` and `observe`
are `jax.vmap`s of the wrapped stepper's, and every observed quantity gets a leading `"member"`
dimension. `shard_members` places a batched pytree with its member axis split over the devices
of a `simkit.ensemble.make_mesh` mesh; the driver's jitted chunks keep that placement (XLA
propagates the input sharding through the vmapped step), and a resumed run restores it from the
template state (`simkit.io.load_checkpoint`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, PyTree

from .._checks import SimkitInputError
from ..io import MEMBER_DIM, Variable
from ._stepper import AbstractStepper


class VmappedStepper(AbstractStepper):
    """`n_members` independent copies of `stepper`, stepped together with `jax.vmap`.

    Args:
        stepper: the per-member stepper (any `AbstractStepper` without capacity growth).
        n_members: ensemble size (>= 1); every state leaf has the leading axis `n_members`.
        shared_params: True: one params pytree for all members (e.g. one viscosity, many
            seeds). False (default): every params leaf has the leading axis `n_members` (a
            parameter sweep).

    Observed quantities are the wrapped stepper's with a leading `"member"` dimension
    (`simkit.io.MEMBER_DIM`): `energy` `()` becomes `(member,)`, `velocity` `(x, y, component)`
    becomes `(member, x, y, component)`. `simkit.io.FieldStore` saves such fields for every
    member and lists member 0 in its XDMF sidecar. `time` is member 0's (all members take the
    same steps). Members are independent: member i of the ensemble equals a run of `stepper`
    from member i's state and params (to floating-point reassociation in the batched kernels,
    bitwise on CPU in practice; see tests/test_problems_spectral.py).

    Example (8 seeds of 2-D decaying turbulence, sharded over the devices):
        >>> ns = spectral.NavierStokes2D((64, 64), dt=5e-3)
        >>> ens = VmappedStepper(ns, 8, shared_params=True)
        >>> params = ns.params(viscosity=1e-3)
        >>> states = ens.stack([ns.init(params, vorticity=spectral.random_vorticity(
        ...     ns.grid, seed=s)) for s in range(8)])
        >>> states = shard_members(states)
        >>> result = run(ens, states, params, n_steps=1000, save_every=100, out="ens.h5",
        ...              store_type=FieldStore)
    """

    stepper: AbstractStepper
    n_members: int = eqx.field(static=True)
    shared_params: bool = eqx.field(static=True, default=False)

    def __init__(self, stepper: AbstractStepper, n_members: int, *, shared_params: bool = False):
        if not isinstance(stepper, AbstractStepper):
            raise SimkitInputError(
                f"VmappedStepper wraps an AbstractStepper, got {type(stepper).__name__}."
            )
        if (
            isinstance(n_members, bool)
            or not isinstance(n_members, (int, np.integer))
            or n_members < 1
        ):
            raise SimkitInputError(f"n_members must be an integer >= 1, got {n_members!r}.")
        self.stepper = stepper
        self.n_members = int(n_members)
        self.shared_params = bool(shared_params)

    # -- helpers ---------------------------------------------------------------------------------
    def _p_axis(self):
        return None if self.shared_params else 0

    @staticmethod
    def stack(trees: Sequence[PyTree]) -> PyTree:
        """Stack per-member pytrees (states or params) along a new leading member axis."""
        trees = list(trees)
        if not trees:
            raise SimkitInputError("stack needs at least one member.")
        return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)

    def member(self, tree: PyTree, i: int) -> PyTree:
        """Member `i` of a batched state (or params) pytree."""
        return jax.tree_util.tree_map(lambda x: x[i], tree)

    def _member_params(self, params: PyTree) -> PyTree:
        return params if self.shared_params else _first_member(params)

    # -- the stepper contract --------------------------------------------------------------------
    def step(self, state: PyTree, params: PyTree) -> PyTree:
        return jax.vmap(self.stepper.step, in_axes=(0, self._p_axis()))(state, params)

    def observe(self, state: PyTree, params: PyTree) -> dict[str, Array]:
        # Jitted: the driver observes the initial frame outside its compiled chunks, and an
        # eager vmap compiles every batched primitive on its own (measured 5.6 s against 0.3 s
        # for the spectral solver's observe at 32^2); inside a chunk the jit is inlined.
        return _vmapped_observe(self.stepper, self._p_axis(), state, params)

    def time(self, state: PyTree) -> Array:
        return self.stepper.time(self.member(state, 0))

    def variables(self, state: PyTree, params: PyTree) -> dict[str, Variable]:
        inner = self.stepper.variables(_first_member(state), self._member_params(params))
        for name, var in inner.items():
            if MEMBER_DIM in var.dims:
                raise SimkitInputError(
                    f"{type(self.stepper).__name__} already observes {name!r} with a "
                    f"{MEMBER_DIM!r} dimension; nested ensembles are not supported."
                )
        return {
            name: Variable(
                (MEMBER_DIM, *var.dims),
                (self.n_members, *var.shape),
                var.dtype,
                var.units,
                var.long_name,
            )
            for name, var in inner.items()
        }

    def coords(self, state: PyTree, params: PyTree) -> dict[str, tuple[Any, str]]:
        inner = self.stepper.coords(_first_member(state), self._member_params(params))
        return {**inner, MEMBER_DIM: (np.arange(self.n_members), "1")}

    def overflowed(self, state: PyTree) -> Bool[Array, ""]:
        return jnp.any(jax.vmap(self.stepper.overflowed)(state))

    def grow(self, state: PyTree):
        raise RuntimeError(
            f"a member of the VmappedStepper ensemble of {type(self.stepper).__name__} overflowed "
            "a fixed-capacity buffer; ensembles cannot grow capacities: start with larger ones."
        )

    def time_units(self) -> str:
        return self.stepper.time_units()

    def blow_up_hint(self) -> str:
        return "(one or more ensemble members) " + self.stepper.blow_up_hint()

    def save_groups(self) -> dict[str, tuple[str, ...]]:
        return self.stepper.save_groups()


@functools.partial(jax.jit, static_argnums=(0, 1))
def _vmapped_observe(stepper, p_axis, state, params):
    return jax.vmap(stepper.observe, in_axes=(0, p_axis))(state, params)


def _first_member(tree: PyTree) -> PyTree:
    """Member 0 of a batched pytree; abstract leaves (`jax.ShapeDtypeStruct`, as the driver's
    structure check passes them) lose their leading axis."""

    def first(x):
        if isinstance(x, jax.ShapeDtypeStruct):
            return jax.ShapeDtypeStruct(x.shape[1:], x.dtype, weak_type=x.weak_type)
        return x[0]

    return jax.tree_util.tree_map(first, tree)


def shard_members(tree: PyTree, mesh: jax.sharding.Mesh | None = None) -> PyTree:
    """Place a batched pytree with its leading member axis split over devices.

    Every array leaf must have the same leading axis `n`. With `mesh=None` the mesh is
    `simkit.ensemble.make_mesh` over the first `d` devices, `d` the largest device count that
    divides `n` (no padding: the driver saves every member, so padded copies would be saved
    too). One device: the tree is returned unchanged.

    Returns:
        The pytree with each leaf placed as `NamedSharding(mesh, P(axis))`; the run driver's
        jitted chunks keep this placement, so each device steps its own members.

    Example:
        >>> states = shard_members(ens.stack([ns.init(params, vorticity=w) for w in ws]))
    """
    from jax.sharding import NamedSharding, PartitionSpec

    from ..ensemble import make_mesh

    leaves = jax.tree_util.tree_leaves(tree)
    sizes = {int(np.shape(x)[0]) if np.ndim(x) else None for x in leaves}
    if len(sizes) != 1 or None in sizes:
        raise SimkitInputError(
            f"shard_members needs every leaf to have the same leading member "
            f"axis, got leading sizes {sorted(map(str, sizes))}."
        )
    n = sizes.pop()
    assert n is not None  # refused above
    if mesh is None:
        devices = jax.devices()
        d = max(k for k in range(1, min(n, len(devices)) + 1) if n % k == 0)
        if d == 1:
            return tree
        mesh = make_mesh(devices[:d])
    axis = mesh.axis_names[0]
    if n % mesh.shape[axis]:
        raise SimkitInputError(
            f"{n} members do not split evenly over the mesh's "
            f"{mesh.shape[axis]} devices; pass a mesh whose size divides {n}."
        )
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec(axis)))
