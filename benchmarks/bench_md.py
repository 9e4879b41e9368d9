"""simkit MD vs LAMMPS and JAX MD on LAMMPS's bench/in.lj, side by side in one run.

Workload (bench/in.lj): fcc lattice at rho* = 0.8442, T* = 1.44, Lennard-Jones with plain
truncation at r_c = 2.5 (lj/cut), neighbor skin 0.3, NVE velocity Verlet, dt = 0.005, at
N = 4 000 and 32 000 (10^3 and 20^3 fcc cells).

Same initial state everywhere: positions and velocities are made once here with simkit
(`md.lattice`, `md.maxwell_boltzmann(key 87287, kT=1.44)`, float32), written to an .npz and read
by every engine (LAMMPS creates its atoms and velocities from those arrays; no `velocity
create`). Same potential everywhere (JAX MD's default LJ is smoothly switched from 2.0 to 2.5, so
its worker builds a plain-truncated one); checked below: the potential energy per atom on the
perfect lattice must be -6.7734 in every engine, and the total energy per atom after the same
warm-up steps must agree between engines to ~1e-3.

Engines, each a separate process in its own venv (`md_peers/*_inlj.py`, peers installed on
demand into benchmarks/.peers by `md_peers/setup_peers.py`):

  simkit                        XLA's default CPU threading
  simkit 1 thread               pinned with `taskset -c 0` (+ the XLA_FLAGS below, which alone
                                do NOT pin jax 0.12's CPU client: the cpu_util column shows it)
  LAMMPS in.lj                  `neighbor 0.3 bin`, `neigh_modify delay 0 every 20 check no`,
                                OMP_NUM_THREADS=1
  LAMMPS check yes              `neigh_modify delay 0 every 1 check yes` (rebuild only when
                                needed: the rule simkit and JAX MD use)
  JAX MD OrderedSparse / Dense  jax-md 0.2.29, the usual loop (apply_fn + nbrs.update every
                                step in a jitted fori_loop chunk, overflow checked per chunk)

Each worker sets up once (timed: set-up and, for JAX engines, compile), runs the same warm-up
steps (energies compared there), then the harness runs interleaved rounds: round r asks every
engine for one timed block of steps, in a rotated order, so only one engine computes at a time.
Reported: median s/step over rounds, atom-steps/s, ratios of per-round times with their min-max
spread, compile/set-up time, neighbor-list builds per step, CPU utilisation (cores used).

Also: the cost of H5MD output at default save rates (`simkit.run.run` with H5MDStore, thermo
every 100, trajectory every 1000) against the same steps in a bare jitted loop, in-process.

    python benchmarks/bench_md.py          # everything: ~16 min on a shared 2-core box (load 5-8)
    python benchmarks/bench_md.py --sizes 4000 --rounds 2 --no-h5md
    python benchmarks/bench_md.py --engines simkit lammps   # skip JAX MD
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS = HERE / "md_peers"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(PEERS))
import setup_peers
from _runner import RESULTS_DIR, Candidate, compare, machine_facts, print_result

PE_LATTICE = -6.7734  # LAMMPS in.lj step 0: -6.7733681 per atom on the perfect fcc lattice
ONE_THREAD_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"

# Per size: warm-up steps (identical for every engine), timed steps per block per engine family,
# jitted chunk length of the JAX engines. Blocks are sized to ~1-5 s on a free core.
PLAN = {
    4000: {"warmup": 100, "chunk": 50, "steps": {"lammps": 1000, "simkit": 200, "jaxmd": 100}},
    32000: {"warmup": 40, "chunk": 20, "steps": {"lammps": 200, "simkit": 40, "jaxmd": 20}},
}


# ---------------------------------------------------------------------------------------------
# initial state
def write_initial_state(n: int, path: Path) -> dict:
    """in.lj's state for N atoms (n = 4 * cells^3) with simkit, saved as float32 arrays."""
    import jax
    import numpy as np

    from simkit import md

    cells = round((n / 4) ** (1 / 3))
    if 4 * cells**3 != n:
        raise SystemExit(f"N = {n} is not 4 * cells^3 (fcc)")
    positions, box = md.lattice("fcc", cells, density=0.8442)
    v0 = md.maxwell_boltzmann(jax.random.key(87287), positions.shape, kT=1.44)
    np.savez(
        path,
        positions=np.asarray(positions, np.float32),
        velocities=np.asarray(v0, np.float32),
        box=np.asarray(box, np.float64),
        cutoff=2.5,
        skin=0.3,
        dt=0.005,
        epsilon=1.0,
        sigma=1.0,
        mass=1.0,
    )
    return {"n": n, "cells": cells, "box": list(box), "path": str(path)}


