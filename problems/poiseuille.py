"""Poiseuille flow (lattice Boltzmann, body force): error of the profile and order of accuracy.

A channel between two plates, driven by a uniform body force, is run to steady state and
compared with the analytic parabola (and, with --convergence, on a sequence of grids).

Lattice Boltzmann D2Q9 with Guo forcing, periodic along the channel (x) and halfway bounce-back
walls across it (y): the wall surfaces lie half a cell outside the `--ny` fluid cells, so the
channel height is H = ny cells and the exact profile is u(y) = 4 u_max y (H - y) / H^2 with
u_max = F H^2 / (8 rho nu). The force is chosen for the centreline speed `--u-max`. The run lasts
`--time` viscous times H^2 / nu (the start-up transient decays like exp(-pi^2 nu t / H^2): after
2 viscous times it is below 1e-8 of u_max).

The script prints the relative L2 error of the steady profile. Halfway bounce-back puts the wall
exactly halfway only for particular relaxation rates: for BGK at tau = 1/2 + sqrt(3/16) and for
TRT with the magic parameter 3/16 (`--collision trt --magic 0.1875`), where the profile is exact
up to round-off; otherwise the wall is off by O(1/H^2) and the error falls at second order, which
`--convergence` measures on a sequence of grids (`--grids`) at the same tau (diffusive scaling).

Example:
    python problems/poiseuille.py --out poiseuille.h5
    python problems/poiseuille.py --convergence --out poiseuille.h5
    python problems/poiseuille.py --convergence --float64 --out poiseuille64.h5   # + 64 cells
    python problems/poiseuille.py --collision trt --magic 0.1875 --out exact.h5
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import jax
import numpy as np

NAME = "poiseuille"
NX = 3  # cells along the (periodic) channel: the flow is uniform in x
FIELD_FRAMES = 10
DIAGNOSTICS_PER_FIELD = 20


def build_parser() -> argparse.ArgumentParser:
    from simkit import finite_float, positive_int
    from simkit.io import add_output_arguments

    p = argparse.ArgumentParser(
        prog=NAME,
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--ny", type=positive_int, default=32, help="fluid cells across the channel")
    nu = p.add_mutually_exclusive_group()
    nu.add_argument(
        "--tau",
        type=finite_float,
        default=None,
        help="relaxation time (default 0.8); viscosity nu = (tau - 1/2) / 3",
    )
    nu.add_argument(
        "--viscosity",
        type=finite_float,
        default=None,
        help="lattice kinematic viscosity instead of --tau",
    )
    p.add_argument(
        "--collision",
        choices=("bgk", "trt", "regularized"),
        default="bgk",
        help="collision operator",
    )
    p.add_argument(
        "--magic",
        type=finite_float,
        default=0.25,
        help="TRT magic parameter (3/16 makes the walls exactly halfway)",
    )
    p.add_argument(
        "--u-max",
        type=finite_float,
        default=0.05,
        help="centreline speed in cells per step (sets the force)",
    )
    p.add_argument(
        "--time", type=finite_float, default=2.0, help="run length in viscous times H^2 / nu"
    )
    p.add_argument(
        "--convergence",
        action="store_true",
        help="also run the grids of --grids and print the observed order",
    )
    p.add_argument(
        "--grids",
        type=positive_int,
        nargs="+",
        default=None,
        metavar="NY",
        help="channel heights (cells) for --convergence (default: 8 16 32, and 64 "
        "with --float64: in float32 the error stops falling near 1e-4)",
    )
    p.add_argument("--float64", action="store_true", help="double precision (default float32)")
    add_output_arguments(p, NAME, resume=True)
    return p


def config_from_args(args) -> dict:
    return {
        k: getattr(args, k)
        for k in ("ny", "tau", "viscosity", "collision", "magic", "u_max", "time", "float64")
    } | {"problem": NAME}


def tau_of(args) -> float:
    if args.viscosity is not None:
        return 3.0 * args.viscosity + 0.5
    return 0.8 if args.tau is None else args.tau


def check_args(args) -> None:
    """Refuse bad values by name before anything is built."""
    from simkit import SimkitInputError, require_positive

    if args.viscosity is not None:
        require_positive("--viscosity", args.viscosity)
    tau = tau_of(args)
    if not tau > 0.5:
        raise SimkitInputError(f"--tau must be > 1/2 (viscosity (tau - 1/2) / 3 > 0), got {tau}.")
    require_positive("--u-max", args.u_max)
    require_positive("--time", args.time)
    require_positive("--magic", args.magic)
    if args.u_max * math.sqrt(3.0) > 0.3:
        raise SimkitInputError(
            f"--u-max {args.u_max:g} is a lattice Mach number of "
            f"{args.u_max * math.sqrt(3):.2f} > 0.3; use --u-max <= 0.17."
        )
    if args.grids is None:
        args.grids = [8, 16, 32, 64] if args.float64 else [8, 16, 32]
    if args.convergence and len(set(args.grids)) < 2:
        raise SimkitInputError(
            f"--convergence needs at least two different --grids, got {args.grids}."
        )
    for ny in [args.ny] + (list(args.grids) if args.convergence else []):
        if ny < 4:
            raise SimkitInputError(f"a channel needs at least 4 fluid cells across, got {ny}.")


def setup(ny: int, args, dtype: str):
    """(stepper, params, initial state, analytic profile (ny,)) for a channel of `ny` cells."""
    from simkit.fluids import lbm

    tau = tau_of(args)
    nu = (tau - 0.5) / 3.0
    collision = {
        "bgk": lbm.BGK(),
        "trt": lbm.TRT(magic=args.magic),
        "regularized": lbm.Regularized(),
    }[args.collision]
    shape = (NX, ny + 2)
    stepper = lbm.LBMStepper(
        lbm.D2Q9, shape, collision, periodic=(True, False), dtype=dtype, body_force=True
    )
    force = 8.0 * nu * args.u_max / ny**2
    params = stepper.params(viscosity=nu, force=(force, 0.0))
    state = stepper.init(params, walls=lbm.box_walls(shape, ["y-", "y+"]))
    y = np.arange(1, ny + 1) - 0.5  # fluid cell centres; walls at y = 0 and y = ny
    return stepper, params, state, 4.0 * args.u_max * y * (ny - y) / ny**2


def n_steps_for(ny: int, args) -> int:
    nu = (tau_of(args) - 0.5) / 3.0
    return max(1, math.ceil(args.time * ny**2 / nu))


def profile_error(u: np.ndarray, exact: np.ndarray) -> tuple[float, float]:
    """(relative L2 error, max error / u_max) of a profile against the exact one."""
    l2 = float(np.sqrt(np.sum((u - exact) ** 2) / np.sum(exact**2)))
    return l2, float(np.max(np.abs(u - exact)) / np.max(exact))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.float64:
        jax.config.update("jax_enable_x64", True)
    from simkit.cli import argv_without_output, log_to_stderr
    from simkit.io import FieldStore, output_path
    from simkit.run import run

    log_to_stderr()
    check_args(args)
    dtype = "float64" if args.float64 else "float32"
    stepper, params, state, exact = setup(args.ny, args, dtype)
    wanted = n_steps_for(args.ny, args)
    diag = max(1, math.ceil(wanted / (FIELD_FRAMES * DIAGNOSTICS_PER_FIELD)))
    n_steps = FIELD_FRAMES * DIAGNOSTICS_PER_FIELD * diag
    out = output_path(args.out, NAME, overwrite=args.overwrite, resume=args.resume)

    t0 = time.perf_counter()
    result = run(
        stepper,
        state,
        params,
        n_steps=n_steps,
        save_every={"fields": DIAGNOSTICS_PER_FIELD * diag, "diagnostics": diag},
        out=out,
        overwrite=args.overwrite,
        resume=args.resume,
        config=config_from_args(args),
        attrs={
            "problem": NAME,
            "argv": argv_without_output(argv),
            "parameters": {
                "fluid_cells": args.ny,
                "tau": tau_of(args),
                "viscosity": float(params["viscosity"]),
                "force": float(params["force"][0]),
                "u_max": args.u_max,
            },
            "solver": f"lattice Boltzmann D2Q9 {args.collision.upper()} + Guo forcing",
            "geometry": "periodic in x; walls rows 0 and ny+1, their surfaces half a "
            "cell outside the fluid: y = j - 1/2 for row j",
        },
        progress=not args.no_progress,
        store_type=FieldStore,
        checkpoint_every=args.checkpoint_every,
        checkpoint_interval=args.checkpoint_interval,
    )
    wall = time.perf_counter() - t0
    report(out, result, wall, args, exact, float(params["force"][0]))
    if args.convergence:
        convergence(args, dtype)
    return 0


def report(out: Path, result, wall: float, args, exact: np.ndarray, force: float) -> dict:
    """Print the run summary and the profile error read back from the file; return the errors."""
    import h5py

    with h5py.File(out, "r", locking=False) as f:
        u = f["velocity"][-1][1:-1, :, 0].astype(np.float64).mean(axis=1)  # (y, x, c): x-mean
    l2, linf = profile_error(u, exact)
    tau = tau_of(args)
    nu = (tau - 0.5) / 3.0
    steps = result.steps_done
    print(
        f"\nPoiseuille channel: {args.ny} fluid cells across, {args.collision.upper()}"
        f"{f' (magic {args.magic:g})' if args.collision == 'trt' else ''}, tau = {tau:g} "
        f"(nu = {nu:.4g}), body force {force:.4g}, centreline speed {args.u_max:g}"
    )
    print(
        f"{steps} steps ({steps * nu / args.ny**2:.2f} viscous times H^2 / nu) in "
        f"{wall:.1f} s; output: {out} (xarray.open_dataset(path, engine='h5netcdf'))"
    )
    print(f"{'y / H':>8} {'u / u_max':>10} {'exact':>10}")
    for j in np.unique(np.linspace(0, (args.ny - 1) // 2, 5).astype(int)):
        print(f"{(j + 0.5) / args.ny:8.4f} {u[j] / args.u_max:10.6f} {exact[j] / args.u_max:10.6f}")
    print(
        f"relative L2 error of u(y) vs the parabola 4 u_max y (H - y) / H^2: {l2:.3e} "
        f"(max {linf:.3e} of u_max)"
    )
    return {"l2": l2, "linf": linf}


def convergence(args, dtype: str) -> list[tuple[int, float]]:
    """Run each grid of `--grids` (no output file) and print the errors and observed orders."""
    grids = sorted(set(args.grids))
    rows = []
    print(
        f"\nconvergence at tau = {tau_of(args):g}, {args.collision.upper()}, centreline speed "
        f"{args.u_max:g} (diffusive scaling: the same tau on every grid):"
    )
    print(f"{'ny':>6} {'steps':>8} {'L2 error':>11} {'order':>7}")
    for ny in grids:
        stepper, params, state, exact = setup(ny, args, dtype)
        n = n_steps_for(ny, args)
        advance = jax.jit(
            lambda s, p, st=stepper, n=n: jax.lax.fori_loop(0, n, lambda i, s: st.step(s, p), s)
        )
        state = advance(state, params)
        _, u = stepper.macroscopic(state, params)
        l2, _ = profile_error(np.asarray(u)[:, 1:-1, 0].astype(np.float64).mean(axis=0), exact)
        order = ""
        if rows and rows[-1][1] > 0 and l2 > 0:
            order = f"{math.log(rows[-1][1] / l2) / math.log(ny / rows[-1][0]):7.2f}"
        rows.append((ny, l2))
        print(f"{ny:6d} {n:8d} {l2:11.3e} {order:>7}", flush=True)
    h = np.log([r[0] for r in rows])
    e = np.log([max(r[1], 1e-300) for r in rows])
    slope = -np.polyfit(h, e, 1)[0]
    # What is left when the scheme is exact: round-off, or the start-up transient that decays
    # like exp(-pi^2 nu t / H^2) from about u_max.
    floor = max(1e-6 if dtype == "float32" else 1e-13, math.exp(-(math.pi**2) * args.time))
    if min(r[1] for r in rows) < 10 * floor:
        print(
            f"observed order {slope:.2f}: the errors are at the level of round-off and the "
            f"decayed start-up (about {floor:.1g}), so the profile is exact here and no order "
            f"can be measured"
        )
    else:
        print(
            f"observed order (least-squares slope over the grids): {slope:.2f} (halfway "
            f"bounce-back: 2 expected)"
        )
    return rows


if __name__ == "__main__":
    from simkit.cli import script_main

    raise SystemExit(script_main(main))
