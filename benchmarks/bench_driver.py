"""Driver + HDF5 output overhead vs a bare jitted scan of the same steps.

Three workloads, each timed in interleaved rounds in one process:

  lorenz     Lorenz ensemble (4096 members, 20 000 steps, a frame every 200), FrameStore
  particles  32 000 random walkers in a periodic 3D box, float32: position and velocity every
             100 steps (H5MD, /particles/all), thermo scalars every 10 (H5MD /observables)
  field      diffusion on a 1024^2 float32 grid: the field every 100 steps (FieldStore with
             its XDMF sidecar rewritten after every chunk)

Candidates per workload:
  bare jit        jax.jit(simulate) over all steps at the same save rates, frames kept in
                  memory (what a user would hand-write with lax.scan)
  driver + HDF5   simkit.run.run: chunks, finiteness checks, every frame written and flushed,
                  checkpoints, the writer's sidecar

Target: output costs <= 5% of the run. The toy steps are cheap (the output is then a large
share); the script also prints what the measured output cost per saved frame would be next to
a step as expensive as a real MD or LBM step (`--real-step-ms`).

    python benchmarks/bench_driver.py [--only lorenz|particles|field] [--rounds 5]
"""

import argparse
import functools
import sys
import tempfile
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _runner import Candidate, compare, write_report  # noqa: E402

from simkit.io import FieldStore, FrameStore, H5MDStore, Variable  # noqa: E402
from simkit.ode import ODEStepper  # noqa: E402
from simkit.run import AbstractStepper, run, simulate  # noqa: E402


def lorenz(t, y, p):
    return jnp.stack(
        [
            p["sigma"] * (y[1] - y[0]),
            y[0] * (p["rho"] - y[2]) - y[1],
            y[0] * y[1] - p["beta"] * y[2],
        ]
    )


class Walk(AbstractStepper):
    """Random walkers in a periodic box (the cost of a trivial particle step)."""

    dt: float = eqx.field(static=True, default=0.005)
    box: float = eqx.field(static=True, default=33.0)

    def step(self, state, params):
        key, sub = jax.random.split(state["key"])
        v = jnp.sqrt(2 * params["D"] / self.dt) * jax.random.normal(
            sub, state["x"].shape, jnp.float32
        )
        return {
            "key": key,
            "n": state["n"] + 1,
            "x": jnp.mod(state["x"] + v * self.dt, self.box),
            "v": v,
        }

    def observe(self, state, params):
        v = state["v"]
        return {
            "position": state["x"],
            "velocity": v,
            "kinetic_energy": 0.5 * jnp.sum(v * v),
            "mean_velocity": jnp.mean(v, axis=0),
        }

    def time(self, state):
        return state["n"] * self.dt

    def variables(self, state, params):
        n = state["x"].shape[0]
        return {
            "position": Variable(("particle", "spatial"), (n, 3), "float32"),
            "velocity": Variable(("particle", "spatial"), (n, 3), "float32"),
            "kinetic_energy": Variable((), (), "float32"),
            "mean_velocity": Variable(("spatial",), (3,), "float32"),
        }

    def save_groups(self):
        return {
            "trajectory": ("position", "velocity"),
            "thermo": ("kinetic_energy", "mean_velocity"),
        }


class Diffusion(AbstractStepper):
    """Explicit diffusion on a periodic grid (the cost of a trivial field step)."""

    alpha: float = eqx.field(static=True, default=0.2)

    def step(self, state, params):
        u = state["u"]
        lap = (
            jnp.roll(u, 1, 0) + jnp.roll(u, -1, 0) + jnp.roll(u, 1, 1) + jnp.roll(u, -1, 1) - 4 * u
        )
        return {"n": state["n"] + 1, "u": u + jnp.float32(self.alpha) * lap}

    def observe(self, state, params):
        return {"u": state["u"]}

    def time(self, state):
        return state["n"].astype(jnp.float64)

    def variables(self, state, params):
        return {"u": Variable(("x", "y"), state["u"].shape, "float32")}

    def coords(self, state, params):
        nx, ny = state["u"].shape
        return {
            "x": (np.arange(nx, dtype=np.float64), "1"),
            "y": (np.arange(ny, dtype=np.float64), "1"),
        }


