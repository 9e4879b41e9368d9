"""simkit.fluids.lbm input checks: every bad input is refused with a `SimkitInputError` that names
the input and the value seen, on the host, before anything is compiled; and a run that blows up
anyway (parameters built by hand, past `params()`) stops the driver at the first bad step with
every earlier frame on disk."""

import sys
from pathlib import Path

import h5py
import jax.numpy as jnp
import numpy as np
import pytest

from simkit import SimkitInputError
from simkit.fluids import lattice_units, lbm
from simkit.io import FieldStore
from simkit.run import SimulationBlowUp, run

sys.path.insert(0, str(Path(__file__).parent))
from _lbm_worker import CHUNK, SAVE_EVERY
from _lbm_worker import N as N_CAVITY

SHAPE = (8, 6)
PERIODIC = lbm.LBMStepper(lbm.D2Q9, SHAPE)
CHANNEL_WALLS = lbm.box_walls(SHAPE, ["y-", "y+"])


def _open_channel(**kw):
    return lbm.LBMStepper(lbm.D2Q9, SHAPE, periodic=(False, False), inlet="x-", outlet="x+", **kw)


def _lid_stepper():
    return lbm.LBMStepper(lbm.D2Q9, SHAPE, periodic=(True, False), moving_walls=("lid",))


# ---------------------------------------------------------------- stepper configuration


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: lbm.LBMStepper("D2Q7", SHAPE),
            r"unknown lattice 'D2Q7'; choose one of D2Q9, D3Q19",
        ),
        (
            lambda: lbm.LBMStepper(lbm.D2Q9, (8, 6, 4)),
            r"D2Q9 needs a 2-D grid shape, got \(8, 6, 4\)",
        ),
        (lambda: lbm.LBMStepper(lbm.D3Q19, SHAPE), r"D3Q19 needs a 3-D grid shape, got \(8, 6\)"),
        (lambda: lbm.LBMStepper(lbm.D2Q9, "8x6"), r"shape must be a sequence of 2 integers"),
        (lambda: lbm.LBMStepper(lbm.D2Q9, (8, 2)), r"at least 3 cells, got shape \(8, 2\)"),
        (lambda: lbm.LBMStepper(lbm.D2Q9, SHAPE, periodic=(True,)), r"periodic needs 2 entries"),
        (
            lambda: lbm.LBMStepper(lbm.D2Q9, SHAPE, "bgk"),
            r"collision must be BGK\(\), TRT\(\) or Regularized\(\), got 'bgk'",
        ),
        (lambda: lbm.TRT(magic=0.0), r"TRT magic parameter must be > 0, got 0.0"),
        (lambda: lbm.LBMStepper(lbm.D2Q9, SHAPE, dtype="float16"), r"float32 or float64.*float16"),
        (
            lambda: lbm.LBMStepper(lbm.D2Q9, SHAPE, inlet="x-"),
            r"inlet is on side 'x-' but axis x is periodic; pass periodic=\(False, True\)",
        ),
        (
            lambda: lbm.LBMStepper(lbm.D2Q9, SHAPE, periodic=(True, False), outlet="x+"),
            r"outlet is on side 'x\+' but axis x is periodic",
        ),
        (
            lambda: lbm.LBMStepper(lbm.D2Q9, SHAPE, periodic=False, inlet="x-", outlet="x-"),
            r"inlet and outlet cannot share side 'x-'",
        ),
        (
            lambda: lbm.LBMStepper(lbm.D2Q9, SHAPE, periodic=False, inlet="z-"),
            r"unknown side 'z-' for a 2-D grid",
        ),
        (
            lambda: lbm.LBMStepper(lbm.D2Q9, SHAPE, moving_walls=("force",)),
            r"moving wall name 'force' is not allowed",
        ),
        (
            lambda: lbm.LBMStepper(lbm.D2Q9, SHAPE, moving_walls=("lid", "lid")),
            r"moving wall names must differ",
        ),
    ],
    ids=[
        "lattice name",
        "shape length 3 for D2Q9",
        "shape length 2 for D3Q19",
        "shape not a sequence",
        "axis too short",
        "periodic length",
        "collision",
        "TRT magic",
        "dtype",
        "inlet on periodic axis",
        "outlet on periodic axis",
        "inlet = outlet",
        "side",
        "moving wall name",
        "moving wall twice",
    ],
)
def test_bad_stepper_configuration_is_refused(make, message):
    with pytest.raises(SimkitInputError, match=message):
        make()


