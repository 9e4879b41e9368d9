"""Robertson stiff kinetics: a sweep over the rate constant k1 solved as one stiff ensemble.

Robertson's three-species reaction system (H. H. Robertson 1966; Hairer & Wanner, "Solving
Ordinary Differential Equations II", Sec. IV.1), with y = (y1, y2, y3) in fractions of the
initial amount:

    y1' = -k1 y1 + k3 y2 y3,   y2' = k1 y1 - k2 y2^2 - k3 y2 y3,   y3' = k2 y2^2,
    k = (0.04, 3e7, 1e4), y(0) = (1, 0, 0),

is stiff (timescales from 1e-8 to 1e10). Every member uses k1 scaled by a factor on a log grid
(`--k1-min`..`--k1-max` times the nominal 0.04); all members are solved with simkit's Rosenbrock
solver (`simkit.ode.solve_stiff_ensemble`, Rodas5 by default) in chunks of `--chunk` members (one
compile, a progress bar over chunks). The script checks the physics on the way out: the
conservation y1 + y2 + y3 = 1 at every saved time and member, and, when --t1 is 1e11, the nominal
member against the published reference solution of the IVP test set (Mazzia & Magherini, "Test
Set for Initial Value Problem Solvers", release 2.4, University of Bari 2008, problem ROBER).

Example:
    python problems/robertson.py --members 1024 --out robertson.h5
    xarray: xr.open_dataset("robertson.h5", engine="h5netcdf")
"""

from __future__ import annotations

import argparse
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

NAME = "robertson"
K_NOMINAL = (0.04, 3.0e7, 1.0e4)
# ROBER reference solution at t = 1e11 (Mazzia & Magherini 2008, see the module docstring).
ROBER_1E11 = np.array([0.2083340149701255e-07, 0.8333360770334713e-13, 0.9999999791665050])


def robertson(t, y, k):
    """Robertson vector field; y = (y1, y2, y3) (fractions), k = (k1, k2, k3) (1/s)."""
    r1 = k[0] * y[0]
    r2 = k[1] * y[1] ** 2
    r3 = k[2] * y[1] * y[2]
    return jnp.stack([-r1 + r3, r1 - r2 - r3, r2])


