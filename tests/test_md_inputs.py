"""simkit.md refuses bad input with a `SimkitInputError` naming the problem, on the host
before any compute; a blow-up during a run stops the driver with `SimulationBlowUp` naming the
step and keeps every earlier frame on disk."""

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simkit import SimkitInputError, md
from simkit.io import H5MDStore
from simkit.run import SimulationBlowUp, run

POSITIONS, BOX = md.lattice("fcc", 4, density=0.8442)
LJ = md.LennardJones(cutoff=2.5)
PARAMS = LJ.params()


@pytest.fixture(scope="module")
def stepper():
    return md.VelocityVerlet(LJ, box=BOX, dt=0.005, skin=0.3)


def test_box_shorter_than_twice_cutoff_plus_skin_is_refused():
    with pytest.raises(
        SimkitInputError,
        match=r"box edge 1 \(5\) is shorter than 2 x "
        r"\(cutoff \+ skin\) = 5\.6",
    ):
        md.VelocityVerlet(LJ, box=(6.0, 5.0, 6.0), dt=0.005, skin=0.3)


def test_overlapping_particles_are_named_with_their_distance(stepper):
    x = POSITIONS.at[7].set(POSITIONS[3] + jnp.asarray([0.1, 0.0, 0.0]))
    with pytest.raises(
        SimkitInputError,
        match=r"particles (3 and 7|7 and 3) are 0\.1 apart, "
        r"closer than min_distance = 0\.5",
    ):
        stepper.init(x, PARAMS)


def test_nan_positions_or_velocities_are_refused_naming_the_first(stepper):
    x = POSITIONS.at[5, 1].set(jnp.nan)
    with pytest.raises(
        SimkitInputError,
        match=r"positions contains 1 NaN/inf value\(s\), the "
        r"first at index \(5, 1\)",
    ):
        stepper.init(x, PARAMS)
    v = jnp.zeros_like(POSITIONS).at[9, 2].set(jnp.inf)
    with pytest.raises(SimkitInputError, match=r"velocities contains 1 NaN/inf.*\(9, 2\)"):
        stepper.init(POSITIONS, PARAMS, v)


def test_wrong_shapes_are_refused(stepper):
    n = POSITIONS.shape[0]
    with pytest.raises(SimkitInputError, match=r"positions must have shape \(N, D\).*\(256, 4\)"):
        stepper.init(jnp.zeros((n, 4)), PARAMS)
    with pytest.raises(SimkitInputError, match=r"positions must have shape \(N, D\).*\(768,\)"):
        stepper.init(POSITIONS.ravel(), PARAMS)
    with pytest.raises(SimkitInputError, match=r"positions are 2-D but the box has 3 edges"):
        stepper.init(POSITIONS[:, :2], PARAMS)
    with pytest.raises(
        SimkitInputError,
        match=r"velocities must have the shape of positions "
        r"\(256, 3\), got \(255, 3\)",
    ):
        stepper.init(POSITIONS, PARAMS, jnp.zeros((n - 1, 3)))
    with pytest.raises(SimkitInputError, match=r"species must have shape \(256,\), got \(10,\)"):
        stepper.init(POSITIONS, PARAMS, species=jnp.zeros(10, jnp.int32))


