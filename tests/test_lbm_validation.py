"""simkit.fluids.lbm against published benchmarks: the lid-driven cavity (Ghia, Ghia & Shin 1982,
J. Comput. Phys. 48:387, Tables I and II) at Re = 100 (default suite), 400 and 1000 (slow), and
the Strouhal number of the laminar vortex street behind a cylinder at Re = 100 (Schafer & Turek
1996, benchmark 2D-2; slow).

Lattice units. Cavity: n = L + 2 cells per side, the fluid cells 1..L, one wall layer all round;
the top row (y+) is the lid, a moving wall at speed U along +x, the rest stationary walls. With
halfway bounce-back the walls lie half a cell outside the fluid, so fluid cell i is at
(i - 1/2) / L in units of the cavity side, and the centre line x = 1/2 runs between the cells
L/2 and L/2 + 1.
"""

import functools

import jax
import numpy as np
import pytest

from simkit.fluids import GHIA_U, GHIA_V, GHIA_X, GHIA_Y, lbm
from simkit.fluids._reference import STROUHAL_RE100_UNCONFINED


@functools.partial(jax.jit, static_argnums=0)
def advance(stepper, state, params, n_steps):
    """`n_steps` steps in one compiled loop (the count is traced: one compile per stepper)."""
    return jax.lax.fori_loop(0, n_steps, lambda _, s: stepper.step(s, params), state)


def _cavity(reynolds, n_fluid, lid_speed, collision):
    n = n_fluid + 2
    stepper = lbm.LBMStepper(
        lbm.D2Q9, (n, n), collision, periodic=(False, False), moving_walls=("lid",)
    )
    params = stepper.params(viscosity=lid_speed * n_fluid / reynolds, lid=(lid_speed, 0.0))
    lid = lbm.face((n, n), "y+")
    state = stepper.init(params, walls=lbm.box_walls((n, n)) & ~lid, moving={"lid": lid})
    return stepper, params, state


def _centreline_profiles(stepper, params, state, n_fluid, lid_speed):
    """u / U on x = 1/2 at Ghia's heights, v / U on y = 1/2 at Ghia's positions: the mean of
    the two cell columns (rows) either side of the centre line, linearly interpolated between
    cell centres, with the wall values at 0 and 1 (no slip; the lid moves at U)."""
    _, u = stepper.macroscopic(state, params)
    u = np.asarray(u, np.float64) / lid_speed
    m = n_fluid // 2
    coord = np.concatenate([[0.0], (np.arange(1, n_fluid + 1) - 0.5) / n_fluid, [1.0]])
    u_mid = 0.5 * (u[m, 1:-1, 0] + u[m + 1, 1:-1, 0])
    v_mid = 0.5 * (u[1:-1, m, 1] + u[1:-1, m + 1, 1])
    u_line = np.concatenate([[0.0], u_mid, [1.0]])
    v_line = np.concatenate([[0.0], v_mid, [0.0]])
    return np.interp(GHIA_Y, coord, u_line), np.interp(GHIA_X, coord, v_line)


def _run_cavity(reynolds, n_fluid, lid_speed, collision, n_steps, last):
    """Run `n_steps`; returns the profiles and their largest change over the `last` steps."""
    stepper, params, state = _cavity(reynolds, n_fluid, lid_speed, collision)
    state = advance(stepper, state, params, n_steps - last)
    u0, v0 = _centreline_profiles(stepper, params, state, n_fluid, lid_speed)
    state = advance(stepper, state, params, last)
    u1, v1 = _centreline_profiles(stepper, params, state, n_fluid, lid_speed)
    change = max(np.abs(u1 - u0).max(), np.abs(v1 - v0).max())
    return u1, v1, change


def test_lid_driven_cavity_re_100_matches_ghia_within_0_02_of_the_lid_speed():
    # L = 64, U = 0.1 (Mach 0.17), nu = U L / Re = 0.064 (tau = 0.692), BGK, float32.
    # 16000 steps = 25 lid turnovers L / U; the profiles then change by < 1e-5 U per 1000
    # steps. Measured max deviations: u 0.0057 (at y = 0.9531), v 0.0032 (at x = 0.9063).
    u, v, change = _run_cavity(100, 64, 0.1, lbm.BGK(), n_steps=16000, last=1000)
    assert change < 1e-4  # steady
    dev_u = np.abs(u - np.asarray(GHIA_U[100]))
    dev_v = np.abs(v - np.asarray(GHIA_V[100]))
    assert dev_u.max() <= 0.02, dev_u
    assert dev_v.max() <= 0.02, dev_v
    # the primary vortex: u < 0 below the centre, v changes sign across it
    assert u[GHIA_Y == 0.5] < -0.15 and v[GHIA_X == 0.2344] > 0.1 > -0.1 > v[GHIA_X == 0.8047]


# Ghia's Table II, Re = 400, v at x = 0.9063 reads -0.23827: a kink in a smooth profile (v
# changes by 0.010 from x = 0.9453 to 0.9063, then by 0.212 to x = 0.8594), and 0.14 away from
# the solution here at L = 96 and 128 (-0.371, -0.376), which matches the other 16 points of
# the same profile within 0.014.
# We treat it as a misprint in the table and leave it out (independent transcriptions of the
# table carry the same value, so it is not a copying error here).
GHIA_V400_SUSPECT = GHIA_X == 0.9063