def build_parser() -> argparse.ArgumentParser:
    from simkit import finite_float
    from simkit.io import add_output_arguments

    p = argparse.ArgumentParser(
        prog="robertson",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--members", type=int, default=1024, help="number of k1 values (ensemble size)")
    p.add_argument("--k1-min", type=finite_float, default=0.1, help="smallest k1 factor (x 0.04)")
    p.add_argument("--k1-max", type=finite_float, default=10.0, help="largest k1 factor (x 0.04)")
    p.add_argument("--t1", type=finite_float, default=1e11, help="end time (s)")
    p.add_argument(
        "--n-save",
        type=int,
        default=60,
        help="number of save times, log-spaced from 1e-6 s to t1 (plus t = 0)",
    )
    p.add_argument("--rtol", type=finite_float, default=1e-8, help="relative tolerance")
    p.add_argument(
        "--atol",
        type=finite_float,
        default=1e-14,
        help="absolute tolerance (y2 falls to ~1e-13 by t = 1e11)",
    )
    p.add_argument(
        "--solver", choices=("rodas5", "rodas5p"), default="rodas5", help="Rosenbrock method"
    )
    p.add_argument("--chunk", type=int, default=256, help="members per jitted call")
    add_output_arguments(p, NAME)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    jax.config.update("jax_enable_x64", True)  # stiff kinetics at rtol 1e-8 needs float64
    from simkit import SimkitInputError, require_positive
    from simkit.io import output_path, save_results
    from simkit.ode import ODEProblem, Rodas5, Rodas5P, solve_stiff, solve_stiff_ensemble

    # Validate everything before compiling anything.
    require_positive("--members", args.members, integer=True)
    require_positive("--chunk", args.chunk, integer=True)
    require_positive("--n-save", args.n_save, integer=True)
    require_positive("--k1-min", args.k1_min)
    require_positive("--k1-max", args.k1_max)
    require_positive("--t1", args.t1)
    if args.k1_max < args.k1_min:
        raise SimkitInputError(f"--k1-max ({args.k1_max}) must be >= --k1-min ({args.k1_min}).")
    if args.t1 <= 1e-6:
        raise SimkitInputError(f"--t1 must be > 1e-6 s (the first save time), got {args.t1}.")
    out = output_path(args.out, NAME, overwrite=args.overwrite)

    solver = Rodas5() if args.solver == "rodas5" else Rodas5P()
    factors = np.geomspace(args.k1_min, args.k1_max, args.members)
    ks = np.stack(
        [
            K_NOMINAL[0] * factors,
            np.full(args.members, K_NOMINAL[1]),
            np.full(args.members, K_NOMINAL[2]),
        ],
        axis=1,
    )
    ts = np.concatenate([[0.0], np.geomspace(1e-6, args.t1, args.n_save)])
    ts[-1] = args.t1  # exactly t1 despite round-off in geomspace
    problem = ODEProblem(robertson, jnp.array([1.0, 0.0, 0.0]), jnp.array(K_NOMINAL), 0.0, args.t1)
    opts = dict(solver=solver, rtol=args.rtol, atol=args.atol, saveat=ts)

    # Solve in equal chunks (the last one padded by repeating its last member) so every call
    # reuses the first call's compiled code.
    n_chunks = -(-args.members // args.chunk)
    chunk = min(args.chunk, args.members)
    ys = np.empty((args.members, ts.size, 3))
    progress = _progress(n_chunks, disable=args.no_progress)
    t_start = time.perf_counter()
    t_first = None
    for c in range(n_chunks):
        lo, hi = c * chunk, min((c + 1) * chunk, args.members)
        k_c = ks[lo:hi]
        if hi - lo < chunk:
            k_c = np.concatenate([k_c, np.repeat(k_c[-1:], chunk - (hi - lo), axis=0)])
        _, y_c = solve_stiff_ensemble(problem, params=k_c, **opts)
        ys[lo:hi] = np.asarray(y_c)[: hi - lo]
        if t_first is None:
            t_first = time.perf_counter() - t_start
        progress.update(1)
    progress.close()
    wall = time.perf_counter() - t_start
    t_rest = wall - t_first

    conservation = ys.sum(axis=2) - 1.0
    attrs = {
        "problem": NAME,
        "k_nominal": list(K_NOMINAL),
        "k1_factor_range": [args.k1_min, args.k1_max],
        "rtol": args.rtol,
        "atol": args.atol,
        "solver": type(solver).__name__,
        "members": args.members,
        "t1": args.t1,
        "wall_s": wall,
        "argv": [a for a in argv if a not in ("--overwrite", "--no-progress")],
    }
    save_results(
        out,
        data_vars={
            "y": (("member", "time", "species"), ys, "1"),
            "k1": (("member",), ks[:, 0], "1/s"),
            "conservation_error": (("member", "time"), conservation, "1"),
        },
        coords={
            "time": (ts, "s"),
            "species": (np.array(["y1", "y2", "y3"]), ""),
            "member": (np.arange(args.members), ""),
        },
        attrs=attrs,
        overwrite=args.overwrite,
    )

    print(
        f"\nRobertson k1 sweep: {args.members} members, k1 = 0.04 x [{args.k1_min:g}, "
        f"{args.k1_max:g}], t1 = {args.t1:g} s, {type(solver).__name__} at rtol {args.rtol:g}, "
        f"atol {args.atol:g}"
    )
    print(
        f"time: {wall:.2f} s total; first chunk (incl. compile) {t_first:.2f} s; other "
        f"{n_chunks - 1} chunk(s) {t_rest:.2f} s"
        + (
            f" ({t_rest / max(args.members - chunk, 1) * 1e3:.3f} ms/member)"
            if n_chunks > 1
            else ""
        )
    )
    print(
        f"conservation |y1 + y2 + y3 - 1|: max {np.abs(conservation).max():.2e} over all "
        "members and save times"
    )
    print(f"{'k1 factor':>10} {'y1(t1)':>12} {'y2(t1)':>12} {'y3(t1)':>12}")
    for i in np.linspace(0, args.members - 1, min(args.members, 5)).astype(int):
        print(f"{factors[i]:10.3g} {ys[i, -1, 0]:12.5e} {ys[i, -1, 1]:12.5e} {ys[i, -1, 2]:12.5e}")
    if args.t1 == 1e11:
        nominal = problem
        y_nom = np.asarray(
            solve_stiff(nominal, solver=solver, rtol=args.rtol, atol=args.atol).ys[-1]
        )
        rel = np.abs(y_nom - ROBER_1E11) / np.abs(ROBER_1E11)
        print(
            f"nominal k at t = 1e11: y = {y_nom}; published ROBER reference {ROBER_1E11}; "
            f"max relative difference {rel.max():.2e}"
        )
    print(f"output: {out}  (open with xarray.open_dataset(path, engine='h5netcdf'))")
    return 0


def _progress(total: int, disable: bool):
    """A tqdm bar over chunks (stderr), or a no-op when disabled."""
    from tqdm import tqdm

    return tqdm(total=total, desc="chunks", unit="chunk", disable=disable, file=sys.stderr)


if __name__ == "__main__":
    from simkit.cli import script_main

    raise SystemExit(script_main(main))
