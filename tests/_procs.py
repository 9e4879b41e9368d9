"""Worker processes for the crash tests: start one, follow its output, signal it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path


def spawn(script: str | Path, *args, **kw) -> subprocess.Popen:
    """Start `python script args...` on the CPU with its stdout/stderr piped as text."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}
    return subprocess.Popen([sys.executable, str(script), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            **kw)


def wait_chunks(proc: subprocess.Popen, n: int) -> list[int]:
    """Read the driver worker's "chunk <step>" lines until `n` more have arrived."""
    seen = []
    for line in proc.stdout:
        if line.startswith("chunk"):
            seen.append(int(line.split()[1]))
            if len(seen) >= n:
                return seen
    raise AssertionError(f"worker ended early: {proc.wait()} {proc.stderr.read()[-2000:]}")


def signal_when(proc: subprocess.Popen, stop: Callable[[str], bool], *,
                on_line: Callable[[str], None] | None = None,
                sig: int = signal.SIGKILL) -> str:
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
