"""Subprocess checks that start as soon as collection shows they will run, and are awaited by
their tests: pyright, the strict docs build and the jaxtyping-hook worker are single-threaded
while most of the suite is bound by XLA's single-threaded compiler, so on CI's two cores they
overlap with it instead of adding their ~2 minutes to the end.

`conftest.pytest_collection_finish` calls `start_for(items)`; a test calls `result(name)`, which
starts the job then if nothing started it (e.g. a test run on its own)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# Created on first use: a page worker imports this module too, and must leave no folder behind.
SCRATCH = Path(tempfile.gettempdir()) / f"simkit-bg-{os.getpid()}"


@dataclass(frozen=True)
class Job:
    argv: tuple[str, ...]
    test_file: str  # the jobs run only when a test of this file is collected
    env: tuple[tuple[str, str], ...] = ()
    timeout: float = 600


JOBS = {
    "pyright": Job((str(BIN / "pyright"),), "test_quality.py"),
    "docs": Job(
        (
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--site-dir",
            str(SCRATCH / "site"),
        ),
        "test_docs_build.py",
        env=(("SIMKIT_DOCS_NOTEBOOKS", "source"), ("NO_MKDOCS_2_WARNING", "1")),
    ),
    "jaxtyping": Job(
        (sys.executable, str(ROOT / "tests" / "_jaxtyping_worker.py"), str(SCRATCH / "jt")),
        "test_jaxtyping_hook.py",
    ),
}

_running: dict[str, tuple[subprocess.Popen, Path, Path]] = {}


def start(name: str) -> None:
    if name in _running:
        return
    SCRATCH.mkdir(exist_ok=True)
    job = JOBS[name]
    tag = f"{len(_running)}-{Path(name).name.replace(':', '-')}"
    out, err = SCRATCH / f"{tag}.out", SCRATCH / f"{tag}.err"
    (SCRATCH / "jt").mkdir(exist_ok=True)
    with open(out, "w") as fo, open(err, "w") as fe:
        proc = subprocess.Popen(
            job.argv, cwd=ROOT, stdout=fo, stderr=fe, env={**os.environ, **dict(job.env)}
        )
    _running[name] = (proc, out, err)


def page_job(page: Path) -> str:
    """The job running a documentation page's Python blocks (tests/test_doc_examples.py)."""
    name = f"examples:{page}"
    if name not in JOBS:
        work = SCRATCH / f"page{len(JOBS)}"
        argv = (sys.executable, str(ROOT / "tests" / "test_doc_examples.py"), str(page), str(work))
        JOBS[name] = Job(argv, "test_doc_examples.py")
    return name


def start_for(items) -> None:
    files = {Path(str(item.fspath)).name for item in items}
    for item in items:
        spec = getattr(item, "callspec", None)
        if item.originalname == "test_page_examples" and spec is not None:
            page_job(spec.params["path"])
    for name, job in JOBS.items():
        if job.test_file in files:
            start(name)


def result(name: str) -> subprocess.CompletedProcess:
    """The finished job (started now if it was not): returncode, stdout and stderr."""
    start(name)
    proc, out, err = _running[name]
    try:
        proc.wait(timeout=JOBS[name].timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out.read_text(), err.read_text())


def site_dir() -> Path:
    return SCRATCH / "site"


def stop_all() -> None:
    for proc, _, _ in _running.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    shutil.rmtree(SCRATCH, ignore_errors=True)
