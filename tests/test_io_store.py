"""HDF5 store: xarray-readable dimension scales, metadata, refusal rules, SIGKILL survival."""

import json
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr

from simkit import SimkitInputError
from simkit.io import FrameStore, StoreError, Variable, save_results, summarize

sys.path.insert(0, str(Path(__file__).parent))
from _procs import signal_when, spawn  # noqa: E402

VARS = {
    "y": Variable(("member", "component"), (5, 3), "float64", units="m", long_name="position"),
    "energy": Variable(("member",), (5,), "float32", units="J"),
}


def _fill(store, n, start=0):
    for i in range(start, start + n):
        store.append(
            {
                "": (
                    [i * 10],
                    [i * 0.1],
                    {
                        "y": np.full((1, 5, 3), i, np.float64),
                        "energy": np.full((1, 5), -i, np.float32),
                    },
                )
            }
        )


def test_xarray_opens_with_named_dimensions_coords_and_units(tmp_h5):
    store = FrameStore.create(
        tmp_h5,
        VARS,
        config={"a": 1},
        coords={"component": (["x", "y", "z"], ""), "member": (np.arange(5) * 2.0, "id")},
        attrs={"parameters": {"rho": 28.0}, "solver": "Tsit5"},
        time_units="s",
    )
    _fill(store, 4)
    store.close()
    ds = xr.open_dataset(tmp_h5, engine="h5netcdf")
    assert ds["y"].dims == ("time", "member", "component")
    assert ds["energy"].dims == ("time", "member")
    assert list(ds["component"].values) == ["x", "y", "z"]
    np.testing.assert_array_equal(ds["member"].values, np.arange(5) * 2.0)
    np.testing.assert_allclose(ds["time"].values, [0, 0.1, 0.2, 0.3])
    assert ds["time"].attrs["units"] == "s"
    assert ds["y"].attrs["units"] == "m" and ds["y"].attrs["long_name"] == "position"
    assert ds["energy"].dtype == np.float32
    np.testing.assert_array_equal(ds["y"].sel(time=0.2).values, np.full((5, 3), 2.0))
    assert json.loads(ds.attrs["parameters"]) == {"rho": 28.0}
    assert ds.attrs["solver"] == "Tsit5"
    assert ds.attrs["simkit_version"]
    assert json.loads(ds.attrs["simkit_config"]) == {"a": 1}
    ds.close()


def test_chunks_are_one_frame_and_time_axis_unlimited(tmp_h5):
    store = FrameStore.create(tmp_h5, VARS, config={})
    _fill(store, 2)
    store.close()
    with h5py.File(tmp_h5, "r") as f:
        assert f["y"].chunks == (1, 5, 3)
        assert f["y"].maxshape == (None, 5, 3)


def test_refuses_overwrite_and_missing_folder(tmp_path, tmp_h5):
    FrameStore.create(tmp_h5, VARS, config={}).close()
    with pytest.raises(SimkitInputError, match="already exists"):
        FrameStore.create(tmp_h5, VARS, config={})
    with pytest.raises(SimkitInputError, match="folder .* does not exist"):
        FrameStore.create(tmp_path / "missing" / "a.h5", VARS, config={})
    with pytest.raises(SimkitInputError, match="already exists"):
        save_results(tmp_h5, {"a": (("i",), np.ones(2), "1")})


def test_failed_overwrite_keeps_the_old_file(tmp_h5):
    store = FrameStore.create(tmp_h5, VARS, config={})
    _fill(store, 3)
    store.close()
    before = tmp_h5.read_bytes()
    bad = {"q": Variable(("member",), (4,), "float64")}  # member size clashes with coords below
    with pytest.raises(SimkitInputError):
        FrameStore.create(tmp_h5, {**VARS, **bad}, config={}, overwrite=True)
    assert tmp_h5.read_bytes() == before


def test_append_validates_shapes(tmp_h5):
    store = FrameStore.create(tmp_h5, VARS, config={})
    with pytest.raises(SimkitInputError, match="shape"):
        store.append({"": ([0], [0.0], {"y": np.ones((1, 5, 2)), "energy": np.ones((1, 5))})})
    with pytest.raises(SimkitInputError, match="variables"):
        store.append({"": ([0], [0.0], {"y": np.ones((1, 5, 3))})})
    store.close()


def test_resume_checks_configuration_and_truncates(tmp_h5):
    store = FrameStore.create(tmp_h5, VARS, config={"dt": 0.1, "n": 5})
    _fill(store, 6)
    store.close()
    with pytest.raises(StoreError, match="dt: file has 0.1, this run has 0.2"):
        FrameStore.open_resume(tmp_h5, config={"dt": 0.2, "n": 5})
    store = FrameStore.open_resume(tmp_h5, config={"n": 5, "dt": 0.1})
    assert store.n_frames == {"": 6}
    store.truncate({"": 4})
    _fill(store, 1, start=4)
    store.close()
    with h5py.File(tmp_h5, "r") as f:
        np.testing.assert_array_equal(f["step"][:], [0, 10, 20, 30, 40])
    with pytest.raises(StoreError, match="truncated"):
        s = FrameStore.open_resume(tmp_h5, config={"n": 5, "dt": 0.1})
        try:
            s.truncate({"": 9})
        finally:
            s.close()


def test_resume_rejects_non_simkit_and_corrupt_files(tmp_path):
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["x"] = np.ones(3)
    with pytest.raises(StoreError, match="not a simkit run file"):
        FrameStore.open_resume(plain, config={})
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x00" * 4096)
    with pytest.raises(StoreError, match="not a readable HDF5 file"):
        FrameStore.open_resume(junk, config={})