# ---------------------------------------------------------------------------------------------
# workers
class Worker:
    """One engine process speaking `md_peers/_common.py`'s line protocol."""

    def __init__(self, name, family, cmd, env, steps, log_dir: Path):
        self.name, self.family, self.cmd, self.env, self.steps = name, family, cmd, env, steps
        self.log_path = log_dir / (name.replace(" ", "_").replace("/", "_") + ".stderr")
        self.proc = None
        self.buf = b""
        self.ready, self.warm, self.final, self.timed = {}, {}, {}, []
        self.error = None

    def start(self, timeout):
        self.stderr = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            self.cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=self.env,
            cwd=PEERS,
        )
        self.ready = self.expect("READY", timeout)
        self.warm = self.expect("WARM", timeout)

    def expect(self, tag, timeout):
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                text = line.decode(errors="replace").strip()
                head, _, body = text.partition(" ")
                if head == tag:
                    return json.loads(body)
                if head == "ERROR":
                    raise RuntimeError(f"{self.name}: {body}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.name}: no {tag} within {timeout:.0f} s")
            r, _, _ = select.select([fd], [], [], min(left, 5.0))
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise RuntimeError(
                        f"{self.name} exited (code {self.proc.wait()}):\n" + self.stderr_tail()
                    )
                self.buf += chunk

    def send(self, line):
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    def run_block(self, timeout):
        self.send(f"run {self.steps}")
        out = self.expect("TIMED", timeout)
        self.timed.append(out)
        return out

    def stop(self, timeout=120):
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.send("quit")
            self.final = self.expect("FINAL", timeout)
            self.proc.wait(timeout=30)
        except Exception as exc:  # noqa: BLE001
            print(f"  {self.name}: no clean exit ({exc}); killed", flush=True)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()  # only the process this script started
                self.proc.wait()
            self.stderr.close()

    def stderr_tail(self, n=3000):
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def make_workers(n, npz, engines, args, log_dir):
    """The engine list for one size (peers installed on demand; a failed install is reported,
    not fatal)."""
    plan = PLAN[n]
    w, chunk, steps = plan["warmup"], plan["chunk"], plan["steps"]
    st = {}
    for family, v in steps.items():  # scaled; JAX engines: a whole number of chunks
        g = 1 if family == "lammps" else chunk
        st[family] = max(g, round(v * args.scale / g) * g)
    common = ["--init", str(npz), "--warmup", str(w)]
    out, failures = [], {}
    base_env = dict(os.environ)
    base_env.pop("XLA_FLAGS", None)
    if "simkit" in engines:
        py = sys.executable
        cmd = [py, str(PEERS / "simkit_inlj.py"), *common, "--chunk", str(chunk)]
        out.append(Worker("simkit", "simkit", cmd, dict(base_env), st["simkit"], log_dir))
        env1 = dict(base_env, XLA_FLAGS=ONE_THREAD_XLA_FLAGS)
        taskset = shutil.which("taskset")
        if taskset:
            out.append(
                Worker(
                    "simkit 1 thread",
                    "simkit",
                    [taskset, "-c", "0", *cmd],
                    env1,
                    st["simkit"],
                    log_dir,
                )
            )
        else:
            failures["simkit 1 thread"] = "taskset not found (util-linux)"
    if "lammps" in engines:
        try:
            py = str(setup_peers.ensure("lammps"))
            env = setup_peers.env_for("lammps")
            env["OMP_NUM_THREADS"] = "1"
            for name, every, check in (("LAMMPS in.lj", 20, "no"), ("LAMMPS check yes", 1, "yes")):
                cmd = [
                    py,
                    str(PEERS / "lammps_inlj.py"),
                    *common,
                    "--every",
                    str(every),
                    "--check",
                    check,
                ]
                out.append(Worker(name, "lammps", cmd, env, st["lammps"], log_dir))
        except Exception as exc:  # noqa: BLE001
            failures["LAMMPS"] = f"install/start failed: {exc}"
    if "jaxmd" in engines:
        try:
            py = str(setup_peers.ensure("jaxmd"))
            env = setup_peers.env_for("jaxmd")
            env.pop("XLA_FLAGS", None)
            formats = ["OrderedSparse"]
            if not args.no_dense and (n <= 4000 or args.dense_all):
                formats.append("Dense")
            for fmt in formats:
                cmd = [
                    py,
                    str(PEERS / "jaxmd_inlj.py"),
                    *common,
                    "--chunk",
                    str(chunk),
                    "--format",
                    fmt,
                ]
                out.append(Worker(f"JAX MD {fmt}", "jaxmd", cmd, env, st["jaxmd"], log_dir))
        except Exception as exc:  # noqa: BLE001
            failures["JAX MD"] = f"install/start failed: {exc}"
    return out, failures


