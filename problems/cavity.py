"""Lid-driven cavity (lattice Boltzmann) run to steady state and compared with Ghia et al. (1982).

A square of `--n` x `--n` fluid cells is closed by halfway bounce-back walls; the top wall (the
lid, y = L) moves in +x at `--lid-velocity` cells per step (Ladd's moving bounce-back). The
lattice viscosity follows from the Reynolds number, nu = U N / Re, so tau = 3 nu + 1/2 falls
towards 1/2 as Re grows at fixed resolution: `--collision auto` (the default) takes BGK while
tau >= 0.52 and the more stable TRT below. The run lasts `--time` lid passes (t U / L; the
default grows with Re: about 20 passes settle Re = 100, 50 Re = 400, 100 Re = 1000) and the
script reports how steady the end state is: the relative change of the kinetic energy over the
last tenth of the run and the largest velocity change between the last two saved fields.

At the end it reads the last velocity field back from the HDF5 file and prints the centreline
profiles u(y) on x = L/2 and v(x) on y = L/2 next to Ghia et al.'s multigrid solution (J. Comput.
Phys. 48:387, Tables I and II; Re = 100, 400, 1000), with the largest deviation in units of the
lid speed. The default (Re = 100, 64^2 cells) runs in well under a minute on 2 cores and matches
Ghia to about 0.006; `--re 1000 --n 128` (about 130 000 steps) to about 0.012.

Fields (velocity, density, vorticity; lattice units, cells 0 and n+1 are the walls) go to an HDF5
file with an XDMF sidecar for ParaView, the diagnostics (kinetic energy, mass, max Mach) to the
same file.

Example:
    python problems/cavity.py --out cavity.h5
    python problems/cavity.py --re 1000 --n 128 --out cavity1000.h5
    xarray: xr.open_dataset("cavity.h5", engine="h5netcdf"); ParaView: open cavity.xdmf
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import jax
import numpy as np

NAME = "cavity"
AUTO_TRT_BELOW = 0.52  # --collision auto: BGK at tau >= this, TRT below
STEADY_TOLERANCE = 1e-4  # relative kinetic-energy change over the last tenth of the run
FIELD_FRAMES = 10
DIAGNOSTICS_PER_FIELD = 20

# Ghia's Table II gives v = -0.23827 at x = 0.9063 for Re = 400, between -0.22847 (x = 0.9453)
# and -0.44993 (x = 0.8594): a kink no other Re shows (this solver at 64^2 gives -0.364 there
# while matching the 16 other points of the profile to 0.02). It is printed, and the deviation is
# also reported without it.
GHIA_SUSPECT = {(400, "v", 0.9063)}


def default_time(reynolds: float) -> float:
    """Lid passes t U / L to run by default: enough to settle the flow to a relative kinetic-energy
    change below ~1e-4 per tenth of the run at Re = 100-1000 (measured: Re = 100 settles in ~20
    passes, Re = 400 in ~50, Re = 1000 in ~100, the corner eddies last)."""
    return 25.0 + 0.08 * reynolds


def build_parser() -> argparse.ArgumentParser:
    from simkit import finite_float, positive_int
    from simkit.io import add_output_arguments

    p = argparse.ArgumentParser(
        prog=NAME,
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--re",
        type=finite_float,
        default=100.0,
        help="Reynolds number U L / nu (Ghia's data: 100, 400, 1000)",
    )
    p.add_argument("--n", type=positive_int, default=64, help="fluid cells per side")
    p.add_argument(
        "--collision",
        choices=("auto", "bgk", "trt", "regularized"),
        default="auto",
        help=f"collision operator; auto: BGK at tau >= {AUTO_TRT_BELOW}, TRT below",
    )
    p.add_argument(
        "--lid-velocity",
        type=finite_float,
        default=0.1,
        help="lid speed in cells per step (lattice Mach = sqrt(3) x this)",
    )
    p.add_argument(
        "--time",
        type=finite_float,
        default=None,
        help="run length in lid passes t U / L (default: 25 + 0.08 Re)",
    )
    p.add_argument("--float64", action="store_true", help="double precision (default float32)")
    add_output_arguments(p, NAME, resume=True)
    return p


def config_from_args(args) -> dict:
    return {
        k: getattr(args, k) for k in ("re", "n", "collision", "lid_velocity", "time", "float64")
    } | {"problem": NAME}


def plan_steps(passes: float, n: int, lid_velocity: float) -> tuple[int, int, int]:
    """(n_steps, fields_every, diagnostics_every): at least `passes` lid passes, with
    `FIELD_FRAMES` field frames and `DIAGNOSTICS_PER_FIELD` diagnostics per field frame."""
    wanted = passes * n / lid_velocity
    diag = max(1, math.ceil(wanted / (FIELD_FRAMES * DIAGNOSTICS_PER_FIELD)))
    fields = DIAGNOSTICS_PER_FIELD * diag
    return FIELD_FRAMES * fields, fields, diag


def choose_collision(name: str, tau: float) -> str:
    """The collision model's class name for `--collision`, or a SimkitInputError that says what
    to change when tau is too low for it."""
    from simkit import SimkitInputError
    from simkit.fluids import lbm

    chosen = {
        "auto": "BGK" if tau >= AUTO_TRT_BELOW else "TRT",
        "bgk": "BGK",
        "trt": "TRT",
        "regularized": "Regularized",
    }[name]
    min_tau = getattr(lbm, chosen)().min_tau
    if tau < min_tau:
        raise SimkitInputError(
            f"tau = {tau:.4g} is below {min_tau}, the smallest {chosen} accepts (the run "
            f"would be unstable). Use --collision trt or regularized (tau >= 0.505), raise --n, "
            f"or lower --lid-velocity."
        )
    return chosen


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.float64:
        jax.config.update("jax_enable_x64", True)
    from simkit import SimkitInputError, require_positive
    from simkit.cli import argv_without_output, log_to_stderr
    from simkit.fluids import lattice_units, lbm
    from simkit.io import FieldStore, output_path
    from simkit.run import run

    log_to_stderr()
    require_positive("--re", args.re)
    require_positive("--lid-velocity", args.lid_velocity)
    if args.n < 8:
        raise SimkitInputError(f"--n must be at least 8 fluid cells per side, got {args.n}.")
    passes = default_time(args.re) if args.time is None else args.time
    require_positive("--time", passes)
    units = lattice_units(
        length=1.0,
        velocity=1.0,
        resolution=args.n,
        reynolds=args.re,
        lattice_velocity=args.lid_velocity,
        collision="TRT",
    )
    collision = choose_collision(args.collision, units.tau)
    n_steps, fields_every, diag_every = plan_steps(passes, args.n, args.lid_velocity)

    shape = (args.n + 2, args.n + 2)
    stepper = lbm.LBMStepper(
        lbm.D2Q9,
        shape,
        getattr(lbm, collision)(),
        periodic=False,
        dtype="float64" if args.float64 else "float32",
        moving_walls=("lid",),
    )
    params = stepper.params(viscosity=units.viscosity, lid=(args.lid_velocity, 0.0))
    lid = lbm.face(shape, "y+")
    state = stepper.init(params, walls=lbm.box_walls(shape) & ~lid, moving={"lid": lid})
    out = output_path(args.out, NAME, overwrite=args.overwrite, resume=args.resume)

    if args.collision == "bgk" and units.tau < AUTO_TRT_BELOW:
        print(
            f"note: tau = {units.tau:.4f} is close to 1/2; BGK may be unstable or noisy here, "
            "--collision trt is more robust.",
            file=sys.stderr,
        )
    t0 = time.perf_counter()
    result = run(
        stepper,
        state,
        params,
        n_steps=n_steps,
        save_every={"fields": fields_every, "diagnostics": diag_every},
        out=out,
        overwrite=args.overwrite,
        resume=args.resume,
        config=config_from_args(args),
        attrs={
            "problem": NAME,
            "argv": argv_without_output(argv),
            "parameters": {
                "reynolds": args.re,
                "fluid_cells": args.n,
                "lid_velocity": args.lid_velocity,
                "viscosity": units.viscosity,
                "tau": units.tau,
                "lid_passes": passes,
            },
            "solver": f"lattice Boltzmann D2Q9 {collision}",
            "geometry": "walls: cells 0 and n+1 on each axis; lid: row y = n+1; "
            "wall surfaces half a cell outside the fluid (halfway "
            "bounce-back), so x / L = (i - 1/2) / n",
        },
        progress=not args.no_progress,
        store_type=FieldStore,
        checkpoint_every=args.checkpoint_every,
        checkpoint_interval=args.checkpoint_interval,
    )
    wall = time.perf_counter() - t0
    report(out, result, wall, args, units, collision, passes)
    return 0


def centrelines(velocity: np.ndarray, lid_velocity: float):
    """Centreline profiles of a cavity velocity field.

    Args:
        velocity: `(n + 2, n + 2, 2)` lattice velocity, axis 0 = x, walls included.
        lid_velocity: lid speed (cells per step).

    Returns:
        (s, u, v): positions s / L of the fluid cell centres with the walls appended (0 and 1),
        u(y) on x = L/2 and v(x) on y = L/2 in units of the lid speed, the wall values
        (0, lid 1) appended: ready for `np.interp`.
    """
    n = velocity.shape[0] - 2
    fluid = velocity[1:-1, 1:-1] / lid_velocity
    s = (np.arange(n) + 0.5) / n
    lo = int(np.searchsorted(s, 0.5)) - 1  # cells lo, lo+1 straddle (or hit) the centre
    w = (0.5 - s[lo]) / (s[lo + 1] - s[lo])
    u = (1 - w) * fluid[lo, :, 0] + w * fluid[lo + 1, :, 0]
    v = (1 - w) * fluid[:, lo, 1] + w * fluid[:, lo + 1, 1]
    s = np.concatenate([[0.0], s, [1.0]])
    return s, np.concatenate([[0.0], u, [1.0]]), np.concatenate([[0.0], v, [0.0]])


def ghia_deviation(velocity: np.ndarray, lid_velocity: float, reynolds: int):
    """Interpolated centreline profiles at Ghia's points and their deviations.

    Returns:
        `{"u": (y, simkit, ghia), "v": (x, simkit, ghia)}` (arrays over Ghia's 17 points).
    """
    from simkit.fluids import GHIA_U, GHIA_V, GHIA_X, GHIA_Y

    s, u, v = centrelines(velocity, lid_velocity)
    return {
        "u": (GHIA_Y, np.interp(GHIA_Y, s, u), np.asarray(GHIA_U[reynolds])),
        "v": (GHIA_X, np.interp(GHIA_X, s, v), np.asarray(GHIA_V[reynolds])),
    }


def report(out: Path, result, wall: float, args, units, collision: str, passes: float) -> dict:
    """Print the run summary, how steady the end state is and the comparison with Ghia (read back
    from the file); return the numbers."""
    import h5py

    from simkit.fluids import GHIA_U

    with h5py.File(out, "r", locking=False) as f:
        velocity = np.moveaxis(f["velocity"][-1], 0, 1).astype(np.float64)  # stored (y, x, c)
        previous = np.moveaxis(f["velocity"][-2], 0, 1).astype(np.float64)
        energy = f["kinetic_energy"][:].astype(np.float64)
        mach = float(np.max(f["max_mach"][:]))
    n, u_lid = args.n, args.lid_velocity
    steps = result.steps_done
    print(
        f"\nLid-driven cavity: Re = {args.re:g}, {n} x {n} fluid cells, {collision} "
        f"(tau = {units.tau:.4f}), lid velocity {u_lid:g} (Mach {units.mach:.2f}; largest in "
        f"the run {mach:.2f})"
    )
    print(
        f"{steps} steps ({steps * u_lid / n:.1f} lid passes t U / L) in {wall:.1f} s "
        f"({n * n * steps / wall / 1e6:.2g} MLUPS including compilation)"
    )
    print(
        f"output: {out} (+ {out.with_suffix('.xdmf').name} for ParaView; "
        f"xarray.open_dataset(path, engine='h5netcdf'))"
    )
    tenth = max(1, len(energy) // 10)
    d_energy = abs(energy[-1] - energy[-1 - tenth]) / abs(energy[-1])
    d_velocity = float(np.max(np.abs(velocity - previous))) / u_lid
    steady = d_energy < STEADY_TOLERANCE
    print(
        f"steady state: kinetic energy changed by {d_energy:.1e} (relative) over the last "
        f"tenth of the run; largest velocity change between the last two field frames "
        f"{d_velocity:.1e} U"
        + (
            ""
            if steady
            else f"  -- NOT steady (> {STEADY_TOLERANCE:g}): run longer with --time {2 * passes:g}"
        )
    )
    out_numbers = {"steady": steady, "energy_change": d_energy, "velocity_change": d_velocity}
    re_key = round(args.re)
    if abs(args.re - re_key) > 1e-9 or re_key not in GHIA_U:
        _s, u, v = centrelines(velocity, u_lid)
        print(
            f"no Ghia reference for Re = {args.re:g} (they tabulate Re = "
            f"{', '.join(map(str, sorted(GHIA_U)))}); centreline extremes: min u(y) "
            f"{u.min():.4f}, max v(x) {v.max():.4f}, min v(x) {v.min():.4f} (units of U)"
        )
        return out_numbers
    comp = ghia_deviation(velocity, u_lid, re_key)
    print("centreline profiles vs Ghia, Ghia & Shin (1982), Tables I-II (velocities / lid speed):")
    print(
        f"{'y':>8} {'u simkit':>9} {'u Ghia':>9} {'dev':>8}   |{'x':>8} {'v simkit':>9} "
        f"{'v Ghia':>9} {'dev':>8}"
    )
    (y, us, ug), (x, vs, vg) = comp["u"], comp["v"]
    for k in range(len(y)):
        flag = " *" if (re_key, "v", float(x[k])) in GHIA_SUSPECT else ""
        print(
            f"{y[k]:8.4f} {us[k]:9.4f} {ug[k]:9.4f} {us[k] - ug[k]:+8.4f}   |{x[k]:8.4f} "
            f"{vs[k]:9.4f} {vg[k]:9.4f} {vs[k] - vg[k]:+8.4f}{flag}"
        )
    dev_u = float(np.max(np.abs(us - ug)))
    dev_v = float(np.max(np.abs(vs - vg)))
    print(
        f"max |deviation| from Ghia (units of the lid speed): u {dev_u:.4f}, v {dev_v:.4f}, "
        f"overall {max(dev_u, dev_v):.4f} (cell size 1/n = {1 / n:.4f})"
    )
    keep = np.array([(re_key, "v", float(xk)) not in GHIA_SUSPECT for xk in x])
    if not keep.all():
        dev_v_kept = float(np.max(np.abs(vs - vg)[keep]))
        print(
            f"  * Ghia's Re = {re_key} value v(0.9063) = -0.23827 breaks the trend of its "
            f"neighbours (a likely misprint); without it: v {dev_v_kept:.4f}, overall "
            f"{max(dev_u, dev_v_kept):.4f}"
        )
        dev_v = dev_v_kept
    out_numbers.update(ghia_u=dev_u, ghia_v=dev_v, ghia=max(dev_u, dev_v))
    return out_numbers


if __name__ == "__main__":
    from simkit.cli import script_main

    raise SystemExit(script_main(main))
