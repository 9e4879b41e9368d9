"""Per-quantity save rates: which quantities are saved together, how often, and the scan that
produces them.

A run saves *groups* of observed quantities, each at its own rate (steps between frames). Rates
must divide one another (10 | 100 | 1000, say), so one step loop nests one `lax.scan` per rate:
the innermost advances the smallest rate, each outer level repeats the one inside it and
observes its groups at its end. No step is computed twice and no frame is computed that is not
saved, so saving thermo every 10 steps and positions every 1000 costs what those frames cost.

Reverse mode through the nest (`checkpoint`): plain scans keep every step's residuals (memory
grows like the number of steps); `checkpoint=True` rematerialises each saved interval (memory
like the number of frames plus the steps of one interval); `checkpoint="sqrt"` runs every scan of
L iterations as about sqrt(L) rematerialised segments of sqrt(L) (`sqrt_scan`) and
rematerialises each step, so memory grows like sqrt(steps) whatever the frame count.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PyTree

from .._checks import SimkitInputError, require_positive
from ._stepper import AbstractStepper


@dataclasses.dataclass(frozen=True)
class SavePlan:
    """Resolved save groups: `groups[i] = (name, every, quantities)`, sorted by rate.

    The single-rate form (`save_every=100`) is one group named "" holding every quantity.

    Example:
        >>> plan = resolve_save_plan({"thermo": 10, "trajectory": 1000},
        ...                          ("position", "energy"), {"thermo": ("energy",),
        ...                                                   "trajectory": ("position",)})
        >>> plan.rates, plan.period, plan.every("thermo"), plan.quantities("trajectory")
        >>> # (10, 1000), 1000, 10, ("position",)
    """

    groups: tuple[tuple[str, int, tuple[str, ...]], ...]
    #: `(quantity, axis permutation)`: frames permuted on the device to the writer's file order.
    transpose: tuple[tuple[str, tuple[int, ...]], ...] = ()

    @property
    def rates(self) -> tuple[int, ...]:
        """Distinct rates, ascending (each divides the next)."""
        return tuple(sorted({every for _, every, _ in self.groups}))

    @property
    def period(self) -> int:
        """The largest rate: chunks and runs are multiples of it."""
        return self.rates[-1]

    @property
    def names(self) -> tuple[str, ...]:
        """Group names, in the order of `groups` (ascending rate)."""
        return tuple(name for name, _, _ in self.groups)

    def every(self, name: str) -> int:
        """Steps between frames of group `name`."""
        return next(every for g, every, _ in self.groups if g == name)

    def quantities(self, name: str) -> tuple[str, ...]:
        """The quantities saved by group `name`."""
        return next(q for g, _, q in self.groups if g == name)

    def describe(self) -> dict:
        """JSON-able form (stored in the run's configuration, compared on resume)."""
        return {
            name or "all": {"every": every, "quantities": list(q)} for name, every, q in self.groups
        }


def resolve_save_plan(
    save_every: int | Mapping[str, int],
    observed: Sequence[str],
    declared: Mapping[str, Sequence[str]] | None = None,
) -> SavePlan:
    """Turn the user's `save_every` into a `SavePlan`, refusing unclear requests by name.

    Args:
        save_every: steps between frames for every quantity (int), or `{key: steps}` where each
            key is a group name from `declared` (a stepper's `save_groups()` or the `groups`
            argument of `run`) or the name of one observed quantity.
        observed: the names the stepper's `observe` returns.
        declared: named groups of quantities, e.g. `{"thermo": ("energy", "temperature")}`.

    Raises:
        SimkitInputError: a rate that is not a positive integer, a key that is neither a group
            nor a quantity, a quantity in two groups or in none, rates that do not divide one
            another.

    Example (an MD stepper's groups, thermo every 10 steps and the trajectory every 1000):
        >>> names = tuple(jax.eval_shape(stepper.observe, state, params))
        >>> plan = resolve_save_plan({"thermo": 10, "trajectory": 1000}, names,
        ...                          stepper.save_groups())
    """
    observed = tuple(observed)
    if not isinstance(save_every, Mapping):
        require_positive("save_every", save_every, integer=True)
        return SavePlan((("", int(save_every), observed),))
    declared = {k: tuple(v) for k, v in (declared or {}).items()}
    if not save_every:
        raise SimkitInputError(
            "save_every is an empty mapping; give at least one group and "
            "its rate, e.g. save_every={'thermo': 10}."
        )
    groups, owner = [], {}
    for key, every in save_every.items():
        require_positive(f"save_every[{key!r}]", every, integer=True)
        if key in declared:
            quantities = declared[key]
            unknown = [q for q in quantities if q not in observed]
            if unknown:
                raise SimkitInputError(
                    f"save group {key!r} lists {unknown}, which the stepper does not observe "
                    f"(it observes {list(observed)})."
                )
        elif key in observed:
            quantities = (key,)
        else:
            raise SimkitInputError(
                f"save_every has {key!r}, which is neither a save group "
                f"({sorted(declared) or 'none declared'}) nor an observed quantity "
                f"({list(observed)})."
            )
        for q in quantities:
            if q in owner:
                raise SimkitInputError(
                    f"quantity {q!r} is claimed by two save groups ({owner[q]!r} and {key!r}); "
                    "give each quantity one rate."
                )
            owner[q] = key
        groups.append((str(key), int(every), quantities))
    missing = [q for q in observed if q not in owner]
    if missing:
        raise SimkitInputError(
            f"observed quantities {missing} have no save rate; add them to save_every (as a "
            f"group or by name), e.g. save_every={{..., {missing[0]!r}: 100}}."
        )
    plan = SavePlan(tuple(sorted(groups, key=lambda g: g[1])))
    rates = plan.rates
    for a, b in zip(rates, rates[1:], strict=False):
        if b % a:
            raise SimkitInputError(
                f"save rates must divide one another (like 10, 100, 1000) so that one step "
                f"loop serves every group; got {a} and {b}."
            )
    return plan


Checkpoint = bool | Literal["sqrt"]


def check_checkpoint(checkpoint) -> Checkpoint:
    """The `checkpoint` option as False, True or "sqrt"; SimkitInputError for anything else."""
    if isinstance(checkpoint, (bool, np.bool_)):
        return bool(checkpoint)
    if isinstance(checkpoint, str) and checkpoint == "sqrt":
        return "sqrt"
    raise SimkitInputError(f"checkpoint must be False, True or 'sqrt', got {checkpoint!r}.")


def sqrt_segments(length: int) -> tuple[int, int, int]:
    """`(segment, n_segments, remainder)` with `segment = floor(sqrt(length))`,
    `length = n_segments * segment + remainder` and `remainder < segment <= n_segments`."""
    segment = max(1, math.isqrt(length))
    n_segments, remainder = divmod(length, segment)
    return segment, n_segments, remainder


def sqrt_scan(body, carry, length: int):
    """`lax.scan(body, carry, None, length=length)` with sqrt-rematerialisation for reverse mode.

    The iterations run as `k ~ sqrt(length)` segments of `m = floor(sqrt(length))` (and a last,
    shorter one for the remainder), each wrapped in `jax.checkpoint`: the forward pass keeps only
    the carry at each segment start, and the backward pass recomputes one segment at a time,
    holding its `m` iterations' residuals. Memory: `k` carries + `m` iterations' residuals, about
    `2 sqrt(length)` states, instead of `length` iterations' residuals; cost: one more forward
    pass. Results and outputs (stacked along a leading `(length,)` axis) are those of the plain
    scan. Fewer than 4 iterations run as a plain scan.
    """
    segment, n_segments, remainder = sqrt_segments(length)
    if segment == 1:
        return jax.lax.scan(body, carry, None, length=length)

    def run(length_):
        return jax.checkpoint(lambda c: jax.lax.scan(body, c, None, length=length_))

    carry, ys = jax.lax.scan(lambda c, _: run(segment)(c), carry, None, length=n_segments)
    ys = jax.tree_util.tree_map(lambda y: y.reshape(n_segments * segment, *y.shape[2:]), ys)
    if remainder:
        carry, ys_rest = run(remainder)(carry)
        ys = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b]), ys, ys_rest)
    return carry, ys


