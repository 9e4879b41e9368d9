"""H5MD writer: H5MD 1.1 layout (https://www.nongnu.org/h5md/h5md.html), MDAnalysis reads every
frame, resume and truncation, SIGKILL survival, a full disk mid-append, refused inputs."""

import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from simkit import SimkitInputError
from simkit.io._h5md import H5MDStore
from simkit.io._hdf5 import SaveGroup, StoreError, StoreWriteError, Variable, simkit_version
from simkit.io._results import summarize

sys.path.insert(0, str(Path(__file__).parent))
from _procs import signal_when, spawn  # noqa: E402

N, L, DT = 7, 3.0, 0.002  # particles, box edge (nm), integration time step (ps)
TRAJ_EVERY, THERMO_EVERY = 100, 10
CONFIG = {"dt": DT, "n_particles": N, "thermostat": {"kind": "langevin", "gamma": 1.0}}
VEC = ("particle", "spatial")

# MDAnalysis prints these when it builds a topology-less Universe; they are not about our file.
quiet_mda = pytest.mark.filterwarnings("ignore:there is no reference attributes:UserWarning")


def _groups(dtype="float32", *, box_var=False, particles=None):
    traj = {
        "position": Variable(VEC, (N, 3), dtype, units="nm"),
        "velocity": Variable(VEC, (N, 3), dtype, units="nm ps-1"),
    }
    if box_var:
        traj["box"] = Variable(("spatial",), (3,), dtype, units="nm")
    traj.update(particles or {})
    thermo = {
        "kinetic_energy": Variable((), (), "float64", units="kJ mol-1"),
        "pressure_tensor": Variable(("spatial", "spatial_b"), (3, 3), "float64", units="bar"),
    }
    return [SaveGroup("trajectory", TRAJ_EVERY, traj), SaveGroup("thermo", THERMO_EVERY, thermo)]


def _random_walk(n, dtype, *, box_var, seed=0):
    """A toy random walk of N particles, wrapped into a periodic box that grows 1 % per frame
    when the box is a variable (fixed at L otherwise). Lengths in nm, times in ps."""
    rng = np.random.default_rng(seed)
    edges = L * (1 + 0.01 * np.arange(n))[:, None] * np.ones(3) if box_var else np.full((n, 3), L)
    disp = rng.normal(scale=0.1, size=(n, N, 3))
    data = {
        "steps": np.arange(n) * TRAJ_EVERY,
        "times": np.arange(n) * TRAJ_EVERY * DT,
        "position": np.mod(L / 2 + np.cumsum(disp, axis=0), edges[:, None, :]).astype(dtype),
        "velocity": (disp / (TRAJ_EVERY * DT)).astype(dtype),
        "box": edges.astype(dtype),
        "thermo_steps": np.arange(n * 10) * THERMO_EVERY,
        "thermo_times": np.arange(n * 10) * THERMO_EVERY * DT,
        "kinetic_energy": rng.random(n * 10),
        "pressure_tensor": rng.normal(size=(n * 10, 3, 3)),
    }
    return data


def _chunk(data, lo, hi, *, box_var):
    """Frames lo..hi-1 of the trajectory and the thermo frames in between, as `append` wants."""
    frames = {"position": data["position"][lo:hi], "velocity": data["velocity"][lo:hi]}
    if box_var:
        frames["box"] = data["box"][lo:hi]
    t = slice(lo * 10, hi * 10)
    return {
        "trajectory": (data["steps"][lo:hi], data["times"][lo:hi], frames),
        "thermo": (
            data["thermo_steps"][t],
            data["thermo_times"][t],
            {
                "kinetic_energy": data["kinetic_energy"][t],
                "pressure_tensor": data["pressure_tensor"][t],
            },
        ),
    }


