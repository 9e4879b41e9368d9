"""ODE problem definition: a vector field, its parameters, a time span and an initial state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

from .._checks import SimkitInputError, require_finite, require_time_span

VectorField = Callable[[Any, Float[Array, " dim"], PyTree], Float[Array, " dim"]]


class ODEProblem(eqx.Module):
    """dy/dt = vector_field(t, y, params) on [t0, t1] with y(t0) = y0.

    Attributes:
        vector_field: `f(t, y, params) -> dy/dt`, with `y` of shape `(dim,)`; pure and jittable.
            Static (not differentiated).
        y0: initial state, shape `(dim,)`, units of the model.
        params: pytree of array leaves (rate constants, sigma, ...); `grad` reaches them.
        t0, t1: start and end time (model time units), t0 < t1.

    An ensemble is described by the same problem plus batched `y0`/`params` passed to
    `solve_ensemble`; the problem itself always describes one member.

    Example:
        >>> prob = ODEProblem(lambda t, y, p: -p["k"] * y, jnp.ones(1), {"k": 2.0}, 0.0, 1.0)
    """

    vector_field: VectorField = eqx.field(static=True)
    y0: Float[Array, " dim"]
    params: PyTree
    t0: float = eqx.field(static=True, default=0.0)
    t1: float = eqx.field(static=True, default=1.0)

    def __check_init__(self):
        require_time_span(self.t0, self.t1)

    @property
    def dim(self) -> int:
        """Number of state components (the length of `y0`)."""
        return int(jnp.shape(self.y0)[-1])


def validate_problem(problem: ODEProblem) -> None:
    """Host-side checks before compiling: shapes, finiteness, vector-field output shape.

    Raises:
        SimkitInputError: naming the offending input.

    Example (a vector field that returns the wrong shape is refused before any compile):
        >>> validate_problem(ODEProblem(lambda t, y, p: y[:1], jnp.ones(2), None, 0.0, 1.0))
        >>> # SimkitInputError: vector_field returned shape (1,), expected the shape of y0 (2,).
    """
    y0 = jnp.asarray(problem.y0)
    if y0.ndim != 1:
        raise SimkitInputError(
            f"y0 must have shape (dim,), got shape {tuple(y0.shape)}; pass ensembles of initial "
            "states to solve_ensemble instead."
        )
    if not jnp.issubdtype(y0.dtype, jnp.floating):
        raise SimkitInputError(f"y0 must be a floating-point array, got dtype {y0.dtype}.")
    require_finite("y0", y0)
    require_finite("params", problem.params)
    try:
        out = jax.eval_shape(problem.vector_field, problem.t0, y0, problem.params)
    except Exception as exc:  # the user's function failed to trace: say where
        raise SimkitInputError(f"vector_field(t, y0, params) failed to evaluate: {exc}") from exc
    if getattr(out, "shape", None) != y0.shape:
        raise SimkitInputError(
            f"vector_field returned shape {getattr(out, 'shape', type(out))}, expected the shape "
            f"of y0 {tuple(y0.shape)}."
        )