# ---------------------------------------------------------------- params


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: PERIODIC.params(0.0), r"viscosity must be finite and > 0, got 0.0"),  # tau = 1/2
        (lambda: PERIODIC.params(-0.01), r"viscosity must be finite and > 0, got -0.01"),  # < 1/2
        (lambda: PERIODIC.params(float("nan")), r"viscosity must be finite and > 0, got nan"),
        (lambda: PERIODIC.params("thin"), r"viscosity must be a number, got 'thin'"),
        (
            lambda: PERIODIC.params(0.003),
            r"tau = 3 \* viscosity \+ 1/2 = 0.509 is below 0.51 for BGK: the run would be unstable",
        ),
        (
            lambda: lbm.LBMStepper(lbm.D2Q9, SHAPE, lbm.TRT()).params(0.001),
            r"tau = 3 \* viscosity \+ 1/2 = 0.503 is below 0.505 for TRT",
        ),
        (
            lambda: lbm.LBMStepper(lbm.D2Q9, SHAPE, lbm.Regularized(min_tau=0.6)).params(0.03),
            r"tau = 3 \* viscosity \+ 1/2 = 0.59 is below 0.6 for Regularized",
        ),
        (
            lambda: _lid_stepper().params(0.1, lid=(0.2, 0.0)),
            r"lid: lattice Mach number \|u\| / c_s = 0.346 exceeds 0.3",
        ),
        (
            lambda: _lid_stepper().params(0.1, lid=(0.15, 0.1)),  # each component allowed, |u| not
            r"lid: lattice Mach number \|u\| / c_s = 0.312 exceeds 0.3",
        ),
        (
            lambda: _lid_stepper().params(0.1),
            r"missing velocity of moving wall 'lid': pass params\(\.\.\., lid=\(ux, uy\)\)",
        ),
        (
            lambda: _lid_stepper().params(0.1, lid=(0.1, 0.0), led=(0.1, 0.0)),
            r"unknown parameters \['led'\]; moving walls declared on the stepper: \['lid'\]",
        ),
        (
            lambda: _lid_stepper().params(0.1, lid=(0.1, 0.0, 0.0)),
            r"lid must have shape \(2,\), got \(3,\)",
        ),
        (lambda: _lid_stepper().params(0.1, lid=(np.nan, 0.0)), r"lid contains NaN or inf"),
        (
            lambda: _open_channel().params(0.1, inlet_velocity=(0.0, -0.2)),
            r"inlet_velocity: lattice Mach number \|u\| / c_s = 0.346 exceeds 0.3",
        ),
        (
            lambda: _open_channel().params(
                0.1, inlet_velocity=np.pad([[0.2, 0.0]], ((2, 3), (0, 0)))
            ),
            r"inlet_velocity: lattice Mach number \|u\| / c_s = 0.346",
        ),  # one cell of a profile
        (
            lambda: _open_channel().params(0.1, inlet_velocity=(np.nan, 0.0)),
            r"inlet_velocity contains NaN or inf",
        ),
        (
            lambda: _open_channel().params(0.1, inlet_velocity=np.zeros((5, 2))),
            r"inlet_velocity must have shape \(2,\) or \(6, 2\), got \(5, 2\)",
        ),
        (
            lambda: _open_channel().params(0.1),
            r"the stepper has an inlet: pass params\(\.\.\., inlet_velocity=\.\.\.\)",
        ),
        (
            lambda: PERIODIC.params(0.1, inlet_velocity=(0.05, 0.0)),
            r"inlet_velocity given but the stepper has no inlet",
        ),
        (
            lambda: _open_channel().params(0.1, inlet_velocity=(0.05, 0.0), outlet_density=0.0),
            r"outlet_density must be finite and > 0, got 0.0",
        ),
        (
            lambda: PERIODIC.params(0.1, force=(1e-5, 0.0)),
            r"a force was given but the stepper has body_force=False",
        ),
        (
            lambda: lbm.LBMStepper(lbm.D2Q9, SHAPE, body_force=True).params(0.1, force=(1e-5,)),
            r"force must have shape \(2,\), got \(1,\)",
        ),
        (
            lambda: lbm.LBMStepper(lbm.D2Q9, SHAPE, body_force=True).params(
                0.1, force=(np.inf, 0.0)
            ),
            r"force contains NaN or inf",
        ),
    ],
    ids=[
        "viscosity 0 (tau 1/2)",
        "negative viscosity",
        "NaN viscosity",
        "viscosity string",
        "tau below BGK min",
        "tau below TRT min",
        "tau below custom min",
        "wall Mach",
        "wall Mach diagonal",
        "missing wall velocity",
        "unknown wall",
        "wall velocity shape",
        "wall velocity NaN",
        "inlet Mach",
        "inlet profile Mach",
        "inlet NaN",
        "inlet profile shape",
        "missing inlet velocity",
        "inlet without inlet",
        "outlet density",
        "force without body_force",
        "force shape",
        "force inf",
    ],
)
def test_bad_params_are_refused(make, message):
    with pytest.raises(SimkitInputError, match=message):
        make()


