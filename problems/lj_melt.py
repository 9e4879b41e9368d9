"""Lennard-Jones melt (LAMMPS bench/in.lj): an fcc crystal at rho* = 0.8442 started at T* = 1.44
melts under NVE velocity-Verlet dynamics, written to H5MD.

The set-up is LAMMPS's `bench/in.lj` in reduced LJ units: fcc lattice at number density 0.8442,
Maxwell-Boltzmann velocities at T* = 1.44 with zero total momentum, LJ cut at 2.5 sigma (plain
truncation), neighbor skin 0.3, dt = 0.005, NVE. The default 8^3 unit cells (2 048 atoms, 2 000
steps) run in well under a minute on 2 cores; `--cells 20` is the 32 000-atom benchmark size.
The crystal melts within a few hundred steps: the temperature falls to about 0.7 as kinetic
energy pays for the melting, the potential energy rises from the lattice value -6.7734 (a direct
lattice sum; LAMMPS prints -6.7733681 for this start), and the total energy stays constant.

The trajectory (positions, velocities, images, species every `--trajectory-every` steps) and the
thermodynamics (kinetic/potential/total energy per atom, temperature, pressure, MSD every
`--thermo-every` steps) go to an H5MD file that MDAnalysis, VMD and OVITO read.

Example:
    python problems/lj_melt.py --out melt.h5md
    python problems/lj_melt.py --cells 20 --steps 1000 --out melt32k.h5md      # N = 32 000
    MDAnalysis (reduced units have no unit attribute, so no conversion):
        u = mda.Universe.empty(2048, trajectory=True)
        u.load_new("melt.h5md", format="H5MD", convert_units=False)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

NAME = "lj_melt"
LATTICE_ENERGY = -6.773368  # U/N of the perfect fcc lattice at rho*=0.8442, rc=2.5 (lattice sum)


def build_parser() -> argparse.ArgumentParser:
    from simkit import finite_float, nonnegative_float, positive_int
    from simkit.io import add_output_arguments

    p = argparse.ArgumentParser(
        prog=NAME,
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--cells",
        type=positive_int,
        default=8,
        help="fcc unit cells per axis (N = 4 cells^3; 20 gives in.lj's 32 000)",
    )
    p.add_argument("--density", type=finite_float, default=0.8442, help="number density rho*")
    p.add_argument("--temperature", type=nonnegative_float, default=1.44, help="initial T*")
    p.add_argument("--steps", type=positive_int, default=2000, help="time steps")
    p.add_argument("--dt", type=finite_float, default=0.005, help="time step (tau)")
    p.add_argument("--cutoff", type=finite_float, default=2.5, help="LJ cutoff (sigma)")
    p.add_argument("--skin", type=nonnegative_float, default=0.3, help="neighbor skin (sigma)")
    p.add_argument(
        "--shift",
        choices=("none", "energy", "force"),
        default="none",
        help="LJ truncation: plain (in.lj), energy-shifted or force-shifted",
    )
    p.add_argument(
        "--thermo-every", type=positive_int, default=50, help="steps between thermodynamic records"
    )
    p.add_argument(
        "--trajectory-every",
        type=positive_int,
        default=500,
        help="steps between saved configurations",
    )
    p.add_argument(
        "--chunk-steps",
        type=positive_int,
        default=None,
        help="steps per jitted chunk (default: chosen by the driver)",
    )
    p.add_argument("--seed", type=int, default=87287, help="velocity seed")
    p.add_argument("--float64", action="store_true", help="double precision (default float32)")
    add_output_arguments(p, NAME, resume=True)
    return p


def config_from_args(args) -> dict:
    return {
        k: getattr(args, k)
        for k in (
            "cells",
            "density",
            "temperature",
            "steps",
            "dt",
            "cutoff",
            "skin",
            "shift",
            "thermo_every",
            "trajectory_every",
            "chunk_steps",
            "seed",
            "float64",
        )
    } | {"problem": NAME}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.float64:
        jax.config.update("jax_enable_x64", True)
    import simkit.md as md
    from simkit import SimkitInputError
    from simkit.cli import argv_without_output, log_to_stderr
    from simkit.io import H5MDStore, output_path
    from simkit.run import run

    log_to_stderr()
    for name in ("thermo_every", "trajectory_every"):
        if args.steps % getattr(args, name):
            raise SimkitInputError(
                f"--steps ({args.steps}) must be a multiple of --{name.replace('_', '-')} "
                f"({getattr(args, name)})."
            )
    dtype = jnp.float64 if args.float64 else jnp.float32
    # Build and check the system before any output file exists or anything compiles.
    positions, box = md.lattice("fcc", args.cells, density=args.density, dtype=dtype)
    lj = md.LennardJones(cutoff=args.cutoff, shift=args.shift)
    params = lj.params(epsilon=1.0, sigma=1.0, dtype=dtype)
    stepper = md.VelocityVerlet(lj, box=box, dt=args.dt, skin=args.skin)
    velocities = md.maxwell_boltzmann(
        jax.random.key(args.seed), positions.shape, kT=args.temperature, dtype=dtype
    )
    state = stepper.init(positions, params, velocities)
    out = output_path(args.out, NAME, overwrite=args.overwrite, resume=args.resume, suffix=".h5md")

    n = positions.shape[0]
    t0 = time.perf_counter()
    result = run(
        stepper,
        state,
        params,
        n_steps=args.steps,
        save_every={"thermo": args.thermo_every, "trajectory": args.trajectory_every},
        chunk_steps=args.chunk_steps,
        out=out,
        overwrite=args.overwrite,
        resume=args.resume,
        config=config_from_args(args),
        attrs={
            "problem": NAME,
            "argv": argv_without_output(argv),
            "atoms": n,
            "parameters": {"epsilon": 1.0, "sigma": 1.0, "cutoff": args.cutoff},
            "solver": "velocity Verlet NVE",
            "dt": args.dt,
        },
        progress=not args.no_progress,
        store_type=H5MDStore,
        store_options=stepper.h5md_options(),
        checkpoint_every=args.checkpoint_every,
        checkpoint_interval=args.checkpoint_interval,
    )
    wall = time.perf_counter() - t0
    report(out, result, wall, n, args)
    return 0


def report(out: Path, result, wall: float, n: int, args) -> None:
    """Print the thermodynamics read back from the H5MD file, and the energy drift."""
    import h5py

    with h5py.File(out, "r", locking=False) as f:
        obs = f["observables"]
        step = obs["temperature/step"][:]
        q = {
            k: obs[f"{k}/value"][:]
            for k in (
                "temperature",
                "potential_energy",
                "kinetic_energy",
                "total_energy",
                "pressure",
            )
        }
        frames = f["particles/trajectory/position/value"].shape[0]
    print(
        f"\nLJ melt: {n} atoms, {result.steps_done} steps of dt={args.dt} in {wall:.1f} s "
        f"({n * result.steps_done / wall:.3g} atom-steps/s including compilation)"
    )
    print(
        f"output: {out} ({frames} configurations, {len(step)} thermo records; "
        "MDAnalysis: see --help)"
    )
    print(f"{'step':>7} {'T*':>8} {'U/N':>10} {'K/N':>8} {'E/N':>10} {'p*':>8}")
    for i in np.unique(np.linspace(0, len(step) - 1, min(len(step), 11)).astype(int)):
        print(
            f"{step[i]:7d} {q['temperature'][i]:8.4f} {q['potential_energy'][i]:10.5f} "
            f"{q['kinetic_energy'][i]:8.4f} {q['total_energy'][i]:10.5f} {q['pressure'][i]:8.4f}"
        )
    e = q["total_energy"]
    print(
        f"initial U/N {q['potential_energy'][0]:.6f} (perfect-lattice value {LATTICE_ENERGY} at "
        f"rho*=0.8442, rc=2.5); total energy drift over the run: "
        f"{(e[-1] - e[0]) / abs(e[0]):+.2e} relative, fluctuation {np.std(e) / abs(e.mean()):.1e}"
    )


if __name__ == "__main__":
    from simkit.cli import script_main

    raise SystemExit(script_main(main))
