"""Worker processes for the crash tests: start one, follow its output, signal it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path


def spawn(script: str | Path, *args, ignore_sigint: bool = False, **kw) -> subprocess.Popen:
    """Start `python script args...` on the CPU with its stdout/stderr piped as text.

    With `ignore_sigint`, the worker starts with SIGINT ignored, as a background job of a
    non-interactive shell does (set by a shell `trap`, not a `preexec_fn`: forking this
    multithreaded JAX process to run Python code in the child can deadlock).
    """
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}
    command = [sys.executable, str(script), *map(str, args)]
    if ignore_sigint:
        command = ["bash", "-c", "trap '' INT; exec \"$@\"", "bash", *command]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kw
    )


def wait_chunks(proc: subprocess.Popen, n: int) -> list[int]:
    """Read the driver worker's "chunk <step>" lines until `n` more have arrived."""
    seen = []
    for line in proc.stdout:
        if line.startswith("chunk"):
            seen.append(int(line.split()[1]))
            if len(seen) >= n:
                return seen
    raise AssertionError(f"worker ended early: {proc.wait()} {proc.stderr.read()[-2000:]}")


def signal_when(
    proc: subprocess.Popen,
    stop: Callable[[str], bool],
    *,
    on_line: Callable[[str], None] | None = None,
    sig: int = signal.SIGKILL,
) -> str:
    """Follow the worker's stdout (calling `on_line` on each line) until `stop(line)`, then send
    `sig` and wait. Returns the last line read; the worker never outlives the call."""
    last = ""
    try:
        for line in proc.stdout:
            last = line.strip()
            if on_line is not None:
                on_line(last)
            if stop(last):
                break
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
    return last


@contextlib.contextmanager
def killed_on_exit(proc: subprocess.Popen):
    """`with killed_on_exit(spawn(...)) as proc:` — the worker never outlives the block."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
