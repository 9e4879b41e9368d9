"""simkit's 2-D pseudo-spectral Navier-Stokes vs jax-cfd 0.2.1's spectral solver, in one run.

Workload: Kolmogorov flow on [0, 2 pi)^2, forcing f = (sin(4 y), 0), viscosity 1e-3, linear drag
0.1, float32, at 256^2 and 512^2, from the same initial vorticity (`spectral_peers/jaxcfd_worker.py
initial_vorticity`: seed 0, |k| <= 8, rms 2) with the same time step (jax-cfd's own Kolmogorov
choice, dt = 0.5 dx / 7). Both solve the same equation with 2/3-rule dealiasing; simkit steps it
with integrating-factor RK4 (4 stages), jax-cfd with its Crank-Nicolson RK4 (5 stages).
Cross-check: energy and enstrophy after the same warm-up agree (relative difference printed;
the two time schemes differ by their truncation error, ~1e-6 here).

Candidates, timed side by side in interleaved rounds (round r runs each once, in a rotated
order; only one computes at a time):

  simkit     `jit(simulate(ns, state, params, C, C)[0])` over a block of C steps (the pure
             multi-step path a user jits; the driver `run` adds only HDF5 output)
  jax-cfd    `jit(funcutils.repeated(crank_nicolson_rk4(NavierStokes2D(...)), C))`, the way a
             jax-cfd user runs it, in its own process and venv (jax 0.4.30; `spectral_peers/`)
  FFT        one (n, n) float32 rfft2 and one irfft2, timed in every round in this process (a
             jitted loop of 20 round trips, so dispatch is excluded) and in jax-cfd's (one
             call at a time, dispatch included)

FFT-bound limits: simkit's step runs 16 real 2-D FFTs (4 stages x 2 inverse + 2 forward, in
batches of two), jax-cfd's 27 in its compiled HLO (20 irfft2 + 7 rfft2; the source asks for 35,
XLA merges the repeated transforms of the constant force). Both counts are read from the
compiled HLO of each solver's loop. The limit is steps/s = 1 / (FFTs per step x one FFT's time);
the % of it reached says how much of a step is FFT.

    python benchmarks/bench_spectral.py              # ~4 min on a shared 2-core box (+ jax-cfd install)
    python benchmarks/bench_spectral.py --quick      # smoke run: 64^2 and 128^2, 2 rounds
    python benchmarks/bench_spectral.py --no-peer --sizes 256
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _runner import RESULTS_DIR, machine_facts  # noqa: E402
from bench_md import Worker, ratio_stats  # noqa: E402  (the peers' line protocol, shared)


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


peer_setup = _load("spectral_setup_peers", HERE / "spectral_peers" / "setup_peers.py")
# numpy-only parts of the worker: the shared initial field and the case's parameters
peer_case = _load("spectral_peer_case", HERE / "spectral_peers" / "jaxcfd_worker.py")

PLAN = {  # steps per timed block and warm-up steps (warm-up: the cross-check's horizon)
    64: {"steps": 200, "warmup": 100},
    128: {"steps": 200, "warmup": 100},
    256: {"steps": 200, "warmup": 100},
    512: {"steps": 50, "warmup": 50},
}
SIMKIT_FFTS_PER_STEP = 16


def count_ffts(hlo_text: str) -> dict:
    """FFT instructions by type in an HLO text, and the batch size of each (a batched FFT of
    two fields counts as two FFTs)."""
    out: dict[str, int] = {}
    for m in re.finditer(r"= (\w+)\[([\d,]*)\][^\n]*? fft\([^\n]*fft_type=(\w+)", hlo_text):
        dims = [int(d) for d in m.group(2).split(",") if d]
        batch = 1
        for d in dims[:-2]:
            batch *= d
        out[m.group(3)] = out.get(m.group(3), 0) + batch
    return out


class SimkitEngine:
    name = "simkit"

    def __init__(self, init: dict, steps: int, warmup: int):
        import jax
        import jax.numpy as jnp
        import numpy as np

        from simkit.fluids import spectral
        from simkit.run import simulate

        self.jax, self.jnp, self.np, self.spectral = jax, jnp, np, spectral
        w0 = np.asarray(init["vorticity"], np.float32)
        n = w0.shape[0]
        self.n, self.steps = n, steps
        self.ns = spectral.NavierStokes2D(
            (n, n),
            dt=float(init["dt"]),
            forcing=spectral.Kolmogorov(int(init["forcing_k"])),
            dtype="float32",
        )
        self.params = self.ns.params(
            viscosity=float(init["viscosity"]),
            drag=float(init["drag"]),
            forcing_amplitude=float(init["forcing_amplitude"]),
        )
        self.state = self.ns.init(self.params, vorticity=w0)
        ns, params = self.ns, self.params

        def block(k):
            return jax.jit(lambda s: simulate(ns, s, params, k, k)[0])

        t0 = time.perf_counter()
        self.compiled = block(steps).lower(self.state).compile()
        self.compile_s = time.perf_counter() - t0
        self.ffts_in_loop = count_ffts(self.compiled.as_text())
        self.ready = {
            "compile_s": self.compile_s,
            **self.observables(),
            "ffts_in_loop_body": self.ffts_in_loop,
        }
        t0 = time.perf_counter()
        if warmup:
            self.state = jax.block_until_ready(block(warmup)(self.state))
        self.warm = {"warmup_s": time.perf_counter() - t0, **self.observables()}
        self.timed, self.steps_total = [], warmup
        # one FFT pair in a jitted loop: the per-FFT cost without dispatch
        x = jnp.asarray(np.random.default_rng(1).standard_normal((n, n)), jnp.float32)
        reps = 20

        def pairs(a):
            return jax.lax.fori_loop(
                0, reps, lambda i, a: jnp.fft.irfft2(jnp.fft.rfft2(a), s=(n, n)), a
            )

        self._pairs, self._x, self._reps = jax.jit(pairs), x, reps
        jax.block_until_ready(self._pairs(x))

    def observables(self) -> dict:
        sp, w = self.spectral, self.state.vorticity_hat
        g = self.ns.grid
        return {
            "energy": float(sp.energy(g, w)),
            "enstrophy": float(sp.enstrophy(g, w)),
            "finite": bool(self.jnp.isfinite(w).all()),
        }

    def run_block(self, timeout=None) -> dict:
        t0 = time.perf_counter()
        self.state = self.jax.block_until_ready(self.compiled(self.state))
        run_s = time.perf_counter() - t0
        self.steps_total += self.steps
        out = {"steps": self.steps, "run_s": run_s, "steps_per_s": self.steps / run_s}
        self.timed.append(out)
        return out

    def fft_time(self) -> float:
        """Seconds of one (n, n) float32 real FFT (mean of rfft2 and irfft2), no dispatch."""
        t0 = time.perf_counter()
        self.jax.block_until_ready(self._pairs(self._x))
        return (time.perf_counter() - t0) / (2 * self._reps)

    def stop(self):
        self.final = {"steps_total": self.steps_total, **self.observables()}


def bench_size(n: int, args, tmp: Path) -> dict:
    plan = PLAN[n]
    steps, warmup = plan["steps"], plan["warmup"]
    npz = tmp / f"kolmogorov_{n}.npz"
    case = peer_case.write_init(str(npz), n)
    import numpy as np

    with np.load(npz) as z:
        init = {k: z[k] for k in z.files}
    print(
        f"\n=== Kolmogorov flow {n}^2 float32, dt {case['dt']:.3g}, nu {case['viscosity']}, "
        f"drag {case['drag']}: warm-up {warmup} steps, {steps} steps per block, "
        f"{args.rounds} rounds",
        flush=True,
    )
    engines, failures = [], {}
    t0 = time.perf_counter()
    sim = SimkitEngine(init, steps, warmup)
    engines.append(sim)
    print(
        f"  simkit   ready in {time.perf_counter() - t0:6.1f} s  compile {sim.compile_s:5.2f} s  "
        f"FFTs in the step loop {sim.ffts_in_loop}  E({warmup}) {sim.warm['energy']:.7g}",
        flush=True,
    )
    peer = None
    if not args.no_peer:
        try:
            py = str(peer_setup.ensure())
            env = peer_setup.env_for("jaxcfd")
            env.pop("XLA_FLAGS", None)
            cmd = [
                py,
                str(HERE / "spectral_peers" / "jaxcfd_worker.py"),
                "--init",
                str(npz),
                "--chunk",
                str(steps),
                "--warmup",
                str(warmup),
            ]
            peer = Worker("jax-cfd", "jaxcfd", cmd, env, steps, tmp)
            t0 = time.perf_counter()
            peer.start(args.timeout)
            engines.append(peer)
            print(
                f"  jax-cfd  ready in {time.perf_counter() - t0:6.1f} s  compile "
                f"{peer.ready['compile_s']:5.2f} s  FFTs per step {peer.ready['ffts_per_step']} "
                f"{peer.ready['ffts_per_step_by_type']}  E({warmup}) {peer.warm['energy']:.7g}  "
                f"(jax {peer.ready['jax']}, jax-cfd {peer.ready['jax_cfd']})",
                flush=True,
            )
        except Exception as exc:  # noqa: BLE001
            failures["jax-cfd"] = f"{exc}\n{peer.stderr_tail(1500) if peer else ''}"
            print(f"  jax-cfd: FAILED: {exc}", flush=True)
            peer = None
            engines = [e for e in engines if e.name != "jax-cfd"]
    fft_rounds, peer_fft = [], []
    try:
        for r in range(args.rounds):
            k = r % len(engines)
            order = engines[k:] + engines[:k]
            fft_rounds.append(sim.fft_time())
            line = [f"FFT {fft_rounds[-1] * 1e3:.3f} ms"]
            for e in order:
                out = e.run_block(args.timeout)
                line.append(f"{e.name} {steps / out['run_s']:.1f}")
            print(f"  round {r + 1}/{args.rounds} (steps/s): " + ", ".join(line), flush=True)
        if peer is not None:
            peer.send("fft")
            peer_fft.append(peer.expect("FFT", args.timeout))
    finally:
        for e in engines:
            e.stop()
    return summarise(n, case, plan, sim, peer, fft_rounds, peer_fft, failures, args)


def summarise(n, case, plan, sim, peer, fft_rounds, peer_fft, failures, args) -> dict:
    med = statistics.median
    t_fft = med(fft_rounds)
    sim_ffts = sum(sim.ffts_in_loop.values()) or SIMKIT_FFTS_PER_STEP
    out = {
        "n": n,
        "case": case,
        "plan": plan,
        "rounds": args.rounds,
        "fft_s": t_fft,
        "fft_rounds_s": fft_rounds,
        "simkit": {
            "steps_per_s": med([t["steps_per_s"] for t in sim.timed]),
            "rounds_s": [t["run_s"] for t in sim.timed],
            "compile_s": sim.compile_s,
            "ffts_per_step": sim_ffts,
            "ffts_by_type": sim.ffts_in_loop,
            "warm": sim.warm,
            "final": sim.final,
        },
        "failures": failures,
    }
    s = out["simkit"]
    s["fft_bound_steps_per_s"] = 1.0 / (sim_ffts * t_fft)
    s["fraction_of_fft_bound"] = s["steps_per_s"] / s["fft_bound_steps_per_s"]
    if peer is not None and len(peer.timed) == args.rounds:
        p_ffts = peer.ready["ffts_per_step"]
        out["jax-cfd"] = {
            "steps_per_s": med([t["steps_per_s"] for t in peer.timed]),
            "rounds_s": [t["run_s"] for t in peer.timed],
            "compile_s": peer.ready["compile_s"],
            "ffts_per_step": p_ffts,
            "ffts_by_type": peer.ready["ffts_per_step_by_type"],
            "ffts_per_step_source": peer.ready.get("ffts_per_step_source"),
            "warm": peer.warm,
            "final": peer.final,
            "fft_one_call": peer_fft[0] if peer_fft else None,
            "jax": peer.ready["jax"],
            "jax_cfd": peer.ready["jax_cfd"],
            "cpu_util": [t.get("cpu_util") for t in peer.timed],
        }
        c = out["jax-cfd"]
        c["fft_bound_steps_per_s"] = 1.0 / (p_ffts * t_fft)
        c["fraction_of_fft_bound"] = c["steps_per_s"] / c["fft_bound_steps_per_s"]
        # per-round ratio: same round, same machine conditions
        out["speedup"] = ratio_stats(c["rounds_s"], s["rounds_s"])
        for key in ("energy", "enstrophy"):
            a, b = sim.warm[key], peer.warm[key]
            out[f"warm_{key}_rel_diff"] = abs(a - b) / abs(b)
    return out


def print_table(results: list[dict]) -> None:
    print(
        "\n| grid | simkit steps/s | jax-cfd steps/s | speedup (median, min-max) | FFTs/step "
        "simkit / jax-cfd | one FFT | FFT-bound steps/s simkit / jax-cfd | % of FFT bound "
        "simkit / jax-cfd | warm-up energy rel. diff |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        s, c = r["simkit"], r.get("jax-cfd")
        sp = r.get("speedup")
        print(
            f"| {r['n']}^2 | {s['steps_per_s']:.1f} | {c['steps_per_s']:.1f} | "
            if c
            else f"| {r['n']}^2 | {s['steps_per_s']:.1f} | - | ",
            end="",
        )
        print(f"{sp['median']:.2f}x ({sp['min']:.2f}-{sp['max']:.2f}) | " if sp else "- | ", end="")
        print(
            f"{s['ffts_per_step']} / {c['ffts_per_step'] if c else '-'} | "
            f"{r['fft_s'] * 1e3:.3f} ms | {s['fft_bound_steps_per_s']:.0f} / "
            f"{c['fft_bound_steps_per_s']:.0f} | "
            if c
            else f"{s['ffts_per_step']} / - | {r['fft_s'] * 1e3:.3f} ms | "
            f"{s['fft_bound_steps_per_s']:.0f} / - | ",
            end="",
        )
        print(
            f"{100 * s['fraction_of_fft_bound']:.0f}% / "
            f"{100 * c['fraction_of_fft_bound']:.0f}% | {r['warm_energy_rel_diff']:.1e} |"
            if c
            else f"{100 * s['fraction_of_fft_bound']:.0f}% / - | - |"
        )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512], choices=sorted(PLAN))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="64^2 and 128^2, 2 rounds")
    ap.add_argument("--no-peer", action="store_true", help="simkit only (no jax-cfd venv)")
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--out", default=str(RESULTS_DIR / "spectral.json"))
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.rounds = [64, 128], 2
    facts = machine_facts()
    print(
        f"machine: {facts['cpu_count']} cores, load {facts['loadavg']}, jax {facts['jax']}",
        flush=True,
    )
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            results.append(bench_size(n, args, Path(tmp)))
    print_table(results)
    facts["loadavg_end"] = list(__import__("os").getloadavg())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {"benchmark": "spectral", "machine": facts, "results": results}, indent=1, default=str
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
