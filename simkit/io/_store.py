"""Append-only HDF5 frame store with a leading time axis, readable by h5py and xarray.

Layout (netCDF-4 compatible, so `xarray.open_dataset(path, engine="h5netcdf")` gives named
dimensions and coordinates):

    /time           (time,)            dimension scale, model time units
    /step           (time,)            int64 step index of each frame
    /<dim>          (<dim>,)           coordinate / dimension scale for every other dimension
    /<variable>     (time, *dims)      one dataset per saved quantity, chunked one frame per chunk
    attributes      simkit_version, simkit_config (JSON), simkit_fingerprint, units, status, ...

Durability: the file is flushed after every `append`, and is opened without HDF5 file locking so
other programs can read it while a run is alive. Frames flushed before a SIGKILL read back.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .._checks import SimkitInputError
from ._attrs import config_difference, fingerprint, write_attrs
from ._paths import check_new_path


@dataclasses.dataclass(frozen=True)
class Variable:
    """Metadata of one saved quantity (per frame, without the leading time axis).

    Attributes:
        dims: dimension names, e.g. `("member", "component")`.
        shape: shape of one frame, same length as `dims`.
        dtype: numpy dtype name, e.g. `"float64"`.
        units: units string ("1" for dimensionless, "" if unknown).
        long_name: human-readable description.
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


def simkit_version() -> str:
    from .. import __version__

    return __version__


class StoreError(RuntimeError):
    """An output file cannot be used as asked (corrupt, truncated, or from another config)."""


