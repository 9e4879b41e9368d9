"""The jaxtyping annotations of `simkit.ode` and `simkit.run` stay honest: a fresh interpreter
imports both under jaxtyping's import hook with beartype (every function and dataclass checked
against its annotations, array shapes and dtypes included), calls their public entry points on
tiny problems, and shows that wrong shapes and types are rejected (tests/_jaxtyping_worker.py).
A failure prints jaxtyping's message: the annotation (or the call) to fix."""

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("beartype")

WORKER = Path(__file__).with_name("_jaxtyping_worker.py")
ENTRY_POINTS = (
    "solve",
    "solve_ensemble",
    "solve_ensemble_fused",
    "solve_stiff",
    "solve_stiff_ensemble",
    "simulate",
    "run",
    "VmappedStepper",
)


def test_ode_and_run_pass_jaxtyping_import_hook(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(WORKER), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-8000:]
    lines = proc.stdout.splitlines()
    for name in ENTRY_POINTS:
        assert f"ok {name}" in lines, proc.stdout
    assert sum(line.startswith("rejected ") for line in lines) == 3, proc.stdout
