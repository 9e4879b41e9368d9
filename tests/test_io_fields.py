"""FieldStore: grid fields in HDF5 + XDMF sidecar, read back by VTK's XDMF reader and xarray.

The VTK tests use `vtkXdmfReader` (the Xdmf2 reader ParaView calls "XDMF Reader"; the `vtk`
wheel has no Xdmf3 reader). Grids are deliberately lopsided (nx != ny != nz, non-unit spacing,
nonzero origin, random values), so a transposed axis or a wrong origin fails.
"""

import dataclasses
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr

from simkit import SimkitInputError
from simkit.io import FrameStore, SaveGroup, StoreError, StoreWriteError, Variable
from simkit.io._fields import FieldStore, sidecar_path

sys.path.insert(0, str(Path(__file__).parent))
from _procs import signal_when, spawn  # noqa: E402


@dataclasses.dataclass
class VTKFrame:
    time: float
    kind: str  # VTK data set class
    points: np.ndarray  # (n_points, 3)
    arrays: dict  # point data by name, (n_points[, n_comp])


def read_vtk(xdmf: Path) -> list[VTKFrame]:
    """Every time step of an XDMF file as vtkXdmfReader gives it (fails on reader errors)."""
    vtk = pytest.importorskip("vtk")
    from vtkmodules.util.numpy_support import vtk_to_numpy

    reader = vtk.vtkXdmfReader()
    reader.SetFileName(str(xdmf))
    errors = []
    reader.AddObserver("ErrorEvent", lambda obj, event: errors.append(event))
    reader.UpdateInformation()
    times = reader.GetOutputInformation(0).Get(vtk.vtkStreamingDemandDrivenPipeline.TIME_STEPS())
    frames = []
    for t in times or ():
        reader.UpdateTimeStep(t)
        out = reader.GetOutputDataObject(0)
        pd = out.GetPointData()
        frames.append(
            VTKFrame(
                t,
                out.GetClassName(),
                np.array([out.GetPoint(i) for i in range(out.GetNumberOfPoints())]),
                {
                    pd.GetArrayName(i): vtk_to_numpy(pd.GetArray(i)).copy()
                    for i in range(pd.GetNumberOfArrays())
                },
            )
        )
    assert not errors
    return frames


def grid_points(*axes) -> np.ndarray:
    """(n_points, 3) positions in VTK point order (x fastest), z = 0 for a 2-D grid."""
    mesh = np.meshgrid(*axes, indexing="ij")
    pts = np.stack([m.ravel(order="F") for m in mesh], axis=-1)
    return np.pad(pts, ((0, 0), (0, 3 - len(axes))))


def in_vtk_order(frame: np.ndarray, ncomp: int = 0) -> np.ndarray:
    """A frame declared as (x, y[, z][, component]) flattened to VTK point order."""
    return frame.reshape(-1, ncomp, order="F") if ncomp else frame.ravel(order="F")


def sidecar_grids(xdmf: Path) -> list[ET.Element]:
    """The per-frame Grids listed in a sidecar (parsing also checks it is complete XML)."""
    root = ET.parse(xdmf).getroot()
    return root.findall("./Domain/Grid[@CollectionType='Temporal']/Grid")


def axes_of(ndim, uniform):
    x = 0.3 + 0.7 * np.arange(6 if ndim == 2 else 5)
    if not uniform:
        x = x + 0.05 * np.arange(x.size) ** 2
    y = -1.25 + 0.4 * np.arange(4)
    z = 2.0 + 0.15 * np.arange(3)
    return (x, y, z)[:ndim]


def field_groups(shape, ncomp=None):
    """Vector `velocity` declared (x, y[, z], component), scalar `vorticity` (x, y[, z]),
    scalar `tracer` declared in reversed order ([z,] y, x)."""
    names = ("x", "y", "z")[: len(shape)]
    ncomp = ncomp or len(shape)
    return SaveGroup(
        "fields",
        4,
        {
            "velocity": Variable((*names, "component"), (*shape, ncomp), "float32", "m/s"),
            "vorticity": Variable(names, shape, "float64", "1/s", "z vorticity"),
            "tracer": Variable(names[::-1], shape[::-1], "float32", "1"),
        },
    )


