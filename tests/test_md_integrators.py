"""simkit.md integrators and their physics: NVE energy conservation (float32 and float64, the
dt^2 law), Langevin and Nose-Hoover temperatures and Maxwell-Boltzmann velocities, the NHC
conserved energy, ballistic MSD, FIRE minimisation, gradients with respect to the potential's
parameters (energy and whole trajectories), and vmap over replicas.

System unless said otherwise: 256 Lennard-Jones particles from an fcc lattice at rho 0.8442
(LAMMPS's in.lj), cutoff 2.5 energy-shifted, skin 0.3, dt 0.005, velocities at kT = 1.44."""

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from simkit import md
from simkit.run import simulate

sys.path.insert(0, str(Path(__file__).parent))
from _md_common import block_mean_se, trajectory

POSITIONS, BOX = md.lattice("fcc", 4, density=0.8442)
N = POSITIONS.shape[0]
THERMO_TRAJ = (("thermo", 10), ("trajectory", 500))


def _system(
    dtype=jnp.float32, shift="energy", dt=0.005, cls=md.VelocityVerlet, kT0=1.44, seed=0, **kw
):
    lj = md.LennardJones(cutoff=2.5, shift=shift)
    params = lj.params(dtype)
    stepper = cls(lj, box=BOX, dt=dt, skin=0.3, **kw)
    v = md.maxwell_boltzmann(jax.random.key(seed), POSITIONS.shape, kT=kT0, dtype=dtype)
    return stepper, stepper.init(POSITIONS.astype(dtype), params, v), params


def _drift_and_residual(e, t):
    slope, intercept = np.polyfit(t, e, 1)
    return slope, float(np.std(e - (slope * t + intercept)))


def _nve(dtype, n_steps):
    stepper, state, params = _system(dtype)
    final, frames = trajectory(stepper, n_steps, 10)(state, params)
    e = np.asarray(frames["total_energy"], np.float64)
    t = np.arange(1, len(e) + 1) * 10 * 0.005
    skip = len(e) // 10  # the lattice melts in the first ~1 tau
    return e[skip:], t[skip:], final


# The NVE bound. Velocity Verlet conserves a shadow energy of a smooth Hamiltonian, so E
# fluctuates by O(dt^2) with no secular drift (Hairer, Lubich & Wanner, Geometric Numerical
# Integration, 2006, ch. IX). What drifts: (1) the energy-shifted potential's force jump
# |F(rc)| = 0.039 at each cutoff crossing gives an error of about |F(rc)| v dt / 2 ~ 1e-4 of
# random sign; at T ~ 0.7, rho 0.8442 a particle crosses ~rho 4 pi rc^2 <|v_r|> / 2 ~ 30
# spheres per tau, so 256 particles make ~8e4 crossings in 10 tau: a random walk of
# sqrt(8e4) * 1e-4 / 256 ~ 1.1e-4 per particle; (2) float32 rounding of positions
# (eps * L ~ 1e-6 per step) adds ~F eps L sqrt(steps) / sqrt(N) ~ 1e-5 per particle. The
# fitted change over the run must stay below 5x the larger estimate scaled to the run length;
# the fluctuation about the fit below 1e-3 per particle (the shadow-energy estimate
# dt^2 <|F|^2> / 12 ~ 3e-4 with <|F|^2> ~ 150 at this state, x3).


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_nve_energy_conservation_with_energy_shift_short(dtype):
    e, t, final = _nve(dtype, 2000)  # 10 tau
    slope, resid = _drift_and_residual(e, t)
    random_walk = 1.1e-4 * np.sqrt((t[-1] - t[0]) / 10.0)
    assert abs(slope * (t[-1] - t[0])) < 5 * random_walk, slope
    assert resid < 1e-3
    assert not bool(final.neighbors.overflow)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_nve_energy_conservation_with_energy_shift_10000_steps(dtype):
    e, t, _ = _nve(dtype, 10_000)  # 50 tau
    slope, resid = _drift_and_residual(e, t)
    random_walk = 1.1e-4 * np.sqrt((t[-1] - t[0]) / 10.0)
    assert abs(slope * (t[-1] - t[0])) < 5 * random_walk, slope
    assert resid < 1e-3


