"""simkit.fluids.spectral input checks: every bad input is refused with a `SimkitInputError` that
names the input and the value seen, on the host, before a step is compiled or run; a time step
above the CFL limit is refused with a stable one in the message (and warned about between half
the limit and the limit); and odd grid sizes, which are allowed, give the right physics."""

import math
import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simkit import SimkitInputError
from simkit.fluids import spectral as sp

N = 16
GRID = sp.SpectralGrid((N, N))
PLAIN = sp.NavierStokes2D((N, N), 0.01)
KOLMOGOROV = sp.NavierStokes2D((N, N), 0.01, forcing=sp.Kolmogorov(2))
FIELD = sp.NavierStokes2D((N, N), 0.01, forcing="field")
P = PLAIN.params(0.1)
TG = sp.taylor_green(GRID, 1)  # w = 2 sin x sin y: max(|u|/dx + |v|/dy) = 1 / dx on this grid


def _with_nan(a, index=3):
    out = np.array(a, dtype=float)
    out.flat[index] = np.nan
    return out


# ---------------------------------------------------------------- grid and stepper configuration


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: sp.NavierStokes2D((4, 16), 0.01),
            r"every axis needs at least 8 points \(the resolution\), got shape \(4, 16\)",
        ),
        (lambda: sp.NavierStokes2D((16, 7), 0.01), r"at least 8 points .*got shape \(16, 7\)"),
        (lambda: sp.NavierStokes2D((0, 16), 0.01), r"at least 8 points .*got shape \(0, 16\)"),
        (lambda: sp.NavierStokes2D((-16, 16), 0.01), r"at least 8 points .*got shape \(-16, 16\)"),
        (
            lambda: sp.NavierStokes2D((16, 16, 16), 0.01),
            r"shape must be two integers \(nx, ny\), got \(16, 16, 16\)",
        ),
        (lambda: sp.NavierStokes2D((16,), 0.01), r"shape must be two integers .*got \(16,\)"),
        (lambda: sp.NavierStokes2D(16, 0.01), r"shape must be two integers .*got 16\."),
        (lambda: sp.NavierStokes2D("16x16", 0.01), r"shape must be two integers .*got '16x16'"),
        (
            lambda: sp.NavierStokes2D((16.5, 16), 0.01),
            r"shape must be two integers .*got \(16.5, 16\)",
        ),
        (
            lambda: sp.NavierStokes2D((16.0, 16), 0.01),
            r"shape must be two integers .*got \(16.0, 16\)",
        ),
        (
            lambda: sp.NavierStokes2D(("16", "16"), 0.01),
            r"shape must be two integers .*\('16', '16'\)",
        ),
        (lambda: sp.NavierStokes2D((True, 16), 0.01), r"shape must be two integers .*\(True, 16\)"),
        (lambda: sp.NavierStokes2D((N, N), 0.0), r"dt must be finite and > 0, got 0.0"),
        (lambda: sp.NavierStokes2D((N, N), -1e-3), r"dt must be finite and > 0, got -0.001"),
        (lambda: sp.NavierStokes2D((N, N), float("nan")), r"dt must be finite and > 0, got nan"),
        (lambda: sp.NavierStokes2D((N, N), math.inf), r"dt must be finite and > 0, got inf"),
        (lambda: sp.NavierStokes2D((N, N), "small"), r"dt must be a number, got 'small'"),
        (lambda: sp.NavierStokes2D((N, N), None), r"dt must be a number, got None"),
        (
            lambda: sp.NavierStokes2D((N, N), 0.01, box=(-1.0, 1.0)),
            r"box lengths must be finite and > 0, got \(-1.0, 1.0\)",
        ),
        (
            lambda: sp.NavierStokes2D((N, N), 0.01, box=(0, 1)),
            r"box lengths must be finite and > 0, got \(0.0, 1.0\)",
        ),
        (
            lambda: sp.NavierStokes2D((N, N), 0.01, box=(math.nan, 1.0)),
            r"box lengths must be finite and > 0, got \(nan, 1.0\)",
        ),
        (
            lambda: sp.NavierStokes2D((N, N), 0.01, box=(math.inf, 1.0)),
            r"box lengths must be finite and > 0, got \(inf, 1.0\)",
        ),
        (
            lambda: sp.NavierStokes2D((N, N), 0.01, box=(1.0,)),
            r"box must be two lengths \(Lx, Ly\), got \(1.0,\)",
        ),
        (lambda: sp.NavierStokes2D((N, N), 0.01, box=6.28), r"box must be two lengths .*got 6.28"),
        (lambda: sp.NavierStokes2D((N, N), 0.01, box="ab"), r"box must be two lengths .*got 'ab'"),
        (
            lambda: sp.NavierStokes2D((N, N), 0.01, dtype="float16"),
            r"dtype must be float32 or float64, got 'float16'",
        ),
        (
            lambda: sp.NavierStokes2D((N, N), 0.01, dtype="complex64"),
            r"dtype must be float32 or float64, got 'complex64'",
        ),
        (
            lambda: sp.NavierStokes2D((N, N), 0.01, dtype="int32"),
            r"float32 or float64, got 'int32'",
        ),
        (
            lambda: sp.NavierStokes2D((N, N), 0.01, dtype="double precision"),
            r"dtype must be float32 or float64, got 'double precision'",
        ),
        (lambda: sp.NavierStokes2D((N, N), 0.01, dtype=None), r"float32 or float64, got None"),
        (
            lambda: sp.NavierStokes2D((N, N), 0.01, forcing="kolmogorov"),
            r"forcing must be None, spectral.Kolmogorov\(wavenumber\) or \"field\", got 'kolmogorov'",
        ),
        (
            lambda: sp.NavierStokes2D((N, N), 0.01, forcing=sp.Kolmogorov),
            r"forcing must be None, spectral.Kolmogorov\(wavenumber\) or \"field\", got <class",
        ),
        (
            lambda: sp.Kolmogorov(2.5),
            r"Kolmogorov wavenumber must be a positive integer \(periods across the box\), got 2.5",
        ),
        (lambda: sp.Kolmogorov(2.0), r"Kolmogorov wavenumber must be a positive integer.*got 2.0"),
        (lambda: sp.Kolmogorov(0), r"Kolmogorov wavenumber must be a positive integer.*got 0"),
        (lambda: sp.Kolmogorov(-1), r"Kolmogorov wavenumber must be a positive integer.*got -1"),
        (
            lambda: sp.Kolmogorov(True),
            r"Kolmogorov wavenumber must be a positive integer.*got True",
        ),
        (lambda: sp.Kolmogorov("4"), r"Kolmogorov wavenumber must be a positive integer.*got '4'"),
        # 16 points keep |m| < 16/3, i.e. m <= 5: wavenumber 6 would be forced onto a removed mode
        (
            lambda: sp.NavierStokes2D((N, N), 0.01, forcing=sp.Kolmogorov(6)),
            r"Kolmogorov forcing at 6 periods needs ny > 18 points \(the 2/3 rule keeps \|m\| < ny / 3\),"
            r" got ny = 16",
        ),
        (
            lambda: sp.NavierStokes2D(
                (32, 15), 0.01, forcing=sp.Kolmogorov(5)
            ),  # the y axis counts
            r"Kolmogorov forcing at 5 periods needs ny > 15 points .* got ny = 15",
        ),
    ],
    ids=[
        "axis < 8 points",
        "other axis < 8",
        "zero points",
        "negative points",
        "3 entries",
        "1 entry",
        "an int",
        "a string",
        "non-integer",
        "integral float",
        "string entries",
        "bool entry",
        "dt 0",
        "dt negative",
        "dt NaN",
        "dt inf",
        "dt string",
        "dt None",
        "box negative",
        "box zero",
        "box NaN",
        "box inf",
        "box 1 entry",
        "box scalar",
        "box string",
        "dtype float16",
        "dtype complex",
        "dtype int",
        "dtype unknown",
        "dtype None",
        "forcing string",
        "forcing class",
        "Kolmogorov 2.5",
        "Kolmogorov 2.0",
        "Kolmogorov 0",
        "Kolmogorov negative",
        "Kolmogorov bool",
        "Kolmogorov string",
        "Kolmogorov removed by 2/3 rule",
        "Kolmogorov removed on ny",
    ],
)
def test_bad_grid_or_stepper_configuration_is_refused(make, message):
    with pytest.raises(SimkitInputError, match=message):
        make()


