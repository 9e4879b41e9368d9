"""Quality gates that run with the default suite (so `./dev.sh test` and CI enforce them):
ruff lint, ruff format, and pyright in basic mode on `simkit/`. Configuration lives in
pyproject.toml ([tool.ruff], [tool.pyright]). Each reports the tool's own output on failure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import _background

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _tool(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_ruff_check_is_clean():
    out = _tool("ruff", "check", "--no-cache", ".")
    assert out.returncode == 0, out.stdout + out.stderr


def test_ruff_format_is_clean():
    out = _tool("ruff", "format", "--check", "--no-cache", ".")
    assert out.returncode == 0, "run `.venv/bin/ruff format .`:\n" + out.stdout + out.stderr


def test_pyright_basic_is_clean_on_simkit():
    out = _background.result("pyright")  # started at collection (tests/_background.py)
    assert out.returncode == 0, out.stdout[-20000:] + out.stderr
