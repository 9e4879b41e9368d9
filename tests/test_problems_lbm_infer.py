"""problems/lbm_infer_viscosity.py through the command line: options, a short inference whose
estimate brackets the true viscosity, bad input named before compute (exit code 2)."""

import h5py
import pytest

from simkit.cli import load_problem, main

NAME = "lbm_infer_viscosity"


def test_help_lists_options():
    text = load_problem(NAME).build_parser().format_help()
    for option in ("--viscosity", "--guess", "--noise", "--steps", "--n", "--seed", "--out"):
        assert option in text


def test_short_run_recovers_viscosity_within_3_stderr(tmp_path, capsys):
    """16 x 16 grid, 100 steps, start 2.5x the truth: converges, and the truth lies within 3
    standard errors of the estimate (for a correct covariance: 99.7% of noise draws)."""
    out = tmp_path / "nu.h5"
    assert (
        main(
            [
                "run",
                NAME,
                "--n",
                "16",
                "--steps",
                "100",
                "--viscosity",
                "0.03",
                "--guess",
                "0.075",
                "--noise",
                "1e-3",
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
        assert f["data"].shape == (16, 16, 2) and f["fit_velocity"].shape == (16, 16, 2)
        nu_decay = f.attrs["viscosity_decay_law"]
    assert 0 < se < 0.01 * 0.03
    assert abs(nu - 0.03) < 3 * se, (nu, se)
    # The solver-free estimate from the Taylor-Green decay law agrees to the scheme's accuracy.
    assert abs(nu_decay - 0.03) < 0.05 * 0.03


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--n", "4"], "--n must be at least 8"),
        (["--viscosity", "-0.1"], "--viscosity must be > 0"),
        (["--viscosity", "1e-4"], "below"),  # tau = 0.5003: unstable BGK
        (["--guess", "1e-4"], "--guess: tau"),
        (["--velocity", "0.3"], "Mach"),
        (["--noise", "0"], "--noise must be > 0"),
        (["--seed", "-1"], "--seed must be >= 0"),
    ],
)
def test_bad_input_exits_2_before_compute(tmp_path, capsys, argv, message):
    out = tmp_path / "bad.h5"
    assert main(["run", NAME, *argv, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("argv", [["--steps", "0"], ["--noise", "nan"], ["--n", "x"]])
def test_bad_option_values_refused_by_the_parser(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        load_problem(NAME).main(argv)
    assert exc.value.code == 2
    assert "error: argument" in capsys.readouterr().err
