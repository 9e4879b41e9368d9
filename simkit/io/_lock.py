"""One writer per output file: an advisory lock beside the file, with the writer's host and PID.

`<out>.lock` is locked with `fcntl.flock` while a run or resume writes `<out>`. The kernel drops
the lock when the process dies, however it dies (SIGKILL included), so a lock left by a dead
run is never an obstacle: the next writer takes it over and rewrites the owner line. The file's
text (host, PID, start time, command) only serves the message a refused second writer gets.
Readers (h5py, xarray, `simkit info`) take no lock and read while a run is alive.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from ._hdf5 import StoreError, describe_os_error


class WriterLockedError(StoreError):
    """Another live process writes this output file."""


def lock_path(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".lock")


class WriterLock:
    """Exclusive writer lock on an output file (a context manager).

    Raises `WriterLockedError` naming the other writer's host and PID when the file is taken.

    Example:
        >>> with WriterLock("run.h5"):  # the lock file run.h5.lock is held until the block ends
        ...     write_output("run.h5")
    """

    def __init__(self, out: str | os.PathLike):
        self.out = Path(out)
        self.path = lock_path(out)
        self._fd: int | None = None

    def acquire(self) -> "WriterLock":
        """Take the lock (without waiting) and record this process as the writer; returns self.

        Raises:
            WriterLockedError: another live process holds it.
            StoreError: the lock file cannot be created or locked.
        """
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise StoreError(
                    f"cannot lock {str(self.out)!r} for writing: could not create "
                    f"{str(self.path)!r} ({describe_os_error(exc)})."
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _read_owner(fd)
                os.close(fd)
                raise WriterLockedError(
                    f"{str(self.out)!r} is being written by another run ({_describe(owner)}); "
                    "two writers would corrupt it. Wait for that run to end (or stop it), or "
                    "write to another --out."
                ) from None
            except OSError as exc:  # file systems without flock support
                os.close(fd)
                raise StoreError(
                    f"cannot lock {str(self.out)!r} for writing: flock on "
                    f"{str(self.path)!r} failed ({describe_os_error(exc)})."
                ) from None
            # The lock file may have been removed (by its previous owner's release) between our
            # open and flock: then we hold a lock nobody else can see. Retry on the new file.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            owner = {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                "command": " ".join(sys.argv)[:300],
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(owner).encode(), 0)
            self._fd = fd
            return self

    def release(self) -> None:
        """Remove the lock file and let go of the lock (idempotent)."""
        if self._fd is None:
            return
        # Unlink while still holding the lock, so no one can lock the old inode after we let go.
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def lock_owner(out: str | os.PathLike) -> dict | None:
    """The live writer of `out` (`{"host", "pid", "since", "command"}`), or None if no process
    holds its lock (finished, or died: a `running` status then means the run was killed).

    Example:
        >>> owner = lock_owner("run.h5")
        >>> owner and owner["pid"]  # the writing process, or None
    """
    path = lock_path(out)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_owner(fd) or {}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_owner(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        return {}


def _describe(owner: dict) -> str:
    if not owner:
        return "owner unknown"
    return (
        f"PID {owner.get('pid', '?')} on host {owner.get('host', '?')}, since "
        f"{owner.get('since', '?')}: {owner.get('command', '')}"
    ).rstrip(": ")