def _run(path, n, dtype="float32", *, box_mode="fixed", close=True, **options):
    """Write n trajectory frames (10 thermo frames each) in chunks of 2; returns (store, data)."""
    box_var = box_mode == "variable"
    if box_mode in ("fixed", "repeat"):
        options.setdefault("box", [L, L, L])
    options.setdefault("config", CONFIG)
    store = H5MDStore.create(
        path,
        _groups(dtype, box_var=box_var),
        time_units="ps",
        repeat_box=box_mode == "repeat",
        **options,
    )
    data = _random_walk(n, dtype, box_var=box_var)
    for lo in range(0, n, 2):
        store.append(_chunk(data, lo, min(lo + 2, n), box_var=box_var))
    if close:
        store.close()
    return store, data


def _elements(f):
    """Every time-dependent H5MD element of an open file: {path: group}."""
    found = {}

    def visit(name, obj):  # returns None: visititems stops at the first other return value
        if isinstance(obj, h5py.Group) and "value" in obj:
            found[name] = obj

    f.visititems(visit)
    return found


def _mdanalysis_if_installed():
    """MDAnalysis, or None: the crash tests check it when it is there, h5py always."""
    try:
        import MDAnalysis
    except ImportError:
        return None
    return MDAnalysis


def _same_object(a, b):
    return a.id == b.id  # h5py ObjectIDs compare equal when they refer to one HDF5 object


# -- MDAnalysis ---------------------------------------------------------------------------------
@quiet_mda
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("box_mode", ["variable", "repeat"])
def test_mdanalysis_reads_every_frame(tmp_path, dtype, box_mode):
    mda = pytest.importorskip("MDAnalysis")
    # MDAnalysis 2.11 builds a Universe from an H5MD file alone only if the file name ends in
    # .h5md (format guessed from the extension) and the particle group is named "trajectory"
    # (H5MDReader.parse_n_atoms reads particles/trajectory).
    path = tmp_path / "walk.h5md"
    _, data = _run(path, 5, dtype, box_mode=box_mode, particle_group="trajectory")
    with h5py.File(path, "r") as f:  # the file holds exactly what was appended, dtype kept
        pos = f["particles/trajectory/position/value"]
        assert pos.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(pos[:], data["position"])
        np.testing.assert_array_equal(f["particles/trajectory/velocity/value"][:], data["velocity"])
    u = mda.Universe(str(path))
    assert u.atoms.n_atoms == N
    assert len(u.trajectory) == 5
    # MDAnalysis converts to its base units on reading (convert_units=True by default): lengths
    # to Angstrom, velocities to Angstrom/ps, time to ps (MDAnalysis.units: 1 nm = 10 Angstrom;
    # https://userguide.mdanalysis.org/stable/units.html). It reads the H5MD `unit` attributes
    # "nm", "nm ps-1" and "ps" we wrote, so nm -> Angstrom is a factor 10, ps stays ps.
    assert u.trajectory.units == {"time": "ps", "length": "nm", "velocity": "nm/ps", "force": None}
    for i, ts in enumerate(u.trajectory):
        assert ts.frame == i
        assert ts.data["step"] == data["steps"][i]
        np.testing.assert_allclose(ts.time, data["times"][i], rtol=1e-12)
        # MDAnalysis holds coordinates in float32: float64 data is rounded once on reading.
        np.testing.assert_allclose(
            ts.positions, 10 * data["position"][i].astype(np.float64), rtol=2e-6, atol=1e-5
        )
        np.testing.assert_allclose(
            ts.velocities, 10 * data["velocity"][i].astype(np.float64), rtol=2e-6, atol=1e-5
        )
        np.testing.assert_allclose(ts.dimensions, [*(10 * data["box"][i]), 90, 90, 90], rtol=2e-6)
    # Observables are in ts.data, but MDAnalysis indexes them by the particle frame number, not
    # by step (it assumes one time axis for the whole file): frame 1 shows thermo frame 1.
    u.trajectory[1]
    assert u.trajectory.ts.data["kinetic_energy"] == data["kinetic_energy"][1]


