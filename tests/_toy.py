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
        items = (
            state["items"]
            .at[idx]
            .set(jnp.where(n <= self.capacity, n.astype(state["items"].dtype), state["items"][idx]))
        )
        return {"n": n, "items": items}

    def overflowed(self, state):
        return state["n"] > self.capacity

    def grow(self, state):
        bigger = Buffer(capacity=self.capacity * 2)
        items = (
            jnp.zeros(bigger.capacity, state["items"].dtype).at[: self.capacity].set(state["items"])
        )
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
        return {
            "key": key,
            "n": state["n"] + 1,
            "x": state["x"] + jnp.sqrt(2 * params["D"] * self.dt) * noise,
        }

    def observe(self, state, params):
        return {"x": state["x"]}

    def time(self, state):
        return state["n"] * self.dt

    def variables(self, state, params):
        return {"x": Variable(("walker",), state["x"].shape, state["x"].dtype.name, units="1")}


class Walkers(AbstractStepper):
    """Random walkers in a periodic box of side `box`, with thermo-like scalars.

    Observes `position (n, 2)`, `velocity (n, 2)` (the last displacement / dt), `mean_x ()` and
    `msd ()` (mean squared unwrapped displacement); declares the groups "thermo" and "trajectory".
    From step `nan_at` on (if > 0) positions become NaN.
    """

    dt: float = eqx.field(static=True, default=0.01)
    box: float = eqx.field(static=True, default=10.0)
    nan_at: int = eqx.field(static=True, default=0)

    def step(self, state, params):
        key, sub = jax.random.split(state["key"])
        dx = jnp.sqrt(2 * params["D"] * self.dt) * jax.random.normal(
            sub, state["x"].shape, state["x"].dtype
        )
        n = state["n"] + 1
        unwrapped = state["unwrapped"] + dx
        if self.nan_at:
            unwrapped = jnp.where(n >= self.nan_at, jnp.nan, unwrapped)
        return {
            "key": key,
            "n": n,
            "unwrapped": unwrapped,
            "x": jnp.mod(unwrapped, self.box),
            "v": dx / self.dt,
        }

    def observe(self, state, params):
        u = state["unwrapped"]
        return {
            "position": state["x"],
            "velocity": state["v"],
            "mean_x": jnp.mean(u[:, 0]),
            "msd": jnp.mean(jnp.sum(u * u, axis=1)),
        }

    def time(self, state):
        return state["n"] * self.dt

    def variables(self, state, params):
        shape, dt = state["x"].shape, state["x"].dtype.name
        return {
            "position": Variable(("particle", "spatial"), shape, dt, units="nm"),
            "velocity": Variable(("particle", "spatial"), shape, dt, units="nm ps-1"),
            "mean_x": Variable((), (), dt, units="nm"),
            "msd": Variable((), (), dt, units="nm2"),
        }

    def save_groups(self):
        return {"thermo": ("mean_x", "msd"), "trajectory": ("position", "velocity")}

    def time_units(self):
        return "ps"

    @staticmethod
    def initial(n=64, seed=0, dtype=jnp.float64, dim=2):
        x0 = jax.random.uniform(jax.random.key(seed + 1), (n, dim), dtype) * 10.0
        return {
            "key": jax.random.key(seed),
            "n": jnp.asarray(0),
            "unwrapped": x0,
            "x": x0,
            "v": jnp.zeros((n, dim), dtype),
        }


class Diffusion(AbstractStepper):
    """Explicit diffusion u <- u + alpha * laplacian(u) on a periodic (nx, ny) grid of spacing
    `h`; observes the field `u` and its total `mass` (conserved exactly up to rounding)."""

    alpha: float = eqx.field(static=True, default=0.2)
    h: float = eqx.field(static=True, default=0.5)

    def step(self, state, params):
        u = state["u"]
        lap = (
            jnp.roll(u, 1, 0) + jnp.roll(u, -1, 0) + jnp.roll(u, 1, 1) + jnp.roll(u, -1, 1) - 4 * u
        )
        return {"n": state["n"] + 1, "u": u + self.alpha * lap}

    def observe(self, state, params):
        return {"u": state["u"], "mass": jnp.sum(state["u"]) * self.h**2}

    def time(self, state):
        return state["n"] * 0.1

    def variables(self, state, params):
        return {
            "u": Variable(("x", "y"), state["u"].shape, state["u"].dtype.name, units="K"),
            "mass": Variable((), (), state["u"].dtype.name, units="K m2"),
        }

    def coords(self, state, params):
        nx, ny = state["u"].shape
        return {
            "x": (1.0 + self.h * jnp.arange(nx), "m"),
            "y": (-2.0 + self.h * jnp.arange(ny), "m"),
        }

    def save_groups(self):
        return {"fields": ("u",), "diagnostics": ("mass",)}
