"""The MD problem scripts through the command line: options, a small run of each, output that
MDAnalysis-style readers find, bad input named before compute (exit code 2)."""

import h5py
import numpy as np
import pytest

from simkit.cli import load_problem, main

MD_PROBLEMS = ("lj_melt", "lj_eos", "lj_minimise")


@pytest.mark.parametrize("name", MD_PROBLEMS)
def test_md_problem_help_lists_options(name):
    text = load_problem(name).build_parser().format_help()
    assert "--out" in text and "--resume" in text and "--float64" in text


def test_lj_melt_small_run_writes_h5md_and_reports(tmp_path, capsys):
    out = tmp_path / "melt.h5md"
    assert (
        main(
            [
                "run",
                "lj_melt",
                "--cells",
                "4",
                "--steps",
                "200",
                "--thermo-every",
                "20",
                "--trajectory-every",
                "100",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "LJ melt: 256 atoms, 200 steps" in text and "total energy drift" in text
    with h5py.File(out, "r") as f:
        assert f["particles/trajectory/position/value"].shape == (3, 256, 3)
        assert f["observables/temperature/value"].shape == (11,)
        # in.lj start: the perfect fcc lattice energy with plain truncation at 2.5 (direct
        # lattice sum -6.773368; float32 sum of 256 x ~80 terms, so 1e-5 relative)
        np.testing.assert_allclose(f["observables/potential_energy/value"][0], -6.773368, rtol=1e-5)
    assert main(["resume", str(out)]) == 0
    assert "already finished" in capsys.readouterr().out


def test_lj_eos_small_run_prints_nist_comparison(tmp_path, capsys):
    out = tmp_path / "eos.h5md"
    assert (
        main(
            [
                "run",
                "lj_eos",
                "--cells",
                "4",
                "--melt-steps",
                "200",
                "--equilibrate",
                "200",
                "--steps",
                "1000",
                "--blocks",
                "5",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "NIST SRSW" in text and "-6.0305" in text and "sigma" in text


def test_lj_minimise_vacancy_converges(tmp_path, capsys):
    out = tmp_path / "vac.h5md"
    assert (
        main(
            [
                "run",
                "lj_minimise",
                "--start",
                "vacancy",
                "--cells",
                "4",
                "--steps",
                "1000",
                "--trajectory-every",
                "500",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "converged: max |F| < 0.001" in text and "vacancy formation energy" in text


def test_md_problem_bad_box_is_named_before_compute(tmp_path, capsys):
    out = tmp_path / "bad.h5md"
    assert main(["run", "lj_eos", "--cells", "2", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "shorter than 2 x (cutoff + skin)" in err
    assert not out.exists()
