"""The solver contract every simkit solver family follows, so one driver runs them all."""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, PyTree

from ..io import Variable


class AbstractStepper(eqx.Module):
    """A solver as a pure step function of (state, params), plus what to save per frame.

    Subclasses hold only static configuration (time step, solver choice, capacities) and must
    implement `step`, `observe`, `time` and `variables`. State and params are pytrees of arrays.

    Optional hooks for fixed-capacity buffers (neighbor lists and the like): `overflowed` reports
    that a buffer was too small during a step; `grow` returns a stepper and state with larger
    capacity. The driver then recomputes the chunk from its last good state, so a result computed
    with an overflowing buffer is never written.

    Example (exponential decay x <- x exp(-k dt), one value per member):
        >>> class Decay(AbstractStepper):
        ...     dt: float = eqx.field(static=True, default=0.1)
        ...     def step(self, state, params):
        ...         return {"n": state["n"] + 1, "x": state["x"] * jnp.exp(-params * self.dt)}
        ...     def observe(self, state, params):
        ...         return {"x": state["x"]}
        ...     def time(self, state):
        ...         return state["n"] * self.dt
        ...     def variables(self, state, params):
        ...         return {"x": Variable(("member",), state["x"].shape, "float64", units="1")}
        >>> state = {"n": jnp.asarray(0), "x": jnp.ones(4)}
        >>> final, frames = simulate(Decay(), state, jnp.asarray(0.5), 100, 10)  # x: (10, 4)
    """

    @abc.abstractmethod
    def step(self, state: PyTree, params: PyTree) -> PyTree:
        """Advance `state` by one step. Pure and jittable."""

    @abc.abstractmethod
    def observe(self, state: PyTree, params: PyTree) -> dict[str, Array]:
        """The quantities saved in a frame, by name (arrays of fixed shape)."""

    @abc.abstractmethod
    def time(self, state: PyTree) -> Array:
        """Model time of `state` (scalar)."""

    @abc.abstractmethod
    def variables(self, state: PyTree, params: PyTree) -> dict[str, Variable]:
        """Metadata (dims, units) of each observed quantity; shapes match `observe`."""

    def overflowed(self, state: PyTree) -> Bool[Array, ""]:
        """True if a fixed-capacity buffer overflowed while producing `state`."""
        return jnp.asarray(False)

    def grow(self, state: PyTree) -> tuple["AbstractStepper", PyTree]:
        """Return (stepper, state) with larger capacity; called by the driver after overflow."""
        raise RuntimeError(
            f"{type(self).__name__} reported an overflow but cannot grow its capacity."
        )

    def resizable(self, path: str) -> bool:
        """True for state entries (by pytree path, e.g. `".neighbors.idx"`) whose shape may grow
        through `grow`; `resume` then accepts a checkpoint whose capacities differ from the
        fresh initial state's. Default: none."""
        return False

    def coords(self, state: PyTree, params: PyTree) -> dict[str, tuple[Any, str]]:
        """Coordinate values and units of non-time dimensions (default: indices)."""
        return {}

    def time_units(self) -> str:
        """Units of `time` (e.g. "ps"); "" for reduced units."""
        return ""

    def blow_up_hint(self) -> str:
        """What to try when a run of this stepper blows up (appended to the driver's message)."""
        return "Reduce the time step or check the parameters."

    def save_groups(self) -> dict[str, tuple[str, ...]]:
        """Named groups of observed quantities that a run may save at their own rates, e.g.
        `{"thermo": ("kinetic_energy", "temperature"), "trajectory": ("position",)}`: then
        `run(..., save_every={"thermo": 10, "trajectory": 1000})`. Default: none (quantities
        are named one by one, or all share one integer `save_every`)."""
        return {}
