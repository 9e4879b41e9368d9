"""simkit.fluids.spectral.NavierStokes3D, the 3-D velocity-form pseudo-spectral solver: exact
solutions, the nonlinear term against a closed form, the invariants of the Galerkin-truncated
system, the energy budget, the projection, the diagnostics, the run driver (HDF5 that xarray
opens, bitwise resume after Ctrl-C), input checks, and gradients (viscosity through 50 steps
against finite differences; the initial velocity through init's projection).

One float64 stepper (16^3, 2 pi box, dt = 0.01, with a force field, which is zero where a test
needs none) serves the physics tests, and one compiled 100-step `simulate` of it serves the
exact-solution, budget and inviscid tests (parameter values are array leaves); the driver
tests use one float32 stepper without forcing. Compile time dominates: the default part takes
~20 s on an idle 2-core machine, ~45 s when it is loaded; the viscosity gradient is slow-marked.
"""

import functools
import math

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from simkit import SimkitInputError
from simkit.fluids import spectral as sp
from simkit.io import FieldStore
from simkit.run import run, simulate

N = 16
DT = 0.01
NS = sp.NavierStokes3D((N, N, N), DT, forcing="field", dtype="float64")
GRID = NS.grid
ZERO_FORCE = np.zeros((N, N, N, 3))
FAST_COMPILE = {"xla_backend_optimization_level": 0}  # as tests/test_spectral_gradients.py
N_RUN = 100  # steps of the compiled run most physics tests share (t = 1)


def _compile(fn, *args):
    return jax.jit(fn).lower(*args).compile(FAST_COMPILE)


@functools.cache
def _run_program():
    """`simulate` of NS for N_RUN steps, every diagnostic saved at every step, compiled once
    (with XLA's backend optimisation off, as tests/test_spectral_gradients.py: it changes only
    rounding) for any state and params of NS."""
    params = _params(0.1)
    state = NS.init(params, sp.taylor_green_3d(GRID))
    return _compile(
        lambda s, p: simulate(
            NS, s, p, N_RUN, {"diagnostics": 1, "fields": N_RUN, "spectrum": N_RUN}
        ),
        state,
        params,
    )


def _run(state, params):
    """(final state, diagnostics `{name: (N_RUN + 1,)}` including the initial state's)."""
    first = NS.observe(state, params)
    final, frames = _run_program()(state, params)
    return final, {
        q: np.concatenate([[np.asarray(first[q])], np.asarray(frames[q])])
        for q in NS.save_groups()["diagnostics"]
    }


_nonlinear = jax.jit(NS.nonlinear)


def _params(viscosity, drag=0.0, forcing=ZERO_FORCE):
    return NS.params(viscosity, drag=drag, forcing=forcing)


def _spectral(velocity):
    """The exact rfftn `(3, nx, ny, nz//2+1)` of a physical field (numpy, float64)."""
    return np.fft.rfftn(np.moveaxis(np.asarray(velocity, np.float64), -1, 0), axes=(1, 2, 3))


def _physical(velocity_hat):
    return np.asarray(GRID.vector_to_physical(velocity_hat))


# ---------------------------------------------------------------------------- exact solutions


@pytest.mark.parametrize(
    "coefficients, wavenumber, viscosity, drag",
    [
        ((1.0, 1.0, 1.0), 1, 0.05, 0.0),
        ((1.0, 0.7, 0.4), 2, 0.02, 0.3),
    ],
)
def test_abc_flow_decays_exactly(coefficients, wavenumber, viscosity, drag):
    # ABC flows (Dombre et al. 1986, J. Fluid Mech. 167:353) are Beltrami fields, curl u = k u,
    # so u x w = 0 and u(t) = exp(-(nu k^2 + mu) t) u(0) exactly. The integrating factor is
    # exact for the linear terms, and the nonlinear term is round-off (~1e-16 |u|^2 k), so the
    # state after 100 steps (t = 1) is exact to rtol 1e-13 (measured 2e-15 and 6e-15).
    u0 = sp.abc_flow(GRID, *coefficients, wavenumber=wavenumber)
    params = _params(viscosity, drag)
    state = NS.init(params, u0)
    np.testing.assert_allclose(
        np.asarray(state.velocity_hat), _spectral(u0), rtol=0, atol=1e-12 * N**3
    )  # already solenoidal and resolved
    final, _ = _run(state, params)
    k2 = wavenumber**2
    expected = u0 * math.exp(-(viscosity * k2 + drag) * 1.0)
    err = np.max(np.abs(_physical(final.velocity_hat) - expected)) / np.max(np.abs(expected))
    assert err < 1e-13, err
    assert int(final.step) == 100 and float(NS.time(final)) == pytest.approx(1.0, rel=1e-15)


