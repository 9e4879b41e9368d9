"""dev.sh: without a Python >= 3.12 it stops with a message that says how to get one."""

import glob
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _system_has_new_python() -> bool:
    for p in glob.glob("/usr/bin/python3.1[2-9]") + glob.glob("/usr/local/bin/python3.1[2-9]"):
        if os.access(p, os.X_OK):
            return True
    return False


@pytest.mark.skipif(_system_has_new_python(), reason="a system Python >= 3.12 exists here")
def test_no_suitable_python_gives_clear_message(tmp_path):
    for name in ("dev.sh", "pyproject.toml", "constraints.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no pyenv, no python >= 3.12
    r = subprocess.run(
        ["bash", "dev.sh", "test"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 3
    assert "needs Python >= 3.12 and none was found" in r.stderr
    assert "pyenv install 3.12" in r.stderr and "SIMKIT_PYTHON" in r.stderr
    assert not (tmp_path / ".venv").exists()  # nothing half-installed


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "./dev.sh test" in ci and "./dev.sh test" in readme