def scan_plan(
    stepper: AbstractStepper,
    state: PyTree,
    params: PyTree,
    n_periods: int,
    plan: SavePlan,
    *,
    checkpoint: Checkpoint = False,
):
    """Advance `n_periods * plan.period` steps, observing each group at its own rate.

    Args:
        checkpoint: reverse-mode memory scheme (forward results are the same for all three):
            False, every step's residuals are kept; True, each block of `plan.period` steps is
            rematerialised (`jax.checkpoint`); "sqrt", every scan in the nest runs as
            `sqrt_scan` and each step is rematerialised as well (a segment's backward pass
            keeps one state per step, not one step's residuals per step).

    Returns:
        `(final_state, frames, times, overflow)`: `frames[group]` maps quantity names to arrays
        with a leading `(n_frames_of_group,)` axis, `times[group]` the model time of each frame,
        `overflow (n_periods * plan.period // plan.rates[0],)` whether a capacity overflow
        occurred in each block of `plan.rates[0]` steps.

    Example (what `simulate` does, here 5 frames of 100 steps each, jittable):
        >>> plan = resolve_save_plan(100, tuple(jax.eval_shape(stepper.observe, state, params)))
        >>> final, frames, times, overflow = scan_plan(stepper, state, params, 5, plan)
        >>> frames[""]["y"].shape  # (5, n_members, dim) for an ODEStepper
    """
    rates = plan.rates
    at_rate = {r: [g for g, every, _ in plan.groups if every == r] for r in rates}
    checkpoint = check_checkpoint(checkpoint)
    if checkpoint == "sqrt":
        scan = sqrt_scan
    else:

        def scan(body, carry, length):
            return jax.lax.scan(body, carry, None, length=length)

    perms = dict(plan.transpose)

    def observe(s, rate):
        obs = stepper.observe(s, params)
        obs = {q: jnp.transpose(v, perms[q]) if q in perms else v for q, v in obs.items()}
        return (
            {g: {q: obs[q] for q in plan.quantities(g)} for g in at_rate[rate]},
            stepper.time(s),
        )

    def inner(carry, _):
        s, ovf = carry
        s = stepper.step(s, params)
        return (s, ovf | stepper.overflowed(s)), None

    if checkpoint == "sqrt":
        # Each step is rematerialised too: a segment's backward pass keeps one state per step
        # and recomputes the step's residuals from it. Less memory and, for steppers whose
        # residuals outweigh a forward step, less time.
        inner = jax.checkpoint(inner, prevent_cse=False)

    def block(level):
        """One block of `rates[level]` steps, observing the groups of that rate at its end."""

        def body(s, _):
            if level == 0:
                (s, ovf), _ = scan(inner, (s, jnp.asarray(False)), rates[0])
                sub = ovf
            else:
                s, sub = scan(block(level - 1), s, rates[level] // rates[level - 1])
            return s, (sub, observe(s, rates[level]))

        return jax.checkpoint(body) if checkpoint is True else body

    state, out = scan(block(len(rates) - 1), state, n_periods)
    # Unnest: level L's outputs have leading axes (n_periods, r_top/r_{top-1}, ..., r_{L+1}/r_L).
    frames, times = {}, {}
    level_out: Any = out  # nested (sub, (obs, t)) pairs, one level per rate
    for _level in range(len(rates) - 1, -1, -1):
        sub, (obs, t) = level_out
        for g, values in obs.items():
            frames[g] = {q: v.reshape(-1, *v.shape[t.ndim :]) for q, v in values.items()}
            times[g] = t.reshape(-1)
        level_out = sub
    overflow = level_out.reshape(-1)
    return state, frames, times, overflow


def frames_finite(frames_h: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    """`(n,)` bool: every observed value of each of the `n` frames is finite."""
    ok = np.ones(n, bool)
    for v in frames_h.values():
        if v.dtype.kind in "fc":
            ok &= np.isfinite(v.reshape(n, -1)).all(axis=1)
    return ok