def test_taylor_green_nonlinear_term_matches_the_closed_form():
    # For the 3-D Taylor-Green vortex u = (sin x cos y cos z, -cos x sin y cos z, 0) the
    # pressure is p = (cos 2x + cos 2y)(cos 2z + 2) / 16 (Brachet et al. 1983, J. Fluid Mech.
    # 130:411, sec. 2) and -(u . grad) u - grad p, which P[u x w] must equal, is (derived here)
    #     (-sin 2x cos 2z / 8,  -sin 2y cos 2z / 8,  (cos 2x + cos 2y) sin 2z / 8).
    # All modes (|m| <= 2) are resolved on 16^3, so the match is to round-off (atol 1e-14,
    # measured ~5e-16).
    params = _params(0.1)
    state = NS.init(params, sp.taylor_green_3d(GRID))
    assert float(sp.energy_3d(GRID, state.velocity_hat)) == pytest.approx(1 / 8, rel=1e-14)
    x, y, z = GRID.mesh()
    expected = (
        np.stack(
            [
                -np.sin(2 * x) * np.cos(2 * z),
                -np.sin(2 * y) * np.cos(2 * z),
                (np.cos(2 * x) + np.cos(2 * y)) * np.sin(2 * z),
            ],
            axis=-1,
        )
        / 8
    )
    got = _physical(_nonlinear(state.velocity_hat))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-14)


# ------------------------------------------------------------ invariants and the energy budget


@pytest.fixture(scope="module")
def random_state():
    """A random solenoidal field (energy 0.5, spectrum peaked at k = 3) and its params."""
    params = _params(0.02)
    u0 = np.asarray(
        sp.random_velocity_3d(GRID, 1, energy=0.5, peak_wavenumber=3.0, dtype="float64")
    )
    return NS.init(params, u0), params, u0


def test_nonlinear_term_conserves_energy_and_helicity(random_state):
    # The 2/3 rule makes the product exact on the kept modes, so the truncated system conserves
    # energy <u . N(u)> = <u . (u x w)> = 0 and helicity <w . N(u)> = <w . (u x w)> = 0
    # (Kraichnan 1973, J. Fluid Mech. 59:745 for the truncated Euler invariants). Relative to
    # |N| = sqrt(<|N|^2>) (1.4 here): atol 1e-14 |N| (measured 4e-18, 5e-18).
    state, _, _ = random_state
    u = state.velocity_hat
    n = _nonlinear(u)
    w = GRID.curl_hat(u)
    scale = float(jnp.sqrt(sp.box_mean_product_3d(GRID, n, n)))
    assert scale > 0.1  # the term is not trivially small
    assert abs(float(sp.box_mean_product_3d(GRID, u, n))) < 1e-14 * scale
    assert abs(float(sp.box_mean_product_3d(GRID, w, n))) < 1e-14 * scale
    # the nonlinear term is itself solenoidal and dealiased
    assert float(jnp.max(jnp.abs(GRID.divergence_hat(n)))) < 1e-12 * N**3
    np.testing.assert_array_equal(np.asarray(n)[:, ~GRID.dealias_mask()], 0)


def _simpson(y, h):
    return h / 3 * (y[0] + y[-1] + 4 * np.sum(y[1:-1:2]) + 2 * np.sum(y[2:-1:2]))


def test_energy_budget_with_viscosity_drag_and_forcing(random_state):
    # dE/dt = <f . u> - nu <|w|^2> - 2 mu E (periodic box, solenoidal f; the nonlinear term
    # conserves E). Checked on the integral: E(T) - E(0) = int_0^T (injection - dissipation -
    # 2 mu E) dt by Simpson's rule over the 101 per-step frames, both sides O(dt^4): relative
    # to the integral of the dissipation, rtol 3e-8 (measured 4.7e-9; the per-step central
    # difference (E_{n+1} - E_{n-1}) / 2 dt leaves 3e-5, its O(dt^2) error).
    state, _, _ = random_state
    force = np.asarray(
        sp.random_velocity_3d(GRID, 7, energy=0.2, peak_wavenumber=2.0, dtype="float64")
    )
    x, _, _ = GRID.mesh()
    force = force + np.stack([np.cos(3 * x)] * 3, axis=-1)  # + a gradient part: projected away
    mu = 0.1
    params = _params(0.02, drag=mu, forcing=force)
    _, d = _run(state, params)
    e = d["energy"]
    rate = d["injection"] - d["dissipation"] - 2 * mu * e
    assert np.all(d["injection"] != 0) and np.all(d["dissipation"] > 0)
    lhs, rhs = e[-1] - e[0], _simpson(rate, DT)
    assert abs(lhs - rhs) < 3e-8 * _simpson(d["dissipation"], DT), (lhs, rhs)
    # divergence stays at round-off; enstrophy and dissipation agree
    assert np.max(d["max_divergence"]) < 1e-12
    np.testing.assert_allclose(d["dissipation"], 2 * 0.02 * d["enstrophy"], rtol=1e-14)