# ---------------------------------------------------------------- initial state and geometry

P = PERIODIC.params(0.1)


def _init_channel(walls):
    stepper = _open_channel()
    return stepper.init(stepper.params(0.1, inlet_velocity=(0.05, 0.0)), walls=walls)


def _with(mask, *cells):
    out = mask.copy()
    for cell in cells:
        out[cell] = True
    return out


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: PERIODIC.init(P, velocity=(0.1, 0.15)),
            r"velocity: lattice Mach number \|u\| / c_s = 0.312 exceeds 0.3",
        ),
        (
            lambda: PERIODIC.init(
                P, velocity=np.pad(np.full((1, 1, 2), 0.2), ((3, 4), (2, 3), (0, 0)))
            ),
            r"velocity: lattice Mach number \|u\| / c_s = 0.49",
        ),  # one cell of a field
        (
            lambda: PERIODIC.init(
                P, velocity=np.where(np.arange(96).reshape(8, 6, 2) == 7, np.nan, 0.0)
            ),
            r"velocity contains NaN or inf",
        ),
        (
            lambda: PERIODIC.init(P, velocity=np.zeros((8, 6, 3))),
            r"velocity must have shape \(2,\) or \(8, 6, 2\), got \(8, 6, 3\)",
        ),
        (
            lambda: PERIODIC.init(
                P, density=np.where(np.arange(48).reshape(SHAPE) == 5, np.nan, 1.0)
            ),
            r"density must be finite and > 0 everywhere",
        ),
        (lambda: PERIODIC.init(P, density=0.0), r"density must be finite and > 0 everywhere"),
        (
            lambda: PERIODIC.init(P, density=np.ones((6, 8))),
            r"density must be a scalar or have shape \(8, 6\), got \(6, 8\)",
        ),
        (
            lambda: PERIODIC.init(P, obstacle=np.zeros((6, 8), bool)),
            r"obstacle mask must have the grid shape \(8, 6\), got \(6, 8\)",
        ),
        (
            lambda: PERIODIC.init(P, walls=np.zeros(SHAPE, int)),
            r"walls mask must be boolean, got dtype int64",
        ),
        (
            lambda: PERIODIC.init(P, obstacle=np.ones(SHAPE, bool)),
            r"every cell is solid: no fluid left to simulate",
        ),
        (
            lambda: PERIODIC.init(P, walls=lbm.box_walls(SHAPE), obstacle=~lbm.box_walls(SHAPE)),
            r"every cell is solid",
        ),
        (
            lambda: PERIODIC.init(
                P, walls=lbm.box(SHAPE, (2, 2), (4, 4)), obstacle=lbm.box(SHAPE, (3, 3), (5, 5))
            ),
            r"the walls and obstacle masks overlap in 4 cells",
        ),
        (
            lambda: _lid_stepper().init(
                _lid_stepper().params(0.1, lid=(0.1, 0.0)),
                walls=lbm.box_walls(SHAPE, ["y-", "y+"]),
                moving={"lid": lbm.face(SHAPE, "y+")},
            ),
            r"the walls and moving wall 'lid' masks overlap in 8 cells",
        ),
        (
            lambda: _lid_stepper().init(
                _lid_stepper().params(0.1, lid=(0.1, 0.0)),
                walls=lbm.face(SHAPE, "y-"),
                moving={"lid": lbm.face(SHAPE, "y+").astype(float)},
            ),
            r"moving wall 'lid' mask must be boolean, got dtype float64",
        ),
        (
            lambda: _lid_stepper().init(
                _lid_stepper().params(0.1, lid=(0.1, 0.0)), walls=lbm.box_walls(SHAPE, ["y-", "y+"])
            ),
            r"no mask for moving walls \['lid'\]: pass init\(\.\.\., moving=\{name: mask\}\)",
        ),
        (
            lambda: PERIODIC.init(P, moving={"lid": lbm.face(SHAPE, "y+")}),
            r"masks for undeclared moving walls \['lid'\]",
        ),
        (
            lambda: _init_channel(_with(CHANNEL_WALLS, (0, 3))),
            r"1 solid cells lie on the x- face, which is an inlet",
        ),
        (
            lambda: _init_channel(_with(CHANNEL_WALLS, (7, 2), (7, 3))),
            r"2 solid cells lie on the x\+ face, which is an outlet",
        ),
        (
            lambda: lbm.LBMStepper(lbm.D2Q9, SHAPE, periodic=(True, False)).init(
                P, walls=lbm.face(SHAPE, "y-")
            ),
            r"axis y is not periodic but face y\+ has 8 fluid cells and no inlet/outlet",
        ),
        (
            lambda: lbm.LBMStepper(lbm.D2Q9, SHAPE, periodic=(True, False)).init(P),
            r"axis y is not periodic but face y- has 8 fluid cells",
        ),
        (
            lambda: _init_channel(lbm.face(SHAPE, "y-")),
            r"face y\+ has 8 fluid cells and no inlet/outlet",
        ),
    ],
    ids=[
        "initial Mach",
        "initial Mach one cell",
        "initial velocity NaN",
        "velocity shape",
        "density NaN",
        "density zero",
        "density shape",
        "mask shape",
        "mask not bool",
        "all solid (one mask)",
        "all solid (two masks)",
        "overlapping masks",
        "moving wall overlaps walls",
        "moving mask not bool",
        "missing moving-wall mask",
        "undeclared moving wall",
        "solid cell on inlet",
        "solid cells on outlet",
        "open non-periodic face",
        "open faces without masks",
        "open face beside a channel",
    ],
)
def test_bad_initial_state_or_geometry_is_refused(make, message):
    with pytest.raises(SimkitInputError, match=message):
        make()


