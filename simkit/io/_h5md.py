"""H5MD 1.1 run writer: particle trajectories and observables for MDAnalysis, VMD, pyh5md...

Layout (H5MD 1.1, https://www.nongnu.org/h5md/h5md.html):

    /h5md                              +version [1, 1]
        author                         +name
        creator                        +name "simkit", +version
    /particles/<particle_group>        (only if a run saves per-particle quantities)
        box                            +dimension D, +boundary ("periodic" | "none") x D
            edges                      (D,) or (D, D) fixed box, or a time-dependent element
                                       {step, time, value (frames, D)} from a variable "box"
        position, velocity, force, image     {step, time, value (frames, N, D)}
        species, id, mass, charge            {step, time, value (frames, N)}
    /observables/<variable>            {step, time, value (frames, *shape)}: every other variable
    /parameters
        config/...                     the run configuration (nested settings as subgroups)
        attrs/...                      the run's attributes (parameters, solver, problem...)
        coords/<dim>                   values of non-time dimensions, when `coords` are given

A time-dependent element is a group with `step` (int64, integration step), `time` (float64,
model time, `unit` attribute from `time_units`) and `value` (one frame per chunk for particle
data, unlimited along the frame axis, `unit` attribute from the variable's units). The elements
of one save group share one `step` and one `time` dataset (HDF5 hard links, as H5MD allows);
elements of other save groups have their own, so observables keep their own rate. H5MD requires
`box/edges` and `image` to share the step/time of `position`: they must be saved in its group.

Guarantees (atomic creation, all-or-nothing appends, write errors that stop the run, readable
while alive) come from `HDF5Store`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any, Self

import h5py
import numpy as np

from .._checks import SimkitInputError
from ._attrs import write_attrs
from ._hdf5 import (
    HDF5Store,
    SaveGroup,
    StoreError,
    Variable,
    dataset,
    simkit_version,
    text_attr,
)

#: per-particle vectors, value shape (frames, N, D).
PARTICLE_VECTORS = ("position", "velocity", "force", "image")
#: per-particle scalars, value shape (frames, N).
PARTICLE_SCALARS = ("species", "id", "mass", "charge")
# dtype kinds the specification allows for each element (Float "f", Integer "iu").
_KINDS = {
    "position": "fiu",
    "velocity": "fiu",
    "force": "fiu",
    "image": "fiu",
    "box": "fiu",
    "species": "iu",
    "id": "iu",
    "mass": "f",
    "charge": "fiu",
}
_BOUNDARIES = ("periodic", "none")
_LAYOUT_ATTR = "simkit_h5md_layout"


class H5MDStore(HDF5Store):
    """An open H5MD 1.1 file of particle trajectories and observables (see the module docstring
    for the layout). Create with `H5MDStore.create`, continue with `H5MDStore.open_resume`, then
    `append`, `truncate`, `set_attrs`, `close` as for every `HDF5Store`. Not thread-safe; one
    writer per file.

    Variables named `position`, `velocity`, `force`, `image` (shape `(N, D)`) and `species`,
    `id`, `mass`, `charge` (shape `(N,)`) are stored under `/particles`; a variable named `box`
    (shape `(D,)` cuboid edges, or `(D, D)` triclinic edge vectors as rows) is the
    time-dependent box; every other variable is an observable.

    Example:
        >>> groups = [SaveGroup("trajectory", 1000, {
        ...     "position": Variable(("particle", "spatial"), (64, 3), "float32", units="nm"),
        ...     "velocity": Variable(("particle", "spatial"), (64, 3), "float32",
        ...                          units="nm ps-1")}),
        ...     SaveGroup("thermo", 10, {"kinetic_energy": Variable((), (), "float64",
        ...                                                         units="kJ mol-1")})]
        >>> store = H5MDStore.create("run.h5", groups, config=cfg, time_units="ps",
        ...                          box=[5.0, 5.0, 5.0])
        >>> store.append({"trajectory": (steps, times, {"position": x, "velocity": v})})
    """

    layout = "h5md"

    def __init__(self, path, h5: h5py.File, groups: Sequence[SaveGroup]):
        super().__init__(path, h5, groups)
        layout = _read_layout(h5)
        self._elements: dict[str, str] = layout["elements"]
        self._clocks: dict[str, str] = layout["clocks"]
        self._repeat_box: dict | None = layout["repeat_box"]

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        groups: Sequence[SaveGroup] | Mapping[str, Any],
        *,
        config: dict,
        coords: dict[str, tuple[Any, str]] | None = None,
        attrs: dict[str, Any] | None = None,
        time_units: str = "",
        overwrite: bool = False,
        particle_group: str = "all",
        box: Any = None,
        boundary: str | Sequence[str] = "periodic",
        repeat_box: bool | None = None,
        author: str | None = None,
    ) -> Self:
        """Create a new H5MD file (refuses to replace an existing one unless `overwrite`).

        Args:
            path: file to create; its folder must exist.
            groups: the save groups (see `SaveGroup`); each variable becomes one H5MD element.
            config: the run configuration; stored as JSON (compared by `open_resume`) and as a
                readable tree under `/parameters/config`.
            coords: values and units of non-time dimensions, stored under
                `/parameters/coords` (H5MD has no coordinate variables).
            attrs: extra attributes (parameters, solver, problem...): file attributes, and a
                readable tree under `/parameters/attrs`.
            time_units: units of the `time` datasets, an ASCII H5MD unit string such as "ps".
            overwrite: replace an existing file (atomically, once the new one is complete).
            particle_group: name of the subgroup of `/particles` ("all"). MDAnalysis 2.11 builds
                a Universe from the file alone only if it is "trajectory".
            box: fixed box edges, `(D,)` (cuboid) or `(D, D)` (triclinic, edge vectors as rows),
                in the units of `position`; stored as the dataset `box/edges`. Give either this
                or a variable named `box`, not both.
            boundary: "periodic", "none", or one of those per spatial dimension. A periodic
                dimension needs a box.
            repeat_box: store the fixed `box` once per frame of position's group, as a
                time-dependent `box/edges` element sharing position's step/time (legal H5MD as
                well). Default: True when `box` is given, because MDAnalysis 2.11 cannot read a
                fixed `box/edges` dataset (it always looks for `box/edges/value`); False writes
                the spec's fixed-box form, which h5py and other H5MD readers take.
            author: the `/h5md/author` name (default: the USER environment variable, else
                "unknown").

        Raises:
            SimkitInputError: inconsistent particle variables (particle count, dimension,
                dtype), a periodic boundary without box, box/boundary of another dimension,
                a box or image saved in another group than position, non-ASCII units, an
                existing file without `overwrite`, a missing folder.
            StoreWriteError: the file cannot be written (read-only folder, full disk...).
        """
        if not isinstance(particle_group, str) or not particle_group or "/" in particle_group:
            raise SimkitInputError(
                f"particle_group must be a non-empty name without '/', got {particle_group!r}."
            )
        if repeat_box is None:
            repeat_box = box is not None
        return super().create(
            path,
            groups,
            config=config,
            coords=coords,
            attrs=attrs,
            time_units=time_units,
            overwrite=overwrite,
            particle_group=particle_group,
            box=box,
            boundary=boundary,
            repeat_box=repeat_box,
            author=author,
            parameters={"config": config, "attrs": dict(attrs or {})},
        )

    # -- layout hooks ---------------------------------------------------------------------------
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
        plan = _plan(
            groups,
            particle_group=options["particle_group"],
            box=options["box"],
            boundary=options["boundary"],
            repeat_box=options["repeat_box"],
        )
        _check_unit("time_units", time_units)

        meta = h5.create_group("h5md")
        meta.attrs["version"] = np.array([1, 1], dtype=np.int32)
        author = options["author"] or os.environ.get("USER") or "unknown"
        _string_attr(meta.create_group("author"), "name", author)
        creator = meta.create_group("creator")
        _string_attr(creator, "name", "simkit")
        _string_attr(creator, "version", simkit_version())

        if plan.particles:
            box = h5.create_group(f"{plan.particles}/box")
            box.attrs["dimension"] = np.int32(plan.dim)
            box.attrs["boundary"] = np.array([b.encode() for b in plan.boundary], dtype="S8")
            if plan.fixed_box is not None and not plan.repeat_box:
                edges = box.create_dataset("edges", data=plan.fixed_box)
                _unit_attr(edges, plan.length_units)

        for g in groups:
            clock = plan.clocks[g.name]
            members = [(plan.elements[name], g.variables[name]) for name in _element_order(g)]
            if plan.repeat_box and g.name == plan.repeat_box["group"]:
                # not a variable: the fixed box, written with every frame of position's group
                fixed = plan.fixed_box
                assert fixed is not None  # _plan sets repeat_box only with a fixed box
                members.append(
                    (
                        plan.repeat_box["path"],
                        Variable(
                            ("spatial",) * fixed.ndim,
                            fixed.shape,
                            fixed.dtype.name,
                            units=plan.length_units,
                        ),
                    )
                )
            for path, var in members:
                element = h5.create_group(path)
                if path == clock:
                    element.create_dataset(
                        "step", shape=(0,), maxshape=(None,), dtype="i8", chunks=(1024,)
                    )
                    time = element.create_dataset(
                        "time", shape=(0,), maxshape=(None,), dtype="f8", chunks=(1024,)
                    )
                    _unit_attr(time, time_units)
                else:  # same save group, same sampling: hard links to one step/time pair
                    element["step"] = dataset(h5, f"{clock}/step")
                    element["time"] = dataset(h5, f"{clock}/time")
                value = element.create_dataset(
                    "value",
                    shape=(0, *var.shape),
                    maxshape=(None, *var.shape),
                    dtype=np.dtype(var.dtype),
                    chunks=_chunks(var, per_frame=path.startswith("particles/")),
                )
                _unit_attr(value, var.units)
                if var.long_name:
                    value.attrs["long_name"] = var.long_name

        params = h5.create_group("parameters")
        _write_tree(params.create_group("config"), options["parameters"]["config"])
        _write_tree(params.create_group("attrs"), options["parameters"]["attrs"])
        if coords:
            _write_coords(params.create_group("coords"), groups, coords)
        h5.attrs[_LAYOUT_ATTR] = json.dumps(
            {"elements": plan.elements, "clocks": plan.clocks, "repeat_box": plan.repeat_box}
        )

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
            value = dataset(self._h5, f"{self._elements[name]}/value")
            value.resize(n + k, axis=0)
            value[n : n + k] = arr
        if self._repeat_box and group.name == self._repeat_box["group"]:
            value = dataset(self._h5, f"{self._repeat_box['path']}/value")
            value.resize(n + k, axis=0)
            value[n : n + k] = np.broadcast_to(self._repeat_box["edges"], value.shape[1:])
        # step/time last (shared by every element of the group): a reader that sees frame i in
        # `time` finds the values of every element of the group already there.
        clock = self._clocks[group.name]
        for key, values in (("step", steps), ("time", times)):
            ds = dataset(self._h5, f"{clock}/{key}")
            ds.resize((n + k,))
            ds[n : n + k] = values

    def _resize_group(self, group: SaveGroup, n: int) -> None:
        clock = self._clocks[group.name]
        dataset(self._h5, f"{clock}/time").resize((n,))
        dataset(self._h5, f"{clock}/step").resize((n,))
        for name in group.variables:
            dataset(self._h5, f"{self._elements[name]}/value").resize(n, axis=0)
        if self._repeat_box and group.name == self._repeat_box["group"]:
            dataset(self._h5, f"{self._repeat_box['path']}/value").resize(n, axis=0)

    @classmethod
    def _frames_in_file(cls, h5: h5py.File) -> dict[str, int]:
        layout = _read_layout(h5)
        out = {}
        for g in cls._groups_in_file(h5):
            clock = layout["clocks"][g.name]
            n = min(dataset(h5, f"{clock}/step").shape[0], dataset(h5, f"{clock}/time").shape[0])
            paths = [layout["elements"][name] for name in g.variables]
            if layout["repeat_box"] and g.name == layout["repeat_box"]["group"]:
                paths.append(layout["repeat_box"]["path"])
            for path in paths:
                path = f"{path}/value"
                frames = dataset(h5, path).shape[0]
                if frames < n:
                    raise StoreError(
                        f"dataset {path!r} in {h5.filename!r} is truncated "
                        f"({frames} frames, its time axis has {n})."
                    )
            out[g.name] = n
        return out

    @classmethod
    def _step_time(cls, h5: h5py.File, group: SaveGroup, i: int) -> tuple[int, float]:
        clock = _read_layout(h5)["clocks"][group.name]
        return int(dataset(h5, f"{clock}/step")[i]), float(dataset(h5, f"{clock}/time")[i])

    # -- writing --------------------------------------------------------------------------------
    def append(self, chunk: Mapping[str, tuple[Any, Any, Mapping[str, Any]]]) -> None:
        """Append frames to one or more groups and flush; all or nothing (see
        `HDF5Store.append`). H5MD requires increasing `step` and `time`: each group's steps
        must increase strictly (and times never decrease), also across calls.

        Raises:
            SimkitInputError: steps/times that do not increase, and everything
                `HDF5Store.append` refuses (nothing is written).
            StoreWriteError: the write failed; every group is back at its previous length.
        """
        self._check_writable()
        for name, (steps, times, _) in chunk.items():
            if name not in self.groups:
                continue  # the base names the unknown group
            steps = np.asarray(steps).reshape(-1)
            times = np.asarray(times, dtype=np.float64).reshape(-1)
            n = self._n[name]
            if n and len(steps):
                clock = self._clocks[name]
                steps = np.concatenate([dataset(self._h5, f"{clock}/step")[n - 1 : n], steps])
                times = np.concatenate([dataset(self._h5, f"{clock}/time")[n - 1 : n], times])
            if np.any(np.diff(steps) <= 0) or (
                len(times) == len(steps) and np.any(np.diff(times) < 0)
            ):
                raise SimkitInputError(
                    f"group {name!r}: H5MD needs increasing steps and times, got steps "
                    f"{steps.tolist()[:8]} and times {times.tolist()[:8]} (the first is the "
                    "last frame already in the file, if any). On resume, truncate the file to "
                    "the checkpoint before appending."
                )
        super().append(chunk)


class _Plan:
    """Where each variable goes, and the box (the result of `_plan`)."""

    def __init__(self):
        self.elements: dict[str, str] = {}  # variable -> element path
        self.clocks: dict[str, str] = {}  # save group -> element path that holds step/time
        self.particles = ""  # "particles/<particle_group>" or "" without particle variables
        self.dim = 0
        self.boundary: list[str] = []
        self.fixed_box: np.ndarray | None = None
        self.repeat_box: dict | None = None  # {"group", "path", "edges"} with repeat_box=True
        self.length_units = ""


def _plan(
    groups: Sequence[SaveGroup],
    *,
    particle_group: str,
    box: Any,
    boundary: str | Sequence[str],
    repeat_box: bool,
) -> _Plan:
    """Validate the variables against H5MD and decide where each one goes."""
    plan = _Plan()
    if repeat_box and box is None:
        raise SimkitInputError("repeat_box=True needs a fixed box (box=...).")
    owner: dict[str, SaveGroup] = {}
    particle: list[str] = []
    for g in groups:
        if not g.variables:
            raise SimkitInputError(
                f"save group {g.name!r} has no variables; H5MD stores step and "
                "time per element, so every group needs at least one."
            )
        for name, var in g.variables.items():
            if not name or "/" in name:
                raise SimkitInputError(
                    f"variable name {name!r} cannot be an H5MD element name "
                    "(empty or containing '/')."
                )
            _check_unit(f"units of {name!r}", var.units)
            owner[name] = g
            if name in PARTICLE_VECTORS or name in PARTICLE_SCALARS:
                particle.append(name)
    particle.sort(key=(PARTICLE_VECTORS + PARTICLE_SCALARS).index)
    has_box_var = "box" in owner

    # Particle count N and dimension D: every particle variable must agree.
    n_particles = dim = None
    n_from = dim_from = ""
    for name in particle:
        var = owner[name].variables[name]
        vector = name in PARTICLE_VECTORS
        expected = "(N, D): N particles in D dimensions" if vector else "(N,): one per particle"
        if len(var.shape) != (2 if vector else 1):
            raise SimkitInputError(
                f"particle variable {name!r} has shape {var.shape}; H5MD stores {name!r} per "
                f"particle with shape {expected}. Rename the variable to save it as an "
                "observable instead."
            )
        if n_particles is None:
            n_particles, n_from = var.shape[0], name
        elif var.shape[0] != n_particles:
            raise SimkitInputError(
                f"particle variable {name!r} has shape {var.shape}, i.e. {var.shape[0]} "
                f"particles, but {n_from!r} has {n_particles}; every particle variable must "
                f"have {n_particles} particles along its first axis."
            )
        if vector:
            if dim is None:
                dim, dim_from = var.shape[1], name
            elif var.shape[1] != dim:
                raise SimkitInputError(
                    f"particle variable {name!r} has shape {var.shape}, expected "
                    f"({n_particles}, {dim}): {dim_from!r} has {dim} spatial dimensions."
                )
        _check_kind(name, var.dtype)

    if not particle:
        if has_box_var or box is not None:
            raise SimkitInputError(
                "a box belongs to a particle group, but no particle variable "
                f"is saved (one of {PARTICLE_VECTORS + PARTICLE_SCALARS})."
            )
        plan.elements = {name: f"observables/{name}" for name in owner}
        plan.clocks = {g.name: plan.elements[_element_order(g)[0]] for g in groups}
        return plan

    plan.particles = f"particles/{particle_group}"
    if "position" in owner:
        plan.length_units = owner["position"].variables["position"].units
        for name in ("image", "box"):
            if name in owner and owner[name] is not owner["position"]:
                raise SimkitInputError(
                    f"{name!r} is saved in group {owner[name].name!r} but 'position' in "
                    f"{owner['position'].name!r}; H5MD requires {name!r} to share the step and "
                    "time of 'position': save them in the same group."
                )
    elif "image" in owner:
        raise SimkitInputError(
            "H5MD stores 'image' only together with 'position'; save 'position' too."
        )

    # The box: a fixed `box` option or a time-dependent `box` variable, and its dimension.
    if has_box_var and box is not None:
        raise SimkitInputError(
            "both a fixed box (box=...) and a variable 'box' are given; "
            "keep one (the variable for a box that changes in time)."
        )
    box_shape = None
    if has_box_var:
        var = owner["box"].variables["box"]
        box_shape, what = var.shape, f"variable 'box' has shape {var.shape}"
        _check_kind("box", var.dtype)
    elif box is not None:
        fixed = np.asarray(box)
        if fixed.dtype.kind not in "fiu" or not np.all(np.isfinite(fixed)):
            raise SimkitInputError(f"box must be finite numbers, got {box!r}.")
        box_shape, what = fixed.shape, f"box has shape {fixed.shape}"
        plan.fixed_box = fixed
    if box_shape is not None:
        if len(box_shape) not in (1, 2) or (len(box_shape) == 2 and box_shape[0] != box_shape[1]):
            raise SimkitInputError(
                f"{what}; expected (D,) edge lengths of a cuboid box or "
                "(D, D) edge vectors (rows) of a triclinic box."
            )
        if dim is None:
            dim, dim_from = box_shape[0], "the box"
        elif box_shape[0] != dim:
            raise SimkitInputError(
                f"{what}, expected ({dim},) or ({dim}, {dim}): {dim_from!r} "
                f"has {dim} spatial dimensions."
            )

    if isinstance(boundary, str):
        if dim is None:
            raise SimkitInputError(
                "cannot tell the spatial dimension of the box: no position/velocity/force/image "
                "variable and no box; give boundary per dimension, e.g. ['none', 'none']."
            )
        bounds = [boundary] * dim
    else:
        bounds = [str(b) for b in boundary]
        if dim is not None and len(bounds) != dim:
            raise SimkitInputError(
                f"boundary {list(bounds)} has {len(bounds)} entries, but "
                f"{dim_from!r} has {dim} spatial dimensions."
            )
        dim = len(bounds)
    if not bounds or any(b not in _BOUNDARIES for b in bounds):
        raise SimkitInputError(
            f"boundary must be 'periodic' or 'none' (or one of those per "
            f"dimension), got {boundary!r}."
        )
    if "periodic" in bounds and box_shape is None:
        raise SimkitInputError(
            f"boundary {bounds} is periodic but there is no box: pass box=<edges> for a fixed "
            "box, save a variable 'box' for one that changes, or use boundary='none'."
        )
    if plan.fixed_box is not None and plan.fixed_box.ndim == 1:
        bad = [i for i, b in enumerate(bounds) if b == "periodic" and not plan.fixed_box[i] > 0]
        if bad:
            raise SimkitInputError(
                f"box edges {plan.fixed_box.tolist()} must be > 0 along "
                f"the periodic dimensions {bad}."
            )
    plan.dim, plan.boundary = dim, bounds

    for name in owner:
        if name in particle:
            plan.elements[name] = f"{plan.particles}/{name}"
        elif name == "box":
            plan.elements[name] = f"{plan.particles}/box/edges"
        else:
            plan.elements[name] = f"observables/{name}"
    plan.clocks = {g.name: plan.elements[_element_order(g)[0]] for g in groups}
    if repeat_box:
        assert plan.fixed_box is not None  # repeat_box needs box (checked above)
        first = particle[0]  # position if saved: the box must share its step/time
        plan.repeat_box = {
            "group": owner[first].name,
            "path": f"{plan.particles}/box/edges",
            "edges": plan.fixed_box.tolist(),
        }
    return plan


def _element_order(group: SaveGroup) -> list[str]:
    """Variables of a group, position first (box and image hard-link its step/time), then the
    other particle data, then the rest in their given order."""
    rank = {name: i for i, name in enumerate(PARTICLE_VECTORS + PARTICLE_SCALARS + ("box",))}
    return sorted(group.variables, key=lambda v: rank.get(v, len(rank)))


def _chunks(var, *, per_frame: bool) -> tuple[int, ...]:
    """One frame per chunk for particle data (readers load one frame at a time); observables,
    often scalars saved every few steps, get chunks of about 8 KiB."""
    if per_frame and var.shape:
        return (1, *var.shape)
    frame_bytes = int(np.prod(var.shape, dtype=np.int64)) * np.dtype(var.dtype).itemsize
    return (max(1, min(1024, 8192 // max(frame_bytes, 1))), *var.shape)


def _check_kind(name: str, dtype: str) -> None:
    kinds = _KINDS[name]
    if np.dtype(dtype).kind not in kinds:
        allowed = {"f": "float", "iu": "integer", "fiu": "float or integer"}[kinds]
        raise SimkitInputError(f"H5MD stores {name!r} as {allowed}, got dtype {dtype!r}.")


def _check_unit(what: str, units: str) -> None:
    if not units.isascii():
        raise SimkitInputError(
            f"{what} is {units!r}; H5MD unit strings are ASCII (e.g. 'Ang' or 'nm', "
            "'nm ps-1', 'kJ mol-1'; see https://www.nongnu.org/h5md/modules/units.html)."
        )


def _unit_attr(ds: h5py.Dataset, units: str) -> None:
    """The H5MD `unit` attribute: scalar variable-length ASCII string (units module)."""
    if units:
        ds.attrs.create("unit", data=units, dtype=h5py.string_dtype("ascii"))


def _string_attr(obj: h5py.HLObject, key: str, text: str) -> None:
    """A scalar fixed-length string attribute, as H5MD requires for the `h5md` metadata."""
    raw = text.encode("utf-8")
    dtype = h5py.string_dtype("ascii" if text.isascii() else "utf-8", max(len(raw), 1))
    obj.attrs.create(key, data=np.bytes_(raw), dtype=dtype)


def _write_tree(group: h5py.Group, settings: Mapping[str, Any]) -> None:
    """Nested settings as HDF5: a dict becomes a subgroup, anything else an attribute."""
    for key, value in settings.items():
        key = str(key)
        if isinstance(value, Mapping) and value:
            _write_tree(group.create_group(key.replace("/", "_")), value)
        else:
            write_attrs(group, {key: value})


def _write_coords(group: h5py.Group, groups: Sequence[SaveGroup], coords: dict) -> None:
    sizes = {
        d: n
        for g in groups
        for var in g.variables.values()
        for d, n in zip(var.dims, var.shape, strict=False)
    }
    for dim, (values, units) in coords.items():
        if dim not in sizes:
            raise SimkitInputError(
                f"coordinate {dim!r} is not a dimension of any variable "
                f"(dimensions: {sorted(sizes)})."
            )
        values = np.asarray(values)
        if values.shape != (sizes[dim],):
            raise SimkitInputError(
                f"coordinate {dim!r} must have shape ({sizes[dim]},), got {values.shape}."
            )
        if values.dtype.kind == "U":
            ds = group.create_dataset(dim, data=values.astype(object), dtype=h5py.string_dtype())
        else:
            ds = group.create_dataset(dim, data=values)
        _check_unit(f"units of coordinate {dim!r}", units)
        _unit_attr(ds, units)


def _read_layout(h5: h5py.File) -> dict:
    try:
        return json.loads(text_attr(h5, _LAYOUT_ATTR))
    except (KeyError, ValueError):
        raise StoreError(
            f"{h5.filename!r} has no readable {_LAYOUT_ATTR!r} attribute; it was "
            "not written by H5MDStore."
        ) from None
