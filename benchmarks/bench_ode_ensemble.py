"""Ensemble ODE solves: simkit's fused Runge-Kutta kernels vs jax.vmap(diffrax) vs SciPy.

Workload (the issue's): Lorenz-63 (sigma=10, rho=28, beta=8/3), float64, initial states
1 + 0.5 * N(0, 1) per component, on t in [0, 1]:
- fixed step: Tsit5, dt = 1e-3 (1000 steps), state at t = 1;
- adaptive: Tsit5, rtol = atol = 1e-8, state at t = 1.

Candidates:
- `simkit fused`: `simkit.ode.solve_ensemble_fused` (one device, no sharding; the members split
  over one host thread per core, the default) and `fused, 1 thread` (`threads=1`: one core, as
  the peer uses);
- `diffrax vmap`: `jax.jit(jax.vmap(diffrax.diffeqsolve ...))`, as a user would write it;
- fixed step only, kernel checks: the same fused kernel with a hand-batched field (is vmap of the
  per-member field as fast?) and without cache blocking (`block=0`: the whole batch steps at
  once, as before cache blocking; earlier runs also compared a member-last `(dim, n)` layout,
  0.7x the `(n, dim)` one, and dropped it);
- adaptive only: the fused solve without regrouping, and SciPy `solve_ivp` (RK45 and DOP853,
  same tolerances) looping over a subset of members (default 100), reported as trajectories/s;
- a straggler case: 1% of members run at 10x speed (10x the steps), where regrouping matters.

Compile/warm-up time is timed separately (the `compile s` column). Throughput = trajectories/s.

Usage:
    python benchmarks/bench_ode_ensemble.py            # N = 1e3, 1e4, 1e5
    python benchmarks/bench_ode_ensemble.py --quick    # N = 1e3, 1e4, fewer rounds
    python benchmarks/bench_ode_ensemble.py --n 1000 20000 --rounds 3
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import diffrax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _runner import Candidate, compare, write_report  # noqa: E402

from simkit.ensemble._threads import chunk_count, host_cores  # noqa: E402
from simkit.ode import (  # noqa: E402
    ODEProblem,
    _fused,  # noqa: E402
    solve_ensemble_fused,
)
from simkit.ode._tableau import TSIT5  # noqa: E402

SIGMA, RHO, BETA = 10.0, 28.0, 8.0 / 3.0
DT, T1, TOL = 1e-3, 1.0, 1e-8


def lorenz(t, y, p):
    """Per-member field: y (3,), p (3,)."""
    return jnp.stack([p[0] * (y[1] - y[0]), y[0] * (p[1] - y[2]) - y[1], y[0] * y[1] - p[2] * y[2]])


def lorenz_hand(t, y, p):
    """Hand-batched field on (n, 3)."""
    x, yy, z = y[:, 0], y[:, 1], y[:, 2]
    return jnp.stack([p[:, 0] * (yy - x), x * (p[:, 1] - z) - yy, x * yy - p[:, 2] * z], axis=1)


def lorenz_np(t, y):
    return np.array([SIGMA * (y[1] - y[0]), y[0] * (RHO - y[2]) - y[1], y[0] * y[1] - BETA * y[2]])


def members(n: int):
    y0 = 1.0 + 0.5 * jax.random.normal(jax.random.PRNGKey(0), (n, 3), dtype=jnp.float64)
    p = jnp.broadcast_to(jnp.array([SIGMA, RHO, BETA]), (n, 3))
    return y0, jnp.asarray(p)


def diffrax_vmap(controller, dt0):
    def one(y0, p):
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(lorenz),
            diffrax.Tsit5(),
            0.0,
            T1,
            dt0,
            y0,
            args=p,
            stepsize_controller=controller,
            max_steps=100_000,
        )
        return sol.ys[-1], sol.stats["num_steps"]

    return jax.jit(jax.vmap(one))


def fixed_workload(n: int, rounds: int) -> dict:
    y0, p = members(n)
    prob = ODEProblem(lorenz, y0[0], p[0], 0.0, T1)
    dfx = diffrax_vmap(diffrax.ConstantStepSize(), DT)

    def fused(threads=None):
        return jax.block_until_ready(
            solve_ensemble_fused(prob, y0=y0, params=p, fixed_step=True, dt0=DT, threads=threads).ys
        )

    def one_thread():
        return fused(threads=1)

    def hand():
        return jax.block_until_ready(
            solve_ensemble_fused(
                prob, y0=y0, params=p, fixed_step=True, dt0=DT, batched_field=lorenz_hand
            ).ys
        )

    def unblocked():
        return jax.block_until_ready(
            _fused.fixed_step_solve(
                lorenz, TSIT5, y0, p, t0=0.0, dt=DT, save_steps=(1000,), block=0
            )
        )

    def diffrax_run():
        return jax.block_until_ready(dfx(y0, p))

    cands = [
        Candidate(
            "simkit fused",
            fused,
            setup=fused,
            note=f"vmap(field), blocks of {_fused.fixed_block_size(n, 3)} members, "
            f"{_threads_note(n, _fused._MIN_CHUNK)}",
        ),
        Candidate("fused, 1 thread", one_thread, setup=one_thread, note="threads=1: one core"),
        Candidate("fused, hand-batched field", hand, setup=hand),
        Candidate(
            "fused, no cache blocking",
            unblocked,
            setup=unblocked,
            note="block=0: the whole batch as one block",
        ),
        Candidate(
            "diffrax vmap",
            diffrax_run,
            setup=diffrax_run,
            note="jax.jit(jax.vmap(diffeqsolve)), ConstantStepSize",
        ),
    ]
    # The first call of each candidate (its `setup`) compiles: reported as compile s.
    res = compare(
        f"Lorenz-63 fixed-step Tsit5 dt=1e-3 x1000, N={n}",
        cands,
        rounds=rounds,
        work=n,
        work_unit="trajectories",
        baseline="diffrax vmap",
    )
    # Same answer (fixed step: equal to rounding).
    a = np.asarray(fused()[:, -1])
    b = np.asarray(diffrax_run()[0])
    err = float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
    assert err < 1e-11, err
    res["max_rel_diff_vs_diffrax"] = err
    return res


def adaptive_workload(n: int, rounds: int) -> dict:
    y0, p = members(n)
    prob = ODEProblem(lorenz, y0[0], p[0], 0.0, T1)
    dfx = diffrax_vmap(diffrax.PIDController(rtol=TOL, atol=TOL), None)

    def fused(threads=None):
        return solve_ensemble_fused(prob, y0=y0, params=p, rtol=TOL, atol=TOL, threads=threads)

    def fused_run():
        return jax.block_until_ready(fused().ys)

    def one_thread():
        return jax.block_until_ready(fused(threads=1).ys)

    def no_regroup():
        return jax.block_until_ready(
            solve_ensemble_fused(prob, y0=y0, params=p, rtol=TOL, atol=TOL, regroup=False).ys
        )

    def diffrax_run():
        return jax.block_until_ready(dfx(y0, p))

    cands = [
        Candidate(
            "simkit fused",
            fused_run,
            setup=fused_run,
            note="regroup when it pays, segment 128, " + _threads_note(n, _fused._MIN_CHUNK),
        ),
        Candidate("fused, 1 thread", one_thread, setup=one_thread, note="threads=1: one core"),
        Candidate("fused, no regroup", no_regroup, setup=no_regroup),
        Candidate(
            "diffrax vmap",
            diffrax_run,
            setup=diffrax_run,
            note="jax.jit(jax.vmap(diffeqsolve)), PIDController",
        ),
    ]
    res = compare(
        f"Lorenz-63 adaptive Tsit5 rtol=atol=1e-8 to t=1, N={n}",
        cands,
        rounds=rounds,
        work=n,
        work_unit="trajectories",
        baseline="diffrax vmap",
    )
    sol = fused()
    ref, ref_steps = diffrax_run()
    err = float(np.max(np.abs(np.asarray(sol.ys[:, -1]) - np.asarray(ref))))
    steps, ref_steps = np.asarray(sol.num_steps), np.asarray(ref_steps)
    res["max_abs_diff_vs_diffrax"] = err
    res["steps_fused"] = {
        "mean": float(steps.mean()),
        "min": int(steps.min()),
        "max": int(steps.max()),
    }
    res["steps_diffrax"] = {
        "mean": float(ref_steps.mean()),
        "min": int(ref_steps.min()),
        "max": int(ref_steps.max()),
    }
    return res


def lorenz_speed(t, y, p):
    """Lorenz-63 run at speed p[3] (time rescaled): p[3] = 10 needs ~10x the steps."""
    return p[3] * lorenz(t, y, p)


def straggler_workload(n: int, rounds: int) -> dict:
    """1% of members run 10x faster (time scale / 10): they need ~10x the adaptive steps, so
    lockstep vmap keeps every member stepping until they finish; regrouping does not."""
    y0, p = members(n)
    speed = jnp.where(jnp.arange(n) % 100 == 0, 10.0, 1.0)
    p4 = jnp.concatenate([p, speed[:, None]], axis=1)
    prob = ODEProblem(lorenz_speed, y0[0], p4[0], 0.0, T1)

    def one(y, pp):
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(lorenz_speed),
            diffrax.Tsit5(),
            0.0,
            T1,
            None,
            y,
            args=pp,
            max_steps=100_000,
            stepsize_controller=diffrax.PIDController(rtol=TOL, atol=TOL),
        )
        return sol.ys[-1]

    dfx = jax.jit(jax.vmap(one))

    def fused(regroup, threads=None):
        def run():
            return jax.block_until_ready(
                solve_ensemble_fused(
                    prob, y0=y0, params=p4, rtol=TOL, atol=TOL, regroup=regroup, threads=threads
                ).ys
            )

        return run

    def diffrax_run():
        return jax.block_until_ready(dfx(y0, p4))

    cands = [
        Candidate(
            "simkit fused",
            fused(True),
            setup=fused(True),
            note="regroup when it pays, segment 128, " + _threads_note(n, _fused._MIN_CHUNK),
        ),
        Candidate("fused, 1 thread", fused(True, 1), setup=fused(True, 1), note="threads=1"),
        Candidate("fused, no regroup", fused(False), setup=fused(False)),
        Candidate("diffrax vmap", diffrax_run, setup=diffrax_run),
    ]
    res = compare(
        f"Lorenz-63 adaptive, 1% stragglers (10x faster), N={n}",
        cands,
        rounds=rounds,
        work=n,
        work_unit="trajectories",
        baseline="diffrax vmap",
    )
    sol = solve_ensemble_fused(prob, y0=y0, params=p4, rtol=TOL, atol=TOL)
    err = float(np.max(np.abs(np.asarray(sol.ys[:, -1]) - np.asarray(diffrax_run()))))
    steps = np.asarray(sol.num_steps)
    res["max_abs_diff_vs_diffrax"] = err
    res["steps_fused"] = {
        "mean": float(steps.mean()),
        "min": int(steps.min()),
        "max": int(steps.max()),
    }
    return res


def flops_per_member_step() -> float:
    """Floating-point operations of one fixed Tsit5 step of one Lorenz-63 member, as XLA counts
    them (`cost_analysis()` of one compiled member-last step on 1024 members, divided by 1024):
    the stage combinations, six field evaluations and the state update."""
    b = 1024
    field = _fused._batched_field(lorenz, False, t_batched=False, member_last=True)

    def one_step(y, k1, p):
        y1, _, k_last = _fused._rk_step(
            field, TSIT5, 0.0, y, DT, k1, p, with_error=False, materialize_stages=True
        )
        return y1, k_last

    y = jnp.ones((3, b))
    cost = jax.jit(one_step).lower(y, y, jnp.ones((3, b))).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost["flops"]) / b


def dgemm_flops_per_cpu_second(n: int = 2048, reps: int = 5) -> float:
    """This machine's practical float64 flop bound: an n x n DGEMM (2 n^3 flops), the best of
    NumPy's BLAS and XLA's, divided by the process CPU time it took (so per core, however many
    threads it used; and robust to other load on a shared machine)."""
    a = np.random.default_rng(1).standard_normal((n, n))
    aj = jnp.asarray(a)
    xla = jax.jit(lambda x: x @ x)
    best = float("inf")
    for f, x in ((lambda x: x @ x, a), (lambda x: xla(x).block_until_ready(), aj)):
        f(x)
        for _ in range(reps):
            c0 = time.process_time()
            f(x)
            best = min(best, time.process_time() - c0)
    return 2.0 * n**3 / best


def _threads_note(n: int, min_chunk: int) -> str:
    chunks = chunk_count(n, min_chunk, None, jnp.zeros((1,)))
    return f"{chunks} host thread(s) of {host_cores()} core(s)"


def flop_fraction(results: list[dict]) -> dict:
    """Achieved flop rate of the fixed-step `simkit fused` rows against the DGEMM bound: the
    one-thread row against one core's bound, the default (threaded) row against the bound of
    the cores it used."""
    per_step = flops_per_member_step()
    peak = dgemm_flops_per_cpu_second()
    rows = {}
    for r in results:
        if not r["workload"].startswith("Lorenz-63 fixed-step"):
            continue
        n = int(r["workload"].rsplit("N=", 1)[1])
        cores = chunk_count(n, _fused._MIN_CHUNK, None, jnp.zeros((1,)))
        for name, used in (("fused, 1 thread", 1), ("simkit fused", cores)):
            row = next(x for x in r["rows"] if x["candidate"] == name)
            rate = per_step * n * round(T1 / DT) / row["median_s"]
            rows[f"N={n}, {name}"] = {
                "gflop_s": rate / 1e9,
                "cores": used,
                "fraction_of_dgemm": rate / (peak * used),
            }
    return {
        "flops_per_member_step": per_step,
        "dgemm_gflop_per_cpu_s": peak / 1e9,
        "fixed_step": rows,
    }


def scipy_workload(n_sub: int, rounds: int) -> dict:
    from scipy.integrate import solve_ivp

    y0 = np.asarray(members(n_sub)[0])

    def loop(method):
        def run():
            for i in range(n_sub):
                solve_ivp(lorenz_np, (0.0, T1), y0[i], method=method, rtol=TOL, atol=TOL)

        return run

    return compare(
        f"Lorenz-63 adaptive rtol=atol=1e-8, SciPy solve_ivp loop, {n_sub} members",
        [Candidate("scipy RK45", loop("RK45")), Candidate("scipy DOP853", loop("DOP853"))],
        rounds=rounds,
        work=n_sub,
        work_unit="trajectories",
    )


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--n",
        type=int,
        nargs="+",
        default=None,
        help="ensemble sizes (default 1000 10000 100000; --quick: 1000 10000)",
    )
    ap.add_argument("--quick", action="store_true", help="N = 1e3, 1e4 and 2 rounds")
    ap.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="interleaved rounds (default 9 at N <= 1e4, else 3)",
    )
    ap.add_argument("--scipy-members", type=int, default=100)
    ap.add_argument(
        "--skip", choices=["fixed", "adaptive", "stragglers", "scipy"], nargs="*", default=[]
    )
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    ns = args.n or ([1000, 10_000] if args.quick else [1000, 10_000, 100_000])
    rounds = args.rounds or (2 if args.quick else 3)
    # Calls at N <= 1e4 take milliseconds and a median of 3 single calls moved by +-20% between
    # identical candidates on the shared machine: 9 rounds there (unless --rounds is given).
    small_rounds = args.rounds or (2 if args.quick else 9)
    results = []
    t_start = time.perf_counter()
    for n in ns:
        if "fixed" not in args.skip:
            # vmap(diffrax) fixed-step takes ~1-2 min per call at N = 1e5 here: one round.
            results.append(fixed_workload(n, small_rounds if n <= 10_000 else 1))
        if "adaptive" not in args.skip:
            results.append(adaptive_workload(n, small_rounds if n <= 10_000 else rounds))
        if "stragglers" not in args.skip:
            results.append(straggler_workload(n, small_rounds if n <= 10_000 else rounds))
    if "scipy" not in args.skip:
        results.append(scipy_workload(args.scipy_members, rounds))
    flops = flop_fraction(results)
    print(
        f"flop bound: {flops['flops_per_member_step']:.0f} flops per member-step (XLA count); "
        f"DGEMM {flops['dgemm_gflop_per_cpu_s']:.1f} GFLOP per CPU-second"
    )
    for key, v in flops["fixed_step"].items():
        print(
            f"  fixed step {key}: {v['gflop_s']:.1f} GFLOP/s = "
            f"{100 * v['fraction_of_dgemm']:.0f}% of the DGEMM bound of {v['cores']} core(s)"
        )
    summary = {}
    for r in results:
        thr = {row["candidate"]: row.get("throughput") for row in r["rows"]}
        summary[r["workload"]] = thr
    write_report(
        "ode_ensemble",
        results,
        extra={
            "summary_throughput": summary,
            "flop_bound": flops,
            "wall_s": time.perf_counter() - t_start,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