def workload(name, args, tmp):
    """(title, stepper, state, params, n_steps, save_every, store kwargs, work, unit, frames)."""
    if name == "lorenz":
        params = {"sigma": jnp.asarray(10.0), "rho": jnp.asarray(28.0), "beta": jnp.asarray(8 / 3)}
        y0 = jnp.asarray(np.random.default_rng(0).normal(size=(4096, 3))) + jnp.asarray(
            [[1.0, 1.0, 25.0]]
        )
        stepper = ODEStepper(lorenz, dt=1e-3)
        return (
            "Lorenz ensemble 4096 members x 20000 steps, a frame every 200",
            stepper,
            stepper.init(y0, params),
            params,
            20_000,
            200,
            {"store_type": FrameStore},
            4096 * 20_000,
            "member-steps",
            101,
        )
    if name == "particles":
        n = args.particles
        state = {
            "key": jax.random.key(0),
            "n": jnp.asarray(0),
            "x": jax.random.uniform(jax.random.key(1), (n, 3), jnp.float32) * 33.0,
            "v": jnp.zeros((n, 3), jnp.float32),
        }
        rates = {"trajectory": 100, "thermo": 10}
        return (
            f"{n} particles x {args.particle_steps} steps: position+velocity every 100, "
            "thermo every 10 (H5MD)",
            Walk(),
            state,
            {"D": jnp.asarray(1.0, jnp.float32)},
            args.particle_steps,
            rates,
            {
                "store_type": H5MDStore,
                "store_options": {"box": np.full(3, 33.0), "boundary": "periodic"},
            },
            n * args.particle_steps,
            "atom-steps",
            args.particle_steps // 100 + args.particle_steps // 10,
        )
    if name == "field":
        g = args.grid
        u0 = jax.random.uniform(jax.random.key(2), (g, g), jnp.float32)
        return (
            f"diffusion {g}^2 float32 x {args.field_steps} steps, a field every 100 "
            "(FieldStore + XDMF)",
            Diffusion(),
            {"n": jnp.asarray(0), "u": u0},
            {},
            args.field_steps,
            100,
            {"store_type": FieldStore},
            g * g * args.field_steps,
            "cell-updates",
            args.field_steps // 100,
        )
    raise SystemExit(f"unknown workload {name!r}")


def _run_bare(bare, state, params):
    jax.block_until_ready(bare(state, params))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=["lorenz", "particles", "field"], default=None)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--particles", type=int, default=32_000)
    ap.add_argument("--particle-steps", type=int, default=2000)
    ap.add_argument("--grid", type=int, default=1024)
    ap.add_argument("--field-steps", type=int, default=1000)
    ap.add_argument(
        "--real-step-ms",
        type=float,
        nargs=2,
        default=(19.0, 10.0),
        metavar=("MD", "LBM"),
        help="cost of a real step: LAMMPS in.lj N=32000 on one core (PEERS.md: "
        "0.019 s) and LBM D2Q9 1024^2 at ~100 MLUPS (10 ms)",
    )
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    results, extra = [], {"args": vars(args)}
    for name in [args.only] if args.only else ["lorenz", "particles", "field"]:
        (title, stepper, state, params, n_steps, save_every, store, work, unit, frames) = workload(
            name, args, tmp
        )
        bare = jax.jit(functools.partial(simulate, stepper, n_steps=n_steps, save_every=save_every))
        run_bare = functools.partial(_run_bare, bare, state, params)
        run_driver = functools.partial(
            run,
            stepper,
            state,
            params,
            n_steps=n_steps,
            save_every=save_every,
            out=tmp / f"{name}.h5",
            overwrite=True,
            progress=False,
            **store,
        )

        result = compare(
            title,
            [
                Candidate("bare jit(simulate)", run_bare, setup=run_bare),
                Candidate("driver + HDF5", run_driver, setup=run_driver),
            ],
            rounds=args.rounds,
            work=work,
            work_unit=unit,
        )
        rows = {r["candidate"]: r for r in result["rows"]}
        t_bare, t_drv = rows["bare jit(simulate)"]["median_s"], rows["driver + HDF5"]["median_s"]
        overhead = t_drv / t_bare - 1
        step_ms = 1e3 * t_bare / n_steps
        per_frame_ms = 1e3 * max(t_drv - t_bare, 0.0) / frames
        print(
            f"\n{name}: output overhead {100 * overhead:+.1f}% (target <= +5%); toy step "
            f"{step_ms:.3f} ms; output {per_frame_ms:.2f} ms per saved frame"
        )
        extra[name] = {
            "overhead_fraction": overhead,
            "toy_step_ms": step_ms,
            "output_ms_per_frame": per_frame_ms,
            "frames": frames,
        }
        if name in ("particles", "field"):
            real = args.real_step_ms[0 if name == "particles" else 1]
            projected = (t_drv - t_bare) / (real * 1e-3 * n_steps)
            print(
                f"  with a {real:g} ms step (a real {'MD' if name == 'particles' else 'LBM'}"
                f" step of this size) the same output would cost {100 * projected:.2f}% of "
                "the run"
            )
            extra[name]["projected_overhead_real_step"] = projected
        results.append(result)
    write_report("driver" if not args.only else f"driver_{args.only}", results, extra=extra)


if __name__ == "__main__":
    main()