# ---------------------------------------------------------------------------------------------
# one size
def ratio_stats(a: list[float], b: list[float]) -> dict | None:
    """Per-round ratios a_r / b_r (same round: same machine conditions): median, min, max."""
    rs = [x / y for x, y in zip(a, b, strict=False) if y > 0]
    if not rs:
        return None
    return {"median": statistics.median(rs), "min": min(rs), "max": max(rs)}


def bench_size(n, engines, args, tmp) -> tuple[dict, dict]:
    npz = tmp / f"inlj_{n}.npz"
    init = write_initial_state(n, npz)
    plan = PLAN[n]
    print(f"\n=== in.lj N = {n}: warm-up {plan['warmup']} steps, {args.rounds} rounds", flush=True)
    workers, failures = make_workers(n, npz, engines, args, tmp)
    live = []
    try:
        for w in workers:  # one at a time, so each set-up/compile is timed alone
            t0 = time.perf_counter()
            try:
                w.start(args.timeout)
                live.append(w)
                r, wm = w.ready, w.warm
                print(
                    f"  {w.name:<22} ready in {time.perf_counter() - t0:6.1f} s  setup "
                    f"{r['setup_s']:6.2f} s  compile "
                    + (f"{r['compile_s']:6.2f} s" if r.get("compile_s") is not None else "     -  ")
                    + f"  PE0 {r['pe0']:.5f} KE0 {r['ke0']:.5f}  E({plan['warmup']}) "
                    f"{wm['etot_w']:.5f}  [{w.steps} steps/block]",
                    flush=True,
                )
            except Exception as exc:  # noqa: BLE001
                failures[w.name] = f"{exc}\n{w.stderr_tail(1500)}"
                print(f"  {w.name}: FAILED: {exc}", flush=True)
                w.stop()
        for r in range(args.rounds):
            k = r % max(len(live), 1)
            order = live[k:] + live[:k]
            line = []
            for w in order:
                try:
                    out = w.run_block(args.timeout)
                    line.append(f"{w.name} {1e3 * out['s_per_step']:.2f}")
                except Exception as exc:  # noqa: BLE001
                    failures[w.name] = f"round {r}: {exc}\n{w.stderr_tail(1500)}"
                    live.remove(w)
                    w.stop()
            print(f"  round {r + 1}/{args.rounds} (ms/step): " + ", ".join(line), flush=True)
    finally:
        for w in workers:
            w.stop()
    ok = [w for w in workers if w.name not in failures and len(w.timed) == args.rounds]
    return summarise(n, init, plan, ok, failures, args), failures