def test_resume_and_summarize_name_a_group_where_a_dataset_belongs(tmp_path, tmp_h5):
    store = FrameStore.create(tmp_h5, VARS, config={"a": 1})
    _fill(store, 2)
    store.close()
    with h5py.File(tmp_h5, "r+") as f:
        del f["energy"]
        f.create_group("energy")
    with pytest.raises(StoreError, match="'energy' in .* is a Group, not a dataset"):
        FrameStore.open_resume(tmp_h5, config={"a": 1})
    plain = tmp_path / "plain.h5"  # a foreign file with a group named time: no progress
    with h5py.File(plain, "w") as f:
        f.create_group("time")
        f["step"] = np.arange(3)
    assert summarize(plain)["progress"] == {}


def test_frames_flushed_before_sigkill_read_back(tmp_h5):
    """Kill -9 a writer mid-run: every frame it reported as flushed must read back intact."""

    def live(line):
        if int(line) == 100:  # read it while it runs: every flushed frame is visible
            with h5py.File(tmp_h5, "r") as f:
                assert f["time"].shape[0] >= 101
                np.testing.assert_array_equal(f["field"][100], np.full((64, 64), 100.0))

    proc = spawn(Path(__file__).parent / "_store_writer.py", tmp_h5)
    last = int(signal_when(proc, lambda line: int(line) >= 200, on_line=live))
    assert last >= 200
    with h5py.File(tmp_h5, "r") as f:
        n = f["time"].shape[0]
        assert n >= last + 1
        field = f["field"][: last + 1]
        np.testing.assert_array_equal(field[:, 0, 0], np.arange(last + 1))
        np.testing.assert_array_equal(
            field,
            np.broadcast_to(np.arange(last + 1, dtype=np.float32)[:, None, None], field.shape),
        )
        np.testing.assert_array_equal(f["step"][: last + 1], np.arange(last + 1))
    ds = xr.open_dataset(tmp_h5, engine="h5netcdf")
    assert ds["field"].shape[0] >= last + 1
    ds.close()


def test_save_results_and_summarize(tmp_h5):
    t = np.linspace(0, 1, 4)
    save_results(
        tmp_h5,
        {
            "y": (("time", "species"), np.ones((4, 2)), "mol/L"),
            "k": (("param",), np.array([1.0, 2.0]), "1/s"),
        },
        coords={"time": (t, "s"), "species": (["A", "B"], "")},
        attrs={"parameters": {"k1": 1.0}, "problem": "demo"},
    )
    ds = xr.open_dataset(tmp_h5, engine="h5netcdf")
    assert ds["y"].dims == ("time", "species") and ds["y"].attrs["units"] == "mol/L"
    assert list(ds["species"].values) == ["A", "B"]
    ds.close()
    info = summarize(tmp_h5)
    assert info["datasets"]["y"] == {"shape": (4, 2), "dtype": "float64", "units": "mol/L"}
    assert info["attrs"]["parameters"] == {"k1": 1.0}
    assert info["attrs"]["problem"] == "demo"
    with pytest.raises(SimkitInputError, match="has 1 axes but dims"):
        save_results(tmp_h5, {"y": (("a", "b"), np.ones(3), "")}, overwrite=True)


def test_summarize_bad_files(tmp_path):
    with pytest.raises(SimkitInputError, match="does not exist"):
        summarize(tmp_path / "none.h5")
    bad = tmp_path / "bad.h5"
    bad.write_text("hello")
    with pytest.raises(SimkitInputError, match="not a readable HDF5"):
        summarize(bad)


def test_summarize_rereads_a_file_caught_mid_update_by_its_live_writer(tmp_h5, monkeypatch):
    # Regression (CI, stop 17): `simkit info` on a live run read a dataset between two of the
    # writer's metadata updates; h5py raised IndexError and the CLI called it an internal error.
    import simkit.io._results as results
    from simkit.io import WriterLock

    save_results(tmp_h5, {"y": (("time",), np.arange(3.0), "1")})
    real, calls = results._summarize_once, []

    def torn_twice(path):
        calls.append(path)
        if len(calls) <= 2:
            raise IndexError("Index (1084) out of range for (0-1082)")
        return real(path)

    monkeypatch.setattr(results, "_summarize_once", torn_twice)
    monkeypatch.setattr(results, "LIVE_READ_PAUSE", 0.001)
    with WriterLock(tmp_h5):
        assert summarize(tmp_h5)["datasets"]["y"]["shape"] == (3,)
        assert len(calls) == 3
        # A writer that never leaves it consistent: a clear error that names it.
        monkeypatch.setattr(results, "_summarize_once", lambda path: [][1])
        with pytest.raises(SimkitInputError, match=r"being written by PID \d+ .*try again"):
            summarize(tmp_h5)
    # Nobody writing: the damage is the file's, and is not hidden behind rereads.
    with pytest.raises(IndexError):
        summarize(tmp_h5)


def test_resume_refused_by_the_layout_check_closes_the_file(tmp_h5):
    store = FrameStore.create(tmp_h5, VARS, config={"n": 5})
    _fill(store, 3)
    store.set_attrs(status="finished")
    store.close()
    with h5py.File(tmp_h5, "r+") as f:  # damage: a variable shorter than its time axis
        f["y"].resize(1, axis=0)
    with pytest.raises(StoreError, match="truncated") as excinfo:
        FrameStore.open_resume(tmp_h5, config={"n": 5})
    # The traceback (held by excinfo) keeps open_resume's locals alive, so a leaked handle
    # would still be open here; HDF5's own list of open files must be empty.
    assert excinfo.value is not None
    assert h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE) == []
    with h5py.File(tmp_h5, "r") as f:
        assert f.attrs["status"] == "finished"  # the refused resume left the file as it was
