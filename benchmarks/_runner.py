"""Shared benchmark runner: interleaved rounds of side-by-side candidates, machine facts, JSON.

Machines here are shared and noisy, so absolute times drift; what we report is the *ratio* of
candidates measured in interleaved rounds inside one process (round r runs every candidate once,
in a rotated order), using the median over rounds.

Usage in a benchmark script:

    from _runner import Candidate, compare, write_report
    result = compare("lorenz N=1e4", [Candidate("simkit", f1), Candidate("diffrax vmap", f2)],
                     rounds=5, work=10_000, work_unit="trajectories")
    write_report("lorenz", [result])

Each candidate is a zero-argument callable that runs the workload once and blocks until done
(call `jax.block_until_ready` inside). A `setup` callable (compile / warm-up) is run once first
and timed separately, so compile time is reported apart from run time.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclasses.dataclass
class Candidate:
    name: str
    run: Callable[[], object]
    setup: Callable[[], object] | None = None  # compile / warm-up, timed separately
    note: str = ""


def machine_facts() -> dict:
    """Cores, load average, Python/jax versions and device kind, recorded with every result."""
    facts = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        import jax

        facts["jax"] = jax.__version__
        facts["devices"] = [f"{d.platform}:{d.device_kind}" for d in jax.devices()]
        facts["x64"] = bool(jax.config.jax_enable_x64)
    except Exception as exc:  # benchmark of a non-jax peer in its own venv
        facts["jax"] = f"unavailable ({exc})"
    try:
        facts["git"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except OSError:
        facts["git"] = None
    return facts


def _time_once(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def compare(
    name: str,
    candidates: list[Candidate],
    *,
    rounds: int = 5,
    work: float | None = None,
    work_unit: str = "",
    baseline: str | None = None,
    min_time: float = 0.0,
) -> dict:
    """Time `candidates` side by side in `rounds` interleaved rounds; return a result dict.

    Args:
        name: workload name.
        candidates: what to run; the first one is the default baseline for ratios.
        rounds: number of interleaved rounds (median reported).
        work: amount of work per call (e.g. trajectories) to report a throughput.
        work_unit: its unit, e.g. "trajectories".
        baseline: candidate name whose median time is the ratio's denominator.
        min_time: repeat a call inside one timing until this many seconds pass (short workloads).
    """
    compile_s = {}
    for c in candidates:
        if c.setup is not None:
            compile_s[c.name] = _time_once(c.setup)
    times: dict[str, list[float]] = {c.name: [] for c in candidates}
    for r in range(rounds):
        order = candidates[r % len(candidates) :] + candidates[: r % len(candidates)]
        for c in order:
            reps, elapsed = 0, 0.0
            while True:
                elapsed += _time_once(c.run)
                reps += 1
                if elapsed >= min_time:
                    break
            times[c.name].append(elapsed / reps)
    base = baseline or candidates[0].name
    base_med = statistics.median(times[base])
    rows = []
    for c in candidates:
        med = statistics.median(times[c.name])
        row = {
            "candidate": c.name,
            "median_s": med,
            "min_s": min(times[c.name]),
            "times_s": times[c.name],
            "compile_s": compile_s.get(c.name),
            f"speedup_vs_{base}": base_med / med,
            "note": c.note,
        }
        if work:
            row["throughput"] = work / med
            row["throughput_unit"] = f"{work_unit}/s"
        rows.append(row)
    return {
        "workload": name,
        "rounds": rounds,
        "baseline": base,
        "rows": rows,
        "loadavg_after": os.getloadavg(),
    }


def print_result(result: dict) -> None:
    """Print one workload as a table: candidate, median time, throughput, ratio to baseline."""
    base = result["baseline"]
    print(f"\n## {result['workload']}  (baseline: {base}, {result['rounds']} interleaved rounds)")
    print(f"{'candidate':<34}{'median s':>12}{'compile s':>11}{'throughput':>16}{'x ' + base:>16}")
    for row in result["rows"]:
        thr = f"{row['throughput']:.4g}" if "throughput" in row else "-"
        comp = f"{row['compile_s']:.2f}" if row.get("compile_s") is not None else "-"
        print(
            f"{row['candidate']:<34}{row['median_s']:>12.4g}{comp:>11}{thr:>16}"
            f"{row[f'speedup_vs_{base}']:>16.3g}"
        )


def write_report(bench_name: str, results: list[dict], extra: dict | None = None) -> Path:
    """Print every result and write `benchmarks/results/<bench_name>.json`; return its path."""
    for r in results:
        print_result(r)
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"{bench_name}.json"
    payload = {
        "benchmark": bench_name,
        "machine": machine_facts(),
        "results": results,
        **(extra or {}),
    }
    out.write_text(json.dumps(payload, indent=2, default=str))
    print(f"\nwrote {out}")
    return out