@pytest.mark.slow
@pytest.mark.parametrize(
    "reynolds, n_fluid, n_steps, tolerance",
    [
        # measured max deviations (u, v): Re 400 at L = 96: 0.0131, 0.0126 (v without the
        # suspect point); Re 1000 at L = 128: 0.0156, 0.0113. The tolerance is the measurement
        # rounded up: the coarse grids' error, not run-to-run noise (the run is deterministic).
        (400, 96, 50000, 0.02),
        (1000, 128, 110000, 0.02),
    ],
)
def test_lid_driven_cavity_at_higher_reynolds_numbers_matches_ghia(
    reynolds, n_fluid, n_steps, tolerance
):
    # TRT (Lambda = 1/4): tau = 0.572 (Re 400) and 0.538 (Re 1000) at U = 0.1. Steady state
    # takes ~40 lid turnovers at Re 400 and ~85 at Re 1000.
    u, v, change = _run_cavity(reynolds, n_fluid, 0.1, lbm.TRT(), n_steps=n_steps, last=10000)
    assert change < 2e-4
    dev_u = np.abs(u - np.asarray(GHIA_U[reynolds]))
    dev_v = np.abs(v - np.asarray(GHIA_V[reynolds]))
    if reynolds == 400:
        assert dev_v[GHIA_V400_SUSPECT] > 0.1  # the misprint stays visibly off (by 0.14)
        dev_v = dev_v[~GHIA_V400_SUSPECT]
    assert dev_u.max() <= tolerance, dev_u
    assert dev_v.max() <= tolerance, dev_v


# ---------------------------------------------------------------- cylinder wake

# Schafer & Turek (1996), benchmark 2D-2: a channel of height H = 0.41, a cylinder of diameter
# D = 0.1 centred at (0.2, 0.2) from the inlet and the lower wall (slightly off the centre line,
# so shedding starts by itself), outlet at 2.2; parabolic inflow of maximum 1.5 Ubar, Ubar = 1,
# nu = 1e-3: Re = Ubar D / nu = 100. Published St = f D / Ubar in 0.2950-0.3050 (lower and
# upper bounds of the benchmark's reference results). Confinement (blockage D / H = 0.24) raises
# St well above the unconfined 0.164-0.166 of Williamson (1996).
SCHAFER_TUREK_2D2_STROUHAL = (0.2950, 0.3050)


@pytest.mark.slow
def test_cylinder_wake_strouhal_number_at_re_100_schafer_turek_2d2():
    # D = 20 cells (H = 82, L = 440 cells), Ubar = 0.05 (Umax 0.075, Mach 0.13), nu = 0.01
    # (tau = 0.53), TRT. The wake starts to shed after ~15000 steps; the period is ~1340
    # steps. St from the lift (momentum-exchange force across the channel) over ~11 periods
    # after 20000 steps. Measured St = 0.298.
    d, u_max = 20, 0.075
    h, length = round(4.1 * d), round(22 * d)
    shape = (length, h + 2)
    stepper = lbm.LBMStepper(
        lbm.D2Q9, shape, lbm.TRT(), periodic=(False, False), inlet="x-", outlet="x+"
    )
    u_bar = 2 * u_max / 3
    y = np.arange(h + 2) - 0.5  # from the lower wall; the wall cells' values are not used
    profile = np.zeros((h + 2, 2))
    profile[:, 0] = np.clip(4 * u_max * y * (h - y) / h**2, 0.0, None)
    params = stepper.params(u_bar * d / 100, inlet_velocity=profile)
    cylinder = lbm.cylinder(shape, (2 * d, 0.5 + 2 * d), d / 2)
    state = stepper.init(
        params,
        walls=lbm.box_walls(shape, ["y-", "y+"]),
        obstacle=cylinder,
        velocity=np.broadcast_to(profile, shape + (2,)),
    )
    state = advance(stepper, state, params, 20000)
    every, samples = 10, 1500

    @jax.jit
    def lift(state, params):
        def chunk(s, _):
            s = advance(stepper, s, params, every)
            return s, stepper.obstacle_force(s)[1]

        return jax.lax.scan(chunk, state, None, length=samples)

    _, f_lift = lift(state, params)
    f_lift = np.asarray(f_lift, np.float64)
    f_lift -= f_lift.mean()
    up = np.flatnonzero((f_lift[:-1] < 0) & (f_lift[1:] >= 0))
    assert len(up) >= 8, "no vortex shedding"
    crossings = (up + f_lift[up] / (f_lift[up] - f_lift[up + 1])) * every
    periods = np.diff(crossings)
    assert periods.std() < 0.01 * periods.mean()  # periodic shedding, saturated
    strouhal = d / (periods.mean() * u_bar)
    lo, hi = SCHAFER_TUREK_2D2_STROUHAL
    assert lo <= strouhal <= hi, strouhal
    assert strouhal > STROUHAL_RE100_UNCONFINED[1]  # confinement raises it
