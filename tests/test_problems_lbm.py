"""The lattice Boltzmann problem scripts through the command line: options, a small run of each,
HDF5 + XDMF output that xarray reads, the printed comparisons, bad input refused before compute
(exit code 2), an interrupted run resumed."""

import re

import h5py
import numpy as np
import pytest
import xarray as xr

from simkit.cli import load_problem, main

LBM_PROBLEMS = ("cavity", "poiseuille", "cylinder_wake")


def number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in the output:\n{text}"
    return float(match.group(1))


@pytest.mark.parametrize("name", LBM_PROBLEMS)
def test_lbm_problem_help_lists_options(name):
    text = load_problem(name).build_parser().format_help()
    assert all(
        option in text
        for option in ("--out", "--resume", "--collision", "--float64", "--no-progress")
    )


def test_cavity_interrupted_run_resumes_and_compares_with_ghia(tmp_path, capsys, monkeypatch):
    import simkit.run._driver as driver

    real_bar = driver._progress_bar

    class CtrlCAfterTwoChunks:
        def __init__(self, *a):
            self.bar, self.updates = real_bar(*a), 0

        def update(self, n):
            self.updates += 1
            if self.updates == 2:
                raise KeyboardInterrupt  # what the user's Ctrl-C does mid-run

        def close(self):
            self.bar.close()

    out = tmp_path / "cavity.h5"
    args = ["run", "cavity", "--n", "16", "--time", "10", "--out", str(out), "--no-progress"]
    monkeypatch.setattr(driver, "_progress_bar", CtrlCAfterTwoChunks)
    assert main(args) == 130
    monkeypatch.setattr(driver, "_progress_bar", real_bar)
    with h5py.File(out, "r") as f:
        assert f.attrs["status"] == "interrupted" and f["step_fields"][-1] == 320
    capsys.readouterr()
    assert main(["resume", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "1600 steps (10.0 lid passes" in text and "BGK (tau = 0.5480)" in text
    # 16^2 cells and 10 lid passes: neither resolved nor steady, but near Ghia's Re = 100 profiles
    # (Ghia, Ghia & Shin 1982, Tables I-II; the default 64^2 run is within 0.006).
    assert number(r"overall (\d\.\d+)", text) < 0.06
    assert "NOT steady" in text and "--time 20" in text
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        assert ds.attrs["status"] == "finished"
        assert ds.velocity.dims == ("time_fields", "y", "x", "component")
        assert ds.velocity.shape == (11, 18, 18, 2) and ds.kinetic_energy.shape == (201,)
        np.testing.assert_allclose(ds.velocity[-1, -1, 1:-1, 0], 0.1)  # the lid row
        np.testing.assert_array_equal(ds.step_fields, np.arange(0, 1601, 160))
    assert (tmp_path / "cavity.xdmf").exists()


@pytest.mark.slow  # default-suite time; the physics is also covered by faster tests
def test_poiseuille_profile_error_and_second_order(tmp_path, capsys):
    out = tmp_path / "p.h5"
    assert (
        main(
            [
                "run",
                "poiseuille",
                "--ny",
                "8",
                "--convergence",
                "--grids",
                "8",
                "16",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    # BGK at tau = 0.8: halfway bounce-back misplaces the walls by O(1/H^2) (He et al. 1997,
    # J. Stat. Phys. 87:115): about 1% at 8 cells, a quarter of it at 16.
    l2 = number(r"relative L2 error of u\(y\) .*?: (\S+) ", text)
    assert 5e-3 < l2 < 2e-2
    assert (
        abs(number(r"observed order \(least-squares slope over the grids\): (\S+) ", text) - 2.0)
        < 0.1
    )
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        u = ds.velocity[-1, 1:-1, :, 0].mean("x").values
    y = np.arange(8) + 0.5
    np.testing.assert_allclose(u, 4 * 0.05 * y * (8 - y) / 64, rtol=5e-2)


def test_cylinder_wake_small_run_reports_coefficients(tmp_path, capsys):
    out = tmp_path / "wake.h5"
    assert (
        main(
            [
                "run",
                "cylinder_wake",
                "--re",
                "40",
                "--d",
                "6",
                "--time",
                "8",
                "--ramp",
                "2",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "grid 133 x 27" in text and "shedding" in text and "max lift coefficient c_L" in text
    # Re = 40 on a coarse grid, still in the start-up: a drag coefficient of the right size
    # (Schafer & Turek's steady Re = 20 case has c_D = 5.58)
    assert 2.0 < number(r"mean drag coefficient c_D\s+(\S+)", text) < 8.0
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        assert ds.obstacle_force.dims == ("time_diagnostics", "component")
        assert ds.vorticity.shape == (21, 27, 133)
    assert (tmp_path / "wake.xdmf").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["cavity", "--re", "2000", "--n", "64", "--collision", "bgk"], "--collision trt"),
        (["cavity", "--re", "-5"], "--re must be > 0"),
        (["cavity", "--n", "4"], "at least 8 fluid cells"),
        (["cavity", "--lid-velocity", "0.3"], "Mach"),
        (["poiseuille", "--tau", "0.5"], "--tau must be > 1/2"),
        (["poiseuille", "--convergence", "--grids", "16"], "at least two different --grids"),
        (["cylinder_wake", "--u-mean", "0.2"], "--u-mean <= 0.115"),
        (["cylinder_wake", "--d", "3"], "at least 4 cells per diameter"),
        (["cylinder_wake", "--ramp", "40"], "at most half of --time"),
    ],
)
def test_lbm_problem_bad_input_is_named_before_compute(tmp_path, capsys, args, message):
    out = tmp_path / "bad.h5"
    assert main(["run", *args, "--out", str(out), "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_poiseuille_tau_and_viscosity_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "poiseuille", "--tau", "0.8", "--viscosity", "0.1"])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
