"""`simkit` command line: list, run, info, resume, unknown names."""

import subprocess
import sys

import h5py

from simkit.cli import main


def test_list_shows_problems(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "lorenz_ensemble" in out and "Lorenz-63" in out


def test_unknown_problem_is_named_with_alternatives(capsys):
    assert main(["run", "lorenz_ensembel"]) == 2
    err = capsys.readouterr().err
    assert "unknown problem 'lorenz_ensembel'" in err and "lorenz_ensemble" in err


def test_run_info_and_resume_of_finished_run(tmp_path, capsys):
    out = tmp_path / "l.h5"
    assert (
        main(
            [
                "run",
                "lorenz_ensemble",
                "--members",
                "8",
                "--t1",
                "0.4",
                "--save-every",
                "100",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    info = capsys.readouterr().out
    assert "status: finished" in info and "progress: 5 frames, last step 400 of 400 (100%)" in info
    assert "y" in info and "(5, 8, 3)" in info
    assert main(["resume", str(out)]) == 0
    assert "already finished" in capsys.readouterr().out


def test_resume_interrupted_run_through_cli(tmp_path, capsys, monkeypatch):
    args = ["--members", "8", "--t1", "0.5", "--save-every", "50", "--chunk-steps", "100"]
    full = tmp_path / "full.h5"
    assert main(["run", "lorenz_ensemble", *args, "--out", str(full), "--no-progress"]) == 0

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

    part = tmp_path / "part.h5"
    monkeypatch.setattr(driver, "_progress_bar", CtrlCAfterTwoChunks)
    # The command line turns the interrupt into one line on stderr and exit code 130.
    assert main(["run", "lorenz_ensemble", *args, "--out", str(part), "--no-progress"]) == 130
    assert "interrupted" in capsys.readouterr().err
    monkeypatch.setattr(driver, "_progress_bar", real_bar)
    with h5py.File(part, "r") as f:
        assert f.attrs["status"] == "interrupted" and f["step"][-1] == 200
    capsys.readouterr()
    assert main(["info", str(part)]) == 0
    assert "last step 200 of 500 (40%)" in capsys.readouterr().out
    assert main(["resume", str(part), "--no-progress"]) == 0
    with h5py.File(part, "r") as f, h5py.File(full, "r") as g:
        assert f.attrs["status"] == "finished"
        # bitwise: the resumed run continues exactly where the checkpoint was taken
        assert (f["y"][:] == g["y"][:]).all() and (f["step"][:] == g["step"][:]).all()


def test_resume_without_checkpoint_is_refused(tmp_path, capsys):
    out = tmp_path / "l.h5"
    assert (
        main(
            [
                "run",
                "lorenz_ensemble",
                "--members",
                "4",
                "--t1",
                "0.2",
                "--save-every",
                "100",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    with h5py.File(out, "r+") as f:
        f.attrs["status"] = "interrupted"
    from simkit.io import checkpoint_path

    checkpoint_path(out).unlink()
    before = out.read_bytes()
    capsys.readouterr()
    assert main(["resume", str(out)]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert out.read_bytes()[:8] == before[:8]


def test_info_on_unreadable_file(tmp_path, capsys):
    bad = tmp_path / "x.h5"
    bad.write_text("nope")
    assert main(["info", str(bad)]) == 2
    assert "not a readable HDF5 file" in capsys.readouterr().err


def test_console_script_help():
    r = subprocess.run(
        [sys.executable, "-m", "simkit.cli", "--help"], capture_output=True, text=True
    )
    assert r.returncode == 0 and "resume" in r.stdout


def test_problem_help_lists_options():
    r = subprocess.run(
        [sys.executable, "problems/lorenz_ensemble.py", "--help"], capture_output=True, text=True
    )
    assert r.returncode == 0 and "--members" in r.stdout and "--resume" in r.stdout