def test_inviscid_truncated_system_conserves_energy_and_helicity(random_state):
    # nu = mu = 0 (params() refuses nu = 0, so the dict is built directly): the Galerkin-
    # truncated Euler system conserves energy and helicity (Kraichnan 1973); RK4 leaves an
    # O(dt^4) drift. 100 steps to t = 1, CFL 0.12: |dE| / E < 2e-9 (measured 2.3e-10; 5e-12
    # at dt / 2); helicity drift relative to sqrt(<|u|^2> <|w|^2>) < 2e-9 (measured 2.6e-10).
    state, params, _ = random_state
    zero = jnp.zeros_like(params["viscosity"])  # same dtype: the compiled run is reused
    inviscid = {**params, "viscosity": zero, "drag": zero}
    final, d = _run(state, inviscid)
    e = d["energy"]
    assert abs(e[-1] - e[0]) < 2e-9 * e[0], e[-1] - e[0]
    assert np.all(d["dissipation"] == 0)
    # the flow did evolve (the nonlinear term moved energy between shells)
    e0, e1 = (np.asarray(NS.observe(s, inviscid)["energy_spectrum"]) for s in (state, final))
    assert np.max(np.abs(e1 - e0)) > 1e-3 * np.max(e0)

    def helicity(s):  # <u . w>, and its natural scale sqrt(<|u|^2> <|w|^2>)
        u, w = s.velocity_hat, GRID.curl_hat(s.velocity_hat)
        return (
            float(sp.box_mean_product_3d(GRID, u, w)),
            math.sqrt(
                float(sp.box_mean_product_3d(GRID, u, u) * sp.box_mean_product_3d(GRID, w, w))
            ),
        )

    (h0, scale), (h1, _) = helicity(state), helicity(final)
    assert abs(h1 - h0) < 2e-9 * scale, (h0, h1, scale)


# --------------------------------------------------------------- projection and diagnostics


def test_projection_is_idempotent_and_init_removes_gradients_and_mean(random_state):
    # P^2 = P to round-off (1e-15 of the field), and init(u + grad phi + U) = init(u): the
    # gradient and the mean are not represented.
    state, params, u0 = random_state
    a = jnp.asarray(_spectral(np.random.default_rng(0).normal(size=(N, N, N, 3))))
    pa = GRID.project(a)
    np.testing.assert_allclose(
        np.asarray(GRID.project(pa)),
        np.asarray(pa),
        rtol=0,
        atol=1e-15 * float(jnp.max(jnp.abs(pa))),
    )
    assert float(jnp.max(jnp.abs(GRID.divergence_hat(pa)))) < 1e-12 * float(jnp.max(jnp.abs(pa)))
    x, y, z = GRID.mesh()
    grad_phi = np.stack(
        [np.cos(x) * np.sin(2 * z), np.zeros_like(x), 2 * np.sin(x) * np.cos(2 * z)], axis=-1
    )  # grad of sin x sin 2z
    other = NS.init(params, u0 + grad_phi + np.array([0.3, -0.1, 0.2]))
    np.testing.assert_allclose(
        np.asarray(other.velocity_hat), np.asarray(state.velocity_hat), rtol=0, atol=1e-12
    )