def summarise(n, init, plan, workers, failures, args) -> dict:
    by = {w.name: w for w in workers}
    per_step = {w.name: [t["s_per_step"] for t in w.timed] for w in workers}
    refs = {
        "LAMMPS in.lj": "x_lammps",
        "LAMMPS check yes": "x_lammps_check_yes",
        "JAX MD OrderedSparse": "x_jaxmd",
    }
    lmp = by.get("LAMMPS in.lj")
    rows = []
    for w in workers:
        ts = per_step[w.name]
        med = statistics.median(ts)
        builds = [t.get("builds") for t in w.timed]
        row = {
            "candidate": w.name,
            "engine": w.ready.get("engine"),
            "n": n,
            "median_s": med,
            "min_s": min(ts),
            "times_s": ts,
            "time_unit": "s/step",
            "steps_per_block": w.steps,
            "atom_steps_per_s": n / med,
            "throughput": n / med,
            "throughput_unit": "atom-steps/s",
            "compile_s": w.ready.get("compile_s"),
            "setup_s": w.ready.get("setup_s"),
            "init_s": w.ready.get("init_s"),
            "warmup_s": w.warm.get("warmup_s"),
            "builds_per_step": (
                sum(builds) / (w.steps * len(builds))
                if builds and all(b is not None for b in builds)
                else None
            ),
            "cpu_util": statistics.median(t["cpu_util"] for t in w.timed),
            "threads": w.warm.get("threads"),
            "affinity": w.ready.get("affinity"),
            "pe0": w.ready["pe0"],
            "ke0": w.ready["ke0"],
            "etot0": w.ready["etot0"],
            "etot_warmup": w.warm["etot_w"],
            "etot_end": w.final.get("etot"),
            "steps_total": w.final.get("steps_total"),
            "info": {
                k: v
                for k, v in w.ready.items()
                if k
                in (
                    "version",
                    "jax",
                    "neighbor",
                    "format",
                    "chunk",
                    "capacity",
                    "simkit_source",
                    "xla_flags",
                    "omp_threads",
                    "python",
                    "devices",
                )
            },
        }
        if w.family == "lammps":
            row["dangerous_builds"] = w.timed[-1].get("dangerous_builds")
        for ref, key in refs.items():
            if ref in per_step:
                row[key] = ratio_stats(ts, per_step[ref])
        if lmp is not None:
            row["speedup_vs_LAMMPS in.lj"] = statistics.median(per_step["LAMMPS in.lj"]) / med
        rows.append(row)
    # physics cross-check (reference: LAMMPS, double precision, if it ran)
    ref = lmp or (workers[0] if workers else None)
    checks = {}
    for w in workers:
        e0, ew = w.ready["etot0"], w.warm["etot_w"]
        c = {
            "pe0": w.ready["pe0"],
            "ke0": w.ready["ke0"],
            "etot0": e0,
            "etot_warmup": ew,
            "pe0_matches_lattice": abs(w.ready["pe0"] - PE_LATTICE) < 5e-4,
            "rel_drift_warmup": (ew - e0) / abs(e0),
        }
        if ref is not None:
            c["rel_diff_vs_ref_warmup"] = (ew - ref.warm["etot_w"]) / abs(ref.warm["etot_w"])
        if w.final.get("etot") is not None:
            c["rel_drift_end"] = (w.final["etot"] - e0) / abs(e0)
            c["steps_end"] = w.final.get("steps_total")
        checks[w.name] = c
    return {
        "workload": f"in.lj N={n}",
        "n": n,
        "rounds": args.rounds,
        "baseline": "LAMMPS in.lj" if lmp else (rows[0]["candidate"] if rows else None),
        "warmup_steps": plan["warmup"],
        "chunk": plan["chunk"],
        "initial_state": init,
        "rows": rows,
        "physics": {"reference": ref.name if ref else None, "engines": checks},
        "failures": failures,
        "loadavg_after": os.getloadavg(),
    }


