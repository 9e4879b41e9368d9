"""Reverse mode through the lattice Boltzmann solver (`simkit.fluids.lbm` run by
`simkit.run.simulate`): the gradient of a loss on a later velocity snapshot with respect to the
viscosity, a moving wall's velocity, the body force and the inlet velocity equals central finite
differences (float64); `checkpoint="sqrt"` gives the gradient of the plain scan, with compiled
memory that grows like sqrt(steps) (benchmarks/lbm_grad_memory.py measures it at scale).

Everything is compiled with XLA's backend optimisation off (`xla_backend_optimization_level=0`):
LLVM's passes are ~90% of the ~20 s it takes to compile one LBM gradient on a CPU, and they
change neither the buffers (the memory analysis is the same) nor anything but rounding.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simkit.fluids.lbm as lbm
from simkit import SimkitInputError
from simkit.run import simulate

FAST_COMPILE = {"xla_backend_optimization_level": 0}
N_STEPS = 200


def _compile(fn, *args):
    return jax.jit(fn).lower(*args).compile(FAST_COMPILE)


def _taylor_green(n=16, viscosity=0.05):
    """Decaying Taylor-Green vortex on a periodic n x n grid (u0 = 0.05)."""
    stepper = lbm.LBMStepper(lbm.D2Q9, (n, n), dtype="float64")
    params = stepper.params(viscosity=viscosity)
    x = 2 * np.pi * np.arange(n) / n
    X, Y = np.meshgrid(x, x, indexing="ij")
    u = 0.05 * np.stack([np.sin(X) * np.cos(Y), -np.cos(X) * np.sin(Y)], axis=-1)
    return stepper, stepper.init(params, velocity=u), params


def _case(name):
    """(stepper, initial state, params, weights on the velocity snapshot) for the gradient
    w.r.t. `params[name]`. The weights vanish on solid cells and on the inlet/outlet faces,
    whose reported velocity is the parameter itself: the loss sees the parameter only through
    the flow it drives."""
    if name == "viscosity":
        stepper, state, params = _taylor_green()
        interior = np.ones(stepper.shape, bool)
    elif name == "lid":  # lid-driven cavity start-up
        shape = (14, 14)
        stepper = lbm.LBMStepper(
            lbm.D2Q9, shape, periodic=False, dtype="float64", moving_walls=("lid",)
        )
        params = stepper.params(viscosity=0.05, lid=(0.05, 0.01))
        lid = lbm.face(shape, "y+")
        walls = lbm.box_walls(shape) & ~lid
        state = stepper.init(params, walls=walls, moving={"lid": lid})
        interior = ~(walls | lid)
    elif name == "force":  # body-force-driven channel start-up (periodic in x)
        shape = (8, 14)
        stepper = lbm.LBMStepper(
            lbm.D2Q9, shape, periodic=(True, False), dtype="float64", body_force=True
        )
        params = stepper.params(viscosity=0.1, force=(1e-4, 2e-5))
        walls = lbm.box_walls(shape, ["y-", "y+"])
        state = stepper.init(params, walls=walls)
        interior = ~walls
    elif name == "inlet_velocity":  # channel with a Zou-He inlet and a pressure outlet
        shape = (20, 10)
        stepper = lbm.LBMStepper(
            lbm.D2Q9, shape, periodic=False, dtype="float64", inlet="x-", outlet="x+"
        )
        params = stepper.params(viscosity=0.05, inlet_velocity=(0.04, 0.005))
        walls = lbm.box_walls(shape, ["y-", "y+"])
        state = stepper.init(params, walls=walls)
        interior = ~(walls | lbm.face(shape, "x-") | lbm.face(shape, "x+"))
    else:
        raise ValueError(name)
    rng = np.random.default_rng(1)
    weight = rng.normal(size=stepper.shape + (2,)) * interior[..., None]
    return stepper, state, params, jnp.asarray(weight)


def _snapshot_loss(stepper, state, params, name, weight, checkpoint):
    """theta -> sum(weight * velocity after N_STEPS) with params[name] = theta."""

    def loss(theta):
        _, frames = simulate(
            stepper, state, {**params, name: theta}, N_STEPS, N_STEPS, checkpoint=checkpoint
        )
        return jnp.sum(weight * frames["velocity"][-1])

    return loss


def _central_differences(fn, theta, rel_step=1e-5):
    theta = np.asarray(theta, np.float64)
    flat = theta.reshape(-1)
    out = np.empty(flat.size)
    for i in range(flat.size):
        h = rel_step * max(abs(flat[i]), 1e-3)
        up, down = flat.copy(), flat.copy()
        up[i] += h
        down[i] -= h
        out[i] = (
            float(fn(jnp.asarray(up.reshape(theta.shape))))
            - float(fn(jnp.asarray(down.reshape(theta.shape))))
        ) / (2 * h)
    return out.reshape(theta.shape)


@pytest.mark.parametrize(
    "name",
    [
        "viscosity",
        "lid",
        # compile-bound set-ups (a body force, Zou-He faces): run by ./dev.sh slow
        pytest.param("force", marks=pytest.mark.slow),
        pytest.param("inlet_velocity", marks=pytest.mark.slow),
    ],
)
def test_gradient_equals_central_finite_differences(name):
    """200 steps, float64: agreement to ~1e-10 relative is seen (h = 1e-5 relative: truncation
    ~h^2, rounding ~1e-16 / h); 1e-7 is asserted. The plain scan's gradient (cheapest to
    compile); the checkpointed ones equal it (next tests)."""
    stepper, state, params, weight = _case(name)
    loss = _snapshot_loss(stepper, state, params, name, weight, False)
    theta = params[name]
    grad = np.asarray(_compile(jax.grad(loss), theta)(theta))
    fd = _central_differences(_compile(loss, theta), theta)
    assert np.all(np.abs(grad) > 0), grad
    np.testing.assert_allclose(grad, fd, rtol=1e-7, atol=1e-9 * np.max(np.abs(fd)))


@pytest.mark.slow  # default-suite time; sqrt = plain: test_spectral_gradients
def test_sqrt_checkpoint_gradient_equals_plain_and_per_frame():
    """A loss on velocity frames (every 40 steps), kinetic-energy frames (every 10) and the
    final populations: the three checkpoint schemes give the same frames and gradient (to
    rounding: XLA fuses the rematerialised loops differently). With 160 steps "sqrt" segments
    every scan of the nest: 4 velocity frames as 2 x 2, 4 energy blocks per frame as 2 x 2,
    10 steps per block as 3 x 3 + a remainder of 1."""
    stepper, state, params = _taylor_green(n=12)
    weight = jnp.asarray(np.random.default_rng(2).normal(size=(4,) + stepper.shape + (2,)))
    rates = {"fields": 40, "diagnostics": 10}

    def loss(p, checkpoint):
        final, frames = simulate(stepper, state, p, 160, rates, checkpoint=checkpoint)
        value = (
            jnp.sum(weight * frames["velocity"])
            + 100.0 * jnp.sum(frames["kinetic_energy"])
            + jnp.sum(final.f**2)
        )
        return value, frames

    out = {}
    for scheme in (False, True, "sqrt"):
        f = jax.value_and_grad(lambda p, s=scheme: loss(p, s), has_aux=True)
        out[scheme] = _compile(f, params)(params)
    (value, frames), grad = out[False]
    assert frames["velocity"].shape == (4, 12, 12, 2) and frames["kinetic_energy"].shape == (16,)
    for scheme in (True, "sqrt"):
        (v, fr), g = out[scheme]
        for q in ("velocity", "kinetic_energy", "mass"):
            np.testing.assert_allclose(
                np.asarray(fr[q]), np.asarray(frames[q]), rtol=1e-13, atol=1e-16
            )
        np.testing.assert_allclose(float(v), float(value), rtol=1e-13)
        np.testing.assert_allclose(float(g["viscosity"]), float(grad["viscosity"]), rtol=1e-12)


def test_sqrt_checkpoint_memory_grows_like_sqrt_steps():
    """Compiled temp memory of the gradient (XLA's buffer assignment, no run): with "sqrt",
    4x the steps costs 1.9x the memory (measured: 0.67 MB at 256 steps, 1.26 MB at 1024; < 2.5x
    asserted); no checkpointing costs 4x (20.5 MB at 256 steps)."""
    stepper, state, params = _taylor_green()

    def temp_bytes(n_steps, checkpoint):
        def loss(nu):
            _, frames = simulate(
                stepper, state, {**params, "viscosity": nu}, n_steps, n_steps, checkpoint=checkpoint
            )
            return jnp.sum(frames["velocity"][-1] ** 2)

        compiled = _compile(jax.grad(loss), params["viscosity"])
        return compiled.memory_analysis().temp_size_in_bytes

    sqrt_n, sqrt_4n = temp_bytes(256, "sqrt"), temp_bytes(1024, "sqrt")
    plain_n = temp_bytes(256, False)
    assert sqrt_4n < 2.5 * sqrt_n, (sqrt_n, sqrt_4n)
    assert sqrt_4n < plain_n / 3, (sqrt_4n, plain_n)  # 16x less at 4x the steps


@pytest.mark.parametrize("bad", ["SQRT", "segments", 2, None])
def test_bad_checkpoint_option_is_named(bad):
    stepper, state, params = _taylor_green(n=8)
    with pytest.raises(SimkitInputError, match="checkpoint must be False, True or 'sqrt'"):
        simulate(stepper, state, params, 10, 10, checkpoint=bad)
