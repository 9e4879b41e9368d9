"""The cache-blocked LBM step (`LBMStepper(..., blocking=rows)`) against the plain fused step.

The blocked step runs the same physics (`_stream._interior`) strip by strip along x, so the two
agree to rounding: not bitwise, because XLA contracts a*b + c into fused multiply-adds differently
in the two programs' fusions. The tolerance is 16 ulp of the largest population.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simkit.fluids.lbm as lbm
from simkit._checks import SimkitInputError
from simkit.fluids.lbm._stream import block_rows

N_STEPS = 20
ULP_TOL = 16  # blocked vs plain: max |difference| in units of eps * max|f|


@functools.partial(jax.jit, static_argnums=(0, 3))
def advance(stepper, state, params, n_steps):
    return jax.lax.fori_loop(0, n_steps, lambda _, s: stepper.step(s, params), state)


def _pair(lattice, shape, rows, **kwargs):
    plain = lbm.LBMStepper(lattice, shape, dtype="float64", blocking="off", **kwargs)
    blocked = lbm.LBMStepper(lattice, shape, dtype="float64", blocking=rows, **kwargs)
    assert block_rows(plain) == 0 and block_rows(blocked) == rows
    return plain, blocked


def _velocity(shape, d, seed, amplitude=0.05):
    rng = np.random.default_rng(seed)
    return amplitude * rng.uniform(-1, 1, tuple(shape) + (d,))


def _ulps(a, b):
    """max |a - b| in units of eps * max|a| (a finite, non-zero)."""
    a, b = np.asarray(a), np.asarray(b)
    assert np.all(np.isfinite(a))
    scale = np.max(np.abs(a))
    assert scale > 0
    return float(np.max(np.abs(a - b)) / (np.finfo(a.dtype).eps * scale))


def _assert_close(a, b):
    assert _ulps(a, b) <= ULP_TOL


def _compare(plain, blocked, params, state, n_steps=N_STEPS):
    """Both steppers for n_steps from `state`: (plain result, blocked result, their difference
    in ulps of max|f|, how far the plain run moved from `state` in the same units)."""
    a = advance(plain, state, params, n_steps)
    b = advance(blocked, state, params, n_steps)
    assert int(b.step) == n_steps
    return a, b, _ulps(a.f, b.f), _ulps(a.f, state.f)


def test_periodic_with_body_force():
    shape = (37, 20)  # 37 rows: strips of 4 overlap at the end
    plain, blocked = _pair(lbm.D2Q9, shape, 4, body_force=True)
    params = plain.params(0.05, force=(1e-4, -2e-5))
    state = plain.init(params, velocity=_velocity(shape, 2, 0))
    _, _, ulps, moved = _compare(plain, blocked, params, state)
    assert ulps <= ULP_TOL
    assert moved > 1e6  # the flow evolved: not the equality of two untouched states


def test_cavity_with_moving_lid():
    n = (30, 23)
    plain, blocked = _pair(
        lbm.D2Q9, n, 4, collision=lbm.TRT(), periodic=False, moving_walls=("lid",)
    )
    params = plain.params(0.02, lid=(0.1, 0.0))
    lid = lbm.face(n, "y+")
    state = plain.init(params, walls=lbm.box_walls(n) & ~lid, moving={"lid": lid})
    a, _, ulps, _ = _compare(plain, blocked, params, state)
    assert ulps <= ULP_TOL
    assert float(jnp.max(jnp.abs(a.f))) > 1e-3  # the lid has set the fluid moving


@pytest.mark.slow  # default-suite time; the physics is also covered by faster tests
def test_channel_with_inlet_outlet_and_cylinder():
    shape = (41, 18)
    plain, blocked = _pair(lbm.D2Q9, shape, 5, periodic=(False, False), inlet="x-", outlet="x+")
    ny = shape[1]
    y = np.arange(ny)
    profile = np.zeros((ny, 2))
    profile[1:-1, 0] = 0.05 * 4 * (y[1:-1] - 0.5) * (ny - 1.5 - y[1:-1]) / (ny - 2) ** 2
    params = plain.params(0.05, inlet_velocity=profile, outlet_density=1.0)
    walls = lbm.box_walls(shape, ["y-", "y+"])
    obstacle = lbm.cylinder(shape, (12, 8.3), 3.0)
    state = plain.init(params, walls=walls, obstacle=obstacle)
    a, b, ulps, _ = _compare(plain, blocked, params, state)
    assert ulps <= ULP_TOL
    np.testing.assert_allclose(
        plain.obstacle_force(a), blocked.obstacle_force(b), rtol=1e-12, atol=1e-15
    )


@pytest.mark.slow  # compile-bound; run by ./dev.sh slow
def test_inlet_on_y_face_and_walls_across_x():
    shape = (26, 19)
    plain, blocked = _pair(lbm.D2Q9, shape, 3, periodic=(False, False), inlet="y-", outlet="y+")
    params = plain.params(0.05, inlet_velocity=(0.0, 0.04))
    state = plain.init(params, walls=lbm.box_walls(shape, ["x-", "x+"]))
    _, _, ulps, moved = _compare(plain, blocked, params, state)
    assert ulps <= ULP_TOL
    assert moved > 1e6  # the inflow has entered the channel


@pytest.mark.slow  # compile-bound; run by ./dev.sh slow
def test_d3q19_periodic():
    shape = (14, 8, 6)
    plain, blocked = _pair(lbm.D3Q19, shape, 3)
    params = plain.params(0.05)
    state = plain.init(params, velocity=_velocity(shape, 3, 1))
    _, _, ulps, moved = _compare(plain, blocked, params, state)
    assert ulps <= ULP_TOL
    assert moved > 1e6  # the flow evolved


@pytest.mark.slow  # compile-bound; run by ./dev.sh slow
def test_grad_wrt_viscosity_matches_the_plain_step():
    shape = (13, 6)
    plain, blocked = _pair(lbm.D2Q9, shape, 4, body_force=True)
    params = plain.params(0.03, force=(1e-4, 0.0))
    state = plain.init(params, velocity=_velocity(shape, 2, 3))

    def loss(stepper, nu):
        p = dict(params, viscosity=nu)
        s = stepper.step(stepper.step(state, p), p)
        return jnp.sum(s.f[1:] ** 2)

    nu = params["viscosity"]
    ga = jax.jit(jax.grad(functools.partial(loss, plain)))(nu)
    gb = jax.jit(jax.grad(functools.partial(loss, blocked)))(nu)
    assert float(jnp.abs(ga)) > 0
    np.testing.assert_allclose(float(gb), float(ga), rtol=1e-10)


@pytest.mark.slow  # compile-bound; run by ./dev.sh slow
def test_vmap_over_an_ensemble():
    shape = (21, 10)
    plain, blocked = _pair(lbm.D2Q9, shape, 4, body_force=True)
    nus = jnp.asarray([0.02, 0.05, 0.1])
    params = plain.params(0.05, force=(1e-4, 0.0))
    state = plain.init(params, velocity=_velocity(shape, 2, 2))
    ens_params = dict(params, viscosity=nus)
    ens_state = jax.tree.map(lambda x: jnp.broadcast_to(x, (3,) + x.shape), state)

    def run(stepper):
        def one(s, p):
            return advance(stepper, s, p, 5)

        return jax.vmap(one, in_axes=(0, {"viscosity": 0, "force": None}))(ens_state, ens_params)

    a, b = run(plain), run(blocked)
    _assert_close(a.f, b.f)
    assert not np.allclose(a.f[0], a.f[2])  # the members differ


def test_auto_blocking_picks_large_grids_only():
    small = lbm.LBMStepper(lbm.D2Q9, (64, 64))
    large = lbm.LBMStepper(lbm.D2Q9, (1024, 1024))
    large3 = lbm.LBMStepper(lbm.D3Q19, (128, 128, 128))
    assert block_rows(small) == 0
    assert block_rows(large) == 8
    assert block_rows(large3) == 0  # a 64 KiB cross-section: strips along x gain nothing
    assert block_rows(lbm.LBMStepper(lbm.D3Q19, (64, 64, 64))) == 4
    assert block_rows(lbm.LBMStepper(lbm.D2Q9, (1024, 1024), blocking="off")) == 0
    # Forced strips need room for two strips and their halos, else the plain step runs.
    assert block_rows(lbm.LBMStepper(lbm.D2Q9, (8, 8), blocking=4)) == 0
    hash(large)
    for bad in (0, -2, "on", 2.5, True):
        with pytest.raises(SimkitInputError, match="blocking"):
            lbm.LBMStepper(lbm.D2Q9, (16, 16), blocking=bad)