def test_single_mode_velocity_vorticity_and_spectrum():
    # u = a cos(k . x) with a . k = 0 has w = curl u = -(k x a) sin(k . x); k = (1, -2, 3):
    # energy |a|^2 / 4, all in the shell round(|k|) = 4 (|k| = sqrt 14). Round-off tolerances.
    k = np.array([1.0, -2.0, 3.0])
    a = np.array([1.0, 2.0, 1.0])  # a . k = 0
    x, y, z = GRID.mesh()
    phase = k[0] * x + k[1] * y + k[2] * z
    u = a * np.cos(phase)[..., None]
    params = _params(0.1)
    state = NS.init(params, u)
    obs = NS.observe(state, params)
    np.testing.assert_allclose(np.asarray(obs["velocity"]), u, rtol=0, atol=1e-14)
    np.testing.assert_allclose(
        np.asarray(obs["vorticity"]), -np.cross(k, a) * np.sin(phase)[..., None], rtol=0, atol=1e-13
    )
    energy = a @ a / 4
    assert float(obs["energy"]) == pytest.approx(energy, rel=1e-14)
    assert float(obs["enstrophy"]) == pytest.approx(energy * (k @ k), rel=1e-14)
    spectrum = np.asarray(obs["energy_spectrum"])
    shells = sp.shell_wavenumbers_3d(GRID)
    assert spectrum[4] == pytest.approx(energy, rel=1e-14)  # dk = 1
    assert np.all(spectrum[np.arange(len(spectrum)) != 4] < 1e-25)  # round-off power only
    assert float(obs["max_divergence"]) < 1e-13
    # cfl = dt max(|u|/dx + |v|/dy + |w|/dz) = dt * 4 / dx at phase 0
    assert float(obs["cfl"]) == pytest.approx(DT * 4 / (2 * np.pi / N), rel=1e-12)
    assert (
        shells[1] == pytest.approx(1.0) and len(shells) == round(math.sqrt(3) * (N / 2 - 1)) + 1
    )  # Nyquist k = 0


def test_spectrum_sums_to_the_energy_and_random_field_has_the_requested_energy(random_state):
    # sum_s E(k_s) dk = E (Parseval), rtol 1e-13; random_velocity_3d's energy is exact and the
    # field is solenoidal, zero mean, dealiased.
    state, _, u0 = random_state
    e = float(sp.energy_3d(GRID, state.velocity_hat))
    assert e == pytest.approx(0.5, rel=1e-13)
    assert float(np.sum(sp.energy_spectrum_3d(GRID, state.velocity_hat))) * 1.0 == pytest.approx(
        e, rel=1e-13
    )
    assert np.abs(u0.mean(axis=(0, 1, 2))).max() < 1e-14
    assert np.mean(np.sum(u0**2, axis=-1)) / 2 == pytest.approx(0.5, rel=1e-13)
    assert np.max(np.abs(_spectral(u0)[:, ~GRID.dealias_mask()])) < 1e-12 * N**3
    # the spectrum peaks near k_p = 3
    assert 2 <= int(np.argmax(sp.energy_spectrum_3d(GRID, state.velocity_hat))) <= 4


# -------------------------------------------------------------------------------- run driver

DRIVER = sp.NavierStokes3D((N, N, N), 0.02, dtype="float32")
DRIVER_EVERY = {"fields": 20, "diagnostics": 5, "spectrum": 10}


def _driver_run(out, **kw):
    params = DRIVER.params(0.02)
    state = DRIVER.init(
        params,
        sp.random_velocity_3d(DRIVER.grid, 2, energy=0.5, peak_wavenumber=3.0, dtype="float32"),
    )
    return run(
        DRIVER,
        state,
        params,
        n_steps=40,
        save_every=DRIVER_EVERY,
        chunk_steps=20,
        out=out,
        store_type=FieldStore,
        progress=False,
        **kw,
    )


@pytest.fixture(scope="module")
def driver_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("spectral3d") / "run.h5"
    return _driver_run(out), out


def test_run_writes_3d_fields_that_xarray_opens(driver_run):
    res, out = driver_run
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        assert ds.attrs["status"] == "finished"
        assert ds["velocity"].dims == ("time_fields", "z", "y", "x", "component")
        assert ds["vorticity"].dims == ("time_fields", "z", "y", "x", "component")
        assert ds["energy_spectrum"].dims == ("time_spectrum", "k")
        assert ds["max_divergence"].dims == ("time_diagnostics",)
        assert list(ds["component"].values) == ["x", "y", "z"]
        for axis, values in zip("xyz", DRIVER.grid.points(), strict=False):
            np.testing.assert_array_equal(ds[axis].values, values)
        assert ds["velocity"].dtype == np.float32 and ds["velocity"].attrs["units"] == "1"
        np.testing.assert_array_equal(ds["step_fields"].values, [0, 20, 40])
        u_last = ds["velocity"].isel(time_fields=-1).transpose("x", "y", "z", "component").values
        energy = ds["energy"].values
        div = ds["max_divergence"].values
    np.testing.assert_array_equal(
        u_last, np.asarray(DRIVER.grid.vector_to_physical(res.state.velocity_hat))
    )
    # float32: divergence at round-off of |k| |u| ~ 5, energy decays (no forcing)
    assert np.all(div < 1e-4) and np.all(np.diff(energy) < 0)