def test_solid_cells_on_an_inlet_face_are_allowed_only_where_it_meets_the_walls():
    # The channel corners, where the inlet and outlet faces meet the y walls, are solid and
    # allowed; in 3-D an edge along a periodic transverse axis is not a corner.
    state = _init_channel(CHANNEL_WALLS)
    assert state.flags[0, 0] == 1 and state.flags[0, 1] == 0
    shape = (6, 5, 4)
    stepper = lbm.LBMStepper(
        lbm.D3Q19, shape, periodic=(False, False, True), inlet="x-", outlet="x+"
    )
    params = stepper.params(0.1, inlet_velocity=(0.05, 0.0, 0.0))
    walls = lbm.box_walls(shape, ["y-", "y+"])
    with pytest.raises(SimkitInputError, match=r"1 solid cells lie on the x- face"):
        stepper.init(params, walls=_with(walls, (0, 2, 0)))  # z is periodic: z = 0 is inside


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"viscosity": -1e-3}, r"viscosity must be finite and > 0, got -0.001"),
        ({"reynolds": 0.0}, r"reynolds must be finite and > 0, got 0.0"),
        ({"reynolds": 100, "resolution": -64}, r"resolution must be a finite number > 0, got -64"),
        ({"reynolds": 100, "resolution": 0}, r"resolution must be a finite number > 0, got 0"),
        (
            {"reynolds": 100, "velocity": float("nan")},
            r"velocity must be a finite number > 0, got nan",
        ),
        ({"reynolds": 100, "length": -1.0}, r"length must be a finite number > 0, got -1.0"),
        ({}, r"give exactly one of viscosity and reynolds"),
        ({"reynolds": 100, "viscosity": 1e-3}, r"give exactly one of viscosity and reynolds"),
        (
            {"reynolds": 100, "lattice_velocity": 0.2},
            r"lattice Mach number 0.346 \(lattice velocity 0.2\) exceeds 0.3",
        ),
        (
            {"reynolds": 1000, "resolution": 16},
            r"tau = 0.5048 is below 0.51 for BGK at Re = 1000.*at least 301 cells per length",
        ),
        ({"reynolds": 100, "tau": 0.5}, r"tau must be > 1/2, got 0.5"),
        (
            {"reynolds": 100, "tau": 0.6, "lattice_velocity": 0.05},
            r"give at most one of lattice_velocity and tau",
        ),
        (
            {"reynolds": 100, "collision": "MRT"},
            r"collision must be one of BGK, TRT, Regularized, got 'MRT'",
        ),
    ],
    ids=[
        "negative viscosity",
        "zero Reynolds",
        "negative resolution",
        "zero resolution",
        "NaN velocity",
        "negative length",
        "neither viscosity nor Re",
        "both",
        "Mach",
        "tau too small for BGK",
        "tau 1/2",
        "tau and lattice velocity",
        "collision",
    ],
)
def test_bad_physical_set_ups_are_refused_by_lattice_units(kw, message):
    base = {"length": 1.0, "velocity": 1.0, "resolution": 64}
    with pytest.raises(SimkitInputError, match=message):
        lattice_units(**(base | kw))


