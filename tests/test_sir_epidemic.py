"""SIR problem: event-located epidemic peak and forward-mode sensitivities vs closed forms
(Kermack & McKendrick 1927; Hethcote, SIAM Review 42 (2000) 599, section 2)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simkit import SimkitInputError
from simkit.cli import load_problem

sir = load_problem("sir_epidemic")


@pytest.mark.parametrize(
    "beta, gamma",
    [
        # default-suite time: one R0 suffices there; the second (R0 = 3) is in the slow run
        pytest.param(0.3, 0.1, marks=pytest.mark.slow),
        (0.25, 0.125),
    ],
)
def test_peak_final_size_and_sensitivities_match_closed_forms(beta, gamma):
    i0 = 1e-4
    params = {"beta": jnp.asarray(beta), "gamma": jnp.asarray(gamma)}
    t_peak, i_max = sir.peak(params, i0)
    s_inf = sir.final_size(params, i0)
    # Values: solver at rtol 1e-10 and event root to 1e-12 -> relative error < 1e-8.
    np.testing.assert_allclose(float(i_max), sir.analytic_peak(beta, gamma, i0), rtol=1e-8)
    np.testing.assert_allclose(float(s_inf), sir.analytic_final_size(beta, gamma, i0), rtol=1e-8)
    # Sensitivities by jacfwd through the solver and the event: relative error < 1e-6.
    jp = jax.jacfwd(lambda p: sir.peak(p, i0)[1])(params)
    jf = jax.jacfwd(lambda p: sir.final_size(p, i0))(params)
    ref_imax, ref_sinf = sir.analytic_sensitivities(beta, gamma, i0)
    np.testing.assert_allclose([jp["beta"], jp["gamma"]], ref_imax, rtol=1e-6)
    np.testing.assert_allclose([jf["beta"], jf["gamma"]], ref_sinf, rtol=1e-6)


def test_problem_script_writes_file(tmp_h5, capsys):
    import xarray as xr

    assert sir.main(["--out", str(tmp_h5)]) == 0
    assert "peak infected I_max" in capsys.readouterr().out
    ds = xr.open_dataset(tmp_h5, engine="h5netcdf")
    assert ds["y"].dims == ("time", "compartment") and ds["time"].attrs["units"] == "day"
    np.testing.assert_allclose(ds["y"].sum("compartment"), 1.0, atol=1e-9)  # S + I + R = 1
    assert ds["sensitivity"].dims == ("quantity", "parameter")
    ds.close()


@pytest.mark.slow  # default-suite time; sensitivities: the closed-form peak test
def test_sensitivity_agrees_with_finite_differences():
    params = {"beta": jnp.asarray(0.3), "gamma": jnp.asarray(0.1)}
    jac = jax.jacfwd(lambda p: jnp.stack(sir.peak(p)))(params)
    h = 1e-6
    up = sir.peak({**params, "beta": params["beta"] + h})
    dn = sir.peak({**params, "beta": params["beta"] - h})
    fd = (np.asarray(up) - np.asarray(dn)) / (2 * h)
    # central differences with h = 1e-6 on values accurate to ~1e-10: agreement to ~1e-4 rel.
    np.testing.assert_allclose(np.asarray(jac["beta"]), fd, rtol=1e-4)


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--beta", "-1"], "--beta must be > 0"),
        (["--gamma", "0"], "--gamma must be > 0"),
        (["--i0", "1.5"], r"--i0 must be in \(0, 1\)"),
        (["--beta", "0.05", "--gamma", "0.1"], "no epidemic peak"),
    ],
)
def test_bad_options(argv, match, tmp_path):
    with pytest.raises(SimkitInputError, match=match):
        sir.main([*argv, "--out", str(tmp_path / "x.h5")])
