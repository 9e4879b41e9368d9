"""Grid fields (2-D/3-D scalars and vectors) in HDF5, with an XDMF sidecar for ParaView.

`FieldStore` is a `FrameStore` (netCDF-style, xarray-readable, one frame per chunk, one time axis
per save group) whose grid fields are also described by an XDMF file beside the HDF5 file:
`run.h5` gets `run.xdmf` (`sidecar_path`). Open the `.xdmf` in ParaView ("XDMF Reader") or
VisIt; keep both files in the same folder (the sidecar names the HDF5 file relatively).

Layout (on top of `FrameStore`'s):

    /x, /y[, /z]                       grid coordinates (strictly increasing), `axis` = X/Y/Z
    /<field>  (time_<group>, [z,] y, x[, component])   one frame per chunk

Fields are declared in any dimension order (e.g. `Variable(("x", "y", "component"), (nx, ny, 2),
...)`, and `append` takes arrays in that declared order), but are *stored* with the grid axes
reversed, `([z,] y, x)`, followed by the component axis. That is the CF/COARDS order xarray users
know (`ds.velocity.dims == ("time_fields", "y", "x", "component")`), and the C-order XDMF needs:
x varies fastest, so each frame is read by ParaView in place, without transposition.

The sidecar holds one Temporal collection with one Grid per saved frame (several field groups at
different rates: one Grid per distinct frame time, each group showing its latest frame at or
before it), each field an Attribute whose HyperSlab selects its frame in the HDF5 dataset. Evenly
spaced coordinates give a `3DCoRectMesh` (origin + spacing), others a `3DRectMesh` (`VXVYVZ`,
reading the coordinate datasets). A 2-D grid is a 3-D grid one point thick (z = 0). Vectors of
3 components are `Vector` attributes; 2-component vectors too (ParaView's XDMF Reader pads them
with z = 0). Groups without fields (diagnostics) stay in the HDF5 file only.

Ensembles: a field may have a leading `"member"` dimension (`MEMBER_DIM`, as
`simkit.run.VmappedStepper` declares it), e.g. `("member", "x", "y", "component")`. Every member
is saved in the HDF5 file, stored `(time, member, [z,] y, x[, component])` (xarray:
`ds.vorticity.sel(member=3)`), but the sidecar lists member 0 only, under the field's own name:
one HyperSlab per frame and field as for a single run, so the sidecar's size and rewrite cost do
not grow with the ensemble (listing every member would multiply both by the member count).
Look at other members in xarray, or slice the HDF5 dataset in ParaView's HDF5 reader.

The sidecar is rewritten (temporary file + rename) after every append and truncate, so ParaView
on a live run sees every frame flushed so far and never a half-written file; it lists only
frames whose data and time entry are in the HDF5 file. Each rewrite costs O(frames): about
0.7 kB per frame and field; with two fields, 15 ms / 1.5 MB at 1 000 frames, 0.14 s / 15 MB at
10 000. ParaView does not follow a growing file by itself: File > Reload Files shows new frames.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import h5py
import numpy as np

from .._checks import SimkitInputError
from ._hdf5 import (
    SaveGroup,
    StoreWriteError,
    Variable,
    _close_quietly,
    dataset,
    describe_os_error,
    normalize_groups,
    step_name,
    text_attr,
    time_name,
)
from ._store import FrameStore
from ._xdmf import Axis, FieldAttribute, Series, document, number_type, write_atomic

_OPTIONS = ("spatial_dims",)
MEMBER_DIM = "member"
"""Name of the leading ensemble dimension a field may have (saved whole; the XDMF sidecar
shows member 0)."""
_AXES = ("X", "Y", "Z")


def sidecar_path(path: str | os.PathLike) -> Path:
    """The XDMF file written beside an HDF5 field file: `run.h5` -> `run.xdmf`.

    Example:
        >>> sidecar_path("results/cavity.h5")  # PosixPath('results/cavity.xdmf')
    """
    return Path(path).with_suffix(".xdmf")


class FieldStore(FrameStore):
    """An open HDF5 file of grid fields with an XDMF sidecar (see the module docstring).

    Create with `FieldStore.create(path, groups, *, config, coords, spatial_dims=...)`, reopen
    with `FieldStore.open_resume(path, config=...)`; then `append`, `truncate`, `set_attrs`,
    `close` as for every `HDF5Store`. Not thread-safe; one writer per file.

    Example:
        >>> groups = [SaveGroup("fields", 500, {
        ...     "velocity": Variable(("x", "y", "component"), (nx, ny, 2), "float32", "m/s"),
        ...     "vorticity": Variable(("x", "y"), (nx, ny), "float32", "1/s")}),
        ...     SaveGroup("diagnostics", 1, {"energy": Variable((), (), "float64", "J")})]
        >>> store = FieldStore.create("run.h5", groups, config=cfg, time_units="s",
        ...                           coords={"x": (x, "m"), "y": (y, "m")})
        >>> store.append({"fields": ([500], [0.5], {"velocity": u[None], "vorticity": w[None]}),
        ...               "diagnostics": (steps, times, {"energy": e})})
        >>> store.close()   # run.h5 + run.xdmf: open run.xdmf in ParaView
    """

    layout = "fields"

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
        """Create a field file and its sidecar (refuses to replace either unless `overwrite`).

        Args:
            path: HDF5 file to create (`.h5`); the sidecar is `sidecar_path(path)`.
            groups: the save groups. A *field* has every spatial dimension, in any order, plus
                at most one component axis of size 2 or 3 (a vector); shape
                `(nx, ny[, nz][, ncomp])` when declared in that order, optionally preceded by
                an ensemble axis named `MEMBER_DIM` (`"member"`, first). All fields share one
                grid.
                Variables without spatial dimensions (diagnostics) are saved too, HDF5 only.
            config: the run configuration (compared on resume).
            coords: `{dim: (values, units)}`; required for every spatial dimension: 1-D,
                finite, strictly increasing, e.g. `{"x": (x, "m"), "y": (y, "m")}`. Optional
                for other dimensions (e.g. component labels `(["u", "v"], "")`).
            attrs: extra file attributes.
            time_units: units of the time axes.
            overwrite: replace an existing file and sidecar.
            **options: `spatial_dims=`, the names of the grid dimensions in `X, Y[, Z]` order
                (2 or 3 names); default: those of `"x", "y", "z"` that the variables use.

        Raises:
            SimkitInputError: bad fields, coordinates or options, or an existing file or
                sidecar without `overwrite`.
            StoreWriteError: the files cannot be written.
        """
        path = Path(path)
        side = sidecar_path(path)
        if path.suffix.lower() == ".xdmf":
            raise SimkitInputError(
                f"{str(path)!r}: the HDF5 file of a FieldStore cannot end in "
                ".xdmf (that name is its sidecar's); use .h5."
            )
        if side.exists() and not path.exists() and not overwrite:
            raise SimkitInputError(
                f"sidecar {str(side)!r} already exists (without {path.name!r}); pass "
                "overwrite=True (--overwrite) to replace it, or choose another path."
            )
        return super().create(
            path,
            groups,
            config=config,
            coords=coords,
            attrs=attrs,
            time_units=time_units,
            overwrite=overwrite,
            **options,
        )

    # -- layout ---------------------------------------------------------------------------------
    @classmethod
    def stored_groups(
        cls, groups: Sequence[SaveGroup], options: Mapping[str, Any] | None = None
    ) -> list[SaveGroup]:
        """Fields with their axes in `[member,] [z,] y, x[, component]` order (see
        `HDF5Store`)."""
        groups = normalize_groups(groups)
        spatial = _spatial_dims(groups, (options or {}).get("spatial_dims"))
        out = []
        for g in groups:
            variables = {}
            for name, var in g.variables.items():
                member, extra = _split_extra(var.dims, spatial)
                full = sorted(d for d in var.dims if d in spatial) == sorted(spatial)
                # Only well-formed fields are reordered; `create` refuses the rest by name.
                stored = (
                    member + spatial[::-1] + extra
                    if full and len(extra) <= 1 and (not member or var.dims[0] == MEMBER_DIM)
                    else None
                )
                variables[name] = _stored_variable(var, stored)
            out.append(SaveGroup(g.name, g.every, variables))
        return out

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
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise SimkitInputError(
                f"FieldStore got unknown options {unknown}; it accepts {list(_OPTIONS)}."
            )
        spatial, fields = _plan(groups, coords, options.get("spatial_dims"))
        stored = [
            SaveGroup(
                g.name,
                g.every,
                {
                    name: _stored_variable(var, fields.get(name))
                    for name, var in g.variables.items()
                },
            )
            for g in groups
        ]
        super()._build(h5, stored, coords=coords, time_units=time_units, options={})
        for axis, d in zip(_AXES, spatial, strict=False):
            h5[d].attrs["axis"] = axis
        h5.attrs["simkit_fields"] = json.dumps({"spatial_dims": list(spatial), "fields": fields})

    def __init__(self, path: Path, h5: h5py.File, groups: Sequence[SaveGroup]):
        super().__init__(path, h5, groups)
        layout = json.loads(text_attr(h5, "simkit_fields"))
        spatial = layout["spatial_dims"]
        #: `{field: stored dims}`; frames are permuted from declared to stored order on write.
        self._fields: dict[str, list[str]] = layout["fields"]
        self._perm = {}
        for g in self.groups.values():
            for name, var in g.variables.items():
                if name in self._fields:
                    perm = tuple(var.dims.index(d) for d in self._fields[name])
                    if perm != tuple(range(len(perm))):
                        self._perm[name] = (0, *(p + 1 for p in perm))
        self._axes = [Axis(np.asarray(dataset(h5, d)[...]), _path(dataset(h5, d))) for d in spatial]
        # one time_units for every group (`create` takes one)
        self._time_units = str(h5[time_name(next(iter(self.groups)))].attrs.get("units", ""))
        self.sidecar = sidecar_path(path)

    def _post_open(self, options: dict) -> None:
        try:
            self._write_sidecar(self._n)
        except OSError as exc:
            _close_quietly(self._h5)
            raise StoreWriteError(
                f"cannot write the XDMF sidecar {str(self.sidecar)!r}: {describe_os_error(exc)}.",
                self.sidecar,
                exc,
            ) from None

    # -- writing --------------------------------------------------------------------------------
    def _write_rows(
        self,
        group: SaveGroup,
        n: int,
        steps: np.ndarray,
        times: np.ndarray,
        frames: Mapping[str, np.ndarray],
    ) -> None:
        frames = {
            name: (
                np.ascontiguousarray(arr.transpose(self._perm[name])) if name in self._perm else arr
            )
            for name, arr in frames.items()
        }
        super()._write_rows(group, n, steps, times, frames)

    def _after_flush(self) -> None:
        self._write_sidecar(self._n)

    def truncate(self, n_frames: Mapping[str, int]) -> None:
        """Drop frames after the first `n_frames[group]` of each group; the sidecar lists only
        the kept frames (it is rewritten before the HDF5 datasets shrink, so a reader never
        sees a frame that is gone)."""
        keep = {g: min(int(n_frames.get(g, n)), n) for g, n in self._n.items()}
        try:
            if keep != self._n:
                self._write_sidecar(keep)
            super().truncate(n_frames)
        except OSError as exc:
            raise self._write_failed("writing the sidecar of", exc) from None

    def _write_sidecar(self, n_frames: Mapping[str, int]) -> None:
        """Rewrite the sidecar listing the first `n_frames[group]` frames of each field group."""
        series = []
        for g in self.groups.values():
            attributes = [
                self._attribute(name, var)
                for name, var in g.variables.items()
                if name in self._fields
            ]
            if attributes:
                n = n_frames[g.name]
                series.append(
                    Series(
                        dataset(self._h5, time_name(g.name))[:n],
                        dataset(self._h5, step_name(g.name))[:n],
                        step_name(g.name),
                        attributes,
                    )
                )
        write_atomic(self.sidecar, document(series, self._axes, self.path.name, self._time_units))

    def _attribute(self, name: str, var: Variable) -> FieldAttribute:
        ds = dataset(self._h5, name)
        spatial_rank = len(self._axes)
        members = int(ds.shape[1]) if self._fields[name][0] == MEMBER_DIM else 0
        return FieldAttribute(
            name,
            _path(ds),
            tuple(ds.shape[1:]),
            ds.dtype.str,
            ds.shape[-1] if ds.ndim - 1 - bool(members) > spatial_rank else 0,
            var.units,
            members=members,
        )


def _path(ds: h5py.Dataset) -> str:
    """HDF5 path of a dataset reached by name (h5py's `name` is None only for anonymous ones)."""
    assert ds.name is not None
    return ds.name


def _split_extra(dims: Sequence[str], spatial: Sequence[str]) -> tuple[list[str], list[str]]:
    """(`[MEMBER_DIM]` or `[]`, the other non-grid dims) of a variable's dims."""
    member = [MEMBER_DIM] if MEMBER_DIM in dims else []
    return member, [d for d in dims if d not in spatial and d != MEMBER_DIM]


def _spatial_dims(groups: Sequence[SaveGroup], spatial_dims: Sequence[str] | None) -> list[str]:
    """The grid dimensions in X, Y[, Z] order: given, or those of x, y, z the variables use."""
    used = {d for g in groups for v in g.variables.values() for d in v.dims}
    if spatial_dims is None:
        spatial = [d for d in ("x", "y", "z") if d in used]
        if len(spatial) < 2:
            raise SimkitInputError(
                "FieldStore found no 2-D or 3-D fields: the variables use dimensions "
                f"{sorted(used)}. Name the grid dimensions x, y[, z], or pass "
                "spatial_dims=(...) naming them in X, Y[, Z] order."
            )
        return spatial
    if isinstance(spatial_dims, str) or not all(isinstance(d, str) for d in spatial_dims):
        raise SimkitInputError(
            f"spatial_dims must be a sequence of dimension names, got {spatial_dims!r}."
        )
    spatial = list(spatial_dims)
    if len(spatial) not in (2, 3) or len(set(spatial)) != len(spatial):
        raise SimkitInputError(f"spatial_dims must name 2 or 3 distinct dimensions, got {spatial}.")
    missing = [d for d in spatial if d not in used]
    if missing:
        raise SimkitInputError(
            f"spatial_dims {spatial}: no variable has dimension(s) "
            f"{missing} (dimensions used: {sorted(used)})."
        )
    return spatial


def _plan(
    groups: Sequence[SaveGroup], coords: Mapping[str, Any], spatial_dims: Sequence[str] | None
) -> tuple[list[str], dict[str, list[str]]]:
    """Check fields and grid coordinates; return the spatial dims (X, Y[, Z] order) and the
    stored dims of each field (`[z,] y, x[, component]`)."""
    groups = normalize_groups(groups)
    spatial = _spatial_dims(groups, spatial_dims)
    sizes = {}
    for d in spatial:
        sizes[d] = _check_axis(d, coords.get(d))
    fields: dict[str, list[str]] = {}
    for g in groups:
        for name, var in g.variables.items():
            grid = [d for d in var.dims if d in spatial]
            if not grid:
                continue
            if sorted(grid) != sorted(spatial):
                raise SimkitInputError(
                    f"variable {name!r} has dims {var.dims}, but a field must span the whole "
                    f"grid {tuple(spatial)} once each. Give a profile or slice its own "
                    "dimension names to save it as plain (non-grid) data."
                )
            spatial_shape = tuple(var.shape[var.dims.index(d)] for d in spatial)
            if spatial_shape != tuple(sizes[d] for d in spatial):
                raise SimkitInputError(
                    f"field {name!r} has grid shape {spatial_shape} along {tuple(spatial)}, "
                    f"the coordinates have {tuple(sizes[d] for d in spatial)}; every field "
                    "lives on the one grid of the file."
                )
            member, extra = _split_extra(var.dims, spatial)
            if member and var.dims[0] != MEMBER_DIM:
                raise SimkitInputError(
                    f"field {name!r} has dims {var.dims}: the ensemble dimension "
                    f"{MEMBER_DIM!r} must come first."
                )
            if len(extra) > 1:
                raise SimkitInputError(
                    f"field {name!r} has dims {var.dims}: at most one axis besides the grid "
                    f"(a vector component axis) is supported; split {extra} into fields."
                )
            if extra:
                ncomp = var.shape[var.dims.index(extra[0])]
                if ncomp not in (2, 3):
                    raise SimkitInputError(
                        f"field {name!r}: component axis {extra[0]!r} has size {ncomp}; "
                        "FieldStore writes vectors of 2 or 3 components. Save other "
                        "quantities as separate scalar fields."
                    )
            if np.dtype(var.dtype).kind == "b" or number_type(var.dtype) is None:
                raise SimkitInputError(
                    f"field {name!r} has dtype {var.dtype!r}, which XDMF cannot describe; "
                    "use a float or integer dtype (complex fields: save real and imaginary "
                    "parts as two fields)."
                )
            fields[name] = member + spatial[::-1] + extra
    return spatial, fields


def _check_axis(dim: str, spec: Any) -> int:
    """Check the coordinate spec `(values, units)` of a grid dimension; return its length."""
    if spec is None:
        raise SimkitInputError(
            f"grid dimension {dim!r} needs coordinates: pass coords={{{dim!r}: (values, "
            "units)}} with the point positions (1-D, strictly increasing)."
        )
    if not (isinstance(spec, tuple | list) and len(spec) == 2 and isinstance(spec[1], str)):
        raise SimkitInputError(
            f"coords[{dim!r}] must be a pair (values, units), got {type(spec).__name__}."
        )
    values = np.asarray(spec[0])
    if values.ndim != 1 or values.size == 0:
        raise SimkitInputError(
            f"coordinates of grid dimension {dim!r} must be 1-D and "
            f"non-empty, got shape {values.shape}."
        )
    if values.dtype.kind not in "fiu":
        raise SimkitInputError(
            f"coordinates of grid dimension {dim!r} must be real numbers, got dtype {values.dtype}."
        )
    if not np.all(np.isfinite(values)):
        raise SimkitInputError(f"coordinates of grid dimension {dim!r} contain NaN/inf.")
    steps = np.diff(values)
    if np.any(steps <= 0):
        i = int(np.argmax(steps <= 0))
        raise SimkitInputError(
            f"coordinates of grid dimension {dim!r} must be strictly increasing, but "
            f"{dim}[{i}] = {values[i].item()!r} and {dim}[{i + 1}] = "
            f"{values[i + 1].item()!r}. Sort the grid "
            "(and the field data with it)."
        )
    return int(values.size)


def _stored_variable(var: Variable, stored_dims: list[str] | None) -> Variable:
    """The variable as stored: fields with their axes in `[z,] y, x[, component]` order."""
    if stored_dims is None:
        return var
    shape = tuple(var.shape[var.dims.index(d)] for d in stored_dims)
    return Variable(tuple(stored_dims), shape, var.dtype, var.units, var.long_name)
