"""`ShardedLBMStepper`: one grid split over the 8 CPU devices of conftest, with halo exchange.

The sharded populations must equal the single-device ones. They are bitwise equal when the CPU
compiler may not contract a*b+c into FMA instructions (checked in a subprocess with
`--xla_cpu_max_isa=AVX`); with FMA on, the two programs fuse differently and round differently
(as two compilations of the single-device step already do), by at most a few ulps per step:
here within `RTOL_ULPS` ulps of max|f|.
"""

import functools
import os
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simkit._checks import SimkitInputError
from simkit.ensemble import make_mesh
from simkit.fluids import lbm
from simkit.fluids.lbm._sharded import ShardedLBMStepper
from simkit.run import run

N_DEV = 8
RTOL_ULPS = 64  # measured: <= 15 ulps of max|f| after 10..1000 steps (BGK, TRT, regularised)


@pytest.fixture(autouse=True, scope="module")
def _devices():
    if len(jax.devices()) < N_DEV:
        pytest.skip(f"needs {N_DEV} devices (conftest sets jax_num_cpu_devices)")


def _advance(stepper, state, params, n):
    return jax.jit(lambda s, p: jax.lax.fori_loop(0, n, lambda _, x: stepper.step(x, p), s))(
        state, params
    )


def _close(a, b, dtype):
    a, b = np.asarray(a), np.asarray(b)
    tol = RTOL_ULPS * np.finfo(dtype).eps * np.abs(a).max()
    np.testing.assert_allclose(b, a, rtol=0, atol=tol)


def _ulps(a, b, dtype):
    """max |a - b| in units of eps * max|a| (b finite)."""
    a, b = np.asarray(a), np.asarray(b)
    assert np.all(np.isfinite(b))
    return float(np.abs(a - b).max() / (np.finfo(dtype).eps * np.abs(a).max()))


def _close_obs(actual, desired, dtype, name=""):
    """Observables from GSPMD reductions and differences: equal to rounding of the field."""
    desired = np.asarray(desired)
    rtol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(
        np.asarray(actual), desired, rtol=rtol, atol=rtol * np.abs(desired).max(), err_msg=name
    )


def _compare(sharded, params, state, n_steps, ref=None):
    """n_steps of both steppers from `state`: (plain result, sharded result, their difference
    in ulps of max|f|). The sharded populations stay split over the devices; flags and step
    count carry through."""
    stepper = sharded.stepper
    if ref is None:
        ref = _advance(stepper, state, params, n_steps)
    out = _advance(sharded, sharded.shard(state), sharded.shard_params(params), n_steps)
    assert len(out.f.sharding.device_set) == N_DEV
    assert out.f.sharding.spec[sharded.axis + 1] == sharded.axis_name
    assert (
        out.f.addressable_shards[0].data.shape[sharded.axis + 1]
        == stepper.shape[sharded.axis] // N_DEV
    )
    assert int(out.step) == n_steps
    if state.flags is not None:
        np.testing.assert_array_equal(np.asarray(out.flags), np.asarray(state.flags))
    return ref, out, _ulps(ref.f, out.f, stepper.dtype)


def _tgv_velocity(shape, u0=0.05):
    x, y = np.meshgrid(*(2 * np.pi * np.arange(n) / n for n in shape), indexing="ij")
    return np.stack([u0 * np.sin(x) * np.cos(y), -u0 * np.cos(x) * np.sin(y)], axis=-1)


@functools.cache
def _cavity(n=32, n_steps=150):
    stepper = lbm.LBMStepper(lbm.D2Q9, (n, n), lbm.TRT(), periodic=False, moving_walls=("lid",))
    params = stepper.params(viscosity=0.05, lid=(0.1, 0.0))
    lid = lbm.face((n, n), "y+")
    state = stepper.init(params, walls=lbm.box_walls((n, n)) & ~lid, moving={"lid": lid})
    return stepper, params, state, _advance(stepper, state, params, n_steps)


