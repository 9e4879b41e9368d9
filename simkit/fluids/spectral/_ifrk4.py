"""The integrating-factor RK4 step shared by the 2-D and 3-D spectral solvers."""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
from jaxtyping import Array


def ifrk4_step(
    y: Array,
    linear: Array,
    dt: float,
    nonlinear: Callable[[Array], Array],
    forcing: Array | None = None,
) -> Array:
    """One integrating-factor RK4 step (Lawson 1967, SIAM J. Numer. Anal. 4:372) of
    dy/dt = L y + N(y) + F with a diagonal L (`linear`, broadcastable to `y`): with
    e(h) = exp(L h) and M(y) = N(y) + F,

        a = M(y);  b = M(e(h/2) (y + h/2 a));  c = M(e(h/2) y + h/2 b)
        d = M(e(h) y + h e(h/2) c)
        y' = e(h) y + h/6 (e(h) a + 2 e(h/2) (b + c) + d).

    The linear part is integrated exactly. Returns y' in `y`'s dtype."""
    h = dt
    e1 = jnp.exp(linear * h)
    e2 = jnp.exp(linear * (0.5 * h))

    def m(x):
        out = nonlinear(x)
        return out if forcing is None else out + forcing

    a = m(y)
    b = m(e2 * (y + (0.5 * h) * a))
    c = m(e2 * y + (0.5 * h) * b)
    d = m(e1 * y + h * (e2 * c))
    new = e1 * y + (h / 6.0) * (e1 * a + 2.0 * (e2 * (b + c)) + d)
    return new.astype(y.dtype)
