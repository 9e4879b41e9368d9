"""Robertson stiff kinetics: simkit's Rosenbrock solve vs SciPy LSODA/Radau and diffrax Kvaerno5.

Workload 1, one solve: Robertson (k = 0.04, 3e7, 1e4; y0 = (1, 0, 0)) to t1 = 1e5, saved at
t = 4e-5 ... 4e4 and 1e5 (10 times), every candidate at rtol 1e-8 and the same atol (default
1e-12, state it with --atol). Error of each candidate against a tight reference computed here
independently (SciPy Radau at rtol 1e-13, atol 1e-16, analytic Jacobian) is reported next to its
time: max |y - y_ref| and the max of |y - y_ref| / (atol + rtol |y_ref|) over components and save
times. Compile time (first call) is reported separately from the run time.

Candidates:
  SciPy LSODA                      scipy.integrate.solve_ivp(method="LSODA") (the baseline)
  SciPy Radau                      solve_ivp(method="Radau")
  simkit solve_stiff Rodas5        simkit.ode.solve_stiff (public API: host checks + jitted solve)
  simkit solve_stiff Rodas5P       the same with solver=Rodas5P()
  diffrax + simkit Rodas5 (jit)    jax.jit(diffrax.diffeqsolve) with solver=simkit.ode.Rodas5():
                                   the solver alone, without solve_stiff's host-side checks
  diffrax Kvaerno5 (default)       jax.jit(diffrax.diffeqsolve) with Kvaerno5() and a
                                   PIDController, as a user would write it
  diffrax Kvaerno5 + Chord         Kvaerno5(root_finder=optx.Chord(rtol=1e-10, atol=1e-10)), the
                                   cheapest "tune diffrax" route we tried

Workload 2, ensemble: N members (default 1000) with k1 = 0.04 x geomspace(0.1, 10), same
tolerances, t1 = 1e5: simkit.ode.solve_stiff_ensemble vs a Python loop of LSODA solves; error
against Radau references for 10 members spread over the sweep.

    python benchmarks/bench_robertson.py [--atol 1e-12] [--members 1000] [--rounds 7]
"""

import argparse
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import diffrax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optimistix as optx  # noqa: E402
from scipy.integrate import solve_ivp  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _runner import Candidate, compare, write_report  # noqa: E402

from simkit.ode import ODEProblem, Rodas5, Rodas5P, solve_stiff, solve_stiff_ensemble  # noqa: E402

K = (0.04, 3.0e7, 1.0e4)
RTOL = 1e-8
T1 = 1e5
TS = np.append(4.0 * 10.0 ** np.arange(-5, 5), T1)


def robertson(t, y, k):
    r1 = k[0] * y[0]
    r2 = k[1] * y[1] ** 2
    r3 = k[2] * y[1] * y[2]
    return jnp.stack([-r1 + r3, r1 - r2 - r3, r2])


def scipy_fns(k):
    def f(t, y):
        return [
            -k[0] * y[0] + k[2] * y[1] * y[2],
            k[0] * y[0] - k[1] * y[1] ** 2 - k[2] * y[1] * y[2],
            k[1] * y[1] ** 2,
        ]

    def jac(t, y):
        return [
            [-k[0], k[2] * y[2], k[2] * y[1]],
            [k[0], -2 * k[1] * y[1] - k[2] * y[2], -k[2] * y[1]],
            [0.0, 2 * k[1] * y[1], 0.0],
        ]

    return f, jac


def scipy_solve(k, method, rtol, atol, jac=False):
    f, j = scipy_fns(k)
    kw = {"jac": j} if jac else {}
    sol = solve_ivp(
        f, (0.0, T1), [1.0, 0.0, 0.0], method=method, rtol=rtol, atol=atol, t_eval=TS, **kw
    )
    assert sol.success, sol.message
    return sol.y.T


def reference(k):
    """Independent tight reference: Radau IIA at rtol 1e-13 with the analytic Jacobian."""
    return scipy_solve(k, "Radau", 1e-13, 1e-16, jac=True)


def errors(ys, ref, atol):
    ys = np.asarray(ys)
    abs_err = np.abs(ys - ref)
    return {
        "max_abs_err": float(abs_err.max()),
        "max_err_over_tol": float((abs_err / (atol + RTOL * np.abs(ref))).max()),
    }


def diffrax_fn(solver, atol):
    @jax.jit
    def run(k):
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(robertson),
            solver,
            0.0,
            T1,
            None,
            jnp.array([1.0, 0.0, 0.0]),
            args=k,
            saveat=diffrax.SaveAt(ts=TS),
            stepsize_controller=diffrax.PIDController(rtol=RTOL, atol=atol),
            max_steps=100_000,
        )
        return sol.ys, sol.stats["num_steps"]

    return run


