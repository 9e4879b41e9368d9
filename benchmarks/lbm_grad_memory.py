"""Reverse-mode memory and time through long lattice Boltzmann runs: `simulate`'s checkpoint
schemes against the number of steps.

Workload: a decaying Taylor-Green vortex on a periodic `--n` x `--n` D2Q9 BGK grid (float32 by
default, the LBM default), `loss(nu) = sum(u(N)^2)` on the velocity after N steps, and
`jax.grad(loss)` with respect to the viscosity, for N in `--steps`, under three schemes that
compute the same loss and gradient:

- none:      `simulate(..., N, save_every=N, checkpoint=False)`: every step's residuals kept.
- per-frame: `simulate(..., N, save_every=--frame-every, checkpoint=True)`: a frame every 50
             steps, each frame's interval rematerialised (the loss reads the last frame).
- sqrt:      `simulate(..., N, save_every=N, checkpoint="sqrt")`: sqrt(N) rematerialised
             segments of sqrt(N) steps.

Each (scheme, N) runs in its own process and reports:
- temp: the compiled executable's temporary buffers (`jax.jit(grad).lower(...).compile()
  .memory_analysis().temp_size_in_bytes`; XLA's buffer assignment, exact, no run needed);
- rss: the process's peak resident memory during the first gradient evaluation above the
  resident memory just before it (Linux: the peak is reset through /proc/self/clear_refs; the
  runtime keeps the buffers for later calls, so the first call is the one that shows them),
  measured only where temp is below `--run-limit-gb` (the shared machine's memory);
- forward and gradient wall times (the second call of each; compile timed separately).

Run: .venv/bin/python benchmarks/lbm_grad_memory.py [--n 64] [--steps 250 1000 4000 16000]
Writes benchmarks/results/lbm_grad_memory.json.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCHEMES = ("none", "per-frame", "sqrt")


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def worker(
    scheme: str, n_steps: int, n: int, dtype: str, frame_every: int, run_limit: float
) -> dict:
    """One (scheme, N) measurement in this process; returns a JSON-able dict."""
    import jax

    jax.config.update("jax_enable_x64", dtype == "float64")
    import jax.numpy as jnp
    import numpy as np

    import simkit.fluids.lbm as lbm
    from simkit.run import simulate

    stepper = lbm.LBMStepper(lbm.D2Q9, (n, n), dtype=dtype)
    params = stepper.params(viscosity=0.02)
    x = 2 * np.pi * np.arange(n) / n
    X, Y = np.meshgrid(x, x, indexing="ij")
    u0 = 0.05 * np.stack([np.sin(X) * np.cos(Y), -np.cos(X) * np.sin(Y)], axis=-1)
    state = stepper.init(params, velocity=u0)
    save_every, checkpoint = {
        "none": (n_steps, False),
        "per-frame": (frame_every, True),
        "sqrt": (n_steps, "sqrt"),
    }[scheme]

    def loss(nu):
        _, frames = simulate(
            stepper, state, {**params, "viscosity": nu}, n_steps, save_every, checkpoint=checkpoint
        )
        return jnp.sum(frames["velocity"][-1] ** 2)

    nu = params["viscosity"]
    t0 = time.perf_counter()
    grad = jax.jit(jax.grad(loss)).lower(nu).compile()
    compile_s = time.perf_counter() - t0
    mem = grad.memory_analysis()
    t0 = time.perf_counter()
    forward = jax.jit(loss).lower(nu).compile()
    forward_compile_s = time.perf_counter() - t0
    out = {
        "scheme": scheme,
        "steps": n_steps,
        "save_every": save_every,
        "checkpoint": checkpoint,
        "grid": [n, n],
        "dtype": dtype,
        "state_bytes": int(np.prod(state.f.shape)) * np.dtype(dtype).itemsize,
        "temp_bytes": int(mem.temp_size_in_bytes),
        "argument_bytes": int(mem.argument_size_in_bytes),
        "output_bytes": int(mem.output_size_in_bytes),
        "generated_code_bytes": int(mem.generated_code_size_in_bytes),
        "compile_s": compile_s,
        "forward_compile_s": forward_compile_s,
    }
    if mem.temp_size_in_bytes > run_limit * 2**30:
        out["skipped"] = (
            f"not run: temp {mem.temp_size_in_bytes / 2**30:.1f} GiB > --run-limit-gb {run_limit}"
        )
        return out
    jax.block_until_ready(forward(nu))
    t0 = time.perf_counter()
    jax.block_until_ready(forward(nu))
    out["forward_s"] = time.perf_counter() - t0
    # The first gradient call allocates (and faults in) the executable's buffers, which the
    # runtime keeps for later calls: measure the peak of that call over the resident memory
    # just before it (after both compilations and the forward runs).
    rss_before = _status_kb("VmRSS")
    peak_ok = _reset_peak_rss()
    t0 = time.perf_counter()
    jax.block_until_ready(grad(nu))
    out["gradient_first_call_s"] = time.perf_counter() - t0
    if peak_ok:
        out["rss_peak_over_baseline_bytes"] = (_status_kb("VmHWM") - rss_before) * 1024
    out["rss_retained_after_bytes"] = (_status_kb("VmRSS") - rss_before) * 1024
    out["rss_baseline_bytes"] = rss_before * 1024
    t0 = time.perf_counter()
    g = jax.block_until_ready(grad(nu))
    out["gradient_s"] = time.perf_counter() - t0
    out["gradient"] = float(g)
    out["loss"] = float(forward(nu))
    return out


def run_one(scheme, n_steps, args) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        scheme,
        str(n_steps),
        "--n",
        str(args.n),
        "--dtype",
        args.dtype,
        "--frame-every",
        str(args.frame_every),
        "--run-limit-gb",
        str(args.run_limit_gb),
    ]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        return {
            "scheme": scheme,
            "steps": n_steps,
            "error": proc.stderr.strip().splitlines()[-1]
            if proc.stderr.strip()
            else f"exit code {proc.returncode}",
        }
    return json.loads(proc.stdout.strip().splitlines()[-1])


def mib(b):
    return "-" if b is None else f"{b / 2**20:.1f}"


def table(rows, steps) -> str:
    header = (
        f"{'scheme':<10}{'steps':>7}{'temp MiB':>10}{'x prev':>7}{'rss MiB':>9}"
        f"{'fwd s':>8}{'grad s':>8}{'grad/fwd':>9}{'compile s':>10}  gradient"
    )
    lines = [header]
    for scheme in SCHEMES:
        prev = None
        for n_steps in steps:
            r = next((r for r in rows if r["scheme"] == scheme and r["steps"] == n_steps), None)
            if r is None:
                continue
            if "error" in r:
                lines.append(f"{scheme:<10}{n_steps:>7}  error: {r['error']}")
                continue
            temp = r["temp_bytes"]
            growth = "" if prev is None else f"{temp / prev:.2f}"
            prev = temp
            fwd, grad = r.get("forward_s"), r.get("gradient_s")
            ratio = f"{grad / fwd:.1f}" if fwd and grad else "-"
            lines.append(
                f"{scheme:<10}{n_steps:>7}{mib(temp):>10}{growth:>7}"
                f"{mib(r.get('rss_peak_over_baseline_bytes')):>9}"
                f"{'-' if fwd is None else f'{fwd:.3f}':>8}"
                f"{'-' if grad is None else f'{grad:.3f}':>8}{ratio:>9}"
                f"{r['compile_s']:>10.1f}  "
                + (f"{r['gradient']:.6e}" if "gradient" in r else r.get("skipped", ""))
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=64, help="grid cells per side")
    p.add_argument("--steps", type=int, nargs="+", default=[250, 1000, 4000, 16000])
    p.add_argument("--schemes", nargs="+", choices=SCHEMES, default=list(SCHEMES))
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument(
        "--frame-every",
        type=int,
        default=50,
        help="steps per frame of the per-frame scheme (must divide every N)",
    )
    p.add_argument(
        "--run-limit-gb",
        type=float,
        default=3.0,
        help="run (RSS, timings) only where the compiled temp memory is below this",
    )
    p.add_argument("--out", type=Path, default=HERE / "results" / "lbm_grad_memory.json")
    p.add_argument("--worker", nargs=2, metavar=("SCHEME", "STEPS"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        scheme, n_steps = args.worker[0], int(args.worker[1])
        print(
            json.dumps(
                worker(scheme, n_steps, args.n, args.dtype, args.frame_every, args.run_limit_gb)
            )
        )
        return 0
    bad = [s for s in args.steps if s <= 0 or s % args.frame_every]
    if bad or args.n < 8:
        p.error(
            f"every --steps must be a positive multiple of --frame-every "
            f"({args.frame_every}) and --n >= 8; got steps {bad}, n {args.n}"
        )

    sys.path.insert(0, str(HERE))
    from _runner import machine_facts

    rows = []
    for n_steps in args.steps:
        for scheme in args.schemes:
            t0 = time.perf_counter()
            r = run_one(scheme, n_steps, args)
            rows.append(r)
            print(
                f"  {scheme:<10} N={n_steps:<6} temp {mib(r.get('temp_bytes'))} MiB "
                f"({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    text = table(rows, args.steps)
    print(
        f"\nTaylor-Green {args.n}x{args.n} D2Q9 {args.dtype}, grad of sum(u(N)^2) w.r.t. "
        f"viscosity; state {mib(rows[0].get('state_bytes'))} MiB; per-frame: a frame every "
        f"{args.frame_every} steps"
    )
    print(text)
    fits = {}
    for scheme in args.schemes:
        pts = [
            (r["steps"], r["temp_bytes"])
            for r in rows
            if r["scheme"] == scheme and "temp_bytes" in r
        ]
        if len(pts) >= 2:
            (n0, t0_), (n1, t1_) = pts[0], pts[-1]
            fits[scheme] = math.log(t1_ / t0_) / math.log(n1 / n0)
    print("temp memory ~ N^a, a = " + ", ".join(f"{k}: {v:.2f}" for k, v in fits.items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "benchmark": "lbm_grad_memory",
                "machine": machine_facts(),
                "workload": {
                    "flow": "Taylor-Green, periodic",
                    "grid": [args.n, args.n],
                    "lattice": "D2Q9 BGK",
                    "dtype": args.dtype,
                    "viscosity": 0.02,
                    "loss": "sum(u(N)^2)",
                    "frame_every": args.frame_every,
                },
                "results": rows,
                "temp_exponent": fits,
                "table": text,
            },
            indent=1,
        )
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
