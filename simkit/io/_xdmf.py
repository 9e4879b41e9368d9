"""XDMF (2 and 3) text for grid fields stored in HDF5, and its atomic replacement on disk.

Pure string building, no HDF5 access: `FieldStore` gathers the numbers and calls these.

Axis conventions (the part that is easy to get wrong):

- XDMF lists structured dimensions slowest-varying first, i.e. `Z Y X` with X fastest; the
  `ORIGIN_DXDYDZ` origin and spacing are listed in the same `Z Y X` order, while `VXVYVZ` lists
  the coordinate arrays `X, Y, Z`.
- The HDF5 datasets are therefore stored `(time, [z,] y, x[, component])`, so one frame is a
  C-order block with x fastest, exactly what a `3DCoRectMesh`/`3DRectMesh` of dimensions
  `nz ny nx` expects; no transposition is needed when reading.
- A 2-D grid is written as a 3-D grid one point thick (dimensions `1 ny nx`), the form
  `vtkXdmfReader` (ParaView's "XDMF Reader") reads as image data.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np

#: XDMF NumberType and Precision of each numpy dtype kind and size.
_NUMBER_TYPES = {
    ("f", 4): ("Float", 4),
    ("f", 8): ("Float", 8),
    ("i", 1): ("Char", 1),
    ("u", 1): ("UChar", 1),
    ("i", 2): ("Int", 2),
    ("u", 2): ("UInt", 2),
    ("i", 4): ("Int", 4),
    ("u", 4): ("UInt", 4),
    ("i", 8): ("Int", 8),
    ("u", 8): ("UInt", 8),
}


def number_type(dtype: np.dtype | str) -> tuple[str, int] | None:
    """XDMF `(NumberType, Precision)` of a numpy dtype, or None if XDMF cannot describe it."""
    dtype = np.dtype(dtype)
    return _NUMBER_TYPES.get((dtype.kind, dtype.itemsize))


def _dims(shape: Sequence[int]) -> str:
    return " ".join(str(int(n)) for n in shape)


def _num(value: float) -> str:
    return repr(float(value))  # shortest text that reads back to the same double


@dataclass(frozen=True)
class Axis:
    """One grid axis as the sidecar describes it.

    Attributes:
        values: point coordinates, shape `(n,)`, strictly increasing (length units of the run).
        dataset: HDF5 path of the coordinate dataset (`/x`), referenced by non-uniform meshes.
    """

    values: np.ndarray
    dataset: str

    def uniform_spacing(self) -> float | None:
        """The spacing if the points are evenly spaced (to the precision they are stored in),
        else None. A single point has spacing 1."""
        v = np.asarray(self.values, dtype=np.float64)
        if v.size == 1:
            return 1.0
        step = (v[-1] - v[0]) / (v.size - 1)
        ideal = v[0] + step * np.arange(v.size)
        eps = np.finfo(self.values.dtype).eps if self.values.dtype.kind == "f" else 0.0
        tol = 1e-9 * abs(step) + 4 * eps * float(np.max(np.abs(v)))
        return float(step) if np.max(np.abs(v - ideal)) <= tol else None


def mesh_xml(axes: Sequence[Axis], h5_name: str, indent: str) -> str:
    """Topology and Geometry elements of a 2-D or 3-D rectilinear grid.

    Args:
        axes: the grid axes in `X, Y[, Z]` order (2 or 3).
        h5_name: file name of the HDF5 file, relative to the sidecar.
        indent: whitespace put before each line.

    Returns:
        `3DCoRectMesh` + `ORIGIN_DXDYDZ` if every axis is evenly spaced, else `3DRectMesh` +
        `VXVYVZ` referencing the coordinate datasets. A 2-D grid gets a Z axis of one point
        at z = 0.
    """
    dims = [len(a.values) for a in axes][::-1]  # Z Y X, slowest first
    dims = [1] * (3 - len(dims)) + dims
    spacings = [s for a in axes if (s := a.uniform_spacing()) is not None]
    lines = []
    if len(spacings) == len(axes):
        origin = [float(a.values[0]) for a in axes] + [0.0] * (3 - len(axes))
        spacing = spacings + [1.0] * (3 - len(axes))
        lines += [
            f'<Topology TopologyType="3DCoRectMesh" Dimensions="{_dims(dims)}"/>',
            '<Geometry GeometryType="ORIGIN_DXDYDZ">',
            '  <DataItem Name="Origin" Dimensions="3" NumberType="Float" Precision="8" '
            'Format="XML">' + " ".join(_num(v) for v in origin[::-1]) + "</DataItem>",
            '  <DataItem Name="Spacing" Dimensions="3" NumberType="Float" Precision="8" '
            'Format="XML">' + " ".join(_num(v) for v in spacing[::-1]) + "</DataItem>",
            "</Geometry>",
        ]
    else:
        lines += [
            f'<Topology TopologyType="3DRectMesh" Dimensions="{_dims(dims)}"/>',
            '<Geometry GeometryType="VXVYVZ">',
        ]
        for a in axes:
            ntype, prec = number_type(a.values.dtype) or ("Float", 8)
            lines.append(
                f'  <DataItem Dimensions="{len(a.values)}" NumberType="{ntype}" '
                f'Precision="{prec}" Format="HDF">'
                f"{escape(h5_name)}:{escape(a.dataset)}</DataItem>"
            )
        if len(axes) == 2:
            lines.append(
                '  <DataItem Dimensions="1" NumberType="Float" Precision="8" '
                'Format="XML">0.0</DataItem>'
            )
        lines.append("</Geometry>")
    return "".join(f"{indent}{line}\n" for line in lines)


@dataclass(frozen=True)
class FieldAttribute:
    """One field of the grid as the sidecar describes it.

    Attributes:
        name: attribute name shown by the reader.
        dataset: HDF5 path of the dataset, shaped `(time, [member,] [z,] y, x[, component])`.
        frame_shape: shape of one frame, `([nmember,] [nz,] ny, nx[, ncomp])`.
        dtype: numpy dtype of the dataset.
        components: 0 for a scalar, 2 or 3 for a vector.
        units: units string ("" if unknown).
        members: size of a leading ensemble axis of the frame (0: none); the attribute reads
            member 0.
    """

    name: str
    dataset: str
    frame_shape: tuple[int, ...]
    dtype: str
    components: int
    units: str = ""
    members: int = 0


def attribute_template(
    attr: FieldAttribute, h5_name: str, n_frames: int, indent: str
) -> tuple[str, str]:
    """A node-centred Attribute reading one frame of `attr.dataset` via a HyperSlab, as
    `(head, tail)`: the Attribute of frame `i` is `head + str(i) + tail` (the frame index is
    the only part that varies, so long series are formatted quickly).

    Args:
        attr: the field.
        h5_name: file name of the HDF5 file, relative to the sidecar.
        n_frames: frames of the dataset listed in the sidecar (its declared leading extent).
        indent: whitespace put before each line.

    A 2-component vector is declared as a `Vector` of 2 components: `vtkXdmfReader` pads it
    to 3 components with z = 0 (what glyphs and stream tracers need).
    """
    full = (n_frames, *attr.frame_shape)
    rank = len(full)
    grid_shape = attr.frame_shape[1:] if attr.members else attr.frame_shape
    count = (1, *((1,) if attr.members else ()), *grid_shape)  # member 0 of an ensemble
    # The value block: 2-D fields read as "1 ny nx" (the one-point-thick z of the mesh).
    spatial_rank = len(grid_shape) - (1 if attr.components else 0)
    block = (1, *grid_shape) if spatial_rank == 2 else grid_shape
    described = number_type(attr.dtype)
    assert described is not None  # checked when the store was created
    ntype, prec = described
    kind = "Vector" if attr.components else "Scalar"
    head = [f'<Attribute Name={quoteattr(attr.name)} AttributeType="{kind}" Center="Node">']
    if attr.units:
        head.append(f'  <Information Name="units" Value={quoteattr(attr.units)}/>')
    head += [
        f'  <DataItem ItemType="HyperSlab" Type="HyperSlab" Dimensions="{_dims(block)}">',
        f'    <DataItem Dimensions="3 {rank}" Format="XML">',
    ]
    tail = [
        f"{' 0' * (rank - 1)}  {_dims((1,) * rank)}  {_dims(count)}</DataItem>",
        f'    <DataItem Dimensions="{_dims(full)}" NumberType="{ntype}" '
        f'Precision="{prec}" Format="HDF">{escape(h5_name)}:{escape(attr.dataset)}'
        "</DataItem>",
        "  </DataItem>",
        "</Attribute>",
    ]
    return (
        indent + f"\n{indent}".join(head),
        tail[0] + "".join(f"\n{indent}{line}" for line in tail[1:]) + "\n",
    )


@dataclass(frozen=True)
class Series:
    """The frames of one save group that holds fields.

    Attributes:
        times: `(n,)` model time of each frame (`time_units`), non-decreasing.
        steps: `(n,)` integration step of each frame.
        step_name: name of the group's step axis (`step`, `step_<group>`), shown per Grid.
        attributes: the group's fields.
    """

    times: np.ndarray
    steps: np.ndarray
    step_name: str
    attributes: Sequence[FieldAttribute]


def document(
    series: Sequence[Series], axes: Sequence[Axis], h5_name: str, time_units: str = ""
) -> str:
    """The whole sidecar: one Domain holding one Temporal collection named "fields".

    Args:
        series: the save groups holding fields, each with the frames to list.
        axes: the grid axes in `X, Y[, Z]` order.
        h5_name: file name of the HDF5 file, relative to the sidecar.
        time_units: units of the times (recorded as Information).

    The collection has one Grid per distinct frame time of all groups (sorted); each Grid
    holds, for every group, its latest frame at or before that time. With one field group that
    is exactly one Grid per frame. (Separate collections per group are not an option:
    `vtkXdmfReader` then reports unsorted time steps and empty blocks between a group's frames.)

    If no group has a frame yet, the Domain holds one Grid with the mesh only (no fields, no
    time): `vtkXdmfReader` crashes on an empty Domain or an empty Temporal collection, and this
    way ParaView shows the grid of a run that has just started.
    """
    out = [
        '<?xml version="1.0" ?>\n',
        '<!DOCTYPE Xdmf SYSTEM "Xdmf.dtd" []>\n',
        '<Xdmf Version="3.0">\n',
        "  <Domain>\n",
    ]
    series = [s for s in series if len(s.times)]
    if not series:
        out += [
            '    <Grid Name="grid (no frames yet)" GridType="Uniform">\n',
            mesh_xml(axes, h5_name, indent=" " * 6),
            "    </Grid>\n",
            "  </Domain>\n</Xdmf>\n",
        ]
        return "".join(out)
    out.append('    <Grid Name="fields" GridType="Collection" CollectionType="Temporal">\n')
    if time_units:
        out.append(f'      <Information Name="time_units" Value={quoteattr(time_units)}/>\n')
    mesh = mesh_xml(axes, h5_name, indent=" " * 8)
    times = np.unique(np.concatenate([np.asarray(s.times, dtype=np.float64) for s in series]))
    # frame of each series shown at each time: its latest at or before it (-1: none yet)
    shown = [np.searchsorted(s.times, times, side="right") - 1 for s in series]
    templates = [
        [attribute_template(a, h5_name, len(s.times), " " * 8) for a in s.attributes]
        for s in series
    ]
    step_info = [f"        <Information Name={quoteattr(s.step_name)} Value=" for s in series]
    for k, t in enumerate(times.tolist()):
        out.append(
            f'      <Grid Name="frame {k}" GridType="Uniform">\n        <Time Value="{t!r}"/>\n'
        )
        frames = [int(idx[k]) for idx in shown]
        for s, info, i in zip(series, step_info, frames, strict=False):
            if i >= 0:
                out.append(f'{info}"{int(s.steps[i])}"/>\n')
        out.append(mesh)
        for tpl, i in zip(templates, frames, strict=False):
            if i >= 0:
                index = str(i)
                out.extend(head + index + tail for head, tail in tpl)
        out.append("      </Grid>\n")
    out.append("    </Grid>\n  </Domain>\n</Xdmf>\n")
    return "".join(out)


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` by `text` so that readers see the old or the new file, never a part.

    Raises:
        OSError: the file could not be written (nothing changed; no temporary file is left).
    """
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