# ---------------------------------------------------------------- blow-up during a run

# The lid-driven cavity of tests/test_lbm_driver.py (same stepper, save plan and chunk, so the
# compiled chunk is shared when both files run in one session), with parameters built by hand
# past params()'s checks: tau = 0.5003 and a lid at Mach 0.52. The first chunk (100 steps)
# stays finite; the state overflows float32 at step ~125 (measured).


def test_blow_up_in_a_run_names_the_step_and_keeps_every_earlier_frame(tmp_path):
    n = N_CAVITY
    stepper = lbm.LBMStepper(lbm.D2Q9, (n, n), periodic=(False, False), moving_walls=("lid",))
    lid = lbm.face((n, n), "y+")
    walls = lbm.box_walls((n, n)) & ~lid
    bad_params = {
        "lid": jnp.asarray([0.3, 0.0], jnp.float32),
        "viscosity": jnp.asarray(1e-4, jnp.float32),
    }
    with pytest.raises(SimkitInputError):  # params() would have refused both
        stepper.params(1e-4, lid=(0.3, 0.0))
    state = stepper.init(bad_params, walls=walls, moving={"lid": lid})
    kw = {
        "save_every": SAVE_EVERY,
        "chunk_steps": CHUNK,
        "store_type": FieldStore,
        "progress": False,
    }
    out = tmp_path / "blow.h5"
    with pytest.raises(SimulationBlowUp, match=r"NaN/inf at step \d+") as info:
        run(stepper, state, bad_params, n_steps=4 * CHUNK, out=out, **kw)
    bad = info.value.step
    assert CHUNK < bad <= 2 * CHUNK and f"step {bad}" in str(info.value)
    assert info.value.time == pytest.approx(bad)  # lattice time: one unit per step
    # the frames of the first (good) chunk are those of a run that stops before the blow-up
    ref = run(stepper, state, bad_params, n_steps=CHUNK, out=tmp_path / "ref.h5", **kw)
    with h5py.File(out, "r") as f, h5py.File(ref.path, "r") as g:
        assert f.attrs["status"].startswith("failed: non-finite")
        assert f"step {bad}" in f.attrs["status"]
        np.testing.assert_array_equal(f["step_diagnostics"][:], np.arange(0, bad, 20))
        np.testing.assert_array_equal(f["step_fields"][:], np.arange(0, bad, 100))
        energy = f["kinetic_energy"][:]
        assert np.all(np.isfinite(energy)) and np.all(np.isfinite(f["velocity"][:]))
        np.testing.assert_array_equal(energy[: CHUNK // 20 + 1], g["kinetic_energy"][:])
        np.testing.assert_array_equal(f["velocity"][:], g["velocity"][:])
        np.testing.assert_array_equal(f["density"][:], g["density"][:])