def random_frames(rng, shape, k, ncomp=None):
    ncomp = ncomp or len(shape)
    return {
        "velocity": rng.normal(size=(k, *shape, ncomp)).astype(np.float32),
        "vorticity": rng.normal(size=(k, *shape)),
        "tracer": rng.normal(size=(k, *shape[::-1])).astype(np.float32),
    }


def coords_of(axes):
    return {d: (a, "m") for d, a in zip("xyz", axes, strict=False)}


def check_vtk_frames(frames, axes, times, data):
    """vtk frames hold `data` (declared order, one entry per time) at the grid points."""
    assert [f.time for f in frames] == pytest.approx(list(times), abs=0)
    ncomp = data["velocity"].shape[-1]
    for i, f in enumerate(frames):
        np.testing.assert_allclose(f.points, grid_points(*axes), rtol=1e-12, atol=1e-12)
        assert set(f.arrays) == {"velocity", "vorticity", "tracer"}
        np.testing.assert_array_equal(f.arrays["vorticity"], in_vtk_order(data["vorticity"][i]))
        np.testing.assert_array_equal(f.arrays["tracer"], data["tracer"][i].ravel())
        vel = f.arrays["velocity"]
        assert vel.shape == (len(f.points), 3)  # 2-vectors are padded to 3 by the reader
        np.testing.assert_array_equal(vel[:, :ncomp], in_vtk_order(data["velocity"][i], ncomp))
        np.testing.assert_array_equal(vel[:, ncomp:], 0)


@pytest.mark.parametrize("ndim,uniform", [(2, True), (2, False), (3, True), (3, False)])
def test_vtk_reads_every_frame_at_the_right_points(tmp_h5, ndim, uniform):
    rng = np.random.default_rng(ndim + 10 * uniform)
    axes = axes_of(ndim, uniform)
    shape = tuple(a.size for a in axes)
    store = FieldStore.create(
        tmp_h5, [field_groups(shape)], config={}, coords=coords_of(axes), time_units="s"
    )
    data = random_frames(rng, shape, 3)
    times = [0.25, 1.5, 2.75]
    store.append({"fields": ([0, 4], times[:2], {k: v[:2] for k, v in data.items()})})
    store.append({"fields": ([8], times[2:], {k: v[2:] for k, v in data.items()})})
    store.close()

    xdmf = tmp_h5.with_suffix(".xdmf")
    assert sidecar_path(tmp_h5) == xdmf
    topology = ET.parse(xdmf).getroot().find(".//Topology").get("TopologyType")
    assert topology == ("3DCoRectMesh" if uniform else "3DRectMesh")
    frames = read_vtk(xdmf)
    assert {f.kind for f in frames} == {"vtkImageData" if uniform else "vtkRectilinearGrid"}
    check_vtk_frames(frames, axes, times, data)


def test_moving_both_files_keeps_the_sidecar_working(tmp_path):
    axes = axes_of(2, False)
    shape = tuple(a.size for a in axes)
    data = random_frames(np.random.default_rng(3), shape, 2)
    store = FieldStore.create(
        tmp_path / "run.h5", [field_groups(shape)], config={}, coords=coords_of(axes)
    )
    store.append({"fields": ([0, 4], [0.0, 1.0], data)})
    store.close()
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    for name in ("run.h5", "run.xdmf"):
        shutil.move(tmp_path / name, moved / name)
    check_vtk_frames(read_vtk(moved / "run.xdmf"), axes, [0.0, 1.0], data)


