"""The spectral problem scripts (kolmogorov_flow, decaying_turbulence) through the command line,
and `simkit.run.VmappedStepper`, the ensemble wrapper decaying_turbulence runs on: options and
--help, small runs whose HDF5 output xarray opens and whose XDMF sidecar VTK reads, the printed
summaries, bad input refused before compute (exit code 2), --resume after a finished and after
an interrupted run (bitwise equal to an uninterrupted run), and an ensemble equal to separate
runs of its members, sharded over the 8 virtual CPU devices."""

import contextlib
import io
import re
import xml.etree.ElementTree as ET

import h5py
import jax
import numpy as np
import pytest
import xarray as xr

from simkit.cli import load_problem, main
from simkit.fluids import spectral as sp
from simkit.run import VmappedStepper, run, shard_members

SPECTRAL_PROBLEMS = ("kolmogorov_flow", "decaying_turbulence")
KOLMOGOROV = ["--n", "32", "--time", "2", "--spinup", "1"]  # 500 steps (the smallest plan)
DECAYING = ["--members", "8", "--n", "32", "--time", "1", "--peak-wavenumber", "3"]  # 200 steps


def number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in the output:\n{text}"
    return float(match.group(1))


def run_cli(args, capsys) -> str:
    assert main(["run", *args, "--no-progress"]) == 0
    return capsys.readouterr().out


class CtrlCAfterTwoChunks:
    """A progress bar whose second update raises KeyboardInterrupt (the user's Ctrl-C mid-run)."""

    def __init__(self, real, *a):
        self.bar, self.updates = real(*a), 0

    def update(self, n):
        self.updates += 1
        if self.updates == 2:
            raise KeyboardInterrupt

    def close(self):
        self.bar.close()


def interrupted_then_resumed(name, options, out, capsys, monkeypatch, command=False) -> str:
    """Ctrl-C after two chunks, then `simkit run NAME ... --resume` (or, with `command`,
    `simkit resume FILE`, which reads the options from the file); returns the summary."""
    import simkit.run._driver as driver

    real = driver._progress_bar
    monkeypatch.setattr(driver, "_progress_bar", lambda *a: CtrlCAfterTwoChunks(real, *a))
    assert main(["run", name, *options, "--out", str(out), "--no-progress"]) == 130
    monkeypatch.setattr(driver, "_progress_bar", real)
    with h5py.File(out, "r") as f:
        assert f.attrs["status"] == "interrupted"
    capsys.readouterr()
    if command:
        assert main(["resume", str(out), "--no-progress"]) == 0
    else:
        assert main(["run", name, *options, "--out", str(out), "--resume", "--no-progress"]) == 0
    return capsys.readouterr().out


@pytest.fixture(scope="module")  # module fixtures cannot use capsys: stdout is redirected
def kolmogorov(tmp_path_factory):
    out = tmp_path_factory.mktemp("kolmogorov") / "k.h5"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert (
            main(["run", "kolmogorov_flow", *KOLMOGOROV, "--out", str(out), "--no-progress"]) == 0
        )
    return out, buf.getvalue()


@pytest.fixture(scope="module")
def decaying(tmp_path_factory):
    out = tmp_path_factory.mktemp("decaying") / "d.h5"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert (
            main(["run", "decaying_turbulence", *DECAYING, "--out", str(out), "--no-progress"]) == 0
        )
    return out, buf.getvalue()


# -- options ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, options",
    [
        (
            "kolmogorov_flow",
            ("--re", "--viscosity", "--drag", "--forcing-wavenumber", "--amplitude", "--spinup"),
        ),
        ("decaying_turbulence", ("--members", "--viscosity", "--peak-wavenumber")),
    ],
)
def test_spectral_problem_help_lists_options(name, options, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", name, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    common = (
        "--n",
        "--time",
        "--dt",
        "--seed",
        "--float64",
        "--out",
        "--resume",
        "--overwrite",
        "--no-progress",
    )
    assert all(option in text for option in common + options), text
    assert load_problem(name).build_parser().format_help() == text


