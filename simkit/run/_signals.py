"""Turning SIGINT, SIGTERM and SIGHUP into a clean stop of a run.

Schedulers and container runtimes send SIGTERM (then SIGKILL after a grace period), a closed
terminal sends SIGHUP, Ctrl-C sends SIGINT. During a run each of them raises `RunInterrupted`
in the main thread, which the driver handles like Ctrl-C: the finished chunks stay on disk, a
checkpoint is written at the last finished chunk, the status becomes `interrupted`.

Two rules keep that clean:
- Inside a *critical section* (appending a chunk to the file and moving the run's step forward,
  writing a checkpoint) a signal is held back and raised when the section ends, so the file and
  the checkpoint never disagree about where the run is.
- A signal that was *ignored* when the run started stays ignored: `nohup` ignores SIGHUP, and
  shells start background jobs with SIGINT ignored so that Ctrl-C in the terminal does not reach
  them. simkit respects that choice; SIGTERM still stops such a run cleanly.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

#: a signal disposition, as `signal.getsignal` returns it and `signal.signal` takes it
_Handler = Callable[[int, FrameType | None], Any] | int | None


class RunInterrupted(KeyboardInterrupt):
    """A run was stopped by a signal (SIGINT, SIGTERM or SIGHUP).

    A `KeyboardInterrupt`, so code that handles Ctrl-C handles every interrupt. `signum` is the
    signal; a command-line program should exit with `128 + signum` (130, 143, 129).
    """

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class InterruptGuard:
    """Context manager installing the handlers for the duration of a run (main thread only;
    elsewhere it does nothing and the default behaviour applies)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self._previous: dict[int, _Handler] = {}
        self._depth = 0  # nesting of critical sections
        self._pending: int | None = None
        self._raised = False

    def _handler(self, signum, frame):
        if self._raised:  # already stopping: let the cleanup finish
            return
        if self._depth:
            self._pending = self._pending or signum
            return
        self._raised = True
        raise RunInterrupted(signum)

    def __enter__(self):
        if self.enabled:
            for sig in HANDLED:
                previous = signal.getsignal(sig)
                if previous is signal.SIG_IGN:
                    continue
                self._previous[sig] = previous
                signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
        return False

    @contextlib.contextmanager
    def critical(self):
        """Hold signals back until the block ends, then raise the first one that arrived."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if not self._depth and self._pending is not None and not self._raised:
            signum, self._pending = self._pending, None
            self._raised = True
            raise RunInterrupted(signum)

    def stopping(self) -> None:
        """The run is on its way out (after an error): further signals only get recorded."""
        self._raised = True
