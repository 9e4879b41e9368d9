"""Reverse mode through the pseudo-spectral Navier-Stokes solver (`simkit.fluids.spectral` run by
`simkit.run.simulate`): the gradient of a loss on a later vorticity snapshot with respect to the
viscosity, the drag, the Kolmogorov forcing amplitude and the initial vorticity field equals
central finite differences (float64); `checkpoint="sqrt"` and `checkpoint=True` give the
gradient of the plain scan, and the compiled memory of "sqrt" grows like sqrt(steps)
(benchmarks/spectral_grad_memory.py measures it at scale).

The flow: a random-phase vorticity field (energy 0.5, spectrum peaked at k = 4) on a 32^2
periodic 2 pi box, Kolmogorov forcing at 2 periods, drag 0.1, viscosity 0.02, dt = 0.02 (CFL
0.31), 200 steps (t = 4, a few eddy turnovers: the nonlinear term matters). Compiled with XLA's
backend optimisation off (as tests/test_lbm_gradients.py does): it changes only rounding.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simkit.fluids import spectral as sp
from simkit.run import simulate

FAST_COMPILE = {"xla_backend_optimization_level": 0}
N = 32
DT = 0.02
N_STEPS = 200
SCALARS = ("viscosity", "drag", "forcing_amplitude")


def _compile(fn, *args):
    return jax.jit(fn).lower(*args).compile(FAST_COMPILE)


def _central_difference(fn, h):
    return (float(fn(h)) - float(fn(-h))) / (2 * h)


@pytest.fixture(scope="module")
def case():
    """(stepper, params, w0, weight): the Kolmogorov-forced flow of the module docstring and
    random weights on the final vorticity."""
    ns = sp.NavierStokes2D((N, N), DT, forcing=sp.Kolmogorov(2), dtype="float64")
    params = ns.params(0.02, drag=0.1, forcing_amplitude=1.0)
    w0 = np.asarray(sp.random_vorticity(ns.grid, 0, energy=0.5, dtype="float64"))
    weight = jnp.asarray(np.random.default_rng(1).normal(size=(N, N)))
    return ns, params, w0, weight


def _loss(ns, weight, checkpoint, n_steps=N_STEPS, rates=None):
    """(params, w0) -> (loss, frames). By default (`rates=None`) everything is saved once, at
    the end, and the loss is sum(weight * final vorticity); with `rates` the loss weighs the
    vorticity frames (`weight` `(n_frames, N, N)`) and sums the energy, enstrophy and spectrum
    frames and the final spectral state's power. `ns.init` is inside, so the gradient
    reaches the initial field through its projection (mean and 2/3-rule modes dropped)."""

    def loss(params, w0):
        state = ns.init(params, vorticity=w0)
        final, frames = simulate(
            ns, state, params, n_steps, n_steps if rates is None else rates, checkpoint=checkpoint
        )
        if rates is None:
            return jnp.sum(weight * frames["vorticity"][-1]), frames
        value = (
            jnp.sum(weight * frames["vorticity"])
            + jnp.sum(frames["energy"])
            + jnp.sum(frames["enstrophy"])
            + jnp.sum(frames["energy_spectrum"])
            + jnp.sum(jnp.abs(final.vorticity_hat) ** 2) / (N * N) ** 2
        )
        return value, frames

    return loss


def _value_and_grad(loss):
    return jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)


@pytest.fixture(scope="module")
def plain(case):
    """The compiled loss value and its gradient w.r.t. (params, w0) without checkpointing."""
    ns, params, w0, weight = case
    loss = _loss(ns, weight, False)
    out = _compile(_value_and_grad(loss), params, w0)(params, jnp.asarray(w0))
    value = _compile(lambda p, w: loss(p, w)[0], params, w0)
    return value, out


@pytest.mark.parametrize("name", SCALARS)
def test_parameter_gradient_equals_central_finite_differences(case, plain, name):
    """d loss / d params[name] against central differences with h = 1e-5 relative (truncation
    ~h^2 |L'''|, rounding ~1e-16 |L| / h); 1e-7 relative asserted (seen: 7e-10 viscosity,
    6e-10 drag, 4e-10 forcing amplitude)."""
    ns, params, w0, _ = case
    loss, (_, (grad_p, _)) = plain
    theta = float(params[name])
    h = 1e-5 * theta

    def shifted(dh):
        return loss({**params, name: jnp.asarray(theta + dh)}, w0)

    fd = _central_difference(shifted, h)
    g = float(grad_p[name])
    assert abs(g) > 1.0, g  # the loss depends on the parameter
    assert abs(g - fd) <= 1e-7 * abs(fd), (name, g, fd, abs(g - fd) / abs(fd))


def test_initial_field_directional_derivative_equals_central_finite_differences(case, plain):
    """<grad_w0 loss, v> for a random direction v against (L(w0 + h v) - L(w0 - h v)) / 2h,
    h = 1e-5 (v of the size of w0); 1e-7 relative asserted (seen: 1.0e-9). The initial field
    enters through `ns.init`, differentiable under tracing (its checks are skipped for traced
    values)."""
    ns, params, w0, _ = case
    loss, (_, (_, grad_w)) = plain
    v = np.random.default_rng(2).normal(size=(N, N)) * np.std(w0)
    directional = float(jnp.sum(grad_w * v))
    fd = _central_difference(lambda dh: loss(params, w0 + dh * v), 1e-5)
    assert abs(directional) > 1.0, directional
    assert abs(directional - fd) <= 1e-7 * abs(fd), (directional, fd)
    # The projection in init: the mean and the dealiased modes of w0 do not reach the loss.
    g_hat = ns.grid.to_spectral(grad_w)
    removed = ~ns.grid.dealias_mask()
    assert float(jnp.max(jnp.abs(g_hat[removed]))) < 1e-12 * float(jnp.max(jnp.abs(g_hat)))
    assert float(jnp.abs(g_hat[0, 0])) < 1e-12 * float(jnp.max(jnp.abs(g_hat)))


def test_sqrt_checkpoint_gradient_equals_plain(case, plain):
    """checkpoint="sqrt" (200 steps as 14 segments of 14 + a remainder of 4, each step
    rematerialised) computes the same operations fused differently: the loss agrees to 1e-13
    relative and the gradients w.r.t. the three parameters and the initial field to 1e-12
    relative (seen: ~1e-15)."""
    ns, params, w0, weight = case
    _, ((value, _), (grad_p, grad_w)) = plain
    loss = _loss(ns, weight, "sqrt")
    (v, _), (gp, gw) = _compile(_value_and_grad(loss), params, w0)(params, jnp.asarray(w0))
    np.testing.assert_allclose(float(v), float(value), rtol=1e-13)
    for name in SCALARS:
        np.testing.assert_allclose(float(gp[name]), float(grad_p[name]), rtol=1e-12)
    np.testing.assert_allclose(
        np.asarray(gw), np.asarray(grad_w), rtol=0, atol=1e-12 * float(jnp.max(jnp.abs(grad_w)))
    )


@pytest.mark.slow  # three compilations of nested scans (~40 s); the fast test above covers "sqrt"
def test_checkpoint_schemes_agree_on_frames_and_gradients(case):
    """Vorticity frames every 50 steps, energy and enstrophy every 10, spectra every 100, 200
    steps: False, True and "sqrt" (every scan of the nest segmented: 2 spectrum frames, 2
    vorticity frames each, 5 diagnostics blocks each as 2 x 2 + 1, 10 steps each as 3 x 3 + 1)
    give the same frames (1e-13 relative) and gradients w.r.t. the three parameters and the
    initial field (1e-12 relative)."""
    ns, params, w0, _ = case
    weight = jnp.asarray(np.random.default_rng(3).normal(size=(4, N, N)))
    rates = {"fields": 50, "diagnostics": 10, "spectrum": 100}
    out = {}
    for scheme in (False, True, "sqrt"):
        loss = _loss(ns, weight, scheme, rates=rates)
        out[scheme] = _compile(_value_and_grad(loss), params, w0)(params, jnp.asarray(w0))
    (value, frames), (grad_p, grad_w) = out[False]
    assert frames["vorticity"].shape == (4, N, N) and frames["energy"].shape == (20,)
    assert frames["energy_spectrum"].shape[0] == 2
    for scheme in (True, "sqrt"):
        (v, fr), (gp, gw) = out[scheme]
        for q in ("vorticity", "energy", "enstrophy", "energy_spectrum"):
            np.testing.assert_allclose(
                np.asarray(fr[q]),
                np.asarray(frames[q]),
                rtol=1e-13,
                atol=1e-13 * float(jnp.max(jnp.abs(frames[q]))),
            )
        np.testing.assert_allclose(float(v), float(value), rtol=1e-13)
        for name in SCALARS:
            np.testing.assert_allclose(float(gp[name]), float(grad_p[name]), rtol=1e-12)
        np.testing.assert_allclose(
            np.asarray(gw), np.asarray(grad_w), rtol=0, atol=1e-12 * float(jnp.max(jnp.abs(grad_w)))
        )


@pytest.mark.slow  # three compilations (~15 s); benchmarks/spectral_grad_memory.py measures it
def test_sqrt_checkpoint_memory_grows_like_sqrt_steps(case):
    """Compiled temp memory of the gradient (XLA's buffer assignment, no run): with "sqrt",
    4x the steps costs ~2x the memory (< 2.5x asserted), and far less than the plain scan
    (< 1/3 of it at a quarter of the steps asserted)."""
    ns, params, w0, weight = case
    state = ns.init(params, vorticity=w0)

    def temp_bytes(n_steps, checkpoint):
        def loss(nu):
            _, frames = simulate(
                ns, state, {**params, "viscosity": nu}, n_steps, n_steps, checkpoint=checkpoint
            )
            return jnp.sum(weight * frames["vorticity"][-1])

        compiled = _compile(jax.grad(loss), params["viscosity"])
        return compiled.memory_analysis().temp_size_in_bytes

    sqrt_n, sqrt_4n = temp_bytes(256, "sqrt"), temp_bytes(1024, "sqrt")
    plain_n = temp_bytes(256, False)
    assert sqrt_4n < 2.5 * sqrt_n, (sqrt_n, sqrt_4n)
    assert sqrt_4n < plain_n / 3, (sqrt_4n, plain_n)


@pytest.mark.slow
@pytest.mark.parametrize("checkpoint", [False, "sqrt"])
def test_long_run_gradients_equal_central_finite_differences(case, checkpoint):
    """1000 steps (t = 20, well into the forced turbulent state): all three parameter gradients
    and the directional derivative along the initial field equal central differences. The
    sensitivity grows with the flow's Lyapunov exponent and so does the truncation error of
    the differences (~h^2; seen 4e-7 relative at h = 1e-5, 6e-9 at h = 1e-6 for the
    viscosity): h = 1e-6 relative for the parameters, 1e-7 along the field (v of the size of
    w0); 1e-6 relative asserted (seen: <= 2.2e-8)."""
    ns, params, w0, weight = case
    loss = _loss(ns, weight, checkpoint, n_steps=1000)
    (_, _), (gp, gw) = _compile(_value_and_grad(loss), params, w0)(params, jnp.asarray(w0))
    f = _compile(lambda p, w: loss(p, w)[0], params, w0)
    for name in SCALARS:
        theta = float(params[name])
        fd = _central_difference(
            lambda dh, name=name, theta=theta: f({**params, name: jnp.asarray(theta + dh)}, w0),
            1e-6 * theta,
        )
        assert abs(float(gp[name]) - fd) <= 1e-6 * abs(fd), (name, float(gp[name]), fd)
    v = np.random.default_rng(2).normal(size=(N, N)) * np.std(w0)
    fd = _central_difference(lambda dh: f(params, w0 + dh * v), 1e-7)
    directional = float(jnp.sum(gw * v))
    assert abs(directional - fd) <= 1e-6 * abs(fd), (directional, fd)