def test_largest_kolmogorov_wavenumber_the_2_3_rule_keeps_is_accepted():
    ns = sp.NavierStokes2D((N, N), 0.01, forcing=sp.Kolmogorov(5))  # 3 * 5 < 16: kept
    # ... and the forcing it applies is that mode, not zeroed by the dealiasing mask
    f_hat = sp._forcing.forcing_hat(ns.grid, ns.forcing, ns.params(0.1), ns.complex_dtype)
    assert float(abs(f_hat[0, 5])) > 0
    assert float(abs(f_hat).sum() - abs(f_hat[0, 5])) < 1e-9 * float(abs(f_hat[0, 5]))


# ---------------------------------------------------------------- params


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: PLAIN.params(-0.1), r"viscosity must be > 0, got -0.1"),
        (lambda: PLAIN.params(0.0), r"viscosity must be > 0, got 0.0"),
        (lambda: PLAIN.params(float("nan")), r"viscosity must be finite, got nan"),
        (lambda: PLAIN.params(math.inf), r"viscosity must be finite, got inf"),
        (lambda: PLAIN.params(-math.inf), r"viscosity must be finite, got -inf"),
        (lambda: PLAIN.params("thin"), r"viscosity must be a number, got 'thin'"),
        (lambda: PLAIN.params(None), r"viscosity must be a number, got None"),
        (lambda: PLAIN.params(np.array([0.1, 0.2])), r"viscosity must be a number, got array"),
        (lambda: PLAIN.params(0.1, drag=-0.5), r"drag must be >= 0, got -0.5"),
        (lambda: PLAIN.params(0.1, drag=float("nan")), r"drag must be finite, got nan"),
        (
            lambda: PLAIN.params(0.1, forcing_amplitude=1.0),
            r"a forcing was given but the stepper has forcing=None; build it with "
            r"NavierStokes2D\(\.\.\., forcing=Kolmogorov\(k\) or \"field\"\)",
        ),
        (
            lambda: PLAIN.params(0.1, forcing=np.zeros((N, N))),
            r"a forcing was given but the stepper has forcing=None",
        ),
        (
            lambda: KOLMOGOROV.params(0.1, forcing=np.zeros((N, N))),
            r"the stepper has Kolmogorov forcing: pass forcing_amplitude=\.\.\., not a forcing field",
        ),
        (
            lambda: KOLMOGOROV.params(0.1, forcing_amplitude=float("nan")),
            r"forcing_amplitude must be finite, got nan",
        ),
        (
            lambda: KOLMOGOROV.params(0.1, forcing_amplitude="strong"),
            r"forcing_amplitude must be a number, got 'strong'",
        ),
        (
            lambda: FIELD.params(0.1),
            r"the stepper has forcing=\"field\": pass params\(\.\.\., forcing=<\(nx, ny\) vorticity "
            r"forcing>\)",
        ),
        (
            lambda: FIELD.params(0.1, forcing=np.zeros((N, N)), forcing_amplitude=2.0),
            r"forcing_amplitude is for Kolmogorov forcing; with forcing=\"field\" scale the field",
        ),
        (
            lambda: FIELD.params(0.1, forcing=np.zeros((N, N, 2))),  # a force, not its curl
            r"forcing must have shape \(16, 16\) \(the grid\), got \(16, 16, 2\)",
        ),
        (
            lambda: FIELD.params(0.1, forcing=np.zeros((N + 1, N))),
            r"forcing must have shape \(16, 16\) \(the grid\), got \(17, 16\)",
        ),
        (
            lambda: FIELD.params(0.1, forcing=_with_nan(np.zeros((N, N)))),
            r"forcing contains 1 NaN/inf value\(s\)",
        ),
        (
            lambda: FIELD.params(0.1, forcing=np.full((N, N), np.inf)),
            r"forcing contains 256 NaN/inf value\(s\)",
        ),
        (
            lambda: FIELD.params(0.1, forcing=np.zeros((N, N), complex)),
            r"forcing must be a real array, got dtype complex128",
        ),
    ],
    ids=[
        "viscosity negative",
        "viscosity 0",
        "viscosity NaN",
        "viscosity inf",
        "viscosity -inf",
        "viscosity string",
        "viscosity None",
        "viscosity array",
        "drag negative",
        "drag NaN",
        "amplitude without Kolmogorov",
        "field without forcing",
        "field with Kolmogorov",
        "amplitude NaN",
        "amplitude string",
        "field missing",
        "amplitude with field",
        "field is a force",
        "field wrong shape",
        "field NaN",
        "field inf",
        "field complex",
    ],
)
def test_bad_params_are_refused(make, message):
    with pytest.raises(SimkitInputError, match=message):
        make()