@pytest.mark.parametrize("axis", [0, 1])
def test_cavity_walls_and_moving_lid(axis):
    stepper, params, state, ref = _cavity()
    sharded = ShardedLBMStepper(stepper, axis=axis)
    _, _, ulps = _compare(sharded, params, state, 150, ref)
    assert ulps <= RTOL_ULPS
    assert float(jnp.abs(jax.jit(stepper.macroscopic)(ref, params)[1]).max()) > 0.01  # lid drives


@pytest.mark.slow  # compile-bound; run by ./dev.sh slow
def test_d3q19_periodic_with_body_force():
    shape = (16, 8, 8)
    stepper = lbm.LBMStepper(lbm.D3Q19, shape, body_force=True)
    sharded = ShardedLBMStepper(stepper, axis="x")
    params = stepper.params(viscosity=0.05, force=(0.0, 0.0, 1e-5))
    u2 = _tgv_velocity(shape[:2])
    z = np.cos(2 * np.pi * np.arange(shape[2]) / shape[2])
    u = np.concatenate(
        [u2[:, :, None, :] * z[None, None, :, None], np.zeros(shape + (1,))], axis=-1
    )
    state = stepper.init(params, velocity=u)
    ref, _, ulps = _compare(sharded, params, state, 50)
    assert ulps <= RTOL_ULPS
    assert _ulps(ref.f, state.f, stepper.dtype) > 1e3  # the flow evolved over the 50 steps


@pytest.mark.slow  # default-suite time; the physics is also covered by faster tests
def test_channel_inlet_outlet_obstacle_split_along_y():
    # Zou-He faces on x (local slices when split along y), walls on y, an obstacle straddling
    # slab boundaries; float64 (the other cases are float32).
    shape = (48, 16)  # walls at y = 0 and 15: 14 fluid cells across
    stepper = lbm.LBMStepper(
        lbm.D2Q9, shape, periodic=False, inlet="x-", outlet="x+", dtype="float64"
    )
    sharded = ShardedLBMStepper(stepper, axis=1)
    y = np.arange(shape[1]) - 0.5
    profile = np.zeros((shape[1], 2))
    profile[:, 0] = np.clip(4 * 0.05 * y * (14 - y) / 14**2, 0, None)  # parabola, 0 in walls
    params = stepper.params(viscosity=0.05, inlet_velocity=profile, outlet_density=1.0)
    state = stepper.init(
        params,
        walls=lbm.box_walls(shape, ["y-", "y+"]),
        obstacle=lbm.cylinder(shape, (15.5, 7.5), 3.0),
    )
    ref, out, ulps = _compare(sharded, params, state, 150)
    assert ulps <= RTOL_ULPS
    assert float(jax.jit(stepper.macroscopic)(ref, params)[1][36, 8, 0]) > 0.02
    drag = np.asarray(jax.jit(stepper.obstacle_force)(ref))
    assert drag[0] > 0
    _close_obs(sharded.obstacle_force(out), drag, "float64", "obstacle_force")
    # The profile is split like the inlet face.
    placed = sharded.shard_params(params)["inlet_velocity"]
    assert placed.sharding.spec[0] == sharded.axis_name


def test_taylor_green_run_driver_and_advance(tmp_path):
    # Periodic D2Q9 through simkit.run.run: same populations and frames (observe on the sharded
    # state) as the single-device stepper; the state stays split across chunks.
    stepper = lbm.LBMStepper(lbm.D2Q9, (32, 16))
    sharded = ShardedLBMStepper(stepper, axis=0)
    u0 = _tgv_velocity(stepper.shape)
    ref_params = stepper.params(viscosity=0.02)
    ref = run(
        stepper,
        stepper.init(ref_params, velocity=u0),
        ref_params,
        n_steps=100,
        save_every=50,
        chunk_steps=100,
        progress=False,
    )
    params = sharded.params(viscosity=0.02)
    state = sharded.init(params, velocity=u0)
    res = run(sharded, state, params, n_steps=100, save_every=50, chunk_steps=100, progress=False)
    assert res.steps_done == 100
    assert len(res.state.f.sharding.device_set) == N_DEV
    _close(ref.state.f, res.state.f, stepper.dtype)
    for name in ("kinetic_energy", "mass", "max_mach", "velocity", "vorticity"):
        _close_obs(res.frames[name], ref.frames[name], stepper.dtype, name)
    assert res.frames["kinetic_energy"][-1] < 0.9 * res.frames["kinetic_energy"][0]  # decays
    # HDF5 output and a checkpoint of the sharded state (the chunk program is cached).
    saved = run(
        sharded,
        state,
        params,
        n_steps=100,
        save_every=50,
        chunk_steps=100,
        progress=False,
        out=tmp_path / "sharded.h5",
        checkpoint_every=100,
    )
    assert saved.path.exists()
    _close(res.state.f, saved.state.f, stepper.dtype)
    # advance: the same steps in one shard_map.
    advanced = jax.jit(sharded.advance, static_argnums=2)(state, params, 100)
    assert int(advanced.step) == 100
    _close(ref.state.f, advanced.f, stepper.dtype)


