"""simkit.fluids.spectral ensembles: many Kolmogorov-flow runs in one call, `simulate` vmapped and
sharded over the 8 virtual CPU devices with `simkit.ensemble.sharded_vmap`, over seeds (random
initial vorticity from a batch of keys), forcing amplitudes and viscosities (batched params),
give the same results as separate runs of the same function: bitwise.

Why bitwise is expected on CPU: `vmap` of an elementwise program plus FFTs becomes the same
per-member arithmetic on a batch (XLA:CPU's batched FFT transforms each member with the same
plan as an unbatched one, and no reduction mixes members), and sharding only splits the batch.
Measured: identical bits in float32 and float64, 32^2, 50 steps. On an accelerator (other FFT
libraries, fused reductions) a few ulps would be the honest tolerance.

One member function and one padded ensemble size (8: 8 members, or 5 padded to 8 by repeating
the last member), so the sharded program is compiled once, and the single-member reference once.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from simkit.ensemble import sharded_vmap
from simkit.fluids import spectral as sp
from simkit.run import simulate

N, DT, STEPS, EVERY = 32, 0.01, 50, 10
NS = sp.NavierStokes2D((N, N), DT, forcing=sp.Kolmogorov(4), dtype="float32")


def member(key, params):
    """One run: random initial vorticity from `key` (energy 0.5, peak k = 4), `STEPS` steps of
    Kolmogorov flow with `params`; returns the final spectral vorticity and the energy frames."""
    w0 = sp.random_vorticity(NS.grid, key, energy=0.5, peak_wavenumber=4.0)
    state = NS.init(params, vorticity=w0)  # traced: init's host checks are skipped
    final, frames = simulate(NS, state, params, STEPS, EVERY)
    return final.vorticity_hat, frames["energy"]


single = jax.jit(member)  # the separate runs: one compile, called once per member


def _params(viscosity, amplitude):
    n = len(viscosity)
    return {
        "viscosity": jnp.asarray(viscosity, NS.dtype),
        "drag": jnp.zeros(n, NS.dtype),
        "forcing_amplitude": jnp.asarray(amplitude, NS.dtype),
    }


def _assert_equals_separate_runs(keys, params, w_hat, energy):
    n = len(keys)
    assert w_hat.shape == (n, N, N // 2 + 1) and w_hat.dtype == np.complex64
    assert energy.shape == (n, STEPS // EVERY)
    for i in range(n):
        w_i, e_i = single(keys[i], {k: v[i] for k, v in params.items()})
        np.testing.assert_array_equal(np.asarray(w_hat[i]), np.asarray(w_i), err_msg=f"member {i}")
        np.testing.assert_array_equal(np.asarray(energy[i]), np.asarray(e_i), err_msg=f"member {i}")


def test_seed_ensemble_sharded_over_8_devices_equals_separate_runs_bitwise():
    assert len(jax.devices()) == 8  # tests/conftest.py
    n = 8
    keys = jax.random.split(jax.random.key(0), n)
    params = _params(np.full(n, 0.05), np.full(n, 1.0))  # Re = 6.25: not laminar
    w_hat, energy = sharded_vmap(member, keys, params)
    # one member per device: the result stays split along the ensemble axis
    assert w_hat.sharding.spec == P("ensemble") and len(w_hat.sharding.device_set) == 8
    _assert_equals_separate_runs(keys, params, w_hat, energy)
    # different seeds give different flows (no member was computed from another's key)
    flat = np.asarray(w_hat).reshape(n, -1)
    assert len({row.tobytes() for row in flat}) == n
    # each is forced from energy 0.5 towards the forced state; bounded (laminar amplitude 1.25)
    assert np.all(np.isfinite(energy)) and np.all(np.asarray(energy) < 1.0)


def test_parameter_ensemble_with_a_member_count_that_does_not_divide_8_is_padded_and_exact():
    # 5 members (padded to 8 by repeating the last, then dropped): one seed, viscosities and
    # forcing amplitudes varied together, Re = A / (nu^2 k_f^3) from 1.2 to 19.5
    n = 5
    keys = jnp.stack([jax.random.key(7)] * n)
    viscosity, amplitude = np.linspace(0.08, 0.04, n), np.linspace(0.5, 2.0, n)
    params = _params(viscosity, amplitude)
    w_hat, energy = sharded_vmap(member, keys, params)
    _assert_equals_separate_runs(keys, params, w_hat, energy)
    # the members really differ: the injected power (forcing amplitude) orders the final energy
    # here (same initial field, 0.5 s of forcing): measured monotone, checked loosely
    final_energy = np.asarray(energy)[:, -1]
    assert np.all(np.diff(final_energy) > 0), final_energy