def test_good_params_are_arrays_of_the_stepper_dtype():
    p = KOLMOGOROV.params(0.1, drag=0.0, forcing_amplitude=-2.0)  # any sign of A is a forcing
    assert set(p) == {"viscosity", "drag", "forcing_amplitude"}
    assert all(v.dtype == jnp.float32 and v.shape == () for v in p.values())
    assert FIELD.params(0.1, forcing=np.zeros((N, N)))["forcing"].shape == (N, N)


# ---------------------------------------------------------------- initial state


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: PLAIN.init(P),
            r"init needs exactly one of vorticity=\(nx, ny\) or velocity="
            r"\(nx, ny, 2\)",
        ),
        (
            lambda: PLAIN.init(P, vorticity=TG, velocity=np.zeros((N, N, 2))),
            r"init needs exactly one of vorticity=\(nx, ny\) or velocity=\(nx, ny, 2\)",
        ),
        (
            lambda: PLAIN.init(P, vorticity=np.zeros((N, N - 1))),
            r"vorticity must have shape \(16, 16\) \(the grid\), got \(16, 15\)",
        ),
        (
            lambda: PLAIN.init(P, vorticity=np.zeros((N, N, 2))),  # a velocity passed as vorticity
            r"vorticity must have shape \(16, 16\) \(the grid\), got \(16, 16, 2\)",
        ),
        (
            lambda: PLAIN.init(P, velocity=np.zeros((N, N))),
            r"velocity must have shape \(16, 16, 2\) \(the grid, components\), got \(16, 16\)",
        ),
        (
            lambda: PLAIN.init(P, velocity=np.zeros((2, N, N))),  # components first
            r"velocity must have shape \(16, 16, 2\) \(the grid, components\), got \(2, 16, 16\)",
        ),
        (
            lambda: PLAIN.init(P, vorticity=_with_nan(TG)),
            r"vorticity contains 1 NaN/inf value\(s\)",
        ),
        (
            lambda: PLAIN.init(P, vorticity=jnp.full((N, N), jnp.nan)),
            r"vorticity contains 256 NaN/inf value\(s\)",
        ),
        (
            lambda: PLAIN.init(P, velocity=np.full((N, N, 2), -np.inf)),
            r"velocity contains 512 NaN/inf value\(s\)",
        ),
        (
            lambda: PLAIN.init(P, vorticity=TG.astype(np.complex128)),
            r"vorticity must be a real array, got dtype complex128",
        ),
        (
            lambda: PLAIN.init(P, vorticity=jnp.asarray(TG, jnp.complex64)),
            r"vorticity must be a real array, got dtype complex64",
        ),
        (
            lambda: PLAIN.init(P, vorticity=TG > 0),
            r"vorticity must be a real array, got dtype bool",
        ),
        (
            lambda: PLAIN.init(P, vorticity=[[1.0, 2.0], [3.0]]),
            r"vorticity must be an array of shape \(16, 16\), got a list numpy cannot read as one",
        ),
    ],
    ids=[
        "neither field",
        "both fields",
        "vorticity shape",
        "vorticity given a velocity",
        "velocity shape",
        "velocity components first",
        "vorticity NaN",
        "vorticity all NaN (jax)",
        "velocity inf",
        "complex128",
        "complex64 (jax)",
        "bool",
        "ragged list",
    ],
)
def test_bad_initial_fields_are_refused(make, message):
    with pytest.raises(SimkitInputError, match=message):
        make()


