"""Lorenz-63 ensemble through the driver vs an independent high-accuracy SciPy reference."""

import h5py
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from simkit import SimkitInputError
from simkit.cli import load_problem
from simkit.ode import ODEStepper
from simkit.run import run

lorenz_problem = load_problem("lorenz_ensemble")


def _scipy_reference(y0, t_eval, sigma=10.0, rho=28.0, beta=8 / 3):
    # Independent reference: SciPy's DOP853 (Hairer's 8(5,3) pair) at rtol = atol = 1e-13.
    def f(t, y):
        return [sigma * (y[1] - y[0]), y[0] * (rho - y[2]) - y[1], y[0] * y[1] - beta * y[2]]

    return solve_ivp(
        f, (0.0, t_eval[-1]), y0, method="DOP853", rtol=1e-13, atol=1e-13, t_eval=t_eval
    ).y.T


def test_driver_ensemble_matches_tight_reference(tmp_h5):
    rng = np.random.default_rng(3)
    y0 = rng.normal(size=(6, 3)) * 5 + np.array([[0.0, 0.0, 25.0]])
    params = {"sigma": jnp.asarray(10.0), "rho": jnp.asarray(28.0), "beta": jnp.asarray(8 / 3)}
    stepper = ODEStepper(lorenz_problem.lorenz, dt=1e-3)
    run(
        stepper,
        stepper.init(jnp.asarray(y0), params),
        params,
        n_steps=2000,
        save_every=250,
        out=tmp_h5,
        progress=False,
    )
    with h5py.File(tmp_h5, "r") as f:
        t, y = f["time"][:], f["y"][:]
    for m in range(len(y0)):
        ref = _scipy_reference(y0[m], t)
        # Tsit5 is 5th order: global error ~ C dt^5 amplified by chaotic growth (Lyapunov 0.9)
        # over t = 2; measured 1.6e-10 on |y| ~ 20. Tolerance 2e-9 (10x margin): a wrong
        # coefficient or a 4th-order slip would show as >1e-7.
        np.testing.assert_allclose(y[:, m], ref, rtol=0, atol=2e-9)


def test_parameter_sweep_members_use_their_own_parameters():
    rho = jnp.asarray([10.0, 28.0, 99.96])
    params = {"sigma": jnp.full(3, 10.0), "rho": rho, "beta": jnp.full(3, 8 / 3)}
    y0 = np.tile([1.0, 1.0, 1.0], (3, 1))
    stepper = ODEStepper(lorenz_problem.lorenz, dt=1e-3, params_batched=True)
    res = run(
        stepper,
        stepper.init(jnp.asarray(y0), params),
        params,
        n_steps=1000,
        save_every=500,
        progress=False,
    )
    for m in range(3):
        ref = _scipy_reference(y0[m], np.array([0.0, 0.5, 1.0]), rho=float(rho[m]))
        np.testing.assert_allclose(res.frames["y"][:, m], ref, atol=1e-7)


def test_problem_script_writes_xarray_readable_file(tmp_h5, capsys):
    import xarray as xr

    assert (
        lorenz_problem.main(
            [
                "--members",
                "16",
                "--t1",
                "1",
                "--save-every",
                "100",
                "--out",
                str(tmp_h5),
                "--no-progress",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "16 members, 1000 steps" in out
    ds = xr.open_dataset(tmp_h5, engine="h5netcdf")
    assert ds["y"].shape == (11, 16, 3) and list(ds["component"].values) == ["x", "y", "z"]
    assert ds.attrs["problem"] == "lorenz_ensemble"
    ds.close()


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--dt", "-0.001"], "--dt must be > 0"),
        (["--dt", "0"], "--dt must be > 0"),
        (["--members", "0"], "--members must be > 0"),
        (["--t1", "-1"], "--t1 must be > 0"),
        (["--t1", "1.0005"], "multiple of --dt"),
        (["--save-every", "300", "--t1", "1"], "not a multiple of --save-every"),
        (["--resume"], "--resume needs --out"),
        (["--chunk-steps", "50000", "--t1", "1", "--save-every", "100"], "larger than the run"),
    ],
)
def test_problem_bad_options(argv, match, tmp_path):
    with pytest.raises(SimkitInputError, match=match):
        lorenz_problem.main(
            [*argv, "--out", str(tmp_path / "x.h5")] if "--resume" not in argv else argv
        )


def test_problem_refuses_existing_and_missing_folder(tmp_h5, tmp_path):
    tmp_h5.write_bytes(b"precious")
    with pytest.raises(SimkitInputError, match="already exists"):
        lorenz_problem.main(
            ["--members", "4", "--t1", "0.1", "--save-every", "10", "--out", str(tmp_h5)]
        )
    assert tmp_h5.read_bytes() == b"precious"
    with pytest.raises(SimkitInputError, match="does not exist"):
        lorenz_problem.main(
            [
                "--members",
                "4",
                "--t1",
                "0.1",
                "--save-every",
                "10",
                "--out",
                str(tmp_path / "no" / "x.h5"),
            ]
        )


def test_lyapunov_exponent_from_ensemble_divergence(tmp_h5, capsys):
    """Published largest Lyapunov exponent of Lorenz-63 (sigma=10, rho=28, beta=8/3): 0.9056
    (Sprott, Chaos and Time-Series Analysis, OUP 2003, table A.1). A finite-time estimate over
    t in [1, 20] from 256 members: tolerance 10%."""
    import re

    assert lorenz_problem.main(["--members", "256", "--out", str(tmp_h5), "--no-progress"]) == 0
    out = capsys.readouterr().out
    slope = float(re.search(r"divergence: ([0-9.]+)", out).group(1))
    assert slope == pytest.approx(0.9056, rel=0.10)
