"""Driver + HDF5 output overhead vs a bare jitted solve of the same Lorenz ensemble.

Candidates (interleaved rounds, one process):
  bare jit        jax.jit(simulate) over all steps, frames kept in memory (what a user would
                  hand-write with lax.scan)
  driver + HDF5   simkit.run.run with chunks, finiteness checks, HDF5 frames flushed per chunk,
                  checkpoints, at the Lorenz problem's default save rate
  driver, no out  simkit.run.run keeping frames in memory (driver cost alone)

Target: driver + HDF5 within 5% of the bare solve.

    python benchmarks/bench_driver.py [--members 4096] [--steps 20000] [--save-every 200]
"""

import argparse
import sys
import tempfile
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _runner import Candidate, compare, write_report  # noqa: E402

from simkit.ode import ODEStepper  # noqa: E402
from simkit.run import run, simulate  # noqa: E402


def lorenz(t, y, p):
    return jnp.stack([p["sigma"] * (y[1] - y[0]), y[0] * (p["rho"] - y[2]) - y[1],
                      y[0] * y[1] - p["beta"] * y[2]])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--members", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--save-every", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    params = {"sigma": jnp.asarray(10.0), "rho": jnp.asarray(28.0), "beta": jnp.asarray(8 / 3)}
    y0 = jnp.asarray(np.random.default_rng(0).normal(size=(args.members, 3))) + jnp.asarray([[1.0, 1.0, 25.0]])
    stepper = ODEStepper(lorenz, dt=1e-3)
    state = stepper.init(y0, params)
    tmp = Path(tempfile.mkdtemp())
    bare = jax.jit(simulate, static_argnums=(0, 3, 4))

    def run_bare():
        jax.block_until_ready(bare(stepper, state, params, args.steps, args.save_every))

    def run_driver():
        run(stepper, state, params, n_steps=args.steps, save_every=args.save_every,
            out=tmp / "bench.h5", overwrite=True, progress=False)

    def run_driver_mem():
        run(stepper, state, params, n_steps=args.steps, save_every=args.save_every, progress=False)

    result = compare(
        f"Lorenz ensemble {args.members} members x {args.steps} steps, save every {args.save_every}",
        [Candidate("bare jit(simulate)", run_bare, setup=run_bare),
         Candidate("driver + HDF5", run_driver, setup=run_driver),
         Candidate("driver, frames in memory", run_driver_mem, setup=run_driver_mem)],
        rounds=args.rounds, work=args.members * args.steps, work_unit="member-steps")
    rows = {r["candidate"]: r for r in result["rows"]}
    overhead = rows["driver + HDF5"]["median_s"] / rows["bare jit(simulate)"]["median_s"] - 1
    print(f"\ndriver + HDF5 overhead over bare solve: {100 * overhead:+.1f}% (target <= +5%)")
    write_report("driver", [result], extra={"driver_overhead_fraction": overhead,
                                            "args": vars(args)})


if __name__ == "__main__":
    main()