# ---------------------------------------------------------------- the CFL check at init


def test_time_step_above_the_cfl_limit_is_refused_with_a_stable_one_in_the_message():
    # Taylor-Green w = 2 sin x sin y on 16^2: max(|u|/dx + |v|/dy) = 1/dx exactly (grid point
    # x = pi/2, y = 0), so CFL = dt * 16 / (2 pi) = 2.546 dt; MAX_CFL = 1 -> dt <= 0.3927,
    # suggested as 0.392 (3 digits, rounded down: the suggestion itself must pass).
    dx = 2 * math.pi / N
    for dt in (0.5, 1.0, 10.0):
        ns = sp.NavierStokes2D((N, N), dt)
        with pytest.raises(
            SimkitInputError,
            match=rf"dt = {dt:g} gives an advective CFL number of "
            rf"{dt / dx:.3g} for the initial field, above the stability limit 1.0; "
            r"use dt <= 0.392 \(e.g. spectral.stable_time_step\(max_velocity, "
            r"grid, cfl=0.5\) = 0.196\)",
        ) as info:
            ns.init(ns.params(0.1), vorticity=TG)
        suggested = float(re.search(r"use dt <= ([0-9.e-]+)", str(info.value)).group(1))
        assert 0.997 * dx < suggested <= dx  # 3 significant digits, rounded down
        ok = sp.NavierStokes2D((N, N), suggested)  # the suggestion passes (CFL 0.998: warns)
        with pytest.warns(UserWarning, match="close to the limit"):
            ok.init(ok.params(0.1), vorticity=TG)
    # the same check for a velocity given instead of the vorticity (u = sin x cos y, ...)
    x, y = GRID.mesh()
    vel = np.stack([np.sin(x) * np.cos(y), -np.cos(x) * np.sin(y)], axis=-1)
    ns = sp.NavierStokes2D((N, N), 0.5)
    with pytest.raises(SimkitInputError, match=r"CFL number of 1.27 .* use dt <= 0.392"):
        ns.init(ns.params(0.1), velocity=vel)