@quiet_mda
def test_mdanalysis_reads_default_particle_group_with_atom_count(tmp_h5):
    mda = pytest.importorskip("MDAnalysis")
    _, data = _run(tmp_h5, 3, box_mode="repeat")  # particle group "all", file name .h5
    u = mda.Universe(str(tmp_h5), format="H5MD", topology_format="MINIMAL", n_atoms=N)
    assert len(u.trajectory) == 3
    for i, ts in enumerate(u.trajectory):
        np.testing.assert_allclose(ts.positions, 10 * data["position"][i], rtol=2e-6, atol=1e-5)
        np.testing.assert_allclose(ts.dimensions, [10 * L] * 3 + [90] * 3, rtol=2e-6)


# -- layout against the specification -----------------------------------------------------------
def test_layout_follows_h5md_1_1(tmp_h5, monkeypatch):
    monkeypatch.setenv("USER", "ada")
    _run(
        tmp_h5,
        4,
        attrs={"problem": "walk", "parameters": {"sigma": 0.1}},
        coords={"spatial": (["x", "y", "z"], "")},
    )
    with h5py.File(tmp_h5, "r") as f:
        # /h5md: version Integer[2], author/name, creator/name+version, fixed-length strings
        version = f["h5md"].attrs["version"]
        assert version.dtype.kind == "i" and version.tolist() == [1, 1]
        for obj, key, expected in (
            (f["h5md/author"], "name", "ada"),
            (f["h5md/creator"], "name", "simkit"),
            (f["h5md/creator"], "version", simkit_version()),
        ):
            assert obj.attrs[key].decode() == expected
            kind = obj.attrs.get_id(key).get_type()
            assert isinstance(kind, h5py.h5t.TypeStringID) and not kind.is_variable_str()

        # box: dimension Integer[], boundary String[D] fixed length, fixed edges dataset (D,)
        box = f["particles/all/box"]
        assert box.attrs["dimension"] == 3 and box.attrs["dimension"].dtype.kind == "i"
        assert box.attrs["boundary"].tolist() == [b"periodic"] * 3
        assert not box.attrs.get_id("boundary").get_type().is_variable_str()
        assert isinstance(box["edges"], h5py.Dataset)
        np.testing.assert_array_equal(box["edges"][()], [L, L, L])
        assert box["edges"].attrs["unit"] == "nm"

        # time-dependent elements: step Integer[variable], time Float[variable], value
        elements = _elements(f)
        assert sorted(elements) == [
            "observables/kinetic_energy",
            "observables/pressure_tensor",
            "particles/all/position",
            "particles/all/velocity",
        ]
        for _path, el in elements.items():
            assert el["step"].dtype.kind == "i" and el["time"].dtype.kind == "f"
            assert el["step"].shape == el["time"].shape == el["value"].shape[:1]
            assert el["value"].maxshape[0] is None
            assert el["time"].attrs["unit"] == "ps"
            assert np.all(np.diff(el["step"][:]) > 0)
        pos = f["particles/all/position/value"]
        assert pos.shape == (4, N, 3) and pos.chunks == (1, N, 3)
        assert pos.maxshape == (None, N, 3) and pos.attrs["unit"] == "nm"
        unit = pos.attrs.get_id("unit").get_type()  # units module: VL ASCII string
        assert unit.is_variable_str() and unit.get_cset() == h5py.h5t.CSET_ASCII
        assert f["particles/all/velocity/value"].attrs["unit"] == "nm ps-1"

        # one step/time pair per save group, hard-linked into each of its elements
        traj = [f[f"particles/all/{v}"] for v in ("position", "velocity")]
        thermo = [f[f"observables/{v}"] for v in ("kinetic_energy", "pressure_tensor")]
        for members in (traj, thermo):
            for key in ("step", "time"):
                assert _same_object(members[0][key], members[1][key])
                assert h5py.h5o.get_info(members[0][key].id).rc == 2  # two links, one dataset
        assert not _same_object(traj[0]["step"], thermo[0]["step"])
        # observables at their own rate, with their own step axis
        np.testing.assert_array_equal(traj[0]["step"][:], np.arange(4) * TRAJ_EVERY)
        np.testing.assert_array_equal(thermo[0]["step"][:], np.arange(40) * THERMO_EVERY)
        assert f["observables/kinetic_energy/value"].shape == (40,)
        assert f["observables/pressure_tensor/value"].shape == (40, 3, 3)
        assert f["observables/pressure_tensor/value"].attrs["unit"] == "bar"

        # /parameters: the run's settings, readable without JSON
        assert f["parameters/config"].attrs["dt"] == DT
        assert f["parameters/config/thermostat"].attrs["kind"] == "langevin"
        assert f["parameters/attrs"].attrs["problem"] == "walk"
        assert f["parameters/attrs/parameters"].attrs["sigma"] == 0.1
        assert [s.decode() for s in f["parameters/coords/spatial"][:]] == ["x", "y", "z"]
        assert f.attrs["simkit_layout"] == "h5md" and f.attrs["status"] == "running"