def single_solve(atol, rounds):
    k = jnp.array(K)
    ref = reference(K)
    prob = ODEProblem(robertson, jnp.array([1.0, 0.0, 0.0]), k, 0.0, T1)
    cands, errs, steps, first_call = [], {}, {}, {}

    def add(name, run, setup=None, note=""):
        cands.append(Candidate(name, run, setup=setup, note=note))

    def timed_first(name, call):
        """Run the first (compiling) call of a jax candidate and record its duration."""
        t0 = time.perf_counter()
        out = jax.block_until_ready(call())
        first_call[name] = time.perf_counter() - t0
        return out

    def lsoda():
        return scipy_solve(K, "LSODA", RTOL, atol)

    def radau():
        return scipy_solve(K, "Radau", RTOL, atol)

    add("SciPy LSODA", lsoda, note="solve_ivp, finite-difference Jacobian")
    add("SciPy Radau", radau, note="solve_ivp, finite-difference Jacobian")
    errs["SciPy LSODA"] = errors(lsoda(), ref, atol)
    errs["SciPy Radau"] = errors(radau(), ref, atol)

    for solver in (Rodas5(), Rodas5P()):
        name = f"simkit solve_stiff {type(solver).__name__}"

        def run(solver=solver):
            return jax.block_until_ready(
                solve_stiff(prob, solver=solver, rtol=RTOL, atol=atol, saveat=TS).ys
            )

        add(name, run, note="public API incl. host-side input checks")
        sol = timed_first(
            name,
            lambda solver=solver: solve_stiff(prob, solver=solver, rtol=RTOL, atol=atol, saveat=TS),
        )
        errs[name] = errors(sol.ys, ref, atol)
        steps[name] = int(sol.stats["num_steps"])

    for name, solver in (
        ("diffrax + simkit Rodas5 (jit)", Rodas5()),
        ("diffrax Kvaerno5 (default)", diffrax.Kvaerno5()),
        (
            "diffrax Kvaerno5 + Chord",
            diffrax.Kvaerno5(root_finder=optx.Chord(rtol=1e-10, atol=1e-10)),
        ),
    ):
        fn = diffrax_fn(solver, atol)

        def run(fn=fn):
            return jax.block_until_ready(fn(k))

        add(name, run, note="jax.jit(diffeqsolve)")
        ys, n = timed_first(name, lambda fn=fn: fn(k))
        errs[name] = errors(ys, ref, atol)
        steps[name] = int(n)

    result = compare(
        f"Robertson single solve to t={T1:g}, rtol {RTOL:g}, atol {atol:g}",
        cands,
        rounds=rounds,
        baseline="SciPy LSODA",
        min_time=0.05,
    )
    for row in result["rows"]:
        row.update(errs[row["candidate"]])
        row["num_steps"] = steps.get(row["candidate"])
        if row["candidate"] in first_call:  # compile = first call minus a steady-state call
            row["compile_s"] = first_call[row["candidate"]] - row["median_s"]
    return result


def ensemble(atol, members, rounds):
    factors = np.geomspace(0.1, 10.0, members)
    ks = np.stack([K[0] * factors, np.full(members, K[1]), np.full(members, K[2])], axis=1)
    prob = ODEProblem(robertson, jnp.array([1.0, 0.0, 0.0]), jnp.array(K), 0.0, T1)
    check = np.linspace(0, members - 1, 10).astype(int)
    refs = np.stack([reference(tuple(ks[i])) for i in check])

    def simkit_run():
        return jax.block_until_ready(
            solve_stiff_ensemble(prob, params=ks, rtol=RTOL, atol=atol, saveat=TS)[1]
        )

    def lsoda_loop(idx=range(members)):
        return np.stack([scipy_solve(tuple(ks[i]), "LSODA", RTOL, atol) for i in idx])

    t0 = time.perf_counter()
    ys = simkit_run()
    first_call = time.perf_counter() - t0
    errs = {
        "simkit solve_stiff_ensemble Rodas5": errors(np.asarray(ys)[check], refs, atol),
        "SciPy LSODA loop": errors(lsoda_loop(check), refs, atol),
    }
    cands = [
        Candidate("SciPy LSODA loop", lsoda_loop, note=f"{members} solve_ivp calls"),
        Candidate(
            "simkit solve_stiff_ensemble Rodas5", simkit_run, note="vmap over members, one device"
        ),
    ]
    result = compare(
        f"Robertson k1 sweep, {members} members, rtol {RTOL:g}, atol {atol:g}",
        cands,
        rounds=rounds,
        work=members,
        work_unit="solves",
        baseline="SciPy LSODA loop",
    )
    for row in result["rows"]:
        row.update(errs[row["candidate"]])
    result["rows"][1]["compile_s"] = first_call - result["rows"][1]["median_s"]
    result["error_checked_members"] = check.tolist()
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--atol", type=float, default=1e-12)
    ap.add_argument("--members", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--ensemble-rounds", type=int, default=3)
    args = ap.parse_args()

    results = [
        single_solve(args.atol, args.rounds),
        ensemble(args.atol, args.members, args.ensemble_rounds),
    ]
    write_report(
        "robertson",
        results,
        extra={"rtol": RTOL, "atol": args.atol, "t1": T1, "save_times": TS.tolist()},
    )
    print("\nerror vs Radau rtol 1e-13 reference (max |dy|; max |dy| / (atol + rtol |y|)); steps:")
    for r in results:
        for row in r["rows"]:
            print(
                f"  {row['candidate']:<36} {row['max_abs_err']:10.2e} "
                f"{row['max_err_over_tol']:8.2f}   {row.get('num_steps') or '-'}"
            )


if __name__ == "__main__":
    main()