# ---------------------------------------------------------------------------------------------
# H5MD output cost (in-process, simkit only)
def bench_h5md(n, n_steps, rounds, tmp) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    import simkit.io
    from simkit import md
    from simkit.run import run

    d = np.load(tmp / f"inlj_{n}.npz") if (tmp / f"inlj_{n}.npz").exists() else None
    if d is None:
        write_initial_state(n, tmp / f"inlj_{n}.npz")
        d = np.load(tmp / f"inlj_{n}.npz")
    lj = md.LennardJones(cutoff=2.5)
    params = lj.params(epsilon=1.0, sigma=1.0)
    stepper = md.VelocityVerlet(lj, box=tuple(float(b) for b in d["box"]), dt=0.005, skin=0.3)
    state = stepper.init(jnp.asarray(d["positions"]), params, jnp.asarray(d["velocities"]))
    save_every = {"thermo": 100, "trajectory": 1000}
    bare = jax.jit(lambda s: jax.lax.fori_loop(0, n_steps, lambda i, s: stepper.step(s, params), s))
    out = tmp / f"md_{n}.h5"

    def run_bare():
        jax.block_until_ready(bare(state))

    def run_h5md():
        run(
            stepper,
            state,
            params,
            n_steps=n_steps,
            save_every=save_every,
            out=out,
            overwrite=True,
            store_type=simkit.io.H5MDStore,
            store_options=stepper.h5md_options(),
            progress=False,
        )

    print(
        f"\n=== H5MD output cost, N = {n}, {n_steps} steps, thermo every 100, trajectory every "
        f"1000, {rounds} rounds",
        flush=True,
    )
    result = compare(
        f"H5MD output in.lj N={n}, {n_steps} steps",
        [
            Candidate("bare jit fori_loop (no output)", run_bare, setup=run_bare),
            Candidate("run + H5MDStore (thermo 100, traj 1000)", run_h5md, setup=run_h5md),
        ],
        rounds=rounds,
        work=n * n_steps,
        work_unit="atom-steps",
    )
    rows = {r["candidate"]: r for r in result["rows"]}
    t_bare = rows["bare jit fori_loop (no output)"]["median_s"]
    t_h5 = rows["run + H5MDStore (thermo 100, traj 1000)"]["median_s"]
    per_round = [
        h / b
        for h, b in zip(
            rows["run + H5MDStore (thermo 100, traj 1000)"]["times_s"],
            rows["bare jit fori_loop (no output)"]["times_s"],
            strict=False,
        )
    ]
    result["overhead_fraction"] = t_h5 / t_bare - 1
    result["overhead_per_round"] = [r - 1 for r in per_round]
    result["file_bytes"] = out.stat().st_size if out.exists() else None
    print_result(result)
    print(
        f"  H5MD output + driver overhead: {100 * result['overhead_fraction']:+.1f}% (median; "
        f"per round {', '.join(f'{100 * (r - 1):+.1f}%' for r in per_round)}), file "
        f"{(result['file_bytes'] or 0) / 1e6:.1f} MB",
        flush=True,
    )
    return result


# ---------------------------------------------------------------------------------------------
def fmt_ratio(r):
    if not r:
        return "-"
    return f"{r['median']:.2f} ({r['min']:.2f}-{r['max']:.2f})"


