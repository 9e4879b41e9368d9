"""Append-only HDF5 frame store with named dimensions, readable by h5py and xarray.

Layout (netCDF-4 compatible, so `xarray.open_dataset(path, engine="h5netcdf")` gives named
dimensions and coordinates):

    /time           (time,)            dimension scale of the single save group, model time units
    /step           (time,)            int64 step index of each frame
    /time_<group>   (time_<group>,)    the same per named save group (per-quantity save rates)
    /step_<group>   (time_<group>,)
    /<dim>          (<dim>,)           coordinate / dimension scale for every other dimension
    /<variable>     (time[_<group>], *dims)   one dataset per saved quantity, one frame per chunk
    attributes      simkit_version, simkit_config (JSON), simkit_fingerprint, units, status, ...

Guarantees (atomic creation, all-or-nothing appends, write errors that stop the run, readable
while alive) come from `HDF5Store`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import h5py
import numpy as np

from .._checks import SimkitInputError
from ._hdf5 import (
    HDF5Store,
    SaveGroup,
    dataset,
    step_name,
    time_name,
)
from ._hdf5 import (
    StoreError as StoreError,
)
from ._hdf5 import (
    Variable as Variable,
)
from ._hdf5 import (
    simkit_version as simkit_version,
)


class FrameStore(HDF5Store):
    """An open HDF5 file of frames (netCDF-style). Create with `FrameStore.create` or
    `FrameStore.open_resume` (see `HDF5Store`). Not thread-safe; one writer per file.

    Example (an ensemble state y `(member, component)` saved every 10 steps):
        >>> store = FrameStore.create("out.h5", {"y": Variable(("member", "component"), (8, 3),
        ...                           "float64", "m")}, config={"dt": 0.01}, time_units="s")
        >>> store.append({"": ([10, 20], [0.1, 0.2], {"y": ys})})  # ys: (2, 8, 3)
        >>> store.close()
        >>> xarray.open_dataset("out.h5", engine="h5netcdf")["y"]  # dims (time, member, component)
    """

    layout = "frames"

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
        if options:
            raise SimkitInputError(f"FrameStore takes no options, got {sorted(options)}.")
        sizes: dict[str, int] = {}
        for g in groups:
            for var in g.variables.values():
                sizes.update(zip(var.dims, var.shape, strict=False))
        for d in coords:
            if d not in sizes:
                raise SimkitInputError(
                    f"coordinate {d!r} is not a dimension of any variable "
                    f"(dimensions: {sorted(sizes)})."
                )
        for d, n in sizes.items():
            write_coordinate(h5, d, n, coords.get(d))
        for g in groups:
            tname = time_name(g.name)
            if tname in sizes:
                raise SimkitInputError(f"dimension name {tname!r} is reserved for the time axis.")
            time = h5.create_dataset(
                tname, shape=(0,), maxshape=(None,), dtype="f8", chunks=(1024,)
            )
            time.make_scale(tname)
            time.attrs["units"] = time_units
            time.attrs["long_name"] = "model time" + (f" of group {g.name}" if g.name else "")
            time.attrs["save_every"] = g.every
            step = h5.create_dataset(
                step_name(g.name), shape=(0,), maxshape=(None,), dtype="i8", chunks=(1024,)
            )
            step.dims[0].attach_scale(time)
            step.attrs["long_name"] = "integration step of the frame"
            for name, var in g.variables.items():
                # One frame per chunk: appends touch whole chunks, readers of one frame read one.
                ds = h5.create_dataset(
                    name,
                    shape=(0, *var.shape),
                    maxshape=(None, *var.shape),
                    dtype=np.dtype(var.dtype),
                    chunks=(1, *var.shape) if var.shape else (1024,),
                )
                ds.dims[0].attach_scale(time)
                for i, d in enumerate(var.dims):
                    ds.dims[i + 1].attach_scale(h5[d])
                ds.attrs["units"] = var.units
                if var.long_name:
                    ds.attrs["long_name"] = var.long_name

    def _write_rows(
        self,
        group: SaveGroup,
        n: int,
        steps: np.ndarray,
        times: np.ndarray,
        frames: Mapping[str, np.ndarray],
    ) -> None:
        k = len(steps)
        for name, arr in frames.items():
            ds = dataset(self._h5, name)
            ds.resize(n + k, axis=0)
            ds[n : n + k] = arr
        # time/step last: a reader that sees frame i in `time` finds its data already there.
        for name, values in ((step_name(group.name), steps), (time_name(group.name), times)):
            ds = dataset(self._h5, name)
            ds.resize((n + k,))
            ds[n : n + k] = values

    def _resize_group(self, group: SaveGroup, n: int) -> None:
        for name in (time_name(group.name), step_name(group.name), *group.variables):
            dataset(self._h5, name).resize(n, axis=0)

    @classmethod
    def _step_time(cls, h5: h5py.File, group: SaveGroup, i: int) -> tuple[int, float]:
        step, time = dataset(h5, step_name(group.name)), dataset(h5, time_name(group.name))
        return int(step[i]), float(time[i])

    @classmethod
    def _frames_in_file(cls, h5: h5py.File) -> dict[str, int]:
        out = {}
        for g in cls._groups_in_file(h5):
            n = int(dataset(h5, time_name(g.name)).shape[0])
            for name in g.variables:
                frames = dataset(h5, name).shape[0]
                if frames < n:
                    raise StoreError(
                        f"dataset {name!r} in {h5.filename!r} is truncated "
                        f"({frames} frames, its time axis has {n})."
                    )
            out[g.name] = n
        return out


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