def test_resume_after_ctrl_c_is_bitwise(driver_run, tmp_path):
    full, full_out = driver_run
    out = tmp_path / "interrupted.h5"

    def ctrl_c(step, n_frames):
        if step == 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _driver_run(out, callback=ctrl_c)
    with h5py.File(out, "r") as f:
        assert f.attrs["status"] == "interrupted"
    res = _driver_run(out, resume=True)
    assert res.state.velocity_hat.dtype == np.complex64
    np.testing.assert_array_equal(
        np.asarray(res.state.velocity_hat), np.asarray(full.state.velocity_hat)
    )
    with h5py.File(out, "r") as f, h5py.File(full_out, "r") as g:
        assert f.attrs["status"] == "finished"
        for name in (
            "velocity",
            "vorticity",
            "energy",
            "max_divergence",
            "energy_spectrum",
            "step_fields",
            "time_diagnostics",
        ):
            np.testing.assert_array_equal(f[name][:], g[name][:], err_msg=name)


# ------------------------------------------------------------------------------- bad inputs

_GOOD_U = sp.taylor_green_3d(GRID)


def _nan_field():
    u = _GOOD_U.copy()
    u[1, 2, 3, 0] = np.nan
    return u


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: sp.NavierStokes3D((16, 16), 0.01), r"shape must be three integers \(nx, ny, nz\)"),
        (
            lambda: sp.NavierStokes3D((16, 16, 4), 0.01),
            r"at least 8 points .*got shape \(16, 16, 4\)",
        ),
        (lambda: sp.NavierStokes3D((16, 16, 16.0), 0.01), r"shape must be three integers"),
        (lambda: sp.NavierStokes3D((N,) * 3, 0.0), r"dt must be finite and > 0, got 0.0"),
        (lambda: sp.NavierStokes3D((N,) * 3, -0.1), r"dt must be finite and > 0, got -0.1"),
        (lambda: sp.NavierStokes3D((N,) * 3, "x"), r"dt must be a number, got 'x'"),
        (lambda: sp.NavierStokes3D((N,) * 3, 0.01, box=(1.0, 1.0)), r"box must be three lengths"),
        (
            lambda: sp.NavierStokes3D((N,) * 3, 0.01, box=(1.0, 0.0, 1.0)),
            r"box lengths must be finite and > 0",
        ),
        (
            lambda: sp.NavierStokes3D((N,) * 3, 0.01, forcing="kolmogorov"),
            r'forcing must be None or "field"',
        ),
        (
            lambda: sp.NavierStokes3D((N,) * 3, 0.01, dtype="float16"),
            r"dtype must be float32 or float64, got 'float16'",
        ),
        (lambda: NS.params(0.0, forcing=ZERO_FORCE), r"viscosity must be > 0, got 0.0"),
        (lambda: NS.params(-1e-3, forcing=ZERO_FORCE), r"viscosity must be > 0, got -0.001"),
        (lambda: NS.params(math.nan, forcing=ZERO_FORCE), r"viscosity must be finite, got nan"),
        (lambda: NS.params("nu", forcing=ZERO_FORCE), r"viscosity must be a real number, got 'nu'"),
        (lambda: NS.params(0.1, drag=-1.0, forcing=ZERO_FORCE), r"drag must be >= 0, got -1.0"),
        (lambda: NS.params(0.1), r'forcing="field": pass params\(..., forcing='),
        (
            lambda: NS.params(0.1, forcing=np.zeros((N, N, N))),
            r"forcing must have shape \(16, 16, 16, 3\) \(nx, ny, nz, component\), got \(16, 16, 16\)",
        ),
        (lambda: NS.params(0.1, forcing=_nan_field()), r"forcing contains 1 NaN/inf value"),
        (lambda: DRIVER.params(0.1, forcing=ZERO_FORCE), r"a forcing was given but .*forcing=None"),
        (
            lambda: NS.init(_params(0.1), np.zeros((N, N, N, 2))),
            r"velocity must have shape \(16, 16, 16, 3\) .*got \(16, 16, 16, 2\)",
        ),
        (
            lambda: NS.init(_params(0.1), np.zeros((3, N, N, N))),
            r"velocity must have shape \(16, 16, 16, 3\) .*got \(3, 16, 16, 16\)",
        ),
        (lambda: NS.init(_params(0.1), _nan_field()), r"velocity contains 1 NaN/inf value"),
        (lambda: NS.init(_params(0.1), _GOOD_U.astype(complex)), r"velocity must be a real array"),
        (
            lambda: sp.NavierStokes3D((N,) * 3, 1.0).init({}, _GOOD_U),
            r"dt = 1 gives an advective CFL number of .* above the stability limit 1.0; use dt <= ",
        ),
        (lambda: sp.abc_flow(GRID, wavenumber=6), r"wavenumber 6 is removed by the 2/3 rule"),
        (lambda: sp.abc_flow(sp.SpectralGrid3D((N,) * 3, box=(1.0, 2.0, 1.0))), r"cubic box"),
        (
            lambda: sp.taylor_green_3d(sp.SpectralGrid((N, N))),
            r"grid must be a spectral.SpectralGrid3D",
        ),
        (lambda: sp.taylor_green_3d(GRID, wavenumber=0), r"wavenumber must be a positive integer"),
        (
            lambda: sp.random_velocity_3d(GRID, 0, energy=-1.0),
            r"energy must be a finite number > 0",
        ),
        (
            lambda: sp.random_velocity_3d(GRID, 0, peak_wavenumber=0.0),
            r"peak_wavenumber must be > 0",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_bad_inputs_are_refused_with_a_message_naming_them(make, message):
    with pytest.raises(SimkitInputError, match=message):
        make()


def test_suggested_time_step_passes_the_cfl_check():
    with pytest.raises(SimkitInputError) as info:
        sp.NavierStokes3D((N,) * 3, 1.0).init({}, _GOOD_U)
    dt = float(info.value.args[0].split("use dt <= ")[1].split(" ")[0])
    ns = sp.NavierStokes3D((N,) * 3, dt)
    with pytest.warns(UserWarning, match="close to the limit"):
        state = ns.init({}, _GOOD_U)
    assert 0.99 < float(ns.cfl(state)) <= 1.0


# --------------------------------------------------------------------------------- gradient


@pytest.mark.slow  # ~5 s idle, ~12-19 s on a loaded machine (the reverse-mode compile)
def test_gradient_wrt_viscosity_equals_finite_differences(random_state):
    # d/d nu of sum(weight * u(T)) through 50 steps (t = 0.5) of the nonlinear random flow,
    # reverse mode vs central differences with h = 1e-4 nu (truncation ~h^2, round-off
    # ~1e-16 |loss| / h): rtol 1e-7 (measured 2e-10; 6e-9 with h = 1e-5 nu, round-off bound).
    _, _, u0 = random_state
    weight = jnp.asarray(np.random.default_rng(3).normal(size=(N, N, N, 3)))

    def loss(nu):
        params = {**_params(0.02), "viscosity": nu}
        state = NS.init(params, u0)
        final, _ = simulate(
            NS, state, params, 50, {"fields": 50, "diagnostics": 50, "spectrum": 50}
        )
        return jnp.sum(weight * GRID.vector_to_physical(final.velocity_hat))

    nu = jnp.asarray(0.02)
    value_and_grad = _compile(jax.value_and_grad(loss), nu)  # one compile: FD uses its values
    _, grad = value_and_grad(nu)
    h = 1e-4 * 0.02
    fd = (float(value_and_grad(nu + h)[0]) - float(value_and_grad(nu - h)[0])) / (2 * h)
    assert abs(float(grad)) > 1.0  # the viscosity matters for this loss
    assert float(grad) == pytest.approx(fd, rel=1e-7)


def test_init_is_differentiable_wrt_the_velocity(random_state):
    # E(init(u)) = <|P u|^2> / 2 with P (solenoidal, zero-mean, dealiased part) an orthogonal
    # projection on grid fields, so dE/du = P u / (nx ny nz): round-off (atol 1e-18 per point,
    # values ~1e-4).
    _, params, u0 = random_state
    x, _, _ = GRID.mesh()
    u = u0 + np.stack([np.sin(x), np.zeros_like(x), np.zeros_like(x)], axis=-1)  # + a gradient
    grad = jax.grad(lambda v: sp.energy_3d(GRID, NS.init(params, v).velocity_hat))(jnp.asarray(u))
    np.testing.assert_allclose(np.asarray(grad), u0 / N**3, rtol=0, atol=1e-18)
