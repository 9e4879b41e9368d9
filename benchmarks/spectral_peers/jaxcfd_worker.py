"""jax-cfd 0.2.1 pseudo-spectral 2-D Navier-Stokes worker; runs in the jaxcfd venv (Python 3.11).

One process per grid size, kept alive for the whole comparison so that jax-cfd's set-up and
compile are paid and timed once:

    <jaxcfd venv python> jaxcfd_worker.py --init init.npz --chunk C [--warmup W]

`init.npz` holds `vorticity` (n, n) float32, the physical-space initial vorticity with array
axis 0 = x and axis 1 = y, sampled at the FFT nodes x_i = i dx, y_j = j dy (dx = 2 pi / n),
and the scalars `viscosity`, `drag`, `forcing_amplitude`, `forcing_k`, `dt`. The box is
[0, 2 pi)^2, periodic.

The solver is what a jax-cfd user writes for Kolmogorov flow:
`spectral.equations.NavierStokes2D(viscosity, grid, drag, smooth=True, forcing_fn)` with
`base.forcings.kolmogorov_forcing(grid, scale=A, k=k, offsets=((0, 0), (0, 0)))` (the offsets of
jax-cfd's own `ForcedNavierStokes2D`: the force f_x = A sin(k y_j) sits on the same nodes as the
vorticity), stepped by `spectral.time_stepping.crank_nicolson_rk4`, the state being
`jnp.fft.rfftn` of the vorticity. C steps run inside one jitted `funcutils.repeated(step, C)`
(a `lax.scan`), float32 (jax's default).

In that equation
    dw/dt = -(u dw/dx + v dw/dy) [2/3 brick-wall filtered] + nu lap w - drag w + curl f,
    u = d psi/dy, v = -d psi/dx, lap psi = -w,  curl f = -A k cos(k y),
and each explicit evaluation does 4 irfftn (u, v, dw/dx, dw/dy), 1 rfftn (advection) and 2
rfft2 (f_x, f_y: the constant force is transformed again on every call). crank_nicolson_rk4 has
5 explicit stages, so the source asks for 35 FFTs a step; XLA merges the 5 identical force
transforms into one pair, so the compiled step runs 27 (20 irfft2 + 7 rfft2). READY reports
both, the compiled count read from the optimised HLO.

Protocol (lines on stdout, commands on stdin):
    READY {"setup_s", "compile_s", "jax", "jax_cfd", "ffts_per_step", ...}
    WARM  {"warmup_steps", "warmup_s", "energy", "enstrophy"}   only with --warmup W > 0
    run M  ->  TIMED {"steps", "run_s", "steps_per_s", "cpu_util"}   (M a multiple of C)
    fft    ->  FFT {"rfft2_s", "irfft2_s", "dispatch_s", ...}   median seconds of one jitted
                                       (n, n) float32 rfft2 / irfft2 call (120 calls each,
                                       blocked one by one; dispatch_s: a trivial jitted call)
    quit   ->  FINAL {"steps_total", "energy", "enstrophy"}   grid means of (u^2 + v^2) / 2 and
                                                              w^2 / 2 of the final field

By hand:
    python jaxcfd_worker.py --write-init /tmp/init512.npz --n 512
    printf 'run 200\\nrun 200\\nfft\\nquit\\n' | \\
        python jaxcfd_worker.py --init /tmp/init512.npz --chunk 50

`--write-init` writes the standard benchmark case (numpy only): Kolmogorov k = 4, amplitude 1,
viscosity 1e-3, drag 0.1, the initial vorticity of `initial_vorticity` (seed 0, |k| <= 8,
rms 2, max |u| 1.3) and dt = 0.5 dx / 7, i.e. `equations.stable_time_step(7, 0.5, ...)`, the
choice of jax-cfd's own spectral Kolmogorov demo (max_velocity = 7): Courant number 0.5 up to
|u| = 7, which leaves room for the forced flow to speed up (its laminar state has
|u| = A / (nu k^2 + drag) = 8.6) in long runs; 8.8e-4 at 512^2, 1.75e-3 at 256^2.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "md_peers"))
from _common import CpuClock, say, threads  # noqa: E402  (stdlib + numpy only)

SOURCE_FFTS_PER_STEP = 35  # 5 stages x (4 irfftn + 1 rfftn + 2 rfft2 of the force)


def initial_vorticity(n: int, *, seed: int = 0, kmax: float = 8.0, rms: float = 2.0) -> np.ndarray:
    """A random, zero-mean vorticity on the n x n nodes (i dx, j dy) of [0, 2 pi)^2, float64.

    w = sum over wavevectors (kx, ky) of one half-plane (kx > 0, or kx = 0 and ky > 0) with
    0 < |k| <= kmax of a cos(kx x + ky y) + b sin(kx x + ky y), a and b standard normal from
    `np.random.default_rng(seed)` drawn in a fixed order, then scaled to the given rms. The
    field is the same function of (x, y) at every n (resolution-independent)."""
    rng = np.random.default_rng(seed)
    km = int(math.floor(kmax))
    modes = [
        (kx, ky)
        for kx in range(0, km + 1)
        for ky in range(-km, km + 1)
        if (kx > 0 or ky > 0) and kx * kx + ky * ky <= kmax * kmax
    ]
    coef = rng.standard_normal((len(modes), 2))
    x = 2 * np.pi * np.arange(n) / n
    w = np.zeros((n, n))
    for (kx, ky), (a, b) in zip(modes, coef, strict=False):
        phase = kx * x[:, None] + ky * x[None, :]
        w += a * np.cos(phase) + b * np.sin(phase)
    w -= w.mean()
    return w * (rms / np.sqrt(np.mean(w * w)))


def write_init(path: str, n: int, seed: int = 0) -> dict:
    dx = 2 * np.pi / n
    d = {
        "vorticity": initial_vorticity(n, seed=seed).astype(np.float32),
        "viscosity": 1e-3,
        "drag": 0.1,
        "forcing_amplitude": 1.0,
        "forcing_k": 4,
        "dt": 0.5 * dx / 7.0,
        "seed": seed,
    }
    np.savez(path, **d)
    return {k: v for k, v in d.items() if k != "vorticity"}


def _count_ffts(hlo_text: str) -> dict:
    kinds = re.findall(r"fft_type=(RFFT|IRFFT|FFT|IFFT)\b", hlo_text)
    return {k: kinds.count(k) for k in sorted(set(kinds))}


class Engine:
    def __init__(self, init: dict, chunk: int):
        self.init, self.chunk = init, chunk
        self.granule = chunk

    def setup(self) -> dict:
        import jax
        import jax.numpy as jnp
        from jax_cfd.base import forcings, funcutils, grids
        from jax_cfd.spectral import equations, time_stepping
        from jax_cfd.spectral import utils as spectral_utils

        w0 = np.asarray(self.init["vorticity"], np.float32)
        n, m = w0.shape
        assert n == m, "square grids only"
        nu, drag = float(self.init["viscosity"]), float(self.init["drag"])
        amp, k = float(self.init["forcing_amplitude"]), int(self.init["forcing_k"])
        dt = float(self.init["dt"])
        grid = grids.Grid((n, n), domain=((0, 2 * jnp.pi), (0, 2 * jnp.pi)))
        forcing_fn = lambda g: forcings.kolmogorov_forcing(  # noqa: E731
            g, scale=amp, k=k, offsets=((0, 0), (0, 0))
        )
        eq = equations.NavierStokes2D(nu, grid, drag=drag, smooth=True, forcing_fn=forcing_fn)
        step = time_stepping.crank_nicolson_rk4(eq, dt)
        self.jax, self.jnp, self.n = jax, jnp, n
        self.to_velocity = spectral_utils.vorticity_to_velocity(grid)
        self.state = jax.block_until_ready(jnp.fft.rfftn(jnp.asarray(w0)))
        t0 = time.perf_counter()
        self.compiled = jax.jit(funcutils.repeated(step, self.chunk)).lower(self.state).compile()
        compile_s = time.perf_counter() - t0
        # not part of a jax-cfd user's set-up (excluded from setup_s): the one-step function
        # for --warmup and the FFT count of its optimised HLO
        t0 = time.perf_counter()
        self.step1 = jax.jit(step)
        ffts = _count_ffts(self.step1.lower(self.state).compile().as_text())
        chunk_ffts = _count_ffts(self.compiled.as_text())
        self.aux_s = time.perf_counter() - t0
        return {
            "compile_s": compile_s,
            "aux_compile_s": self.aux_s,
            "n": n,
            "chunk": self.chunk,
            "dt": dt,
            "viscosity": nu,
            "drag": drag,
            "forcing_amplitude": amp,
            "forcing_k": k,
            "ffts_per_step": sum(ffts.values()),
            "ffts_per_step_by_type": ffts,
            "ffts_in_chunk_loop_body": chunk_ffts,
            "ffts_per_step_source": SOURCE_FFTS_PER_STEP,
            "dtype": str(self.state.dtype),
        }

    def advance(self, steps: int, *, one_by_one: bool = False) -> None:
        if one_by_one:
            for _ in range(steps):
                self.state = self.step1(self.state)
        else:
            for _ in range(steps // self.chunk):
                self.state = self.compiled(self.state)
        self.jax.block_until_ready(self.state)

    def observables(self) -> dict:
        jnp = self.jnp
        uh, vh = self.to_velocity(self.state)
        u = np.asarray(jnp.fft.irfftn(uh), np.float64)
        v = np.asarray(jnp.fft.irfftn(vh), np.float64)
        w = np.asarray(jnp.fft.irfftn(self.state), np.float64)
        return {
            "energy": float(np.mean(0.5 * (u * u + v * v))),
            "enstrophy": float(np.mean(0.5 * w * w)),
            "max_speed": float(np.sqrt(np.max(u * u + v * v))),
            "finite": bool(np.isfinite(w).all()),
        }

    def fft_times(self, calls: int = 40, rounds: int = 3) -> dict:
        """Seconds of one (n, n) float32 rfft2 and of one irfft2 of the state's shape: each a
        jitted call, blocked until done, timed one by one; rfft2 and irfft2 alternate in
        `rounds` blocks of `calls` (so both see the same load). Median and minimum, and the
        same for a trivial jitted call (the dispatch cost included in each)."""
        jax, jnp = self.jax, self.jnp
        x = jax.block_until_ready(
            jnp.asarray(np.random.default_rng(1).standard_normal((self.n, self.n)), jnp.float32)
        )
        c = jax.block_until_ready(jnp.fft.rfft2(x))
        fns = {
            "rfft2": (jax.jit(jnp.fft.rfft2), x),
            "irfft2": (jax.jit(lambda a: jnp.fft.irfft2(a, s=x.shape)), c),
            "dispatch": (jax.jit(lambda a: a[0, 0] + 1), x),
        }
        ts = {name: [] for name in fns}
        for fn, arg in fns.values():
            jax.block_until_ready(fn(arg))
        for _ in range(rounds):
            for name, (fn, arg) in fns.items():
                for _ in range(calls):
                    t0 = time.perf_counter()
                    jax.block_until_ready(fn(arg))
                    ts[name].append(time.perf_counter() - t0)
        out = {}
        for name, t in ts.items():
            out[f"{name}_s"] = statistics.median(t)
            out[f"{name}_min_s"] = min(t)
        out["n"], out["calls"] = self.n, calls * rounds
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--init", help="npz: vorticity (n, n) float32 + scalars (see above)")
    ap.add_argument("--chunk", type=int, default=50, help="steps per jitted call")
    ap.add_argument(
        "--warmup",
        type=int,
        default=0,
        help="steps (one jitted step per call) before any command; WARM line",
    )
    ap.add_argument(
        "--write-init",
        metavar="PATH",
        help="write the standard benchmark init.npz for --n and exit",
    )
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.write_init:
        say(
            "INIT",
            {
                "path": args.write_init,
                "n": args.n,
                **write_init(args.write_init, args.n, args.seed),
            },
        )
        return
    if not args.init:
        ap.error("--init is required (or --write-init)")
    with np.load(args.init) as z:
        init = {k: z[k] for k in z.files}
    from importlib.metadata import version

    import jax

    eng = Engine(init, args.chunk)
    t0 = time.perf_counter()
    extra = eng.setup()
    setup_s = time.perf_counter() - t0 - eng.aux_s
    say(
        "READY",
        {
            "engine": "jax-cfd",
            "jax_cfd": version("jax-cfd"),
            "jax": jax.__version__,
            "jaxlib": version("jaxlib"),
            "setup_s": setup_s,
            **extra,
            **eng.observables(),
            "python": sys.version.split()[0],
            "xla_flags": os.environ.get("XLA_FLAGS"),
            "affinity": sorted(os.sched_getaffinity(0)),
            "pid": os.getpid(),
        },
    )
    total = 0
    if args.warmup:
        with CpuClock() as c:
            eng.advance(args.warmup, one_by_one=True)
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
                {"steps": n, "run_s": c.wall, "steps_per_s": n / c.wall, "cpu_util": c.utilisation},
            )
        elif cmd[0] == "fft":
            with CpuClock() as c:
                out = eng.fft_times()
            say("FFT", {**out, "cpu_util": c.utilisation})
        elif cmd[0] == "quit":
            break
        else:
            say("ERROR", {"message": f"unknown command {cmd[0]!r}"})
    say("FINAL", {"steps_total": total, **eng.observables()})


if __name__ == "__main__":
    main()
