"""ODEStepper: fused and diffrax paths agree; every solver choice reaches the closed form."""

import diffrax
import jax.numpy as jnp
import numpy as np
import pytest

from simkit import SimkitInputError
from simkit.ode import ODEStepper
from simkit.run import simulate


def oscillator(t, y, p):
    return jnp.stack([y[1], -(p["omega"] ** 2) * y[0]])


PARAMS = {"omega": jnp.asarray(2.0)}
Y0 = jnp.asarray([[1.0, 0.0], [0.5, 1.0], [0.0, -2.0]])


def _exact(t):
    # x = a cos(wt) + (v0/w) sin(wt), v = -a w sin(wt) + v0 cos(wt)
    a, v0, w = np.asarray(Y0[:, 0]), np.asarray(Y0[:, 1]), 2.0
    return np.stack(
        [a * np.cos(w * t) + v0 / w * np.sin(w * t), -a * w * np.sin(w * t) + v0 * np.cos(w * t)],
        axis=-1,
    )


@pytest.mark.parametrize(
    "solver, order",
    [
        (diffrax.Tsit5(), 5),
        (diffrax.Dopri5(), 5),
        ("rk4", 4),
        (diffrax.Heun(), 2),
        (diffrax.Ralston(), 2),
    ],
)
def test_every_solver_converges_to_closed_form_at_its_order(solver, order):
    errs = []
    for dt in (0.02, 0.01):
        st = ODEStepper(oscillator, dt=dt, solver=solver)
        n = round(2.0 / dt)
        final, _ = simulate(st, st.init(Y0, PARAMS), PARAMS, n, n)
        errs.append(np.abs(np.asarray(final.y) - _exact(2.0)).max())
    # halving dt divides the error by ~2^order (allow +-0.6 in the observed order)
    assert np.log2(errs[0] / errs[1]) == pytest.approx(order, abs=0.6)


def test_fused_tsit5_matches_diffrax_step_to_rounding():
    """The fused Tsit5 step and diffrax's own Tsit5.step compute the same scheme."""
    fused = ODEStepper(oscillator, dt=0.01, solver=diffrax.Tsit5())

    class Sub(diffrax.Tsit5):  # a subclass is not fused: forces the diffrax path
        pass

    plain = ODEStepper(oscillator, dt=0.01, solver=Sub())
    a, _ = simulate(fused, fused.init(Y0, PARAMS), PARAMS, 300, 300)
    b, _ = simulate(plain, plain.init(Y0, PARAMS), PARAMS, 300, 300)
    np.testing.assert_allclose(np.asarray(a.y), np.asarray(b.y), rtol=1e-13, atol=1e-13)


def test_unknown_solver_name():
    with pytest.raises(SimkitInputError, match="unknown solver name 'rk5'"):
        st = ODEStepper(oscillator, dt=0.01, solver="rk5")
        st.init(Y0, PARAMS)


def test_component_names_must_match_dim():
    with pytest.raises(SimkitInputError, match="expected 3"):
        ODEStepper(oscillator, dt=0.1, component_names=("x", "y", "z")).init(Y0, PARAMS)