def test_xarray_shows_grid_dims_coords_and_units(tmp_h5):
    axes = axes_of(3, False)
    shape = tuple(a.size for a in axes)
    data = random_frames(np.random.default_rng(4), shape, 2)
    groups = [
        field_groups(shape),
        SaveGroup("diagnostics", 1, {"kinetic_energy": Variable((), (), "float64", "J")}),
    ]
    store = FieldStore.create(
        tmp_h5,
        groups,
        config={},
        time_units="s",
        coords={**coords_of(axes), "component": (["u", "v", "w"], "")},
    )
    store.append(
        {
            "fields": ([0, 4], [0.0, 0.4], data),
            "diagnostics": (range(5), 0.1 * np.arange(5), {"kinetic_energy": np.arange(5.0)}),
        }
    )
    store.close()
    with h5py.File(tmp_h5, "r") as f:
        assert f["velocity"].chunks == (1, 3, 4, 5, 3)  # one frame per chunk
        assert f["tracer"].chunks == (1, 3, 4, 5)
    with xr.open_dataset(tmp_h5, engine="h5netcdf") as ds:
        assert ds["velocity"].dims == ("time_fields", "z", "y", "x", "component")
        assert ds["vorticity"].dims == ("time_fields", "z", "y", "x")
        assert ds["kinetic_energy"].dims == ("time_diagnostics",)
        for d, a in zip("xyz", axes, strict=False):
            np.testing.assert_array_equal(ds[d].values, a)
            assert ds[d].attrs["units"] == "m"
            assert ds[d].attrs["axis"] == d.upper()
        assert list(ds["component"].values) == ["u", "v", "w"]
        assert ds["velocity"].attrs["units"] == "m/s"
        assert ds["vorticity"].attrs["long_name"] == "z vorticity"
        assert ds["time_fields"].attrs["units"] == "s"
        np.testing.assert_allclose(ds["time_fields"].values, [0.0, 0.4])
        # values by label, in the order the driver declared them
        np.testing.assert_array_equal(
            ds["velocity"].transpose("time_fields", "x", "y", "z", "component").values,
            data["velocity"],
        )
        np.testing.assert_array_equal(
            ds["vorticity"].isel(time_fields=1, x=2, y=0, z=1), data["vorticity"][1, 2, 0, 1]
        )
        np.testing.assert_array_equal(ds["tracer"].values, data["tracer"])


def test_sidecar_follows_appends_truncate_and_resume(tmp_h5, monkeypatch):
    axes = axes_of(2, True)
    shape = tuple(a.size for a in axes)
    xdmf = sidecar_path(tmp_h5)
    config = {"dt": 0.1, "n": 8}
    data = random_frames(np.random.default_rng(5), shape, 6)

    def chunk(i, j):
        return {
            "fields": (
                4 * np.arange(i, j),
                0.4 * np.arange(i, j),
                {k: v[i:j] for k, v in data.items()},
            )
        }

    store = FieldStore.create(tmp_h5, [field_groups(shape)], config=config, coords=coords_of(axes))
    assert sidecar_grids(xdmf) == [] and read_vtk(xdmf) == []  # mesh only, and no crash
    store.append(chunk(0, 2))
    assert len(read_vtk(xdmf)) == 2
    store.append(chunk(2, 5))
    frames = read_vtk(xdmf)
    check_vtk_frames(frames, axes, 0.4 * np.arange(5), {k: v[:5] for k, v in data.items()})
    store.close()

    with pytest.raises(StoreError, match="dt: file has 0.1, this run has 0.2"):
        FieldStore.open_resume(tmp_h5, config={**config, "dt": 0.2})
    store = FieldStore.open_resume(tmp_h5, config=config)
    assert store.n_frames == {"fields": 5}
    listed_while_cutting = []
    real_resize = store._resize_group

    def spy(group, n):  # a reader must never see a listed frame that is already gone
        listed_while_cutting.append(len(sidecar_grids(xdmf)))
        real_resize(group, n)

    monkeypatch.setattr(store, "_resize_group", spy)
    store.truncate({"fields": 3})
    monkeypatch.undo()
    assert listed_while_cutting == [3]
    assert len(sidecar_grids(xdmf)) == 3
    check_vtk_frames(read_vtk(xdmf), axes, 0.4 * np.arange(3), {k: v[:3] for k, v in data.items()})
    data = {k: v.copy() for k, v in data.items()}
    for v in data.values():
        v[3:] += 100  # the resumed run writes other values for the dropped frames
    store.append(chunk(3, 6))
    store.close()
    check_vtk_frames(read_vtk(xdmf), axes, 0.4 * np.arange(6), data)
    xdmf.unlink()  # a lost sidecar is rebuilt on resume
    FieldStore.open_resume(tmp_h5, config=config).close()
    assert len(sidecar_grids(xdmf)) == 6


