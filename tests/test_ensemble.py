"""simkit.ensemble on one process with the 8 CPU devices from conftest: sharded results equal the
unsharded vmap, padding, output shardings, sub-meshes, the compile cache and input errors."""

import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from simkit import SimkitInputError
from simkit.ensemble import (
    clear_cache,
    make_mesh,
    sharded_call,
    sharded_vmap,
)
from simkit.ensemble._sharded import _sharded_call_padded

_spec = importlib.util.spec_from_file_location(
    "_distributed_worker", pathlib.Path(__file__).with_name("_distributed_worker.py")
)
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)


def _member(x, w):
    """A small per-member function: elementwise ops around a matrix-vector product."""
    return jnp.tanh(w @ x) + jnp.sin(x) * x


batched_member = jax.vmap(_member, in_axes=(0, None))


def _inputs(n, dim=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, dim)), rng.normal(size=(dim, dim))


def test_make_mesh_spans_all_devices_with_auto_axis():
    mesh = make_mesh()
    assert mesh.axis_names == ("ensemble",)
    assert mesh.shape["ensemble"] == 8 == len(jax.devices())
    assert mesh.axis_types == (AxisType.Auto,)
    sub = make_mesh(jax.devices()[:3], axis_name="members")
    assert sub.shape == {"members": 3}


def test_sharded_equals_vmap_bitwise():
    xs, w = _inputs(16)
    ref = jax.jit(batched_member)(xs, w)
    out = sharded_call(batched_member, xs, broadcast=(w,))
    assert out.shape == (16, 5)
    # Same per-member arithmetic on every device: identical bits expected.
    np.testing.assert_array_equal(np.asarray(out), np.asarray(ref))
    # n is a multiple of 8, so nothing is sliced off and the output stays split over devices.
    assert out.sharding.is_equivalent_to(NamedSharding(make_mesh(), P("ensemble")), 2)
    assert {s.data.shape for s in out.addressable_shards} == {(2, 5)}


@pytest.mark.parametrize("n", [13, 1])
def test_padding_not_multiple_of_devices(n):
    xs, w = _inputs(n, seed=n)
    out = sharded_call(batched_member, xs, broadcast=(w,))
    assert out.shape == (n, 5)
    ref = jax.jit(batched_member)(xs, w)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(ref))


def test_padded_outputs_are_sharded_and_pad_repeats_last_member():
    n = 13
    xs = np.arange(n * 2, dtype=np.float64).reshape(n, 2)
    out, n_seen, mesh = _sharded_call_padded(jax.vmap(lambda x: x), (xs,), None, "ensemble", ())
    assert n_seen == n and mesh.shape["ensemble"] == 8
    assert out.shape == (16, 2)
    assert out.sharding.spec == P("ensemble")
    assert [s.data.shape for s in out.addressable_shards] == [(2, 2)] * 8
    assert {s.device for s in out.addressable_shards} == set(jax.devices())
    got = np.asarray(out)
    np.testing.assert_array_equal(got[:n], xs)
    # Padding members are copies of the last member (never zeros or NaN).
    np.testing.assert_array_equal(got[n:], np.repeat(xs[-1:], 3, axis=0))


def test_submesh_of_three_devices():
    devices = jax.devices()[:3]
    mesh = make_mesh(devices)
    xs, w = _inputs(10, seed=3)
    out = sharded_call(batched_member, xs, mesh=mesh, broadcast=(w,))
    np.testing.assert_array_equal(np.asarray(out), np.asarray(jax.jit(batched_member)(xs, w)))
    padded, _, _ = _sharded_call_padded(batched_member, (xs,), mesh, "ensemble", (w,))
    assert padded.shape == (12, 5)
    assert {s.device for s in padded.addressable_shards} == set(devices)


def test_pytree_inputs_and_outputs_and_jax_array_inputs():
    n = 11
    xs, w = _inputs(n, seed=4)
    args = {"x": jnp.asarray(xs), "scale": jnp.linspace(1.0, 2.0, n)}

    def f(a):
        return {"y": a["scale"] * jnp.sum(a["x"] ** 2), "x2": (a["x"] * 2.0, a["scale"])}

    out = sharded_call(jax.vmap(f), args)
    ref = jax.jit(jax.vmap(f))(args)
    assert jax.tree_util.tree_structure(out) == jax.tree_util.tree_structure(ref)
    for a, b in zip(jax.tree_util.tree_leaves(out), jax.tree_util.tree_leaves(ref), strict=False):
        assert a.shape[0] == n
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_sharded_vmap_with_broadcast_argument():
    xs = np.linspace(0.0, 2.0, 9)
    out = sharded_vmap(lambda x, k: jnp.exp(-k * x), xs, 0.5, in_axes=(0, None))
    np.testing.assert_array_equal(np.asarray(out), np.asarray(jnp.exp(-0.5 * jnp.asarray(xs))))
    out2 = sharded_vmap(lambda x, y: x * y, xs, xs)
    np.testing.assert_array_equal(np.asarray(out2), xs * xs)


