"""Shared by the in.lj worker scripts (stdlib + numpy only: it runs in every peer's venv).

A worker is one engine in one process (its own venv), kept alive for the whole comparison so
that its set-up and compile are paid and timed once:

    <venv python> <engine>_inlj.py --init state.npz --warmup W [engine options]

It reads the initial state written once by `bench_md.py` (float32 positions and velocities made
with simkit, the box, the potential and integrator settings), sets the engine up, and prints

    READY {"setup_s", "compile_s", "pe0", "ke0", "etot0", ...}     energies per atom at step 0
    WARM  {"warmup_s", "pe_w", "ke_w", "etot_w", ...}             after W steps (every engine
                                                                   the same W: the cross-check)

then serves commands read line by line on stdin:

    run M   ->  TIMED {"steps": M, "run_s", "cpu_util", "builds"}  (one timed block)
    quit    ->  FINAL {"steps_total", "pe", "ke", "etot"}          and exits

so the harness can interleave rounds across engines (only one engine computes at a time).
By hand: `printf 'run 200\\nrun 200\\nquit\\n' | python simkit_inlj.py --init x.npz --warmup 100`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import numpy as np


def parser(description: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--init", required=True, help="npz from bench_md.py")
    ap.add_argument("--warmup", type=int, required=True, help="steps before any timed block")
    return ap


def load(path: str) -> dict:
    """positions, velocities (N, 3) float32; box (3,) float64; cutoff, skin, dt, epsilon, sigma,
    mass as floats."""
    with np.load(path) as z:
        d = {k: z[k] for k in z.files}
    for k in ("cutoff", "skin", "dt", "epsilon", "sigma", "mass"):
        d[k] = float(d[k])
    return d


class CpuClock:
    """Wall and process CPU time of a block: CPU / wall says how many cores it really used."""

    def __enter__(self):
        self.r0 = resource.getrusage(resource.RUSAGE_SELF)
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        self.cpu = (r1.ru_utime - self.r0.ru_utime) + (r1.ru_stime - self.r0.ru_stime)
        return False

    @property
    def utilisation(self) -> float:
        return self.cpu / self.wall if self.wall > 0 else float("nan")


def threads() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def say(tag: str, payload: dict) -> None:
    print(f"{tag} " + json.dumps(payload), flush=True)


def serve(engine, warmup: int, info: dict) -> None:
    """Run the protocol above for `engine`, an object with

    setup() -> dict          build everything up to the first step (timed here as setup_s;
                             may report its own compile_s)
    advance(n) -> dict       n steps, blocking until done; may return {"builds": k}
    energies() -> (pe, ke, etot) per atom at the current state
    granule: int             n must be a multiple of it (a chunk length)
    """
    t0 = time.perf_counter()
    extra = engine.setup() or {}
    setup_s = time.perf_counter() - t0
    pe, ke, et = engine.energies()
    say(
        "READY",
        {
            **info,
            "setup_s": setup_s,
            **extra,
            "pe0": pe,
            "ke0": ke,
            "etot0": et,
            "affinity": sorted(os.sched_getaffinity(0)),
            "python": sys.version.split()[0],
            "pid": os.getpid(),
        },
    )
    total = 0
    with CpuClock() as c:
        out = engine.advance(warmup)
    total += warmup
    pe, ke, et = engine.energies()
    say(
        "WARM",
        {
            "warmup_steps": warmup,
            "warmup_s": c.wall,
            "pe_w": pe,
            "ke_w": ke,
            "etot_w": et,
            "builds_w": (out or {}).get("builds"),
            "threads": threads(),
        },
    )
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "run":
            n = int(cmd[1])
            if n % engine.granule:
                say("ERROR", {"message": f"steps {n} not a multiple of {engine.granule}"})
                continue
            with CpuClock() as c:
                out = engine.advance(n)
            total += n
            say(
                "TIMED",
                {
                    "steps": n,
                    "run_s": c.wall,
                    "s_per_step": c.wall / n,
                    "cpu_util": c.utilisation,
                    **(out or {}),
                },
            )
        elif cmd[0] == "quit":
            break
    pe, ke, et = engine.energies()
    say("FINAL", {"steps_total": total, "pe": pe, "ke": ke, "etot": et})
    close = getattr(engine, "close", None)
    if close:
        close()
