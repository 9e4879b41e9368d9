"""Entry-point overhead (issue 13): simkit's public calls against the bare jitted call they wrap,
after the first (compiling) call, side by side in interleaved rounds.

1. `simkit.ode.solve_stiff` on one Robertson solve (t1 = 1e5, rtol 1e-8, atol 1e-12, 11 save
   times) against `jax.jit(diffrax.diffeqsolve)` with the same Rodas5 solver, returning the
   whole `diffrax.Solution` (what `solve_stiff` returns: the call it wraps) and returning only
   `(ys, num_steps)` (bench_robertson.py's "bare" candidate: fewer output buffers). Save times
   as a jax array (checked once, cached) and as a NumPy array (mutable: checked every call).
   `simkit.ode.solve(stiff=True)` on the same solve against the same bare call.
2. `simkit.ode.solve` (Tsit5) on the Lotka-Volterra model of bench_fit.py (t1 = 15, rtol 1e-8,
   31 save times) against `jax.jit(diffrax.diffeqsolve)` returning the `Solution`.
3. `simkit.ode.solve_ensemble` on 16 Lotka-Volterra members (a sweep over alpha), each engine
   against the bare call it wraps: method="diffrax" (adaptive and fixed step) against
   `jax.jit(jax.vmap(diffrax.diffeqsolve))`; the default fused engine against its kernels,
   `fixed_step_solve` (jitted) and `adaptive_solve` (a host loop over compiled segments).
4. `simkit.fit.fit` with defaults on the Lotka-Volterra fit of bench_fit.py against plain
   jitted optimistix LM on the same model, and against the same plus the Jacobian at the
   optimum (what `fit` adds to report standard errors).

Target: every entry point within 1.2x of the bare jitted call it wraps.
Run: .venv/bin/python benchmarks/bench_entry_overhead.py  (writes results/entry_overhead.json)
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import diffrax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import bench_fit as lvfit  # noqa: E402
import bench_robertson as rob  # noqa: E402
from _runner import Candidate, compare, write_report  # noqa: E402

from simkit.fit import fit, ode_model  # noqa: E402
from simkit.ode import ODEProblem, Rodas5, solve, solve_ensemble, solve_stiff  # noqa: E402
from simkit.ode._fused import ControllerConfig, adaptive_solve, fixed_step_solve  # noqa: E402
from simkit.ode._tableau import tableau_for  # noqa: E402

ATOL = 1e-12


def stiff() -> dict:
    k = jnp.asarray(rob.K)
    y0 = jnp.array([1.0, 0.0, 0.0])
    ts_np = np.asarray(rob.TS)
    ts = jnp.asarray(ts_np)
    prob = ODEProblem(rob.robertson, y0, k, 0.0, rob.T1)
    solver = Rodas5()

    def wrapped(k, ts):
        return diffrax.diffeqsolve(
            diffrax.ODETerm(rob.robertson),
            solver,
            0.0,
            rob.T1,
            None,
            y0,
            args=k,
            saveat=diffrax.SaveAt(ts=ts),
            stepsize_controller=diffrax.PIDController(rtol=rob.RTOL, atol=ATOL),
            max_steps=100_000,
            throw=False,
        )

    full = jax.jit(wrapped)
    lean = jax.jit(lambda k, ts: (lambda s: (s.ys, s.stats["num_steps"]))(wrapped(k, ts)))

    def simkit_jax_ts():
        return jax.block_until_ready(solve_stiff(prob, rtol=rob.RTOL, atol=ATOL, saveat=ts).ys)

    def simkit_numpy_ts():
        return jax.block_until_ready(solve_stiff(prob, rtol=rob.RTOL, atol=ATOL, saveat=ts_np).ys)

    def simkit_solve():
        return jax.block_until_ready(
            solve(prob, stiff=True, rtol=rob.RTOL, atol=ATOL, saveat=ts).ys
        )

    def bare_full():
        return jax.block_until_ready(full(k, ts).ys)

    def bare_lean():
        return jax.block_until_ready(lean(k, ts))

    np.testing.assert_allclose(simkit_jax_ts(), bare_full(), rtol=1e-12)
    np.testing.assert_allclose(simkit_solve(), bare_full(), rtol=1e-12)
    return compare(
        "Robertson, one solve_stiff call vs the jitted diffeqsolve it wraps",
        [
            Candidate("jit(diffeqsolve) -> Solution", bare_full, setup=bare_full),
            Candidate("solve_stiff, jax save times", simkit_jax_ts, setup=simkit_jax_ts),
            Candidate("solve_stiff, numpy save times", simkit_numpy_ts, setup=simkit_numpy_ts),
            Candidate("solve(stiff=True), jax save times", simkit_solve, setup=simkit_solve),
            Candidate(
                "jit(diffeqsolve) -> (ys, num_steps)",
                bare_lean,
                setup=bare_lean,
                note="bench_robertson's bare candidate: 2 output buffers instead of ~10",
            ),
        ],
        rounds=9,
        min_time=0.3,
    )


LV_RTOL = 1e-8
N_MEMBERS = 16
DT = 0.01  # fixed step: 1500 steps over [0, 15]; the save times are on the grid


def _lv_problem() -> ODEProblem:
    return ODEProblem(lvfit.lv, jnp.asarray(lvfit.Y0), _lv_params(), 0.0, 15.0)


def _lv_params(n: int | None = None) -> dict:
    p = {k: jnp.asarray(v) for k, v in lvfit.TRUE.items()}
    if n is None:
        return p
    p = {k: jnp.full((n,), v) for k, v in p.items()}
    p["alpha"] = jnp.linspace(0.8, 1.2, n)
    return p


def _lv_diffeqsolve(y0, p, ts, *, fixed: bool):
    return diffrax.diffeqsolve(
        diffrax.ODETerm(lvfit.lv),
        diffrax.Tsit5(),
        0.0,
        15.0,
        DT if fixed else None,
        y0,
        args=p,
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=(
            diffrax.ConstantStepSize()
            if fixed
            else diffrax.PIDController(rtol=LV_RTOL, atol=LV_RTOL)
        ),
        max_steps=100_000,
        throw=False,
    )


def side_by_side(title: str, *named) -> dict:
    """Compare `(name, fn)` pairs (the bare call first: the baseline) in 9 interleaved rounds;
    each candidate's first call compiles and is timed apart."""
    return compare(
        title, [Candidate(name, fn, setup=fn) for name, fn in named], rounds=9, min_time=0.3
    )