def test_nve_energy_fluctuation_shrinks_as_dt_squared():
    """Same start, force-shifted potential (smooth: the shadow-energy argument applies exactly),
    float64, 1 tau at dt = 0.004 and 0.002, energy observed at the same times. The error is
    dt^2 g(x(t)) + O(dt^4) with the two trajectories still close, so the ratio of the
    fluctuations is 4 up to the O((omega dt)^2) ~ 6 % correction at the larger step (omega ~ 60
    / tau, the fastest pair vibration): accepted 3.5 .. 4.5."""
    sds = []
    for dt, n in ((0.004, 250), (0.002, 500)):
        stepper, state, params = _system(jnp.float64, shift="force", dt=dt)
        _, frames = trajectory(stepper, n, n // 50)(state, params)
        e = np.asarray(frames["total_energy"])
        sds.append(np.std(e - e.mean()))
    assert 3.5 < sds[0] / sds[1] < 4.5, sds


def test_msd_of_a_non_interacting_gas_is_ballistic():
    """epsilon = 0: free flight, so the MSD is exactly <v^2> t^2 (image counts keep it exact
    across the periodic boundaries: particles cross the 6.7 box several times in 10 tau)."""
    stepper, state, params = _system()
    params = {**params, "epsilon": jnp.zeros_like(params["epsilon"])}
    state = stepper.init(POSITIONS, params, state.velocities)
    final, frames = trajectory(stepper, 2000, 10)(state, params)
    v2 = float(jnp.mean(jnp.sum(state.velocities**2, -1)))
    t = np.arange(1, 201) * 0.05
    assert np.max(np.abs(np.asarray(final.image))) >= 2
    # float32: unwrapped positions ~30 carry rounding ~30 * 6e-8 per coordinate, relative
    # error of the MSD ~1e-5 at t = 10 (MSD ~ 400); 1e-4 relative tolerance.
    np.testing.assert_allclose(np.asarray(frames["msd"]), v2 * t**2, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(md.mean_squared_displacement(final.positions, final.image, final.origin, BOX)),
        v2 * 100.0,
        rtol=1e-4,
    )


# ------------------------------------------------------------------------- thermostats


def _thermostatted(cls, **kw):
    stepper, state, params = _system(cls=cls, **kw)
    _, frames = trajectory(stepper, 4000, THERMO_TRAJ)(state, params)  # 20 tau
    return frames


def _assert_maxwell_boltzmann(velocities, kT):
    """Pooled velocity components of frames >= 2.5 tau apart (far beyond the velocity
    correlation time) against N(0, kT / m): Kolmogorov-Smirnov p > 1e-3 (a false alarm once
    in 1000 runs; a 5 % error in the width gives p ~ 1e-4 with 3000 samples), and the
    kurtosis 3 within 4 standard errors sqrt(24 / n)."""
    v = np.asarray(velocities, np.float64).ravel()
    assert stats.kstest(v / np.sqrt(kT), "norm").pvalue > 1e-3
    kurt = np.mean(v**4) / np.mean(v**2) ** 2
    assert abs(kurt - 3.0) < 4 * np.sqrt(24 / v.size)


def test_langevin_reaches_target_temperature_with_maxwell_boltzmann_velocities():
    frames = _thermostatted(md.Langevin, kT=1.5, gamma=5.0)
    temp = np.asarray(frames["temperature"])[200:]  # the last 10 tau
    mean, se = block_mean_se(temp)
    # BAOAB's kinetic temperature bias is O(dt^2 <F^2> / (4 kT)) ~ 3e-4 relative here
    # (Leimkuhler & Matthews 2013): negligible; 4 standard errors of the block mean.
    assert abs(mean - 1.5) < 4 * se + 1e-3 * 1.5, (mean, se)
    assert se < 0.02  # the test can resolve a 5 % error
    _assert_maxwell_boltzmann(frames["velocity"][-4:], 1.5)


def test_nose_hoover_chain_reaches_target_temperature_and_conserves_its_energy():
    frames = _thermostatted(md.NoseHooverChain, kT=1.5, tau=0.5)
    temp = np.asarray(frames["temperature"])[200:]
    mean, se = block_mean_se(temp)
    assert abs(mean - 1.5) < 4 * se, (mean, se)
    assert se < 0.03
    _assert_maxwell_boltzmann(frames["velocity"][-4:], 1.5)
    # The extended energy is conserved to the integrator's accuracy: the NVE estimate above
    # (~3e-4 per particle at T = 0.7) grows ~linearly with T (dt^2 <|F|^2>, <|F|^2> ~ T);
    # 2e-3 per particle bounds it at T = 1.5 with margin, while the physical total energy
    # moves by ~0.4 per particle here.
    h = np.asarray(frames["conserved_energy"], np.float64)
    assert np.std(h) < 2e-3
    assert np.std(np.asarray(frames["total_energy"])) > 100 * np.std(h)


# ----------------------------------------------------------------------- minimisation


def test_fire_relaxes_a_perturbed_lattice_to_the_lattice_energy():
    lj = md.LennardJones(cutoff=2.5)
    params = lj.params(jnp.float64)
    fire = md.FIRE(lj, box=BOX, dt=0.005, skin=0.3)
    noise = np.random.default_rng(0).normal(0, 0.05, POSITIONS.shape)
    state = fire.init(POSITIONS.astype(jnp.float64) + noise, params)
    e0 = fire.thermo(state, params)["potential_energy"]
    final, converged = jax.jit(md.minimise, static_argnums=0, static_argnames=("ftol",))(
        fire, state, params, ftol=1e-4
    )
    assert bool(converged)
    assert float(jnp.max(jnp.linalg.norm(final.forces, axis=-1))) < 1e-4
    u = float(fire.thermo(final, params)["potential_energy"])
    # Direct lattice sum (tests/test_md_validation.py): -6.773368; near the minimum
    # U - U0 ~ |F|^2 / (2 k) per particle < 1e-8 at |F| < 1e-4, k ~ 60.
    assert float(e0) > -6.7
    assert u == pytest.approx(-6.773368, abs=1e-6)


# ------------------------------------------------------------------------- gradients


def test_grad_of_potential_energy_wrt_epsilon_and_sigma_equals_finite_differences():
    stepper, state, params = _system(jnp.float64, shift="force")
    x = state.positions + jnp.asarray(
        np.random.default_rng(1).normal(0, 0.05, state.positions.shape)
    )

    @jax.jit
    def energy(p):
        return md.energy(
            stepper.potential, p, x, state.neighbors.idx, state.species, jnp.asarray(BOX)
        )

    g = jax.grad(energy)(params)
    for name in ("epsilon", "sigma"):
        h = 1e-6
        up = {**params, name: params[name] + h}
        down = {**params, name: params[name] - h}
        fd = (float(energy(up)) - float(energy(down))) / (2 * h)
        # central differences: truncation h^2 U''' / 6 ~ 1e-9, roundoff eps |U| / h ~ 2e-7
        assert float(g[name]) == pytest.approx(fd, rel=1e-6, abs=1e-5), name
    # U is linear in epsilon: dU/d(epsilon) = U / epsilon exactly
    assert float(g["epsilon"]) == pytest.approx(float(energy(params)), rel=1e-12)


def test_grad_through_a_short_trajectory_wrt_epsilon_equals_finite_differences():
    """30 float64 velocity-Verlet steps; loss = a fixed random projection of the final
    positions. Over 0.15 tau the trajectory is smooth in epsilon (chaos amplifies by
    e^(0.15 lambda) < 2); central differences with h = 1e-5: truncation ~h^2 ~ 1e-10,
    roundoff ~1e-16 / 1e-5 ~ 1e-11 relative to a loss of order 1."""
    stepper, state, params = _system(jnp.float64)
    w = jnp.asarray(np.random.default_rng(2).normal(size=state.positions.shape))

    @jax.jit
    def loss(eps):
        p = {**params, "epsilon": eps}
        final, _ = simulate(stepper, state, p, 30, 30)
        return jnp.sum(w * md.unwrap(final.positions, final.image, jnp.asarray(BOX)))

    g = jax.grad(loss)(params["epsilon"])
    assert np.isfinite(float(g))
    h = 1e-5
    fd = (float(loss(params["epsilon"] + h)) - float(loss(params["epsilon"] - h))) / (2 * h)
    assert abs(fd) > 1e-3  # a real dependence
    assert float(g) == pytest.approx(fd, rel=1e-5)


# ------------------------------------------------------------------------------- vmap


def test_vmap_of_the_step_over_replicas_equals_separate_runs():
    stepper, _, params = _system()
    states = [
        stepper.init(
            POSITIONS, params, md.maxwell_boltzmann(jax.random.key(s), POSITIONS.shape, kT=1.44)
        )
        for s in range(4)
    ]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *states)
    run = jax.jit(jax.vmap(lambda s: simulate(stepper, s, params, 200, 1)))
    finals, frames = run(stacked)
    for r, s in enumerate(states):
        final, fr = trajectory(stepper, 200, 1)(s, params)
        # Batched kernels may sum in another order (XLA vectorises across the replica axis):
        # float32 rounding 1e-7 amplified by the LJ liquid's Lyapunov growth e^(lambda t),
        # lambda ~ 5 / tau over 1 tau (Allen & Tildesley 2017, sec. 3.6), gives < 1e-4.
        np.testing.assert_allclose(
            np.asarray(finals.positions[r]), np.asarray(final.positions), atol=1e-3
        )
        np.testing.assert_allclose(
            np.asarray(frames["total_energy"][r]), np.asarray(fr["total_energy"]), atol=1e-4
        )
        assert int(finals.neighbors.n_builds[r]) == int(final.neighbors.n_builds)