def test_time_step_between_half_and_the_full_cfl_limit_warns_and_below_is_silent():
    dx = 2 * math.pi / N
    ns = sp.NavierStokes2D((N, N), 0.3)  # CFL 0.3 / dx = 0.764
    with pytest.warns(
        UserWarning,
        match=r"dt = 0.3 gives a CFL number of 0.764 for the initial "
        r"field, close to the limit 1.0; a flow that speeds up may blow up",
    ) as seen:
        state = ns.init(ns.params(0.1), vorticity=TG)
    assert seen[0].filename == __file__  # the warning points at the user's call, not at simkit
    assert float(ns.cfl(state)) == pytest.approx(0.3 / dx, rel=1e-6)  # float32 state
    quiet = sp.NavierStokes2D((N, N), 0.45 * dx)  # CFL 0.45 < 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet.init(quiet.params(0.1), vorticity=TG)


def test_init_checks_are_skipped_under_tracing_so_init_is_differentiable():
    # jax.grad through init (for inverse problems on the initial field): no host check, no error.
    ns = sp.NavierStokes2D((N, N), 0.01, dtype="float64")
    p = ns.params(0.1)
    g = jax.jit(jax.grad(lambda w: sp.energy(ns.grid, ns.init(p, vorticity=w).vorticity_hat)))(TG)
    # d<|u|^2/2>/dw = w / (k^2 N^2) for this single |k|^2 = 2 shell: tolerance 1e-12 (float64)
    np.testing.assert_allclose(np.asarray(g), TG / (2 * N * N), rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: sp.stable_time_step(0.0, GRID),
            r"max_velocity must be a finite number > 0, got 0.0",
        ),
        (
            lambda: sp.stable_time_step(-1.0, GRID),
            r"max_velocity must be a finite number > 0, got -1",
        ),
        (lambda: sp.stable_time_step(math.nan, GRID), r"max_velocity must be a finite .*got nan"),
        (lambda: sp.stable_time_step(math.inf, GRID), r"max_velocity must be a finite .*got inf"),
        (lambda: sp.stable_time_step(True, GRID), r"max_velocity must be a finite .*got True"),
        (lambda: sp.stable_time_step("1", GRID), r"max_velocity must be a finite .*got '1'"),
        (
            lambda: sp.stable_time_step(np.ones(2), GRID),
            r"max_velocity must be a finite .*got array",
        ),
        (lambda: sp.stable_time_step(1.0, GRID, cfl=0.0), r"cfl must be in \(0, 1.0\], got 0.0"),
        (lambda: sp.stable_time_step(1.0, GRID, cfl=1.5), r"cfl must be in \(0, 1.0\], got 1.5"),
        (lambda: sp.stable_time_step(1.0, GRID, cfl=math.nan), r"cfl must be in .*got nan"),
        (lambda: sp.stable_time_step(1.0, GRID, cfl="half"), r"cfl must be in .*got 'half'"),
        (
            lambda: sp.stable_time_step(1.0, (N, N)),
            r"grid must be a spectral.SpectralGrid \(e.g. stepper.grid\), got tuple",
        ),
        (
            lambda: sp.random_vorticity(GRID, 0, energy=0.0),
            r"energy must be a finite number > 0, got 0.0",
        ),
        (lambda: sp.random_vorticity(GRID, 0, energy=-0.5), r"energy must be a finite .*got -0.5"),
        (
            lambda: sp.random_vorticity(GRID, 0, energy=math.nan),
            r"energy must be a finite .*got nan",
        ),
        (
            lambda: sp.random_vorticity(GRID, 0, energy=math.inf),
            r"energy must be a finite .*got inf",
        ),
        (
            lambda: sp.random_vorticity(GRID, 0, energy="lots"),
            r"energy must be a finite .*got 'lots'",
        ),
        (
            lambda: sp.random_vorticity(GRID, 0, peak_wavenumber=0.0),
            r"peak_wavenumber must be > 0, got 0.0",
        ),
        (
            lambda: sp.random_vorticity(GRID, 0, spectrum=lambda k: 0.0 * k),
            r"the spectrum must be finite and > 0 on at least one mode the 2/3 rule keeps \(\|k\| up to "
            r"7.07 on this grid\); got zero on all of them",
        ),
        (
            lambda: sp.random_vorticity(GRID, 0, spectrum=lambda k: jnp.where(k > 8, 1.0, 0.0)),
            r"got zero on all of them",
        ),  # energy only beyond the kept |m| <= 5 per axis
        (
            lambda: sp.random_vorticity(GRID, 0, spectrum=lambda k: 1.0 / (k - k)),
            r"the spectrum must be finite .*got NaN/inf values",
        ),
        (lambda: sp.taylor_green(GRID, 0), r"wavenumber must be a positive integer, got 0"),
        (
            lambda: sp.taylor_green(GRID, 6),
            r"wavenumber 6 is removed by the 2/3 rule on grid \(16, 16\): it needs more than 18 points",
        ),
    ],
    ids=[
        "max_velocity 0",
        "max_velocity negative",
        "max_velocity NaN",
        "max_velocity inf",
        "max_velocity bool",
        "max_velocity string",
        "max_velocity array",
        "cfl 0",
        "cfl above MAX_CFL",
        "cfl NaN",
        "cfl string",
        "grid not a SpectralGrid",
        "energy 0",
        "energy negative",
        "energy NaN",
        "energy inf",
        "energy string",
        "peak wavenumber 0",
        "spectrum zero",
        "spectrum only on removed modes",
        "spectrum NaN",
        "Taylor-Green 0",
        "Taylor-Green removed by 2/3 rule",
    ],
)
def test_bad_helper_arguments_are_refused(make, message):
    with pytest.raises(SimkitInputError, match=message):
        make()


