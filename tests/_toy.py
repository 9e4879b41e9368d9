"""Toy steppers for driver tests (importable by worker subprocesses)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from simkit.io import Variable
from simkit.run import AbstractStepper


class Decay(AbstractStepper):
    """x <- x * exp(-k dt) exactly; becomes NaN from step `nan_at` on (if > 0)."""

    dt: float = eqx.field(static=True, default=0.1)
    nan_at: int = eqx.field(static=True, default=0)

    def step(self, state, params):
        step = state["step"] + 1
        x = state["x"] * jnp.exp(-params["k"] * self.dt)
        if self.nan_at:
            x = jnp.where(step >= self.nan_at, jnp.nan, x)
        return {"step": step, "x": x}

    def observe(self, state, params):
        return {"x": state["x"]}

    def time(self, state):
        return state["step"] * self.dt

    def variables(self, state, params):
        return {"x": Variable(("member",), state["x"].shape, state["x"].dtype.name, units="1")}


class Buffer(AbstractStepper):
    """Every step adds one item to a fixed-capacity buffer; the frame is the buffer's sum.

    With too small a capacity the sum is wrong and `overflowed` says so: the driver must grow the
    buffer and recompute, so the saved sums always equal step * (step + 1) / 2.
    """

    capacity: int = eqx.field(static=True, default=4)

    def step(self, state, params):
        n = state["n"] + 1
        idx = jnp.minimum(n - 1, self.capacity - 1)
        items = state["items"].at[idx].set(jnp.where(n <= self.capacity, n.astype(state["items"].dtype), state["items"][idx]))
        return {"n": n, "items": items}

    def overflowed(self, state):
        return state["n"] > self.capacity

    def grow(self, state):
        bigger = Buffer(capacity=self.capacity * 2)
        items = jnp.zeros(bigger.capacity, state["items"].dtype).at[: self.capacity].set(state["items"])
        return bigger, {"n": state["n"], "items": items}

    def observe(self, state, params):
        return {"total": jnp.sum(state["items"])}

    def time(self, state):
        return state["n"].astype(jnp.float64)

    def variables(self, state, params):
        return {"total": Variable((), (), state["items"].dtype.name)}


class RandomWalk(AbstractStepper):
    """Brownian walkers; the PRNG key (a typed key array) lives in the state."""

    dt: float = eqx.field(static=True, default=0.01)

    def step(self, state, params):
        key, sub = jax.random.split(state["key"])
        noise = jax.random.normal(sub, state["x"].shape, state["x"].dtype)
        return {"key": key, "n": state["n"] + 1,
                "x": state["x"] + jnp.sqrt(2 * params["D"] * self.dt) * noise}

    def observe(self, state, params):
        return {"x": state["x"]}

    def time(self, state):
        return state["n"] * self.dt

    def variables(self, state, params):
        return {"x": Variable(("walker",), state["x"].shape, state["x"].dtype.name, units="1")}
