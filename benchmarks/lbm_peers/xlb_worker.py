"""XLB 0.3.1 worker for `bench_lbm.py` (JAX backend); runs in the xlb venv (Python 3.11).

One process per lattice, kept alive for the whole comparison so that XLB's set-up and compile
are paid and timed once:

    <xlb venv python> xlb_worker.py --init init.npz --viscosity 0.01 --warmup W [--loop python]

`init.npz` (written by `bench_lbm.py`) holds `lattice` ("D2Q9" / "D3Q19"), `rho` (nx, ny[, nz])
and `u` (d, nx, ny[, nz]) float32. The populations start at XLB's own quadratic equilibrium of
(rho, u), so every engine starts from the same macroscopic field. The domain is fully periodic:
no boundary conditions, which in XLB's JAX backend means `jnp.roll` streaming everywhere.

Loops (`--loop`):
  python: XLB's own examples' loop: `f_0, f_1 = stepper(f_0, f_1, bc_mask, missing_mask, omega,
          i); f_0, f_1 = f_1, f_0` in Python, one jitted step per call (the headline).
  fori:   the stepper's step inside one jitted `lax.fori_loop` of `--chunk` steps (what a JAX
          user could write around it; reported for fairness).

Protocol (lines on stdout, commands on stdin):
    READY {"setup_s", "compile_s", ...}
    WARM  {"warmup_s", "mass", "ke"}                 after W steps (the cross-check; taken one
                                                     step per call in both loops)
    run M  ->  TIMED {"steps", "run_s", "mlups", "cpu_util"}
    quit   ->  FINAL {"steps_total", "mass", "ke"}
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "md_peers"))
from _common import CpuClock, say, threads  # noqa: E402  (stdlib + numpy only)


class Engine:
    def __init__(self, init: dict, viscosity: float, loop: str, chunk: int):
        self.init, self.loop, self.chunk = init, loop, chunk
        self.omega = 1.0 / (3.0 * viscosity + 0.5)
        self.granule = chunk if loop == "fori" else 1

    def setup(self) -> dict:
        import jax
        import jax.numpy as jnp
        import xlb
        from xlb.compute_backend import ComputeBackend
        from xlb.operator.equilibrium import QuadraticEquilibrium
        from xlb.operator.macroscopic import Macroscopic
        from xlb.operator.stepper import IncompressibleNavierStokesStepper
        from xlb.precision_policy import PrecisionPolicy

        lattice = str(self.init["lattice"])
        policy = PrecisionPolicy.FP32FP32
        backend = ComputeBackend.JAX
        vs = getattr(xlb.velocity_set, lattice)(precision_policy=policy, compute_backend=backend)
        xlb.init(velocity_set=vs, default_backend=backend, default_precision_policy=policy)
        rho = np.asarray(self.init["rho"], np.float32)
        u = np.asarray(self.init["u"], np.float32)
        self.shape = rho.shape
        grid = xlb.grid.grid_factory(self.shape, compute_backend=backend)
        self.stepper = IncompressibleNavierStokesStepper(
            grid=grid, boundary_conditions=[], collision_type="BGK"
        )

        def initializer(grid, velocity_set, precision_policy, compute_backend):
            return QuadraticEquilibrium()(jnp.asarray(rho[None]), jnp.asarray(u))

        t0 = time.perf_counter()
        self.f_0, self.f_1, self.bc_mask, self.missing_mask = self.stepper.prepare_fields(
            initializer=initializer
        )
        jax.block_until_ready(self.f_0)
        init_s = time.perf_counter() - t0
        macro = Macroscopic()
        self.moments = jax.jit(lambda f: macro(f))
        self.jax, self.i = jax, 0
        # compile: one step (python loop) or the chunk (fori)
        t0 = time.perf_counter()
        if self.loop == "python":
            f_0, f_1 = self.stepper(
                self.f_0, self.f_1, self.bc_mask, self.missing_mask, self.omega, 0
            )
            jax.block_until_ready(f_1)
        else:
            stepper, omega = self.stepper, self.omega

            def body(i, fs):
                f_0, f_1 = stepper(fs[0], fs[1], self.bc_mask, self.missing_mask, omega, i)
                return f_1, f_0

            self.run_chunk = jax.jit(
                lambda f_0, f_1, i0: jax.lax.fori_loop(i0, i0 + self.chunk, body, (f_0, f_1))
            )
            self.compiled = self.run_chunk.lower(self.f_0, self.f_1, 0).compile()
        compile_s = time.perf_counter() - t0
        return {
            "compile_s": compile_s,
            "init_s": init_s,
            "lattice": lattice,
            "shape": list(self.shape),
            "omega": self.omega,
        }

    def advance(self, n: int, *, python_loop: bool = False) -> None:
        if self.loop == "python" or python_loop:
            f_0, f_1 = self.f_0, self.f_1
            for _ in range(n):
                f_0, f_1 = self.stepper(
                    f_0, f_1, self.bc_mask, self.missing_mask, self.omega, self.i
                )
                f_0, f_1 = f_1, f_0
                self.i += 1
            self.f_0, self.f_1 = f_0, f_1
        else:
            for _ in range(n // self.chunk):
                self.f_0, self.f_1 = self.compiled(self.f_0, self.f_1, self.i)
                self.i += self.chunk
        self.jax.block_until_ready(self.f_0)

    def observables(self) -> dict:
        rho, u = self.moments(self.f_0)
        rho = np.asarray(rho, np.float64)
        u = np.asarray(u, np.float64)
        return {"mass": float(rho.sum()), "ke": float(0.5 * (rho * (u * u).sum(0)).sum())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--init", required=True, help="npz from bench_lbm.py")
    ap.add_argument("--viscosity", type=float, required=True, help="lattice units")
    ap.add_argument("--warmup", type=int, required=True, help="steps before any timed block")
    ap.add_argument("--loop", choices=["python", "fori"], default="python")
    ap.add_argument("--chunk", type=int, default=10, help="steps per jitted call (fori)")
    args = ap.parse_args()
    with np.load(args.init) as z:
        init = {k: z[k] for k in z.files}
    from importlib.metadata import version

    import jax

    eng = Engine(init, args.viscosity, args.loop, args.chunk)
    t0 = time.perf_counter()
    extra = eng.setup()
    say(
        "READY",
        {
            "engine": "xlb",
            "version": version("xlb"),
            "jax": jax.__version__,
            "loop": args.loop,
            "chunk": eng.granule,
            "setup_s": time.perf_counter() - t0,
            **extra,
            **eng.observables(),
            "python": sys.version.split()[0],
            "xla_flags": os.environ.get("XLA_FLAGS"),
            "pid": os.getpid(),
        },
    )
    cells = int(np.prod(eng.shape))
    with CpuClock() as c:  # the warm-up steps one by one in both loops (any count works)
        eng.advance(args.warmup, python_loop=True)
    total = args.warmup
    say(
        "WARM",
        {
            "warmup_steps": args.warmup,
            "warmup_s": c.wall,
            **eng.observables(),
            "threads": threads(),
        },
    )
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "run":
            n = int(cmd[1])
            if n % eng.granule:
                say("ERROR", {"message": f"steps {n} not a multiple of {eng.granule}"})
                continue
            with CpuClock() as c:
                eng.advance(n)
            total += n
            say(
                "TIMED",
                {
                    "steps": n,
                    "run_s": c.wall,
                    "mlups": cells * n / c.wall / 1e6,
                    "cpu_util": c.utilisation,
                },
            )
        elif cmd[0] == "quit":
            break
    say("FINAL", {"steps_total": total, **eng.observables()})


if __name__ == "__main__":
    main()