def test_summarize_reports_progress_per_save_group(tmp_h5):
    _run(tmp_h5, 3)
    info = summarize(tmp_h5)
    assert info["groups"]["trajectory"] == {
        "every": TRAJ_EVERY,
        "frames": 3,
        "quantities": ["position", "velocity"],
        "last_step": 2 * TRAJ_EVERY,
        "last_time": pytest.approx(2 * TRAJ_EVERY * DT),
    }
    assert info["groups"]["thermo"]["frames"] == 30
    assert info["groups"]["thermo"]["last_step"] == 29 * THERMO_EVERY


def test_time_dependent_box_shares_position_step_and_time(tmp_h5):
    _run(tmp_h5, 3, box_mode="variable", boundary=["periodic", "periodic", "none"])
    with h5py.File(tmp_h5, "r") as f:
        box = f["particles/all/box"]
        assert box.attrs["boundary"].tolist() == [b"periodic", b"periodic", b"none"]
        assert box["edges/value"].shape == (3, 3) and box["edges/value"].attrs["unit"] == "nm"
        for key in ("step", "time"):  # H5MD: "must be accomplished by hard-linking"
            assert _same_object(box[f"edges/{key}"], f[f"particles/all/position/{key}"])


def test_observables_only_run_has_no_particles_group(tmp_h5):
    store = H5MDStore.create(tmp_h5, [_groups()[1]], config={})
    store.append(
        {
            "thermo": (
                [0, 10],
                [0.0, 0.02],
                {"kinetic_energy": [1.0, 2.0], "pressure_tensor": np.zeros((2, 3, 3))},
            )
        }
    )
    store.close()
    with h5py.File(tmp_h5, "r") as f:
        assert "particles" not in f and "time" not in f.attrs
        np.testing.assert_array_equal(f["observables/kinetic_energy/value"][:], [1.0, 2.0])
        assert "unit" not in f["observables/kinetic_energy/time"].attrs  # no time_units given


def test_boundary_none_needs_no_box(tmp_h5):
    H5MDStore.create(tmp_h5, _groups(), config={}, boundary="none").close()
    with h5py.File(tmp_h5, "r") as f:
        assert f["particles/all/box"].attrs["boundary"].tolist() == [b"none"] * 3
        assert "edges" not in f["particles/all/box"]


