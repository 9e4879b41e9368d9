"""Pure, jittable, differentiable trajectory generation with `lax.scan`."""

from __future__ import annotations

from collections.abc import Mapping

import jax
from jaxtyping import Array, PyTree

from .._checks import SimkitInputError, require_positive
from ._saving import Checkpoint, check_checkpoint, resolve_save_plan, scan_plan
from ._stepper import AbstractStepper


def simulate(
    stepper: AbstractStepper,
    state: PyTree,
    params: PyTree,
    n_steps: int,
    save_every: int | Mapping[str, int],
    *,
    groups: Mapping | None = None,
    checkpoint: Checkpoint = False,
) -> tuple[PyTree, dict[str, Array]]:
    """Advance `state` by `n_steps`, saving frames every `save_every` steps.

    Pure: jit, vmap and grad apply. `checkpoint` trades compute for memory in reverse mode
    (`jax.grad`, `jax.vjp`); the forward results are the same whatever it is. With n = n_steps,
    F frames (n_steps // save_every) and T = save_every steps per frame, gradient memory is
    about (S = one state, R = one step's residuals, a few states):

    - `False`: n R. Fewest operations (one forward pass + one backward pass); short runs.
    - `True`: F S + T R: each saved interval is rematerialised (one extra forward pass).
      Grows like the number of frames; like n when only the final state is saved.
    - `"sqrt"`: every scan of L iterations (the frames, the steps of each interval) runs as
      ~sqrt(L) segments of floor(sqrt(L)), each rematerialised, and each step is
      rematerialised inside its segment's backward pass: about 2 sqrt(n) S + R when only the
      final state is saved (`save_every=n_steps`: 4x the steps, 2x the memory), and about
      (sqrt(F) + sqrt(n) + sqrt(T)) S + R in general, plus the frames themselves. Costs two
      extra forward passes, cheaper than storing every step's residuals when the backward
      pass dominates: for D2Q9 lattice Boltzmann on CPU (a backward step ~100x a forward one)
      the gradient is 2-3x faster than with `False`. Use it for long differentiable runs;
      `benchmarks/lbm_grad_memory.py` measures the three.

    Args:
        stepper: the solver (static configuration).
        state: initial state pytree.
        params: parameter pytree (array leaves reachable by `grad`).
        n_steps: steps to take, a positive multiple of every save rate.
        save_every: steps between frames (int), or per-quantity rates `{group or quantity:
            steps}` as in `simkit.run.run`.
        groups: named groups of quantities for `save_every` (default: the stepper's
            `save_groups()`).
        checkpoint: False, True or "sqrt": the reverse-mode memory scheme above.

    Returns:
        (final_state, frames) with frames `{quantity: (n_steps // its_rate, ...)}`.

    Example (the gradient of a loss on the final state through 10 000 steps, sqrt memory):
        >>> def loss(nu):
        ...     final, _ = simulate(stepper, state, {**params, "viscosity": nu}, 10_000,
        ...                         10_000, checkpoint="sqrt")
        ...     return jnp.sum(final.f ** 2)
        >>> jax.grad(loss)(params["viscosity"])
    """
    require_positive("n_steps", n_steps, integer=True)
    checkpoint = check_checkpoint(checkpoint)
    names = tuple(jax.eval_shape(stepper.observe, state, params))
    plan = resolve_save_plan(save_every, names, stepper.save_groups() if groups is None else groups)
    if n_steps % plan.period:
        raise SimkitInputError(
            f"n_steps ({n_steps}) must be a multiple of save_every ({plan.period})."
        )
    state, frames, _, _ = scan_plan(
        stepper, state, params, n_steps // plan.period, plan, checkpoint=checkpoint
    )
    return state, {q: v for g in plan.names for q, v in frames[g].items()}