def nonstiff() -> dict:
    prob = _lv_problem()
    p, y0, ts = prob.params, prob.y0, jnp.asarray(lvfit.TS)
    full = jax.jit(lambda p, ts: _lv_diffeqsolve(y0, p, ts, fixed=False))

    def bare():
        return jax.block_until_ready(full(p, ts).ys)

    def simkit_solve():
        return jax.block_until_ready(solve(prob, rtol=LV_RTOL, atol=LV_RTOL, saveat=ts).ys)

    np.testing.assert_allclose(simkit_solve(), bare(), rtol=1e-12)
    return side_by_side(
        "Lotka-Volterra, one solve (Tsit5) vs the jitted diffeqsolve it wraps",
        ("jit(diffeqsolve) -> Solution", bare),
        ("solve, jax save times", simkit_solve),
    )


def ensemble_diffrax(fixed: bool) -> dict:
    prob = _lv_problem()
    ps, ts = _lv_params(N_MEMBERS), jnp.asarray(lvfit.TS)
    y0 = prob.y0

    def one(p, ts):
        sol = _lv_diffeqsolve(y0, p, ts, fixed=fixed)
        return sol.ts, sol.ys, sol.result

    batched = jax.jit(jax.vmap(one, in_axes=(0, None)))
    kw = {"fixed_step": True, "dt0": DT} if fixed else {"rtol": LV_RTOL, "atol": LV_RTOL}

    def bare():
        return jax.block_until_ready(batched(ps, ts)[1])

    def simkit_ens():
        return jax.block_until_ready(
            solve_ensemble(prob, params=ps, saveat=ts, method="diffrax", **kw)[1]
        )

    np.testing.assert_allclose(simkit_ens(), bare(), rtol=1e-12)
    kind = f"fixed step dt0={DT}" if fixed else f"adaptive rtol={LV_RTOL}"
    return side_by_side(
        f"Lotka-Volterra ensemble of {N_MEMBERS}, {kind}: solve_ensemble(method='diffrax') vs "
        "the jitted vmap of diffeqsolve it wraps",
        ("jit(vmap(diffeqsolve))", bare),
        ("solve_ensemble, method='diffrax'", simkit_ens),
    )