# -- resume -------------------------------------------------------------------------------------
@pytest.mark.parametrize("box_mode", ["variable", "repeat"])
def test_resume_truncates_every_element_and_continues(tmp_h5, box_mode):
    box_var = box_mode == "variable"
    _, data = _run(tmp_h5, 4, box_mode=box_mode)
    with pytest.raises(StoreError, match="dt: file has 0.002, this run has 0.001"):
        H5MDStore.open_resume(tmp_h5, config={**CONFIG, "dt": 0.001})
    store = H5MDStore.open_resume(tmp_h5, config=dict(reversed(CONFIG.items())))
    assert store.n_frames == {"trajectory": 4, "thermo": 40}
    store.truncate({"trajectory": 2, "thermo": 15})
    store.close()
    with h5py.File(tmp_h5, "r") as f:
        elements = _elements(f)
        assert len(elements) == 5  # position, velocity, box/edges, two observables
        for path, el in elements.items():
            n = 2 if path.startswith("particles/") else 15
            assert el["value"].shape[0] == el["step"].shape[0] == el["time"].shape[0] == n, path
    store = H5MDStore.open_resume(tmp_h5, config=CONFIG)
    assert store.n_frames == {"trajectory": 2, "thermo": 15}
    with pytest.raises(SimkitInputError, match="increasing steps"):  # step 100 is already there
        store.append(
            {"trajectory": ([100], [0.2], _chunk(data, 1, 2, box_var=box_var)["trajectory"][2])}
        )
    chunk = _chunk(data, 2, 4, box_var=box_var)
    t = slice(15, 40)  # thermo continues from frame 15
    chunk["thermo"] = (
        data["thermo_steps"][t],
        data["thermo_times"][t],
        {k: data[k][t] for k in ("kinetic_energy", "pressure_tensor")},
    )
    store.append(chunk)
    store.close()
    with h5py.File(tmp_h5, "r") as f:
        np.testing.assert_array_equal(f["particles/all/position/value"][:], data["position"])
        np.testing.assert_array_equal(f["particles/all/box/edges/value"][:], data["box"])
        np.testing.assert_array_equal(f["particles/all/position/step"][:], data["steps"])
        np.testing.assert_array_equal(f["observables/kinetic_energy/step"][:], data["thermo_steps"])
        np.testing.assert_array_equal(
            f["observables/kinetic_energy/value"][:], data["kinetic_energy"]
        )


def test_overwrite_needs_overwrite_flag(tmp_h5):
    _run(tmp_h5, 2)
    with pytest.raises(SimkitInputError, match="already exists"):
        H5MDStore.create(tmp_h5, _groups(), config=CONFIG, box=[L] * 3)
    H5MDStore.create(tmp_h5, _groups(), config=CONFIG, box=[L] * 3, overwrite=True).close()
    with h5py.File(tmp_h5, "r") as f:
        assert f["particles/all/position/value"].shape == (0, N, 3)


# -- crash safety -------------------------------------------------------------------------------
@quiet_mda
def test_frames_flushed_before_sigkill_read_back(tmp_h5):
    """Kill -9 a writer mid-run: every frame it reported as flushed reads back intact."""

    def live(line):
        if int(line) == 10:  # readable while the writer is alive
            with h5py.File(tmp_h5, "r", locking=False) as f:
                assert f["particles/trajectory/position/time"].shape[0] >= 11
                np.testing.assert_array_equal(
                    f["particles/trajectory/position/value"][10], np.full((16, 3), 10.0)
                )

    proc = spawn(Path(__file__).parent / "_h5md_writer.py", tmp_h5)
    last = int(signal_when(proc, lambda line: int(line) >= 40, on_line=live))
    assert last >= 40
    k = last + 1
    with h5py.File(tmp_h5, "r") as f:
        for name in ("position", "velocity"):
            el = f[f"particles/trajectory/{name}"]
            assert el["step"].shape[0] >= k and el["time"].shape[0] >= k
            np.testing.assert_array_equal(
                el["value"][:k],
                np.broadcast_to(np.arange(k, dtype=np.float32)[:, None, None], (k, 16, 3)),
            )
            np.testing.assert_array_equal(el["step"][:k], np.arange(k) * 10)
        np.testing.assert_array_equal(
            f["particles/trajectory/box/edges/value"][:k], np.full((k, 3), 4.0)
        )
        np.testing.assert_array_equal(
            f["observables/kinetic_energy/value"][: 2 * k], np.arange(2 * k, dtype=np.float64)
        )
        np.testing.assert_array_equal(
            f["observables/kinetic_energy/step"][: 2 * k], np.arange(2 * k) * 5
        )
    mda = _mdanalysis_if_installed()
    if mda is not None:
        u = mda.Universe(str(tmp_h5), format="H5MD", topology_format="MINIMAL", n_atoms=16)
        for i in range(k):
            ts = u.trajectory[i]
            np.testing.assert_array_equal(ts.positions, np.full((16, 3), 10.0 * i))  # nm -> Å
            assert ts.data["step"] == 10 * i