@pytest.mark.parametrize(
    "args, message",
    [
        (["kolmogorov_flow", "--n", "4"], "--n must be at least 16"),
        (["kolmogorov_flow", "--n", "24", "--forcing-wavenumber", "8"], "above 3 x --forcing"),
        (["kolmogorov_flow", "--viscosity=-1e-3"], "--viscosity must be > 0"),
        (["kolmogorov_flow", "--re", "0"], "--re must be > 0"),
        (["kolmogorov_flow", "--drag", "-0.1"], "--drag must be >= 0"),
        (["kolmogorov_flow", "--spinup", "50"], "--spinup must be in [0, --time)"),
        (["decaying_turbulence", "--n", "4"], "--n must be at least 16"),
        (["decaying_turbulence", "--viscosity", "-1"], "--viscosity must be > 0"),
        (
            ["decaying_turbulence", "--n", "32", "--peak-wavenumber", "6"],
            "too close to the largest",
        ),
    ],
)
def test_spectral_problem_bad_input_is_named_before_compute(tmp_path, capsys, args, message):
    out = tmp_path / "bad.h5"
    assert main(["run", *args, "--out", str(out), "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["kolmogorov_flow", "--bogus"], "unrecognized arguments: --bogus"),
        (["kolmogorov_flow", "--re", "100", "--viscosity", "0.01"], "not allowed with argument"),
        (["decaying_turbulence", "--members", "0"], "--members"),
    ],
)
def test_spectral_problem_usage_errors_exit_2(capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        main(["run", *args])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


# -- Kolmogorov flow -------------------------------------------------------------------------------


def test_kolmogorov_small_run_output_and_summary(kolmogorov):
    out, text = kolmogorov
    for line in (
        "Kolmogorov flow: Re = 1000 (nu = 0.001",
        "500 steps of dt = 0.004 (t = 2)",
        "time-averaged energy spectrum E(k):",
        "<- forcing k_f",
        "spectral slope d ln E / d ln k",
        "direct enstrophy cascade k^-3",
        "injection <f.u>",
        "dissipation nu<w^2>",
        "drag loss 2 mu <E>",
        "residual",
    ):
        assert line in text, (line, text)
    # The budget dE/dt = injection - dissipation - 2 mu E must close (the lead's central-difference
    # check gave 4e-7 at dt 2e-3); here the time averages of the 251 diagnostic frames of
    # t >= 1 (one per step) are compared with the energy's change over the same span: the
    # error of the rectangle rule, O(dt / span) of the terms.
    assert number(r"budget closes to \|residual - dE/dt\| / injection = (\S+)\n", text) < 1e-2
    assert number(r"largest CFL number (\S+)", text) < 1.0
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        assert ds.attrs["status"] == "finished"
        assert ds.velocity.dims == ("time_fields", "y", "x", "component")
        assert ds.velocity.shape == (11, 32, 32, 2) and ds.energy.shape == (501,)
        assert ds.energy_spectrum.shape[0] == 101 and ds.k[1] == 1.0
        assert ds.energy_spectrum.dims == ("time_spectrum", "k")
        np.testing.assert_array_equal(ds.step_fields, np.arange(0, 501, 50))
    assert out.with_suffix(".xdmf").exists()


def test_kolmogorov_resume_after_finished_and_interrupted(
    kolmogorov, tmp_path, capsys, monkeypatch
):
    out, text = kolmogorov
    # --resume of a finished run: nothing to compute, the same summary again
    again = run_cli(["kolmogorov_flow", *KOLMOGOROV, "--out", str(out), "--resume"], capsys)
    assert again.split("\n")[3:] == text.split("\n")[3:]  # all but the wall-time lines
    resumed = tmp_path / "k.h5"
    text2 = interrupted_then_resumed("kolmogorov_flow", KOLMOGOROV, resumed, capsys, monkeypatch)
    assert "500 steps of dt" in text2
    with h5py.File(out, "r") as a, h5py.File(resumed, "r") as b:  # bitwise, the driver's promise
        for q in ("velocity", "vorticity", "energy", "energy_spectrum"):
            np.testing.assert_array_equal(a[q][...], b[q][...])


# -- decaying turbulence ---------------------------------------------------------------------------


def test_decaying_ensemble_run_output_and_summary(decaying):
    out, text = decaying
    for line in (
        "Decaying 2-D turbulence: 8 members",
        "200 steps of dt = 0.005 (t = 1)",
        "on 8 device(s)",
        "E/E0",
        "Z/Z0",
        "energy budget: E(0) - E(t)",
        "Batchelor (1969) enstrophy cascade k^-3",
        "Saffman 1971",
    ):
        assert line in text, (line, text)
    # dE/dt = -nu <w^2> without forcing: energy lost vs trapezoid-integrated dissipation over
    # 200 diagnostic frames (one per step) of a smooth decay: the trapezoid error is O(dt^2),
    # float32 rounding of E(0) - E(t) ~1e-7 / 0.02; agreement to better than 1e-2 relative.
    assert number(r"largest relative difference over the members (\S+)\n", text) < 1e-2
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        assert ds.attrs["status"] == "finished"
        assert ds.vorticity.dims == ("time_fields", "member", "y", "x")
        assert ds.velocity.dims == ("time_fields", "member", "y", "x", "component")
        assert ds.velocity.shape == (11, 8, 32, 32, 2)
        assert ds.energy.dims == ("time_diagnostics", "member") and ds.energy.shape == (201, 8)
        assert ds.energy_spectrum.dims == ("time_spectrum", "member", "k")
        np.testing.assert_array_equal(ds.member, np.arange(8))
        e = ds.energy.values
        # 2-D decay (no forcing): each member's energy decreases monotonically, from 0.5
        np.testing.assert_allclose(e[0], 0.5, rtol=1e-5)  # float32 fields
        assert (np.diff(e, axis=0) < 0).all()
        # members differ (different seeds)
        assert np.ptp(ds.vorticity[0].values.reshape(8, -1), axis=0).max() > 0.1


def test_decaying_xdmf_shows_member_0(decaying):
    out, _ = decaying
    xdmf = out.with_suffix(".xdmf")
    slabs = ET.parse(xdmf).getroot().findall(".//Attribute/DataItem/DataItem")
    assert slabs and all(s.text.split()[1] == "0" for s in slabs[::2])  # start: member 0
    vtk = pytest.importorskip("vtk")
    from vtkmodules.util.numpy_support import vtk_to_numpy

    reader = vtk.vtkXdmfReader()
    reader.SetFileName(str(xdmf))
    reader.UpdateInformation()
    times = reader.GetOutputInformation(0).Get(vtk.vtkStreamingDemandDrivenPipeline.TIME_STEPS())
    assert len(times) == 11
    reader.UpdateTimeStep(times[-1])
    pd = reader.GetOutputDataObject(0).GetPointData()
    w = vtk_to_numpy(pd.GetArray("vorticity"))
    u = vtk_to_numpy(pd.GetArray("velocity"))
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(w, f["vorticity"][-1, 0].ravel())  # (y, x): x fastest
        np.testing.assert_array_equal(u[:, :2], f["velocity"][-1, 0].reshape(-1, 2))


def test_decaying_resume_after_interrupt_is_bitwise(decaying, tmp_path, capsys, monkeypatch):
    out, _ = decaying
    resumed = tmp_path / "d.h5"
    text = interrupted_then_resumed(
        "decaying_turbulence", DECAYING, resumed, capsys, monkeypatch, command=True
    )
    assert "on 8 device(s)" in text  # the checkpoint restores the member sharding
    with h5py.File(out, "r") as a, h5py.File(resumed, "r") as b:
        for q in ("velocity", "vorticity", "energy", "energy_spectrum"):
            np.testing.assert_array_equal(a[q][...], b[q][...])


# -- VmappedStepper --------------------------------------------------------------------------------


@pytest.mark.slow  # default-suite time; members = separate runs: test_spectral_ensemble; resume: the decaying_turbulence tests
def test_vmapped_stepper_equals_separate_runs_and_stays_sharded():
    """Members of an ensemble run (per-member params: a viscosity sweep; and shared params)
    against runs of the stepper alone, float64, 32^2, 20 steps. The states are bitwise equal
    on CPU (the batched FFTs and elementwise ops compute each member exactly as the single run
    does; measured also in float32 and without sharding). The saved frames agree to 1e-14
    relative: the initial frame is observed by a jitted vmap here and eagerly for the single
    stepper, and the compiled reductions may round the last bit differently (seen: 1 ulp)."""
    ns = sp.NavierStokes2D((32, 32), 0.01, forcing=sp.Kolmogorov(2), dtype="float64")
    n = 4
    params = [ns.params(v, drag=0.05, forcing_amplitude=0.5) for v in (1e-2, 2e-2, 3e-2, 5e-3)]
    rng = np.random.default_rng(3)
    states = [ns.init(params[0], vorticity=rng.normal(size=(32, 32))) for _ in range(n)]
    kw = dict(
        n_steps=20, save_every={"fields": 20, "diagnostics": 10, "spectrum": 20}, progress=False
    )
    singles = [run(ns, s, p, **kw) for s, p in zip(states, params, strict=False)]
    shared_singles = [run(ns, s, params[0], **kw) for s in states[:2]]

    sweep = VmappedStepper(ns, n)
    batched = shard_members(sweep.stack(states))
    assert len(batched.vorticity_hat.sharding.device_set) == 4  # 4 members: 4 of 8 devices
    ens = run(sweep, batched, sweep.stack(params), **kw)
    shared = run(
        VmappedStepper(ns, 2, shared_params=True),
        shard_members(sweep.stack(states[:2])),
        params[0],
        **kw,
    )
    # the driver's jitted chunks keep the placement of their inputs
    assert ens.state.vorticity_hat.sharding.is_equivalent_to(batched.vorticity_hat.sharding, 2)
    assert len(shared.state.vorticity_hat.sharding.device_set) == 2
    for result, refs in ((ens, singles), (shared, shared_singles)):
        assert result.frames["energy"].shape == (3, len(refs))
        assert result.frames["velocity"].shape == (2, len(refs), 32, 32, 2)
        for i, ref in enumerate(refs):
            np.testing.assert_array_equal(result.state.vorticity_hat[i], ref.state.vorticity_hat)
            for q, frames in ref.frames.items():  # frame 0: jitted vs eager observe, 1 ulp
                np.testing.assert_allclose(result.frames[q][:, i], frames, rtol=1e-14, atol=1e-300)
    assert int(ens.state.step[0]) == 20


def test_vmapped_stepper_declares_member_dims_and_refuses_bad_input():
    from simkit import SimkitInputError

    ns = sp.NavierStokes2D((16, 16), 0.01)
    ens = VmappedStepper(ns, 3, shared_params=True)
    params = ns.params(1e-2)
    state = ens.stack([ns.init(params, vorticity=sp.taylor_green(ns.grid))] * 3)
    var = ens.variables(state, params)
    assert var["velocity"].dims == ("member", "x", "y", "component")
    assert var["velocity"].shape == (3, 16, 16, 2) and var["energy"].shape == (3,)
    assert list(ens.coords(state, params)["member"][0]) == [0, 1, 2]
    assert ens.save_groups() == ns.save_groups()
    assert float(ens.time(state)) == 0.0
    with pytest.raises(SimkitInputError, match="n_members must be an integer >= 1"):
        VmappedStepper(ns, 0)
    with pytest.raises(SimkitInputError, match="wraps an AbstractStepper"):
        VmappedStepper(object(), 2)
    mesh = jax.make_mesh((8,), ("ensemble",))
    with pytest.raises(SimkitInputError, match="do not split evenly"):
        shard_members(state, mesh)


def test_field_store_member_axis_layout_and_refusal(tmp_path):
    """FieldStore with an ensemble axis: stored (time, member, y, x), the sidecar reads member 0;
    a member axis that is not first is refused by name."""
    from simkit import SimkitInputError
    from simkit.io import FieldStore, SaveGroup, Variable

    coords = {"x": ([0.0, 1.0, 2.0], "m"), "y": ([0.0, 1.0], "m")}
    var = {"s": Variable(("member", "x", "y"), (2, 3, 2), "float32")}
    store = FieldStore.create(
        tmp_path / "a.h5", [SaveGroup("fields", 1, var)], config={}, coords=coords
    )
    frame = np.arange(12, dtype=np.float32).reshape(1, 2, 3, 2)  # declared (member, x, y)
    store.append({"fields": ([0], [0.0], {"s": frame})})
    store.close()
    with h5py.File(tmp_path / "a.h5", "r") as f:
        np.testing.assert_array_equal(f["s"][0], frame[0].transpose(0, 2, 1))
    slab = ET.parse(tmp_path / "a.xdmf").getroot().find(".//Attribute/DataItem")
    assert slab.get("Dimensions") == "1 2 3"  # one member: (z, y, x) of the 2-D grid
    assert slab[0].text.split() == ["0", "0", "0", "0", "1", "1", "1", "1", "1", "1", "2", "3"]
    bad = {"s": Variable(("x", "member", "y"), (3, 2, 2), "float32")}
    with pytest.raises(SimkitInputError, match="'member' must come first"):
        FieldStore.create(
            tmp_path / "b.h5", [SaveGroup("fields", 1, bad)], config={}, coords=coords
        )
