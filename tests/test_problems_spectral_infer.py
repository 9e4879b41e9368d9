"""problems/infer_viscosity.py through the command line: options, a short inference whose
estimate brackets the true viscosity, bad input named before compute (exit code 2)."""

import h5py
import pytest

from simkit.cli import load_problem, main

NAME = "infer_viscosity"


def test_help_lists_options():
    text = load_problem(NAME).build_parser().format_help()
    for option in (
        "--viscosity",
        "--guess",
        "--noise",
        "--steps",
        "--snapshots",
        "--dt",
        "--n",
        "--forcing",
        "--seed",
        "--flow-seed",
        "--out",
    ):
        assert option in text


def test_short_run_recovers_viscosity_within_3_stderr(tmp_path, capsys):
    """16 x 16 grid, 60 steps of dt = 0.02, 3 snapshots, start 3x the truth: converges, and
    the truth lies within 3 standard errors of the estimate (for a correct covariance: 99.7%
    of noise draws); the standard error is below 1% of the truth."""
    out = tmp_path / "nu.h5"
    assert (
        main(
            [
                "run",
                NAME,
                "--n",
                "16",
                "--steps",
                "60",
                "--snapshots",
                "3",
                "--dt",
                "0.02",
                "--viscosity",
                "0.02",
                "--guess",
                "0.06",
                "--noise",
                "0.05",
                "--seed",
                "3",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "estimate =" in text and "converged" in text
    with h5py.File(out, "r") as f:
        nu, se = f.attrs["viscosity"], f.attrs["stderr"]
        assert f["data"].shape == (3, 16, 16) and f["fit_vorticity"].shape == (3, 16, 16)
        nu_budget = f.attrs["viscosity_energy_budget"]
    assert 0 < se < 0.01 * 0.02
    assert abs(nu - 0.02) < 3 * se, (nu, se)
    # The solver-free energy-budget estimate (trapezoid rule over 3 snapshots) agrees to 10%.
    assert abs(nu_budget - 0.02) < 0.1 * 0.02, nu_budget


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--n", "4"], "--n must be at least 8"),
        (["--viscosity", "-0.1"], "--viscosity must be > 0"),
        (["--guess", "0"], "--guess must be > 0"),
        (["--noise", "0"], "--noise must be > 0"),
        (["--dt", "-1"], "--dt must be > 0"),
        (["--dt", "1.0"], "CFL"),
        (["--forcing", "-1"], "--forcing must be >= 0"),
        (["--forcing", "1", "--n", "12"], "--forcing needs --n > 12"),
        (["--steps", "10", "--snapshots", "3"], "--snapshots (3) must divide --steps (10)"),
        (["--seed", "-1"], "--seed must be >= 0"),
        (["--flow-seed", "-1"], "--flow-seed must be >= 0"),
    ],
)
def test_bad_input_exits_2_before_compute(tmp_path, capsys, argv, message):
    out = tmp_path / "bad.h5"
    assert main(["run", NAME, *argv, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    "argv", [["--steps", "0"], ["--noise", "nan"], ["--n", "x"], ["--snapshots", "0"]]
)
def test_bad_option_values_refused_by_the_parser(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        load_problem(NAME).main(argv)
    assert exc.value.code == 2
    assert "error: argument" in capsys.readouterr().err
