"""Pure, jittable, differentiable trajectory generation with `lax.scan`."""

from __future__ import annotations

from collections.abc import Mapping

import jax
from jaxtyping import Array, PyTree

from .._checks import SimkitInputError, require_positive
from ._saving import resolve_save_plan, scan_plan
from ._stepper import AbstractStepper


def simulate(stepper: AbstractStepper, state: PyTree, params: PyTree, n_steps: int,
             save_every: int | Mapping[str, int], *, groups: Mapping | None = None,
             checkpoint: bool = False) -> tuple[PyTree, dict[str, Array]]:
    """Advance `state` by `n_steps`, saving frames every `save_every` steps.

    Pure: jit, vmap and grad apply. With `checkpoint=True`, each saved interval is rematerialised
    in reverse mode, so memory for gradients grows like the number of frames, not of steps.

    Args:
        stepper: the solver (static configuration).
        state: initial state pytree.
        params: parameter pytree (array leaves reachable by `grad`).
        n_steps: steps to take, a positive multiple of every save rate.
        save_every: steps between frames (int), or per-quantity rates `{group or quantity:
            steps}` as in `simkit.run.run`.
        groups: named groups of quantities for `save_every` (default: the stepper's
            `save_groups()`).

    Returns:
        (final_state, frames) with frames `{quantity: (n_steps // its_rate, ...)}`.
    """
    require_positive("n_steps", n_steps, integer=True)
    names = tuple(jax.eval_shape(stepper.observe, state, params))
    plan = resolve_save_plan(save_every, names,
                             stepper.save_groups() if groups is None else groups)
    if n_steps % plan.period:
        raise SimkitInputError(
            f"n_steps ({n_steps}) must be a multiple of save_every ({plan.period}).")
    state, frames, _, _ = scan_plan(stepper, state, params, n_steps // plan.period, plan,
                                    checkpoint=checkpoint)
    return state, {q: v for g in plan.names for q, v in frames[g].items()}