def test_resume_refuses_other_layouts(tmp_h5):
    FrameStore.create(tmp_h5, {"a": Variable(("x",), (3,), "float64")}, config={}).close()
    with pytest.raises(StoreError, match="'frames' file, this run writes 'fields'"):
        FieldStore.open_resume(tmp_h5, config={})


def test_diagnostics_and_a_second_field_group_at_other_rates(tmp_h5):
    """Diagnostics (every step) stay out of the sidecar; a second field group on the same grid
    at a slower rate joins the time series, holding its latest frame."""
    axes = axes_of(2, True)
    shape = tuple(a.size for a in axes)
    rng = np.random.default_rng(6)
    groups = [
        field_groups(shape),
        SaveGroup("pressure", 8, {"p": Variable(("x", "y"), shape, "float64", "Pa")}),
        SaveGroup(
            "diagnostics",
            1,
            {
                "kinetic_energy": Variable((), (), "float64", "J"),
                "probe_u": Variable(("probe",), (2,), "float32", "m/s"),
            },
        ),
    ]
    store = FieldStore.create(tmp_h5, groups, config={}, coords=coords_of(axes))
    data = random_frames(rng, shape, 3)
    p = rng.normal(size=(2, *shape))
    store.append(
        {
            "fields": ([0, 4, 8], [0.0, 0.4, 0.8], data),
            "pressure": ([0, 8], [0.0, 0.8], {"p": p}),
            "diagnostics": (
                range(9),
                0.1 * np.arange(9),
                {"kinetic_energy": np.arange(9.0), "probe_u": np.ones((9, 2))},
            ),
        }
    )
    store.close()
    text = sidecar_path(tmp_h5).read_text()
    assert "kinetic_energy" not in text and "probe" not in text
    frames = read_vtk(sidecar_path(tmp_h5))
    assert [f.time for f in frames] == pytest.approx([0.0, 0.4, 0.8], abs=0)
    for f, held in zip(
        frames, [0, 0, 1], strict=False
    ):  # at t = 0.4 the pressure frame of t = 0 holds
        assert set(f.arrays) == {"velocity", "vorticity", "tracer", "p"}
        np.testing.assert_array_equal(f.arrays["p"], in_vtk_order(p[held]))
        np.testing.assert_array_equal(f.arrays["tracer"], data["tracer"][frames.index(f)].ravel())
    with h5py.File(tmp_h5, "r") as h5:
        assert h5["time_diagnostics"].shape == (9,) and h5["time_pressure"].shape == (2,)


def test_frames_reported_before_sigkill_are_readable_and_listed(tmp_h5):
    """Kill -9 a writer: every frame it reported reads back via h5py, and the sidecar is valid
    XML listing only complete frames (each one readable by VTK)."""
    xdmf = sidecar_path(tmp_h5)

    def live(line):  # the sidecar is always whole and lists every reported frame
        if int(line) % 10 == 0:
            assert len(sidecar_grids(xdmf)) >= int(line) + 1

    proc = spawn(Path(__file__).parent / "_field_writer.py", tmp_h5)
    last = int(signal_when(proc, lambda line: int(line) >= 60, on_line=live))
    assert last >= 60
    grids = sidecar_grids(xdmf)
    m = len(grids)
    assert m >= last + 1
    nx, ny = 24, 16
    pattern = (10 * np.arange(nx)[:, None] + np.arange(ny)[None, :]) / 1000
    with h5py.File(tmp_h5, "r") as f:
        assert f["time_fields"].shape[0] >= m  # listed frames have their time entry
        assert [float(g.find("Time").get("Value")) for g in grids] == list(f["time_fields"][:m])
        vort = f["vorticity"][:m]  # stored (time, y, x)
        expected = np.arange(m)[:, None, None] + pattern.T[None]
        np.testing.assert_array_equal(vort, expected.astype(np.float32))
        np.testing.assert_array_equal(
            f["velocity"][:m, 0, 0], np.stack([np.arange(m), -np.arange(m)], 1)
        )
        np.testing.assert_array_equal(f["energy"][: 2 * (last + 1) : 2], np.arange(last + 1))
    frames = read_vtk(xdmf)
    assert len(frames) == m
    np.testing.assert_array_equal(
        frames[-1].arrays["vorticity"], in_vtk_order((m - 1 + pattern).astype(np.float32))
    )