class FrameStore:
    """An open HDF5 file of frames. Create with `FrameStore.create` or `FrameStore.open_resume`.

    Not thread-safe; one writer per file.
    """

    def __init__(self, path: Path, h5: h5py.File, variables: dict[str, Variable]):
        self.path = path
        self._h5 = h5
        self.variables = variables
        self._n = int(h5["time"].shape[0])

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        variables: dict[str, Variable],
        *,
        config: dict,
        coords: dict[str, tuple[np.ndarray, str]] | None = None,
        attrs: dict[str, Any] | None = None,
        time_units: str = "",
        overwrite: bool = False,
    ) -> "FrameStore":
        """Create a new store (refuses to replace an existing file unless `overwrite`).

        Args:
            path: file to create; its folder must exist.
            variables: saved quantities by name.
            config: the run configuration; its fingerprint guards `open_resume`.
            coords: values and units for non-time dimensions (default: 0..n-1 indices).
            attrs: extra file attributes (parameters, solver settings, problem name...).
            time_units: units of the time coordinate.
            overwrite: replace an existing file.
        """
        path = Path(path)
        check_new_path(path, overwrite)
        coords = dict(coords or {})
        sizes: dict[str, int] = {}
        for name, var in variables.items():
            if name in ("time", "step"):
                raise SimkitInputError(f"variable name {name!r} is reserved.")
            for d, n in zip(var.dims, var.shape):
                if sizes.setdefault(d, n) != n:
                    raise SimkitInputError(f"dimension {d!r} has sizes {sizes[d]} and {n}.")
        tmp = path.with_name(path.name + ".creating")
        h5 = h5py.File(tmp, "w", locking=False)
        try:
            time = h5.create_dataset("time", shape=(0,), maxshape=(None,), dtype="f8",
                                     chunks=(1024,))
            time.make_scale("time")
            time.attrs["units"] = time_units
            time.attrs["long_name"] = "model time"
            step = h5.create_dataset("step", shape=(0,), maxshape=(None,), dtype="i8",
                                     chunks=(1024,))
            step.dims[0].attach_scale(time)
            step.attrs["long_name"] = "integration step of the frame"
            for d, n in sizes.items():
                write_coordinate(h5, d, n, coords.get(d))
            for name, var in variables.items():
                # One frame per chunk: appends touch whole chunks, readers of one frame read one.
                ds = h5.create_dataset(name, shape=(0, *var.shape), maxshape=(None, *var.shape),
                                       dtype=np.dtype(var.dtype), chunks=(1, *var.shape) if var.shape else (1024,))
                ds.dims[0].attach_scale(time)
                for i, d in enumerate(var.dims):
                    ds.dims[i + 1].attach_scale(h5[d])
                ds.attrs["units"] = var.units
                if var.long_name:
                    ds.attrs["long_name"] = var.long_name
            write_attrs(h5, attrs or {})
            h5.attrs["simkit_version"] = simkit_version()
            h5.attrs["simkit_config"] = json.dumps(_jsonable(config), sort_keys=True)
            h5.attrs["simkit_fingerprint"] = fingerprint(config)
            h5.attrs["status"] = "running"
            h5.flush()
            h5.close()
        except BaseException:
            h5.close()
            tmp.unlink(missing_ok=True)
            raise
        # Atomic replace: an existing file is only lost once the new one is complete.
        os.replace(tmp, path)
        return cls(path, h5py.File(path, "r+", locking=False), dict(variables))

    @classmethod
    def open_resume(cls, path: str | os.PathLike, *, config: dict) -> "FrameStore":
        """Reopen an existing store to continue a run with the same configuration.

        Raises:
            SimkitInputError: the file is missing.
            StoreError: the file is unreadable/corrupt, not a simkit store, or was written with a
                different configuration (the differing settings are named).
        """
        path = Path(path)
        if not path.exists():
            raise SimkitInputError(f"cannot resume: {str(path)!r} does not exist.")
        try:
            h5 = h5py.File(path, "r+", locking=False)
        except OSError as exc:
            raise StoreError(
                f"cannot resume: {str(path)!r} is not a readable HDF5 file (corrupt or truncated: "
                f"{exc}). Start a new run with --overwrite or another --out."
            ) from None
        try:
            if "simkit_config" not in h5.attrs or "time" not in h5:
                raise StoreError(f"cannot resume: {str(path)!r} is not a simkit run file.")
            stored = json.loads(h5.attrs["simkit_config"])
            diffs = config_difference(stored, _jsonable(config))
            if diffs:
                raise StoreError(
                    f"cannot resume {str(path)!r}: it was written with a different configuration ("
                    + "; ".join(diffs) + "). Resume with the original settings, or start a new "
                    "run with --overwrite."
                )
            variables = {}
            n = h5["time"].shape[0]
            for name, ds in h5.items():
                if name in ("time", "step") or not _is_time_series(ds):
                    continue
                if ds.shape[0] < n:
                    raise StoreError(f"cannot resume: dataset {name!r} in {str(path)!r} is "
                                     f"truncated ({ds.shape[0]} frames, time axis has {n}).")
                variables[name] = Variable(
                    dims=tuple(_dim_name(ds, i) for i in range(1, ds.ndim)),
                    shape=tuple(ds.shape[1:]), dtype=ds.dtype.name,
                    units=str(ds.attrs.get("units", "")))
            h5.attrs["status"] = "running"
        except Exception:
            h5.close()
            raise
        return cls(path, h5, variables)

    # -- writing ------------------------------------------------------------------------------
    @property
    def n_frames(self) -> int:
        """Frames written so far (still valid after `close`)."""
        return self._n

    def append(self, steps: np.ndarray, times: np.ndarray, frames: dict[str, np.ndarray]) -> None:
        """Append k frames and flush.

        Args:
            steps: int step index of each frame, shape `(k,)`.
            times: model time of each frame, shape `(k,)`.
            frames: for every variable, an array of shape `(k, *variable.shape)`.
        """
        steps = np.asarray(steps, dtype=np.int64).reshape(-1)
        k = steps.shape[0]
        if k == 0:
            return
        if set(frames) != set(self.variables):
            raise SimkitInputError(
                f"frames have variables {sorted(frames)}, store expects {sorted(self.variables)}."
            )
        n = self.n_frames
        for name, var in self.variables.items():
            arr = np.asarray(frames[name])
            if arr.shape != (k, *var.shape):
                raise SimkitInputError(
                    f"frame data {name!r} has shape {arr.shape}, expected {(k, *var.shape)}.")
            ds = self._h5[name]
            ds.resize(n + k, axis=0)
            ds[n:n + k] = arr
        # time/step last: a reader that sees frame i in `time` finds its data already there.
        for name, values in (("step", steps), ("time", np.asarray(times, dtype=np.float64).reshape(-1))):
            ds = self._h5[name]
            ds.resize((n + k,))
            ds[n:n + k] = values
        self._h5.flush()
        self._n = n + k

    def truncate(self, n_frames: int) -> None:
        """Drop frames after the first `n_frames` (used on resume to discard un-checkpointed work)."""
        if n_frames > self.n_frames:
            raise StoreError(f"{str(self.path)!r} holds {self.n_frames} frames, cannot keep "
                             f"{n_frames}: the file is truncated relative to its checkpoint.")
        for name in (*self.variables, "step", "time"):
            ds = self._h5[name]
            ds.resize(n_frames, axis=0)
        self._h5.flush()
        self._n = n_frames

    def set_attrs(self, **attrs: Any) -> None:
        """Update file attributes (status, steps done, failure reason...) and flush."""
        write_attrs(self._h5, attrs)
        self._h5.flush()

    def flush(self) -> None:
        self._h5.flush()

    def close(self) -> None:
        if self._h5.id.valid:
            self._h5.flush()
            self._h5.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def write_coordinate(h5: h5py.Group, dim: str, size: int, spec: tuple | None) -> h5py.Dataset:
    """Create the dimension-scale dataset of `dim` (values and units, default 0..size-1)."""
    values, units = spec if spec is not None else (np.arange(size), "")
    values = np.asarray(values)
    if values.shape != (size,):
        raise SimkitInputError(f"coordinate {dim!r} must have shape ({size},), got {values.shape}.")
    if values.dtype.kind == "U":  # text labels: variable-length UTF-8, read back as str
        ds = h5.create_dataset(dim, data=values.astype(object), dtype=h5py.string_dtype())
    else:
        ds = h5.create_dataset(dim, data=values)
    ds.make_scale(dim)
    if units:
        ds.attrs["units"] = units
    return ds


def _is_time_series(obj) -> bool:
    """A dataset whose first axis carries the /time dimension scale."""
    if not isinstance(obj, h5py.Dataset) or obj.ndim == 0:
        return False
    return any(scale.name == "/time" for scale in obj.dims[0].values())


def _dim_name(ds: h5py.Dataset, axis: int) -> str:
    scales = list(ds.dims[axis].values())
    return scales[0].name.lstrip("/") if scales else f"dim_{axis}"


def _jsonable(config: dict) -> dict:
    from ._attrs import to_jsonable

    return to_jsonable(config)