def test_species_not_matching_the_parameter_tables_are_refused(stepper):
    table = LJ.params(epsilon=[[1.0, 0.5], [0.5, 1.0]], sigma=[[1.0, 1.0], [1.0, 1.0]])
    species = jnp.zeros(POSITIONS.shape[0], jnp.int32).at[3].set(2)
    with pytest.raises(
        SimkitInputError,
        match=r"species must be in \[0, 2\) to match the "
        r"\(2, 2\) parameter tables, got values in \[0, 2\]",
    ):
        stepper.init(POSITIONS, table, species=species)
    mixed = {"epsilon": table["epsilon"], "sigma": jnp.ones((3, 3))}
    with pytest.raises(
        SimkitInputError,
        match=r"parameter 'sigma' must be a scalar or a "
        r"\(2, 2\) species table.*\(3, 3\)",
    ):
        stepper.init(POSITIONS, mixed, species=species.at[3].set(1))
    with pytest.raises(SimkitInputError, match=r"unknown \['eps'\]"):
        LJ.params(eps=1.0)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: md.VelocityVerlet(LJ, box=BOX, dt=0.0), r"dt must be > 0, got 0\.0"),
        (lambda: md.VelocityVerlet(LJ, box=BOX, dt=-0.005), r"dt must be > 0"),
        (
            lambda: md.Langevin(LJ, box=BOX, dt=0.005, kT=-1.0),
            (
                r"kT must be a finite number >= 0, "
                r"got -1\.0"
            ),
        ),
        (lambda: md.NoseHooverChain(LJ, box=BOX, dt=0.005, kT=-0.5), r"kT must be"),
        (lambda: md.LennardJones(cutoff=0.0), r"cutoff must be a finite number > 0, got 0\.0"),
        (lambda: md.Morse(cutoff=-1.0), r"cutoff must be a finite number > 0"),
        (
            lambda: md.VelocityVerlet(LJ, box=BOX, dt=0.005, skin=-0.1),
            (
                r"skin must be a finite "
                r"number >= 0, got -0\.1"
            ),
        ),
        (lambda: md.LennardJones(cutoff=2.5, shift="both"), r"shift must be one of"),
    ],
    ids=["dt=0", "dt<0", "kT<0", "nhc-kT<0", "cutoff=0", "cutoff<0", "skin<0", "shift"],
)
def test_bad_configuration_values_are_refused(make, message):
    with pytest.raises(SimkitInputError, match=message):
        make()


def test_density_too_high_for_the_cell_list_is_refused():
    lj = md.LennardJones(cutoff=0.5)
    stepper = md.VelocityVerlet(lj, box=(1.8, 1.8, 1.8), dt=0.005, skin=0.1)
    assert stepper.grid == (3, 3, 3)
    x = jnp.asarray(np.random.default_rng(0).uniform(0, 1.8, (2000, 3)), jnp.float32)
    with pytest.raises(
        SimkitInputError,
        match=r"density too high for the cell list: 74 "
        r"particles per cell",
    ):
        stepper.init(x, lj.params())


def test_blow_up_in_a_run_names_the_step_and_keeps_every_earlier_frame(tmp_path):
    lj = md.LennardJones(cutoff=2.5, shift="energy")
    params = lj.params()
    stepper = md.VelocityVerlet(lj, box=BOX, dt=0.05, skin=0.3)  # 10x too large for LJ
    state = stepper.init(
        POSITIONS, params, md.maxwell_boltzmann(jax.random.key(0), POSITIONS.shape, kT=1.44)
    )
    out = tmp_path / "blow.h5"
    kw = {"save_every": {"thermo": 10, "trajectory": 50}, "chunk_steps": 50, "progress": False}
    with pytest.raises(SimulationBlowUp, match=r"NaN/inf at step \d+") as info:
        run(
            stepper,
            state,
            params,
            n_steps=400,
            out=out,
            store_type=H5MDStore,
            store_options=stepper.h5md_options(),
            **kw,
        )
    bad = info.value.step
    assert 0 < bad <= 400 and f"step {bad}" in str(info.value)
    assert info.value.time == pytest.approx(bad * 0.05)
    good = (bad - 1) // 50 * 50  # the last chunk end before the bad step
    ref = run(stepper, state, params, n_steps=good, **kw) if good else None
    with h5py.File(out, "r") as f:
        assert f.attrs["status"].startswith("failed: non-finite")
        steps = f["observables/total_energy/step"][:]
        # every thermo frame strictly before the bad step, none after
        np.testing.assert_array_equal(steps, np.arange(0, bad, 10))
        values = f["observables/total_energy/value"][:]
        assert np.all(np.isfinite(values))
        (group,) = f["particles"]
        pos = f[f"particles/{group}/position"]
        np.testing.assert_array_equal(pos["step"][:], np.arange(0, bad, 50))
        if ref is not None:  # and they are the frames an uninterrupted run computes
            np.testing.assert_array_equal(
                values[: len(ref.frames["total_energy"])], ref.frames["total_energy"]
            )
            np.testing.assert_array_equal(
                pos["value"][: len(ref.frames["position"])], ref.frames["position"]
            )