@quiet_mda
@pytest.mark.parametrize("fail_at", [1, 4, 7])  # position value, trajectory time, 2nd observable
def test_full_disk_mid_append_keeps_previous_frames(tmp_h5, monkeypatch, fail_at):
    store, data = _run(tmp_h5, 6, close=False, box_mode="variable")  # writes frames 0..5
    data_more = _random_walk(8, "float32", box_var=True)
    data_more["steps"] += 600
    data_more["thermo_steps"] += 600
    data_more["times"] += 600 * DT
    data_more["thermo_times"] += 600 * DT
    chunk = _chunk(data_more, 0, 2, box_var=True)

    real_setitem = h5py.Dataset.__setitem__
    calls = []

    def full_disk(self, key, value):  # the fail_at-th dataset write of this append fails
        calls.append(self.name)
        if len(calls) == fail_at:
            raise OSError(28, "No space left on device")
        return real_setitem(self, key, value)

    monkeypatch.setattr(h5py.Dataset, "__setitem__", full_disk)
    with pytest.raises(StoreWriteError, match="No space left on device"):
        store.append(chunk)
    monkeypatch.undo()
    assert len(calls) == fail_at  # the failure hit where intended
    assert store.n_frames == {"trajectory": 6, "thermo": 60}
    store.close()

    with h5py.File(tmp_h5, "r") as f:
        elements = _elements(f)
        assert len(elements) == 5
        for path, el in elements.items():
            n = 6 if path.startswith("particles/") else 60
            assert el["value"].shape[0] == el["step"].shape[0] == el["time"].shape[0] == n, path
        np.testing.assert_array_equal(f["particles/all/position/value"][:], data["position"])
        np.testing.assert_array_equal(f["particles/all/box/edges/value"][:], data["box"])
        np.testing.assert_array_equal(
            f["observables/pressure_tensor/value"][:], data["pressure_tensor"]
        )
        np.testing.assert_array_equal(f["observables/kinetic_energy/time"][:], data["thermo_times"])
    mda = _mdanalysis_if_installed()
    if mda is not None:
        u = mda.Universe(str(tmp_h5), format="H5MD", topology_format="MINIMAL", n_atoms=N)
        assert len(u.trajectory) == 6
        np.testing.assert_allclose(u.trajectory[5].positions, 10 * data["position"][5], rtol=2e-6)


def test_time_axis_written_after_every_value_of_its_group(tmp_h5, monkeypatch):
    """A reader (or a crash) that sees frame i in `time` must find its values already written."""
    store, _ = _run(tmp_h5, 2, close=False, box_mode="repeat")
    real_setitem = h5py.Dataset.__setitem__
    order = []

    def record(self, key, value):
        order.append(self.name)
        return real_setitem(self, key, value)

    monkeypatch.setattr(h5py.Dataset, "__setitem__", record)
    store.append(_chunk(_random_walk(4, "float32", box_var=False), 2, 4, box_var=False))
    monkeypatch.undo()
    store.close()
    for prefix, clock in (
        ("/particles/", "/particles/all/position"),
        ("/observables/", "/observables/kinetic_energy"),
    ):
        values = [
            i for i, name in enumerate(order) if name.startswith(prefix) and name.endswith("/value")
        ]
        assert order.index(f"{clock}/time") == max(
            i for i, name in enumerate(order) if name.startswith(prefix)
        )
        assert order.index(f"{clock}/step") > max(values)
    assert "/particles/all/box/edges/value" in order  # the repeated fixed box, every frame