def ensemble_fused(fixed: bool) -> dict:
    prob = _lv_problem()
    ps, ts = _lv_params(N_MEMBERS), jnp.asarray(lvfit.TS)
    y0s = jnp.broadcast_to(prob.y0, (N_MEMBERS, 2))
    tab = tableau_for("tsit5")
    ts_np = np.asarray(lvfit.TS)
    save_steps = tuple(int(round(t / DT)) for t in ts_np)

    def bare():
        if fixed:
            ys = fixed_step_solve(lvfit.lv, tab, y0s, ps, t0=0.0, dt=DT, save_steps=save_steps)
        else:
            ys = adaptive_solve(
                lvfit.lv,
                tab,
                y0s,
                ps,
                t0=0.0,
                t1=15.0,
                cfg=ControllerConfig(rtol=LV_RTOL, atol=LV_RTOL),
                save_ts=ts_np,
            ).ys
        return jax.block_until_ready(ys)

    kw = {"fixed_step": True, "dt0": DT} if fixed else {"rtol": LV_RTOL, "atol": LV_RTOL}

    def simkit_ens():
        return jax.block_until_ready(solve_ensemble(prob, params=ps, saveat=ts, **kw)[1])

    np.testing.assert_allclose(simkit_ens(), bare(), rtol=1e-12)
    kind = f"fixed step dt0={DT}" if fixed else f"adaptive rtol={LV_RTOL}"
    kernel = "fixed_step_solve" if fixed else "adaptive_solve"
    return side_by_side(
        f"Lotka-Volterra ensemble of {N_MEMBERS}, {kind}: solve_ensemble (fused, default) vs "
        f"the fused kernel it wraps ({kernel})",
        (kernel, bare),
        ("solve_ensemble (fused)", simkit_ens),
    )


def fitting() -> dict:
    problem = ODEProblem(lvfit.lv, jnp.asarray(lvfit.Y0), lvfit.TRUE, 0.0, 15.0)
    model = ode_model(problem, lvfit.TS)
    rng = np.random.default_rng(0)
    clean = lvfit.reference(lvfit.TRUE)
    data = jnp.asarray(clean + lvfit.NOISE * rng.normal(size=clean.shape))
    start = {k: jnp.asarray(v) for k, v in lvfit.START.items()}
    plain = lvfit.plain_optimistix()

    def residuals(p, data):
        return (model(p) - data) / lvfit.NOISE

    @jax.jit
    def plain_with_jacobian(p0, data):
        p = lvfit.lm_fit(residuals, p0, data)
        return p, jax.jacfwd(residuals)(p, data)

    def simkit_fit():
        return jax.block_until_ready(
            fit(model, lvfit.START, data, sigma=lvfit.NOISE, bounds=lvfit.BOUNDS).params
        )

    def bare():
        return jax.block_until_ready(plain(start, data))

    def bare_jac():
        return jax.block_until_ready(plain_with_jacobian(start, data))

    return compare(
        "Lotka-Volterra 4-parameter fit: fit (defaults) vs plain jitted optimistix LM",
        [
            Candidate("optimistix LM (plain, jitted)", bare, setup=bare),
            Candidate("simkit fit (defaults)", simkit_fit, setup=simkit_fit),
            Candidate(
                "optimistix LM + Jacobian at the optimum",
                bare_jac,
                setup=bare_jac,
                note="the extra work fit does for standard errors",
            ),
        ],
        rounds=7,
        min_time=0.3,
    )


def main() -> int:
    results = [
        stiff(),
        nonstiff(),
        ensemble_diffrax(fixed=False),
        ensemble_diffrax(fixed=True),
        ensemble_fused(fixed=False),
        ensemble_fused(fixed=True),
        fitting(),
    ]
    ratios = {}
    for r in results:
        base = r["rows"][0]["median_s"]
        for row in r["rows"][1:]:
            ratios[f"{r['workload']}: {row['candidate']}"] = row["median_s"] / base
    print("\ntime / the bare jitted call (target <= 1.2):")
    for name, ratio in ratios.items():
        print(f"  {ratio:5.2f}x  {name}")
    write_report("entry_overhead", results, {"ratio_to_bare": ratios})
    return 0


if __name__ == "__main__":
    sys.exit(main())