def test_second_call_does_not_retrace():
    clear_cache()
    traces = []

    def member(x):
        traces.append(1)  # runs only while tracing
        return 3.0 * x

    fn = jax.vmap(member)
    a = sharded_call(fn, np.ones(13))
    b = sharded_call(fn, np.full(13, 2.0))
    assert len(traces) == 1
    np.testing.assert_array_equal(np.asarray(b), 6.0 * np.ones(13))
    np.testing.assert_array_equal(np.asarray(a), 3.0 * np.ones(13))
    sharded_call(fn, np.ones(20))  # new shape: one more trace
    assert len(traces) == 2


def test_gradient_through_sharded_call():
    xs = jnp.linspace(0.0, 1.0, 13)
    f = jax.vmap(lambda x, a: a * jnp.sin(x), in_axes=(0, None))
    g = jax.grad(lambda x: jnp.sum(sharded_call(f, x, broadcast=(2.0,))))(xs)
    np.testing.assert_allclose(np.asarray(g), 2.0 * np.cos(np.asarray(xs)), rtol=1e-14)


def test_lorenz_solve_ensemble_sharded_matches_unsharded():
    n = 13  # needs padding on 8 devices
    ts_s, ys_s = worker.solve_lorenz(n, shard=True)
    ts_u, ys_u = worker.solve_lorenz(n, shard=False)
    assert ys_s.shape == ys_u.shape == (n, 11, 3)
    np.testing.assert_array_equal(np.asarray(ts_s), np.asarray(ts_u))
    # Same fixed-step Tsit5 arithmetic; only XLA's vectorisation over a different per-device
    # batch size differs (rounding), amplified by Lorenz's largest Lyapunov exponent ~0.9 over
    # t = 1 (|y| <= ~50). Measured max |diff| ~5e-14; tolerance 1e-11 absolute.
    np.testing.assert_allclose(np.asarray(ys_s), np.asarray(ys_u), rtol=0, atol=1e-11)
    # The members differ from each other, so a mix-up of members would be caught.
    assert float(np.min(np.abs(np.diff(np.asarray(ys_u)[:, -1, 0])))) > 1e-6


# ---- bad input -----------------------------------------------------------------------------


def test_error_empty_ensemble():
    with pytest.raises(SimkitInputError, match="ensemble size must be >= 1"):
        sharded_call(batched_member, np.zeros((0, 5)), broadcast=(np.eye(5),))


def test_error_disagreeing_leading_axes():
    with pytest.raises(SimkitInputError, match=r"disagree.*\[9, 10\]"):
        sharded_call(jax.vmap(lambda a, b: a + b), np.ones(10), np.ones(9))


@pytest.mark.parametrize(
    "bad, match",
    [
        ([1.0, 2.0, 3.0], "is a float"),
        ("abc", "is a str"),
        (np.float64(2.0), "float64 .*not an array"),
        (jnp.asarray(2.0), "0-d"),
    ],
)
def test_error_non_array_input(bad, match):
    with pytest.raises(SimkitInputError, match=match):
        sharded_call(jax.vmap(lambda x: x), bad)


def test_error_no_array_input():
    with pytest.raises(SimkitInputError, match="at least one array"):
        sharded_call(jax.vmap(lambda: 1.0))


def test_error_bad_mesh_axis_and_fn():
    with pytest.raises(SimkitInputError, match="not an axis of the mesh"):
        sharded_call(jax.vmap(lambda x: x), np.ones(4), mesh=make_mesh(), axis_name="batch")
    with pytest.raises(SimkitInputError, match="must be a jax.sharding.Mesh"):
        sharded_call(jax.vmap(lambda x: x), np.ones(4), mesh="cpu")
    with pytest.raises(SimkitInputError, match="callable"):
        sharded_call(np.ones(4), np.ones(4))


def test_error_output_without_ensemble_axis():
    with pytest.raises(SimkitInputError, match="leading ensemble axis"):
        sharded_call(lambda x: jnp.sum(x), np.ones(8))


def test_error_broadcast_values():
    with pytest.raises(SimkitInputError, match="broadcast value"):
        sharded_call(jax.vmap(lambda x, s: x), np.ones(4), broadcast=("fast",))
    with pytest.raises(SimkitInputError, match="tuple"):
        sharded_call(jax.vmap(lambda x, s: x), np.ones(4), broadcast=np.ones(3))


def test_error_sharded_vmap_in_axes():
    with pytest.raises(SimkitInputError, match="0 .*or None"):
        sharded_vmap(lambda x: x, np.ones((4, 2)), in_axes=(1,))
    with pytest.raises(SimkitInputError, match="2 entries but 1"):
        sharded_vmap(lambda x: x, np.ones(4), in_axes=(0, None))
    with pytest.raises(SimkitInputError, match="at least one batched"):
        sharded_vmap(lambda x: x, np.ones(4), in_axes=(None,))


def test_error_make_mesh():
    with pytest.raises(SimkitInputError, match="at least one device"):
        make_mesh([])
    with pytest.raises(SimkitInputError, match="jax.Device"):
        make_mesh(["cpu:0"])
    with pytest.raises(SimkitInputError, match="distinct"):
        make_mesh([jax.devices()[0]] * 2)
    with pytest.raises(SimkitInputError, match="axis_name"):
        make_mesh(axis_name="")