# -- refused inputs -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "particles, options, match",
    [
        # (other dimension names than position's: with the same names `normalize_groups` refuses
        # first, with "dimension 'particle' has sizes 7 and 8")
        (
            {"force": Variable(("atom", "xyz"), (N + 1, 3), "float32")},
            {},
            r"'force' has shape \(8, 3\), i\.e\. 8 particles, but 'position' has 7",
        ),
        (
            {"force": Variable(("atom", "xyz"), (N, 2), "float32")},
            {},
            r"'force' has shape \(7, 2\), expected \(7, 3\)",
        ),
        ({"mass": Variable(VEC, (N, 3), "float32")}, {}, r"'mass' has shape \(7, 3\).*\(N,\)"),
        ({"species": Variable(("particle",), (N,), "float32")}, {}, "'species' as integer"),
        ({}, {"box": None}, "periodic but there is no box"),
        ({}, {"box": [L, L]}, r"box has shape \(2,\), expected \(3,\)"),
        ({}, {"boundary": ["periodic", "none"]}, "has 2 entries.*3 spatial dimensions"),
        ({}, {"boundary": "open"}, "'periodic' or 'none'"),
        ({}, {"box": [L, 0.0, L]}, "must be > 0"),
        ({"box": Variable(("spatial",), (3,), "float32")}, {}, "both a fixed box"),
        ({}, {"repeat_box": True, "box": None, "boundary": "none"}, "repeat_box=True needs"),
    ],
)
def test_refuses_inconsistent_particle_data(tmp_h5, particles, options, match):
    options = {"box": [L, L, L], **options}
    with pytest.raises(SimkitInputError, match=match):
        H5MDStore.create(tmp_h5, _groups(particles=particles), config={}, **options)
    assert not tmp_h5.exists() and not list(tmp_h5.parent.glob("*.creating"))


def test_refuses_box_and_image_outside_position_group_and_non_ascii_units(tmp_h5):
    box = SaveGroup("box", 10, {"box": Variable(("spatial",), (3,), "float32", units="nm")})
    with pytest.raises(SimkitInputError, match="'box' is saved in group 'box'.*same group"):
        H5MDStore.create(tmp_h5, [*_groups(), box], config={})
    vel_only = SaveGroup(
        "v",
        1,
        {"velocity": Variable(VEC, (N, 3), "float32"), "image": Variable(VEC, (N, 3), "int32")},
    )
    with pytest.raises(SimkitInputError, match="'image' only together with 'position'"):
        H5MDStore.create(tmp_h5, [vel_only], config={}, boundary="none")
    angstrom = SaveGroup("t", 1, {"position": Variable(VEC, (N, 3), "float32", units="Å")})
    with pytest.raises(SimkitInputError, match="ASCII"):
        H5MDStore.create(tmp_h5, [angstrom], config={}, boundary="none")
    assert not tmp_h5.exists()


def test_append_refuses_wrong_shapes_and_writes_nothing(tmp_h5):
    store = H5MDStore.create(tmp_h5, _groups(), config={}, box=[L] * 3)
    good = _chunk(_random_walk(2, "float32", box_var=False), 0, 2, box_var=False)
    steps, times, frames = good["trajectory"]
    with pytest.raises(SimkitInputError, match=r"'position' has shape \(2, 7, 2\)"):
        store.append({"trajectory": (steps, times, {**frames, "position": np.zeros((2, N, 2))})})
    with pytest.raises(SimkitInputError, match="variables"):
        store.append({"trajectory": (steps, times, {"position": frames["position"]})})
    with pytest.raises(SimkitInputError, match="unknown save group"):
        store.append({"trajectroy": good["trajectory"]})
    with pytest.raises(SimkitInputError, match="increasing steps"):
        store.append({"trajectory": (steps[::-1], times, frames)})
    assert store.n_frames == {"trajectory": 0, "thermo": 0}
    store.close()
    with h5py.File(tmp_h5, "r") as f:
        assert all(el["value"].shape[0] == 0 for el in _elements(f).values())