def print_table(results):
    print(
        "\n## in.lj: seconds per step (median over interleaved rounds); ratios = engine time / "
        "reference time,\n## median of per-round ratios (min-max); >1 means slower than the "
        "reference"
    )
    hdr = (
        f"{'engine':<22}{'N':>7}{'s/step':>11}{'atom-steps/s':>14}{'x LAMMPS 1-thr':>20}"
        f"{'x LAMMPS chk yes':>20}{'x JAX MD':>20}{'compile s':>10}{'setup s':>9}"
        f"{'builds/step':>12}{'cores':>7}"
    )
    print(hdr)
    print("-" * len(hdr))
    for res in results:
        for row in res["rows"]:
            comp = f"{row['compile_s']:.2f}" if row.get("compile_s") is not None else "-"
            bps = f"{row['builds_per_step']:.3f}" if row.get("builds_per_step") is not None else "-"
            print(
                f"{row['candidate']:<22}{row['n']:>7}{row['median_s']:>11.4g}"
                f"{row['atom_steps_per_s']:>14.4g}{fmt_ratio(row.get('x_lammps')):>20}"
                f"{fmt_ratio(row.get('x_lammps_check_yes')):>20}"
                f"{fmt_ratio(row.get('x_jaxmd')):>20}{comp:>10}{row['setup_s']:>9.2f}"
                f"{bps:>12}{row['cpu_util']:>7.2f}"
            )
        for name, why in res["failures"].items():
            print(f"{name:<22}{res['n']:>7}  FAILED: {why.splitlines()[0] if why else ''}")
    print(
        "\n## physics cross-check (per atom; reference for 'vs ref' = "
        f"{results[0]['physics']['reference'] if results else '-'}; PE0 must be {PE_LATTICE})"
    )
    print(
        f"{'engine':<22}{'N':>7}{'PE0':>11}{'KE0':>10}{'E0':>11}{'E(warm-up)':>12}"
        f"{'vs ref':>10}{'drift warm':>11}{'drift end':>11}{'steps':>7}"
    )
    for res in results:
        for name, c in res["physics"]["engines"].items():
            end = f"{c['rel_drift_end']:.1e}" if "rel_drift_end" in c else "-"
            print(
                f"{name:<22}{res['n']:>7}{c['pe0']:>11.5f}{c['ke0']:>10.5f}{c['etot0']:>11.5f}"
                f"{c['etot_warmup']:>12.5f}{c.get('rel_diff_vs_ref_warmup', float('nan')):>10.1e}"
                f"{c['rel_drift_warmup']:>11.1e}{end:>11}{c.get('steps_end', '-')!s:>7}"
                + ("" if c["pe0_matches_lattice"] else "   PE0 MISMATCH")
            )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[4000, 32000], choices=sorted(PLAN))
    ap.add_argument(
        "--engines",
        nargs="+",
        default=["simkit", "lammps", "jaxmd"],
        choices=["simkit", "lammps", "jaxmd"],
    )
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply every timed block's steps (rounded to the chunk)",
    )
    ap.add_argument("--no-dense", action="store_true", help="skip JAX MD's Dense format")
    ap.add_argument("--dense-all", action="store_true", help="JAX MD Dense at N = 32000 too")
    ap.add_argument("--no-h5md", action="store_true", help="skip the H5MD output cost")
    ap.add_argument("--h5md-n", type=int, default=4000, choices=sorted(PLAN))
    ap.add_argument("--h5md-steps", type=int, default=1000)
    ap.add_argument("--h5md-rounds", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per worker reply")
    ap.add_argument("--out", default="md", help="results/<out>.json")
    args = ap.parse_args()
    t_start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="bench_md_"))
    results, failures = [], {}
    for n in args.sizes:
        res, fail = bench_size(n, args.engines, args, tmp)
        results.append(res)
        failures.update({f"{k} N={n}": v for k, v in fail.items()})
    h5 = None
    if not args.no_h5md:
        try:
            h5 = bench_h5md(args.h5md_n, args.h5md_steps, args.h5md_rounds, tmp)
        except Exception as exc:  # noqa: BLE001  (keep the engine comparison)
            import traceback

            traceback.print_exc()
            failures["H5MD output"] = f"{type(exc).__name__}: {exc}"
    print_table(results)
    sources = sorted(
        {
            row["info"]["simkit_source"]
            for res in results
            for row in res["rows"]
            if row["info"].get("simkit_source")
        }
    )
    if len(sources) > 1:
        print(
            f"\nWARNING: simkit's sources changed during this run (digests {sources}): the "
            "simkit rows time different code; re-run on a quiet tree to compare them."
        )
    if h5 is not None:
        print(
            f"\nH5MD output (N = {args.h5md_n}, {args.h5md_steps} steps, thermo 100 / trajectory "
            f"1000): {100 * h5['overhead_fraction']:+.1f}% vs a bare jitted loop"
        )
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"{args.out}.json"
    payload = {
        "benchmark": "md",
        "machine": machine_facts(),
        "results": results,
        "h5md": h5,
        "args": vars(args),
        "plan": {str(k): v for k, v in PLAN.items()},
        "one_thread": {
            "how": "taskset -c 0 (CPU affinity); XLA_FLAGS set as well",
            "xla_flags": ONE_THREAD_XLA_FLAGS,
        },
        "failures": failures,
        "wall_s": time.perf_counter() - t_start,
        "simkit_sources": sources,
    }
    out.write_text(json.dumps(payload, indent=2, default=str))
    print(f"\nwrote {out} ({(time.perf_counter() - t_start) / 60:.1f} min)")
    shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(
            "failures:\n"
            + "\n".join(f"  {k}: {v.splitlines()[0] if v else ''}" for k, v in failures.items())
        )
    bad = [
        f"{name} N={res['n']}"
        for res in results
        for name, c in res["physics"]["engines"].items()
        if not c["pe0_matches_lattice"] or abs(c.get("rel_diff_vs_ref_warmup", 0)) > 1e-3
    ]
    if bad:
        print(f"PHYSICS CROSS-CHECK FAILED for {bad}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