def test_stable_time_step_accepts_numpy_and_jax_scalars_and_keeps_its_promise():
    dt = sp.stable_time_step(np.float32(2.0), GRID, cfl=jnp.asarray(0.5))
    assert dt == pytest.approx(0.5 * (2 * math.pi / N) / (2 * 2.0), rel=1e-7)
    # TG at amplitude 2 has |u|, |v| <= 2: the CFL number is <= 0.5 (here exactly 0.5 / 2, as
    # |u| + |v| <= 2 here, not 4)
    ns = sp.NavierStokes2D((N, N), dt)
    state = ns.init(ns.params(0.1), vorticity=sp.taylor_green(GRID, 1, amplitude=2.0))
    assert float(ns.cfl(state)) == pytest.approx(0.25, rel=1e-6)


# ---------------------------------------------------------------- odd grid sizes are allowed


def test_odd_grid_sizes_run_and_decay_taylor_green_exactly():
    # Taylor-Green on an odd, non-square grid in a non-square box: w = A (kx + ky) sin(kx x)
    # sin(ky y) is one eigenfunction of the Laplacian, so the nonlinear term vanishes and
    # w(t) = w(0) exp(-nu (kx^2 + ky^2) t) exactly (Taylor & Green 1937, Proc. R. Soc. A 158:499).
    # The integrating factor makes the linear decay exact: tolerance 1e-12 relative (float64).
    shape, box, nu, dt, n_steps = (33, 31), (2 * math.pi, 4 * math.pi), 0.05, 0.05, 40
    ns = sp.NavierStokes2D(shape, dt, box=box, dtype="float64")
    assert ns.grid.spectral_shape == (33, 16)  # odd ny: no Nyquist column
    w0 = sp.taylor_green(ns.grid, 2)
    p = ns.params(nu)
    state = ns.init(p, vorticity=w0)
    final = jax.jit(lambda s, q: jax.lax.fori_loop(0, n_steps, lambda i, x: ns.step(x, q), s))(
        state, p
    )
    k2 = (2 * 2 * math.pi / box[0]) ** 2 + (2 * 2 * math.pi / box[1]) ** 2
    w = np.asarray(ns.grid.to_physical(final.vorticity_hat))
    np.testing.assert_allclose(
        w, w0 * np.exp(-nu * k2 * n_steps * dt), rtol=0, atol=1e-12 * np.abs(w0).max()
    )
    assert int(final.step) == n_steps and final.vorticity_hat.dtype == np.complex128
    # grid points x_i = i Lx / nx on the odd axes
    x, y = ns.grid.points()
    np.testing.assert_allclose(x[-1], 32 * 2 * math.pi / 33, rtol=1e-15)
    np.testing.assert_allclose(y[1], 4 * math.pi / 31, rtol=1e-15)
