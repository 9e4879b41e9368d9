"""The jaxtyping annotations of `simkit.ode` and `simkit.run` stay honest: a fresh interpreter
imports both under jaxtyping's import hook with beartype (every function and dataclass checked
against its annotations, array shapes and dtypes included), calls their public entry points on
tiny problems, and shows that wrong shapes and types are rejected (tests/_jaxtyping_worker.py).
A failure prints jaxtyping's message: the annotation (or the call) to fix."""

import _background

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


def test_ode_and_run_pass_jaxtyping_import_hook():
    # tests/_jaxtyping_worker.py, started at collection (tests/_background.py)
    proc = _background.result("jaxtyping")
    assert proc.returncode == 0, proc.stdout + proc.stderr[-8000:]
    lines = proc.stdout.splitlines()
    for name in ENTRY_POINTS:
        assert f"ok {name}" in lines, proc.stdout
    assert sum(line.startswith("rejected ") for line in lines) == 3, proc.stdout