def test_refuses_grid_that_does_not_divide():
    stepper = lbm.LBMStepper(lbm.D2Q9, (100, 64))
    with pytest.raises(SimkitInputError, match=r"100 cells along axis x.*8 devices.*96 or 104"):
        ShardedLBMStepper(stepper, axis=0)
    ShardedLBMStepper(stepper, axis=1)  # 64 divides
    with pytest.raises(SimkitInputError, match="6 devices"):
        ShardedLBMStepper(lbm.LBMStepper(lbm.D2Q9, (64, 64)), mesh=make_mesh(jax.devices()[:6]))


def test_refuses_inlet_on_split_axis_and_bad_arguments():
    stepper = lbm.LBMStepper(lbm.D2Q9, (48, 16), periodic=False, inlet="x-", outlet="x+")
    with pytest.raises(SimkitInputError, match=r"inlet is on side 'x-'.*Split along y"):
        ShardedLBMStepper(stepper, axis=0)
    outlet_only = lbm.LBMStepper(lbm.D2Q9, (16, 48), periodic=False, outlet="y+")
    with pytest.raises(SimkitInputError, match=r"outlet is on side 'y\+'.*Split along x"):
        ShardedLBMStepper(outlet_only, axis=1)
    with pytest.raises(SimkitInputError, match="axis must be"):
        ShardedLBMStepper(stepper, axis=2)
    with pytest.raises(SimkitInputError, match="wraps an LBMStepper"):
        ShardedLBMStepper("D2Q9")
    mesh2d = jax.sharding.Mesh(np.array(jax.devices()).reshape(2, 4), ("a", "b"))
    with pytest.raises(SimkitInputError, match="1-D"):
        ShardedLBMStepper(stepper, axis=1, mesh=mesh2d)


_BITWISE = """
import jax, numpy as np
jax.config.update("jax_num_cpu_devices", 8)
import simkit.fluids.lbm as lbm
from simkit.fluids.lbm._sharded import ShardedLBMStepper
n = 32
stepper = lbm.LBMStepper(lbm.D2Q9, (n, n), periodic=(True, False), moving_walls=("lid",))
params = stepper.params(viscosity=0.05, lid=(0.1, 0.0))
lid = lbm.face((n, n), "y+")
state = stepper.init(params, walls=lbm.face((n, n), "y-"), moving={"lid": lid})
loop = lambda st: jax.jit(lambda s, p: jax.lax.fori_loop(0, 100, lambda _, x: st.step(x, p), s))
sharded = ShardedLBMStepper(stepper, axis=0)
a = loop(stepper)(state, params)
b = loop(sharded)(sharded.shard(state), params)
assert np.abs(np.asarray(a.f)).max() > 1e-3
assert np.array_equal(np.asarray(a.f), np.asarray(b.f))
print("bitwise")
"""


@pytest.mark.slow  # compile-bound; run by ./dev.sh slow
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 ISA flag")
def test_bitwise_equal_without_fma_contraction():
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_cpu_max_isa=AVX"}
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_BITWISE)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
        timeout=300,
    )
    assert r.returncode == 0 and "bitwise" in r.stdout, r.stderr[-3000:]
