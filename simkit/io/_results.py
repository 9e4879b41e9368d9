"""One-shot result files (fits, sweeps) and summaries of any simkit HDF5 file."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .._checks import SimkitInputError
from ._attrs import write_attrs
from ._hdf5 import LAYOUTS, StoreError
from ._lock import lock_owner
from ._paths import check_new_path
from ._store import simkit_version, write_coordinate


def save_results(
    path: str | os.PathLike,
    data_vars: dict[str, tuple[tuple[str, ...], Any, str]],
    *,
    coords: dict[str, tuple[Any, str]] | None = None,
    attrs: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write named arrays with named dimensions to a new HDF5 file that xarray opens.

    Args:
        path: file to create (its folder must exist; an existing file is refused unless
            `overwrite`). Written to a temporary name and renamed, so a failure never leaves a
            half-written file or destroys the old one.
        data_vars: `{name: (dims, array, units)}`; `len(dims) == array.ndim`.
        coords: `{dim: (values, units)}` for dimensions that have coordinate values (others get
            0..n-1).
        attrs: file attributes (parameters, solver settings, problem name...). Nested values are
            stored as JSON text.
        overwrite: replace an existing file.

    Returns:
        The path written.

    Example:
        >>> save_results("fit.h5", {"y": (("time",), y, "1")}, coords={"time": (t, "s")})
    """
    path = Path(path)
    check_new_path(path, overwrite)
    coords = dict(coords or {})
    sizes: dict[str, int] = {}
    arrays = {}
    for name, spec in data_vars.items():
        if len(spec) != 3:
            raise SimkitInputError(f"data_vars[{name!r}] must be (dims, array, units).")
        dims, arr, units = spec
        arr = np.asarray(arr)
        if len(dims) != arr.ndim:
            raise SimkitInputError(
                f"data_vars[{name!r}] has {arr.ndim} axes but dims {tuple(dims)}."
            )
        for d, n in zip(dims, arr.shape, strict=False):
            if sizes.setdefault(d, n) != n:
                raise SimkitInputError(f"dimension {d!r} has sizes {sizes[d]} and {n}.")
        arrays[name] = (tuple(dims), arr, units)
    for d, (values, _) in coords.items():
        n = np.shape(values)[0]
        if sizes.setdefault(d, n) != n:
            raise SimkitInputError(f"coordinate {d!r} has {n} values, data uses {sizes[d]}.")
    tmp = path.with_name(path.name + ".writing")
    try:
        with h5py.File(tmp, "w") as h5:
            for d, n in sizes.items():
                write_coordinate(h5, d, n, coords.get(d))
            for name, (dims, arr, units) in arrays.items():
                if name in sizes:
                    raise SimkitInputError(f"variable {name!r} has the name of a dimension.")
                ds = h5.create_dataset(name, data=arr)
                for i, d in enumerate(dims):
                    ds.dims[i].attach_scale(h5[d])
                ds.attrs["units"] = units
            write_attrs(h5, attrs or {})
            h5.attrs["simkit_version"] = simkit_version()
            h5.attrs["status"] = "finished"
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# A file another process is writing (without SWMR) can be read between two of its metadata
# updates: a dataset's extent and its chunk index briefly disagree, and h5py raises. The
# writer flushes after every chunk, so a reread a moment later sees a consistent file.
LIVE_READ_ATTEMPTS = 8
LIVE_READ_PAUSE = 0.05  # seconds, doubled after each failed read


def summarize(path: str | os.PathLike) -> dict[str, Any]:
    """Describe a simkit HDF5 file: datasets (shape, dtype, units), attributes, run progress
    (overall, and per save group: rate, frames, last step and time), for any store layout.

    A file that a live run is writing is read again, a moment later, when a read lands between
    two of the writer's updates.

    Raises:
        SimkitInputError: the file does not exist or is not readable HDF5 (names the file), or a
            live writer kept it inconsistent through every reread (names the writer).

    Example:
        >>> info = summarize("run.h5")  # keys: path, datasets, attrs, progress, groups
        >>> info["attrs"]["status"], info["progress"]["frames"], info["datasets"]["y"]["shape"]
    """
    path = Path(path)
    if not path.exists():
        raise SimkitInputError(f"{str(path)!r} does not exist.")
    pause = LIVE_READ_PAUSE
    for attempt in range(LIVE_READ_ATTEMPTS):
        try:
            return _summarize_once(path)
        except (OSError, IndexError, KeyError, ValueError, RuntimeError) as exc:
            owner = lock_owner(path)
            if owner is None:  # nobody is writing it: the file itself is damaged
                if isinstance(exc, OSError):
                    raise SimkitInputError(
                        f"{str(path)!r} is not a readable HDF5 file: {exc}"
                    ) from None
                raise
            if attempt == LIVE_READ_ATTEMPTS - 1:
                raise SimkitInputError(
                    f"{str(path)!r} is being written by PID {owner.get('pid', '?')} on "
                    f"{owner.get('host', '?')} and read inconsistently {LIVE_READ_ATTEMPTS} times "
                    f"({type(exc).__name__}: {exc}); try again."
                ) from None
            time.sleep(pause)
            pause *= 2
    raise AssertionError("unreachable")


def _summarize_once(path: Path) -> dict[str, Any]:
    with h5py.File(path, "r", locking=False) as h5:
        datasets = {}

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                datasets[name] = {
                    "shape": tuple(obj.shape),
                    "dtype": str(obj.dtype),
                    "units": _text(obj.attrs.get("units", obj.attrs.get("unit", ""))),
                }

        h5.visititems(visit)
        attrs = {k: _text(v) for k, v in h5.attrs.items()}
        attrs = {key: _maybe_json(value) for key, value in attrs.items()}
        progress, groups = {}, {}
        layout = LAYOUTS.get(str(attrs.get("simkit_layout", "frames")))
        if layout is not None and "simkit_groups" in h5.attrs:
            try:
                groups = layout.progress(h5)
            except (KeyError, StoreError, ValueError) as exc:
                groups = {}
                attrs["unreadable_progress"] = str(exc)
        elif (
            isinstance(time_ds := h5.get("time"), h5py.Dataset)
            and isinstance(step_ds := h5.get("step"), h5py.Dataset)
            and time_ds.ndim == 1
        ):
            n = time_ds.shape[0]
            groups = {"": {"frames": n}}
            if n:
                groups[""].update(last_step=int(step_ds[n - 1]), last_time=float(time_ds[n - 1]))
        if groups:
            # The furthest group tells how far the run got.
            far = max(groups.values(), key=lambda g: g.get("last_step", -1))
            progress = {
                "frames": sum(g["frames"] for g in groups.values()),
                **{k: far[k] for k in ("last_step", "last_time") if k in far},
            }
    return {
        "path": str(path),
        "datasets": datasets,
        "attrs": attrs,
        "progress": progress,
        "groups": groups,
    }


def _maybe_json(value):
    """Nested settings are stored as JSON text: decode them; leave other values as they are."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _text(v):
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v
