"""What every simkit run writer shares: safe creation, all-or-nothing appends, failure status.

A run writer ("store") holds one or more *save groups*: quantities saved together at one rate,
each group with its own step/time axis. Concrete layouts (`FrameStore`: netCDF-style for
xarray; `H5MDStore`: H5MD for particles; `FieldStore`: grids with an XDMF sidecar) subclass
`HDF5Store` and implement only the layout hooks; the guarantees below live here, once:

- **Creation is atomic.** The file is built under `<path>.creating` and renamed into place, so an
  existing file is only replaced once the new one is complete, and a failed creation leaves
  nothing behind.
- **Appends are all-or-nothing.** One `append` writes one chunk of frames for every group and
  flushes. The time axis of a group is written after its data, so a reader that sees a time
  entry finds its frame complete. If anything fails (full disk, quota, read-only file system,
  the file removed), every group is cut back to its length before the call, and
  `StoreWriteError` names the file and the cause.
- **No deferred write errors.** Files are written with HDF5's raw-data chunk cache off, so a
  failing write raises in the call that made it. (With the cache on, a full disk surfaced only
  when h5py released a dataset handle, as "Exception ignored" on stderr, and the frames read
  back as zeros.)
- **Readable while alive.** Files are opened without HDF5 file locking, so h5py, xarray and
  `simkit info` read them during a run; one writer per file is enforced by `simkit.io.WriterLock`.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import h5py
import numpy as np

from .._checks import SimkitInputError
from ._attrs import config_difference, fingerprint, to_jsonable, write_attrs
from ._paths import check_new_path

log = logging.getLogger("simkit.io")


@dataclasses.dataclass(frozen=True)
class Variable:
    """Metadata of one saved quantity (per frame, without the leading time axis).

    Attributes:
        dims: dimension names, e.g. `("member", "component")`.
        shape: shape of one frame, same length as `dims`.
        dtype: numpy dtype name, e.g. `"float64"`.
        units: units string ("1" for dimensionless, "" if unknown).
        long_name: human-readable description.

    Example (what a stepper's `variables` returns for an `(n, 3)` float64 position):
        >>> Variable(("atom", "spatial"), (n, 3), "float64", units="nm", long_name="position")
    """

    dims: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: str
    units: str = ""
    long_name: str = ""

    def __post_init__(self):
        if len(self.dims) != len(self.shape):
            raise SimkitInputError(
                f"Variable dims {self.dims} and shape {self.shape} must have the same length."
            )


@dataclasses.dataclass(frozen=True)
class SaveGroup:
    """Quantities saved together at one rate, with their own step/time axis in the file.

    Attributes:
        name: group name; "" is the single group of a run with one `save_every` (its axes are
            plain `time` and `step`).
        every: steps between frames of this group (> 0).
        variables: the saved quantities of this group, by name.

    Example:
        >>> SaveGroup("thermo", 10, {"temperature": Variable((), (), "float32", "K")})
    """

    name: str
    every: int
    variables: Mapping[str, Variable]


#: layout name -> store class (filled by subclassing `HDF5Store`).
LAYOUTS: dict[str, type] = {}


class StoreError(RuntimeError):
    """An output file cannot be used as asked (corrupt, truncated, or from another config)."""


class StoreWriteError(StoreError):
    """Writing an output file failed (full disk, quota, read-only file system, file removed).

    Attributes:
        path: the file that could not be written.
        cause: the underlying exception.
    """

    def __init__(self, message: str, path: Path, cause: BaseException | None = None):
        super().__init__(message)
        self.path, self.cause = path, cause


def simkit_version() -> str:
    from .. import __version__

    return __version__


def open_h5(path: str | os.PathLike, mode: str) -> h5py.File:
    """Open an HDF5 file the way simkit's writers do: no file locking (readers may open it while
    a run writes), no raw-data chunk cache (write errors raise where they happen)."""
    return h5py.File(path, mode, locking=False, rdcc_nbytes=0)


def dataset(h5: h5py.Group, path: str) -> h5py.Dataset:
    """The dataset at `path` under `h5`.

    Raises:
        KeyError: nothing at `path` (as h5py).
        StoreError: `path` holds a group or a named type instead (a damaged or foreign file).
    """
    obj = h5[path]
    if not isinstance(obj, h5py.Dataset):
        raise StoreError(
            f"{path!r} in {h5.file.filename!r} is a {type(obj).__name__}, not a dataset: the "
            "file is damaged or was not written by simkit."
        )
    return obj


def text_attr(obj: h5py.HLObject, key: str) -> str:
    """The text attribute `key` of `obj` (stored as str or bytes).

    Raises:
        KeyError: no such attribute (as h5py).
        StoreError: the attribute is not text (a damaged or foreign file).
    """
    value = obj.attrs[key]
    if isinstance(value, bytes):
        value = value.decode()
    if not isinstance(value, str):
        raise StoreError(
            f"attribute {key!r} of {obj.name!r} in {obj.file.filename!r} is not text "
            f"(got {type(value).__name__}): the file is damaged or was not written by simkit."
        )
    return value


#: Disk space reserved beyond what an append writes, for HDF5's own metadata and the status
#: update after a failure (bytes).
RESERVE_MARGIN = 256 * 1024


def _libc_fallocate():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.fallocate
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
    return fn


_FALLOCATE = _libc_fallocate()
_FALLOC_FL_KEEP_SIZE = 1


def reserve_space(fd: int, nbytes: int) -> None:
    """Make sure the next `nbytes` written past the end of the file have disk space.

    HDF5 cannot survive a failed metadata flush: the file may be left unreadable, and closing it
    has crashed the process. So a writer never lets the disk fill under HDF5: before each append
    the blocks it will use (plus `RESERVE_MARGIN`) are allocated with `fallocate(KEEP_SIZE)`,
    which honours quotas too, and a refusal stops the run while the file is intact. Where the
    file system cannot preallocate, the free space reported by `statvfs` is checked instead.

    Raises:
        OSError: ENOSPC / EDQUOT when the space is not there.
    """
    size = os.fstat(fd).st_size
    if _FALLOCATE is not None:
        if _FALLOCATE(fd, _FALLOC_FL_KEEP_SIZE, size, nbytes) == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise OSError(err, os.strerror(err))
    st = os.fstatvfs(fd)
    if st.f_bavail * st.f_frsize < nbytes:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def describe_os_error(exc: BaseException) -> str:
    """The cause of an I/O failure in a few words ("No space left on device", ...)."""
    errno_ = getattr(exc, "errno", None)
    if errno_ is None:
        text = str(exc)
        for code, words in (
            (28, "No space left on device"),
            (122, "Disk quota exceeded"),
            (30, "Read-only file system"),
            (13, "Permission denied"),
            (5, "Input/output error"),
        ):
            if f"errno = {code}," in text or words in text:
                return words
        return text.splitlines()[0][:200] if text else type(exc).__name__
    return os.strerror(errno_)


class HDF5Store:
    """Base of simkit's run writers (see the module docstring for what it guarantees).

    Subclasses implement the layout: `_build` (datasets of a new file), `_write_rows` (one
    group's frames, time axis last), `_resize_group` (cut a group back), `_frames_in_file` and
    `_groups_in_file` (read the layout back for resume), and may extend `_after_flush`.

    Use `create` or `open_resume`, then `append` chunks, `set_attrs`, `close`.

    Example (through a concrete layout, `FrameStore`):
        >>> store = FrameStore.create("out.h5", {"x": Variable((), (), "float64")}, config={})
        >>> store.append({"": ([1, 2], [0.1, 0.2], {"x": np.array([1.0, 0.9])})})
        >>> store.set_attrs(status="finished")
        >>> store.close()
    """

    #: name of the layout, stored as the `simkit_layout` file attribute.
    layout = "abstract"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        LAYOUTS[cls.layout] = cls  # so `summarize` can read any layout's progress

    def __init__(self, path: Path, h5: h5py.File, groups: Sequence[SaveGroup]):
        self.path = path
        self._h5 = h5
        self.groups = {g.name: g for g in groups}
        self._n = self._frames_in_file(h5)
        self._inode = os.fstat(_fd(h5)).st_ino
        self._failed: str | None = None
        self._poisoned = False

    # -- layout hooks (subclasses) -------------------------------------------------------------
    @classmethod
    def _build(
        cls,
        h5: h5py.File,
        groups: Sequence[SaveGroup],
        *,
        coords: dict,
        time_units: str,
        options: dict,
    ) -> None:
        raise NotImplementedError  # abstract: every layout defines its datasets

    def _write_rows(
        self,
        group: SaveGroup,
        n: int,
        steps: np.ndarray,
        times: np.ndarray,
        frames: Mapping[str, np.ndarray],
    ) -> None:
        raise NotImplementedError  # abstract

    def _resize_group(self, group: SaveGroup, n: int) -> None:
        raise NotImplementedError  # abstract

    @classmethod
    def _frames_in_file(cls, h5: h5py.File) -> dict[str, int]:
        raise NotImplementedError  # abstract

    @classmethod
    def _groups_in_file(cls, h5: h5py.File) -> list[SaveGroup]:
        """Default: the groups recorded in the `simkit_groups` attribute at creation."""
        recorded = json.loads(text_attr(h5, "simkit_groups"))
        return [
            SaveGroup(
                g["name"],
                int(g["every"]),
                {
                    v: Variable(
                        tuple(d["dims"]),
                        tuple(d["shape"]),
                        d["dtype"],
                        d.get("units", ""),
                        d.get("long_name", ""),
                    )
                    for v, d in g["variables"].items()
                },
            )
            for g in recorded
        ]

    @classmethod
    def stored_groups(
        cls, groups: Sequence[SaveGroup], options: Mapping[str, Any] | None = None
    ) -> list[SaveGroup]:
        """The groups as this layout stores them on disk (axis order of each variable).

        The run driver creates the store with these and permutes each frame's axes on the
        device, inside the compiled chunk (an XLA transpose of a 1024^2 float32 field took
        0.5 ms here, numpy's 7 ms), so the writer receives frames already in file order.
        Default: as declared.
        """
        return list(groups)

    @classmethod
    def _step_time(cls, h5: h5py.File, group: SaveGroup, i: int) -> tuple[int, float]:
        """Step and time of frame `i` of `group` (for progress reports)."""
        raise NotImplementedError  # abstract

    @classmethod
    def progress(cls, h5: h5py.File) -> dict[str, dict[str, Any]]:
        """Per save group: rate, frames written, last step and time (for `simkit info`)."""
        counts = cls._frames_in_file(h5)
        out = {}
        for g in cls._groups_in_file(h5):
            n = counts[g.name]
            info: dict[str, Any] = {"every": g.every, "frames": n, "quantities": list(g.variables)}
            if n:
                info["last_step"], info["last_time"] = cls._step_time(h5, g, n - 1)
            out[g.name] = info
        return out

    def _after_flush(self) -> None:
        """Called after every successful flush (e.g. to rewrite a sidecar file)."""

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        groups: Sequence[SaveGroup] | Mapping[str, Variable],
        *,
        config: dict,
        coords: dict[str, tuple[Any, str]] | None = None,
        attrs: dict[str, Any] | None = None,
        time_units: str = "",
        overwrite: bool = False,
        **options: Any,
    ) -> Self:
        """Create a new store (refuses to replace an existing file unless `overwrite`).

        Args:
            path: file to create; its folder must exist.
            groups: the save groups, or a plain `{name: Variable}` for one group saved at a
                single rate (group name "", axes `time` and `step`).
            config: the run configuration; stored as JSON and compared by `open_resume`.
            coords: values and units for non-time dimensions (default: 0..n-1 indices).
            attrs: extra file attributes (parameters, solver settings, problem name...).
            time_units: units of the time axes.
            overwrite: replace an existing file (atomically, once the new one is complete).
            **options: layout-specific options (see the subclass).

        Raises:
            SimkitInputError: bad variables, missing folder, existing file without overwrite.
            StoreWriteError: the file cannot be written (read-only folder, full disk...).
        """
        path = Path(path)
        groups = normalize_groups(groups)
        check_new_path(path, overwrite)
        tmp = path.with_name(path.name + ".creating")
        try:
            h5 = open_h5(tmp, "w")
        except OSError as exc:
            raise StoreWriteError(
                f"cannot create output file {str(path)!r}: {describe_os_error(exc)}. Choose a "
                "writable folder with free space (--out).",
                path,
                exc,
            ) from None
        try:
            cls._build(
                h5, groups, coords=dict(coords or {}), time_units=time_units, options=options
            )
            write_attrs(h5, attrs or {})
            h5.attrs["simkit_version"] = simkit_version()
            h5.attrs["simkit_layout"] = cls.layout
            h5.attrs["simkit_config"] = json.dumps(to_jsonable(config), sort_keys=True)
            h5.attrs["simkit_fingerprint"] = fingerprint(config)
            h5.attrs["simkit_groups"] = json.dumps(
                [
                    {
                        "name": g.name,
                        "every": g.every,
                        "variables": {k: dataclasses.asdict(v) for k, v in g.variables.items()},
                    }
                    for g in groups
                ]
            )
            h5.attrs["status"] = "running"
            h5.flush()
            h5.close()
            # Atomic replace: an existing file is only lost once the new one is complete.
            os.replace(tmp, path)
        except BaseException as exc:
            _close_quietly(h5)
            tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError | RuntimeError) and not isinstance(exc, StoreError):
                raise StoreWriteError(
                    f"cannot create output file {str(path)!r}: {describe_os_error(exc)}.", path, exc
                ) from None
            raise
        store = cls(path, open_h5(path, "r+"), groups)
        try:
            store._post_open(options)
        except BaseException:
            _close_quietly(store._h5)
            path.unlink(missing_ok=True)  # a new, empty file: nothing of value is lost
            raise
        return store

    @classmethod
    def open_resume(cls, path: str | os.PathLike, *, config: dict) -> Self:
        """Reopen an existing store to continue a run with the same configuration.

        Raises:
            SimkitInputError: the file is missing.
            StoreError: the file is unreadable/corrupt, of another layout, or was written with a
                different configuration (the differing settings are named).
        """
        path = Path(path)
        if not path.exists():
            raise SimkitInputError(f"cannot resume: {str(path)!r} does not exist.")
        try:
            h5 = open_h5(path, "r+")
        except OSError as exc:
            raise StoreError(
                f"cannot resume: {str(path)!r} is not a readable HDF5 file (corrupt or truncated: "
                f"{describe_os_error(exc)}). Start a new run with --overwrite or another --out."
            ) from None
        try:
            if "simkit_config" not in h5.attrs or "simkit_groups" not in h5.attrs:
                raise StoreError(f"cannot resume: {str(path)!r} is not a simkit run file.")
            layout = h5.attrs.get("simkit_layout", "frames")
            if layout != cls.layout:
                raise StoreError(
                    f"cannot resume: {str(path)!r} is a {layout!r} file, this run "
                    f"writes {cls.layout!r}."
                )
            stored = json.loads(text_attr(h5, "simkit_config"))
            diffs = config_difference(stored, to_jsonable(config))
            if diffs:
                raise StoreError(
                    f"cannot resume {str(path)!r}: it was written with a different configuration ("
                    + "; ".join(diffs)
                    + "). Resume with the original settings, or start a new "
                    "run with --overwrite."
                )
            groups = cls._groups_in_file(h5)
            # The constructor reads the layout back (frame counts, layout attributes) and can
            # refuse a damaged file: the handle must not outlive that refusal (nor the file be
            # marked running by it).
            store = cls(path, h5, groups)
            h5.attrs["status"] = "running"
            h5.flush()
            store._post_open({})
        except BaseException:
            _close_quietly(h5)
            raise
        return store

    def _post_open(self, options: dict) -> None:
        """Hook after the file is open for writing (create and resume)."""

    # -- writing --------------------------------------------------------------------------------
    @property
    def n_frames(self) -> dict[str, int]:
        """Frames written so far per group (still valid after `close`)."""
        return dict(self._n)

    def append(self, chunk: Mapping[str, tuple[Any, Any, Mapping[str, Any]]]) -> None:
        """Append frames to one or more groups and flush; all or nothing.

        Args:
            chunk: `{group: (steps, times, frames)}` with `steps (k,)` int step of each frame,
                `times (k,)` model time, and `frames` `{variable: (k, *variable.shape)}` for
                every variable of the group (k may be 0, and differ between groups).

        Raises:
            SimkitInputError: unknown group, missing/unexpected variables, wrong shapes (nothing
                is written).
            StoreWriteError: the write failed; every group is back at its previous length.
        """
        self._check_writable()
        prepared = {}
        for name, (steps, times, frames) in chunk.items():
            if name not in self.groups:
                raise SimkitInputError(
                    f"unknown save group {name!r}; the file has groups {sorted(self.groups)}."
                )
            prepared[name] = self._prepare(self.groups[name], steps, times, frames)
        before = dict(self._n)
        try:
            reserve_space(
                _fd(self._h5),
                RESERVE_MARGIN
                + sum(
                    steps.nbytes * 2 + sum(a.nbytes for a in frames.values())
                    for steps, _, frames in prepared.values()
                ),
            )
        except OSError as exc:  # nothing was written: the file is intact
            raise self._write_failed("writing frames to", exc) from None
        try:
            for name, (steps, times, frames) in prepared.items():
                if len(steps):
                    self._write_rows(self.groups[name], before[name], steps, times, frames)
            self._h5.flush()
            self._check_same_file()
        except BaseException as exc:
            self._rollback(before)
            if isinstance(exc, StoreWriteError):
                raise
            if not isinstance(exc, OSError | RuntimeError | ValueError):
                raise  # KeyboardInterrupt and friends: the file was cut back, propagate as is
            raise self._write_failed("writing frames to", exc) from None
        for name, (steps, _, _) in prepared.items():
            self._n[name] = before[name] + len(steps)
        try:
            self._after_flush()
        except OSError as exc:
            raise self._write_failed("writing the sidecar of", exc) from None

    def _prepare(self, group: SaveGroup, steps, times, frames):
        steps = np.asarray(steps, dtype=np.int64).reshape(-1)
        times = np.asarray(times, dtype=np.float64).reshape(-1)
        k = steps.shape[0]
        if times.shape != (k,):
            raise SimkitInputError(f"group {group.name!r}: {k} steps but {times.shape[0]} times.")
        if set(frames) != set(group.variables):
            raise SimkitInputError(
                f"frames of group {group.name!r} have variables {sorted(frames)}, the file "
                f"expects {sorted(group.variables)}."
            )
        out = {}
        for name, var in group.variables.items():
            arr = np.asarray(frames[name])
            if arr.shape != (k, *var.shape):
                raise SimkitInputError(
                    f"frame data {name!r} has shape {arr.shape}, expected {(k, *var.shape)} "
                    f"({k} frames of {var.shape}); the shape of a saved quantity may not change "
                    "during a run."
                )
            out[name] = arr
        return steps, times, out

    def _rollback(self, before: Mapping[str, int]) -> None:
        """Cut every group back to `before` after a failed write (best effort: the file system
        may refuse even that; the time axes were written last, so a reader still sees only
        complete frames)."""
        try:
            for name, n in before.items():
                self._resize_group(self.groups[name], n)
            self._h5.flush()
        except Exception as exc:  # noqa: BLE001 - the original failure is what the user sees
            log.error("could not cut %s back to its last complete frame: %s", self.path, exc)

    def _check_same_file(self) -> None:
        """Writes to a file that was deleted or replaced succeed silently (they reach an unlinked
        inode): detect it so the run stops instead of computing into the void."""
        try:
            same = os.stat(self.path).st_ino == self._inode
        except FileNotFoundError:
            same = False
        if not same:
            raise StoreWriteError(
                f"output file {str(self.path)!r} was deleted or replaced while the run was "
                "writing it; the frames since then are lost. The run stopped.",
                self.path,
            )

    def _write_failed(self, doing: str, exc: BaseException) -> StoreWriteError:
        cause = describe_os_error(exc)
        if not isinstance(exc, OSError) or exc.errno is None:
            self._poisoned = True  # an HDF5-level failure: do not flush this handle again
        self._failed = cause
        kept = ", ".join(f"{g or 'frames'}: {n}" for g, n in self._n.items())
        return StoreWriteError(
            f"{doing} {str(self.path)!r} failed: {cause}. The file keeps the frames written "
            f"before ({kept}); free space (or fix the cause) and resume the run.",
            self.path,
            exc,
        )

    def _check_writable(self) -> None:
        if not self._h5.id.valid:
            raise StoreError(f"{str(self.path)!r} is closed.")

    def truncate(self, n_frames: Mapping[str, int]) -> None:
        """Drop frames after the first `n_frames[group]` of each group (resume discards the
        frames written after the last checkpoint)."""
        for name, n in n_frames.items():
            if name not in self.groups:
                raise StoreError(
                    f"{str(self.path)!r} has no save group {name!r} (groups: "
                    f"{sorted(self.groups)})."
                )
            if n > self._n[name]:
                raise StoreError(
                    f"{str(self.path)!r} holds {self._n[name]} frames of group {name!r}, cannot "
                    f"keep {n}: the file is truncated relative to its checkpoint."
                )
        try:
            for name, n in n_frames.items():
                self._resize_group(self.groups[name], n)
                self._n[name] = n
            self._h5.flush()
        except (OSError, RuntimeError) as exc:
            raise self._write_failed("truncating", exc) from None
        try:
            self._after_flush()
        except OSError as exc:
            raise self._write_failed("writing the sidecar of", exc) from None

    def set_attrs(self, **attrs: Any) -> None:
        """Update file attributes (status, steps done, failure reason...) and flush."""
        self._check_writable()
        if self._poisoned:
            raise StoreWriteError(
                f"{str(self.path)!r} cannot be updated after a failed write ({self._failed}).",
                self.path,
            )
        try:
            reserve_space(_fd(self._h5), RESERVE_MARGIN)
            write_attrs(self._h5, attrs)
            self._h5.flush()
        except (OSError, RuntimeError) as exc:
            raise self._write_failed("writing attributes to", exc) from None

    def mark(self, **attrs: Any) -> bool:
        """`set_attrs` that never raises (used on the way out of a failed run): True if written."""
        try:
            self.set_attrs(**attrs)
            return True
        except Exception as exc:  # noqa: BLE001 - the run's own failure is what matters
            log.error("could not record %s in %s: %s", attrs, self.path, exc)
            return False

    def flush(self) -> None:
        """Write HDF5's buffers to disk; a failure raises `StoreWriteError`."""
        try:
            self._h5.flush()
        except (OSError, RuntimeError) as exc:
            raise self._write_failed("flushing", exc) from None

    def close(self) -> None:
        """Flush and close (idempotent). A failure to flush raises `StoreWriteError` after the
        handle is released."""
        if not self._h5.id.valid:
            return
        if self._poisoned:
            _close_quietly(self._h5)
            return
        try:
            self._h5.flush()
        except (OSError, RuntimeError) as exc:
            _close_quietly(self._h5)
            raise self._write_failed("closing", exc) from None
        _close_quietly(self._h5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def normalize_groups(groups: Sequence[SaveGroup] | Mapping[str, Variable]) -> list[SaveGroup]:
    """Accept a list of `SaveGroup`s or a plain `{name: Variable}` (one group named ""), and
    check names: reserved names, one quantity in one group only, consistent dimension sizes."""
    if isinstance(groups, Mapping):
        groups = [SaveGroup("", 1, dict(groups))]
    groups = list(groups)
    names = [g.name for g in groups]
    if len(set(names)) != len(names):
        raise SimkitInputError(f"save group names must be unique, got {names}.")
    owner: dict[str, str] = {}
    sizes: dict[str, int] = {}
    for g in groups:
        if not isinstance(g.every, int | np.integer) or g.every <= 0:
            raise SimkitInputError(
                f"save group {g.name!r}: every must be a positive integer, got {g.every!r}."
            )
        for name, var in g.variables.items():
            if name in ("time", "step") or name.startswith(("time_", "step_")):
                raise SimkitInputError(f"variable name {name!r} is reserved.")
            if name in var.dims:
                raise SimkitInputError(
                    f"variable {name!r} has a dimension of the same name; rename one of them "
                    "(a dimension's name holds its coordinate)."
                )
            if name in owner:
                raise SimkitInputError(
                    f"quantity {name!r} is claimed by two save groups "
                    f"({owner[name]!r} and {g.name!r}); give it one rate."
                )
            owner[name] = g.name
            for d, n in zip(var.dims, var.shape, strict=False):
                if sizes.setdefault(d, n) != n:
                    raise SimkitInputError(f"dimension {d!r} has sizes {sizes[d]} and {n}.")
    return groups


def time_name(group: str) -> str:
    """Name of a group's time axis: `time` for the single group "", else `time_<group>`."""
    return f"time_{group}" if group else "time"


def step_name(group: str) -> str:
    return f"step_{group}" if group else "step"


def _fd(h5: h5py.File) -> int:
    handle = h5.id.get_vfd_handle()
    return handle if isinstance(handle, int) else handle.fileno()


def _close_quietly(h5: h5py.File) -> None:
    try:
        if h5.id.valid:
            h5.close()
    except Exception as exc:  # noqa: BLE001
        log.debug("closing %s: %s", h5.filename, exc)