def test_failed_write_keeps_the_frames_before(tmp_h5, monkeypatch):
    axes = axes_of(2, True)
    shape = tuple(a.size for a in axes)
    data = random_frames(np.random.default_rng(7), shape, 3)
    store = FieldStore.create(tmp_h5, [field_groups(shape)], config={}, coords=coords_of(axes))
    store.append({"fields": ([0, 4], [0.0, 0.4], {k: v[:2] for k, v in data.items()})})
    xdmf = sidecar_path(tmp_h5)
    before = xdmf.read_bytes()

    real_setitem = h5py.Dataset.__setitem__

    def disk_full(self, key, value):
        if self.name == "/tracer":  # written after velocity and vorticity of the same chunk
            raise OSError(28, "No space left on device")
        real_setitem(self, key, value)

    monkeypatch.setattr(h5py.Dataset, "__setitem__", disk_full)
    with pytest.raises(StoreWriteError, match="No space left on device") as info:
        store.append({"fields": ([8], [0.8], {k: v[2:] for k, v in data.items()})})
    assert info.value.path == tmp_h5
    monkeypatch.undo()
    assert xdmf.read_bytes() == before
    assert store.n_frames == {"fields": 2}
    with h5py.File(tmp_h5, "r", locking=False) as f:  # the store still has it open
        names = ("velocity", "vorticity", "tracer", "time_fields")
        assert {f[name].shape[0] for name in names} == {2}
    check_vtk_frames(read_vtk(xdmf), axes, [0.0, 0.4], {k: v[:2] for k, v in data.items()})

    # all datasets written, the flush fails: nothing of the chunk may be listed
    def flush_fails(self):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(h5py.File, "flush", flush_fails)
    with pytest.raises(StoreWriteError, match="No space left on device"):
        store.append({"fields": ([8], [0.8], {k: v[2:] for k, v in data.items()})})
    monkeypatch.undo()
    assert xdmf.read_bytes() == before
    assert store.n_frames == {"fields": 2}

    # the disk fills up halfway through the sidecar: StoreWriteError, the old sidecar intact
    # (it is replaced atomically), no temporary file left
    def half_written(path, mode="r", **kwargs):
        f = open(path, mode, **kwargs)

        def write(text):
            f.__class__.write(f, text[: len(text) // 2])
            raise OSError(28, "No space left on device")

        if "w" in mode:
            f.write = write
        return f

    monkeypatch.setattr("simkit.io._xdmf.open", half_written, raising=False)
    with pytest.raises(StoreWriteError, match="sidecar .* No space left on device"):
        store.append({"fields": ([8], [0.8], {k: v[2:] for k, v in data.items()})})
    monkeypatch.undo()
    assert xdmf.read_bytes() == before
    assert sorted(p.name for p in tmp_h5.parent.iterdir()) == ["out.h5", "out.xdmf"]
    store.close()


BAD = {
    "non-monotonic x": (
        dict(coords={"x": ([0.0, 2.0, 1.0], "m"), "y": ([0.0, 1.0], "m")}),
        "strictly increasing, but x\\[1\\] = 2.0 and x\\[2\\] = 1.0",
    ),
    "missing y coords": (dict(coords={"x": ([0.0, 1.0, 2.0], "m")}), "'y' needs coordinates"),
    "2-D coords": (dict(coords={"x": (np.zeros((3, 1)), "m"), "y": ([0.0, 1.0], "m")}), "1-D"),
    "NaN coords": (dict(coords={"x": ([0.0, np.nan, 2.0], "m"), "y": ([0.0, 1.0], "m")}), "NaN"),
    "bare coords": (dict(coords={"x": np.arange(3.0), "y": ([0.0, 1.0], "m")}), "pair"),
    "coords length": (
        dict(coords={"x": ([0.0, 1.0], "m"), "y": ([0.0, 1.0], "m")}),
        "grid shape \\(3, 2\\) .* coordinates have \\(2, 2\\)",
    ),
    "field shapes differ": (
        dict(extra={"w": Variable(("x", "y"), (3, 5), "float32")}),
        "dimension 'y' has sizes 2 and 5",
    ),
    "4 components": (
        dict(extra={"w": Variable(("x", "y", "c4"), (3, 2, 4), "float32")}),
        "'c4' has size 4",
    ),
    "two extra axes": (
        dict(extra={"w": Variable(("x", "y", "a", "b"), (3, 2, 2, 2), "float32")}),
        "at most one axis",
    ),
    "partial grid": (dict(extra={"w": Variable(("x",), (3,), "float32")}), "whole grid"),
    "complex field": (
        dict(extra={"w": Variable(("x", "y"), (3, 2), "complex64")}),
        "XDMF cannot describe",
    ),
    "unknown option": (dict(options={"mesh": "rect"}), "unknown options \\['mesh'\\]"),
    "1 spatial dim": (dict(options={"spatial_dims": ("x",)}), "2 or 3 distinct"),
    "unused spatial dim": (dict(options={"spatial_dims": ("x", "y", "q")}), "no variable has"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_refuses_bad_grids_and_fields(tmp_h5, case):
    spec, message = BAD[case]
    variables = {"s": Variable(("x", "y"), (3, 2), "float32"), **spec.get("extra", {})}
    coords = spec.get("coords", {"x": ([0.0, 1.0, 2.0], "m"), "y": ([0.0, 1.0], "m")})
    with pytest.raises(SimkitInputError, match=message):
        FieldStore.create(
            tmp_h5,
            [SaveGroup("fields", 1, variables)],
            config={},
            coords=coords,
            **spec.get("options", {}),
        )
    assert list(tmp_h5.parent.iterdir()) == []  # nothing left behind


def test_refuses_stores_without_fields_and_xdmf_names(tmp_path):
    with pytest.raises(SimkitInputError, match="no 2-D or 3-D fields"):
        FieldStore.create(tmp_path / "a.h5", {"e": Variable((), (), "float64")}, config={})
    with pytest.raises(SimkitInputError, match="cannot end in .xdmf"):
        FieldStore.create(
            tmp_path / "a.xdmf",
            {"s": Variable(("x", "y"), (1, 1), "f4")},
            config={},
            coords={"x": ([0], ""), "y": ([0], "")},
        )
    assert list(tmp_path.iterdir()) == []


def test_named_spatial_dims(tmp_h5):
    """Any dims can be the grid: spatial_dims names them in X, Y order."""
    lon, lat = np.linspace(-10, 10, 5), np.array([40.0, 42.0, 45.0])
    frame = np.random.default_rng(8).normal(size=(1, 5, 3))
    store = FieldStore.create(
        tmp_h5,
        {"t2m": Variable(("lon", "lat"), (5, 3), "float64", "K")},
        config={},
        coords={"lon": (lon, "deg"), "lat": (lat, "deg")},
        spatial_dims=("lon", "lat"),
    )
    store.append({"": ([0], [0.0], {"t2m": frame})})
    store.close()
    assert ET.parse(sidecar_path(tmp_h5)).getroot().find(".//Topology").get("Dimensions") == "1 3 5"
    [f] = read_vtk(sidecar_path(tmp_h5))
    np.testing.assert_allclose(f.points, grid_points(lon, lat), rtol=1e-12)
    np.testing.assert_array_equal(f.arrays["t2m"], in_vtk_order(frame[0]))


def test_overwrite_needs_the_flag(tmp_h5):
    variables = {"s": Variable(("x", "y"), (3, 2), "float32")}
    coords = {"x": ([0.0, 1.0, 2.0], "m"), "y": ([0.0, 1.0], "m")}
    store = FieldStore.create(tmp_h5, variables, config={}, coords=coords)
    store.append({"": ([0], [0.0], {"s": np.ones((1, 3, 2))})})
    store.close()
    with pytest.raises(SimkitInputError, match="already exists"):
        FieldStore.create(tmp_h5, variables, config={}, coords=coords)
    assert len(sidecar_grids(sidecar_path(tmp_h5))) == 1
    tmp_h5.unlink()  # a leftover sidecar alone is protected too
    with pytest.raises(SimkitInputError, match="sidecar .* already exists"):
        FieldStore.create(tmp_h5, variables, config={}, coords=coords)
    FieldStore.create(tmp_h5, variables, config={}, coords=coords, overwrite=True).close()
    assert sidecar_grids(sidecar_path(tmp_h5)) == []
