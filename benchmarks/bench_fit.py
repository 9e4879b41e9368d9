"""Fitting benchmark: Lotka-Volterra 4-parameter least squares.

1. One fit, side by side: simkit.fit.fit with default settings (adaptive Tsit5 via
   `simkit.fit.ode_model`, optimistix LM, forward-mode Jacobians), the same with the fixed-step
   RK4 model and with `solver="simkit-lm"`, plain optimistix LM written as a user
   would (jitted, diffrax + ForwardMode), and SciPy `least_squares` + `solve_ivp` with default
   settings (and with tolerances matched to ours, rtol = atol = 1e-8). Every simkit call is the
   full public call (input checks, covariance, status, result on the host).
2. 1000 independent fits (one per noisy data set): `simkit.fit.fit_batch` vs a Python loop of
   single `simkit.fit.fit` calls (compiled once), vs a loop of plain jitted optimistix solves, vs
   `vmap` of optimistix LM (lockstep). RK4 model (its error vs an rtol 1e-10 solve is printed
   and is ~1e-3 of the noise). The same 1000 fits with the adaptive-diffrax model (Tsit5, rtol =
   atol = 1e-8): `fit_batch` vs a loop of `fit(solver="simkit-lm")`, the fastest single-fit path
   a user can write (the baseline of both workloads), and vs a loop of `fit` with its default
   solver (optimistix LM; the baseline of earlier versions of this file).
   The same 1000 fits with `ode_model(method="adaptive")` (simkit's own adaptive Tsit5, same
   tolerances, no diffrax machinery per step): `fit_batch` vs a loop of `fit(solver=
   "simkit-lm")` with that model; its fits agree with the diffrax model's (printed, in
   standard errors).
3. What bounds the batch/loop ratio: per model, one jitted `jacfwd` of a single member against
   the same Jacobian `vmap`ped over the 1000 members (per member). An LM iteration is one such
   Jacobian (plus a p x p solve), so this ratio, times the loop's per-fit overhead and divided
   by the batch's lockstep waste, is the batch's ceiling.

Run: .venv/bin/python benchmarks/bench_fit.py   (writes benchmarks/results/fit.json)
"""

from __future__ import annotations

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
from scipy.optimize import least_squares  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _runner import Candidate, compare, write_report  # noqa: E402

from simkit.fit import fit, fit_batch, ode_model  # noqa: E402
from simkit.ode import ODEProblem  # noqa: E402

TRUE = {"alpha": 1.0, "beta": 0.1, "gamma": 1.5, "delta": 0.075}
START = {"alpha": 0.8, "beta": 0.12, "gamma": 1.3, "delta": 0.09}
KEYS = sorted(TRUE)
TS = np.linspace(0.0, 15.0, 31)
Y0 = np.array([10.0, 5.0])
NOISE = 1.0
BOUNDS = {k: (0.0, None) for k in TRUE}


def lv(t, y, p):
    x, z = y[0], y[1]
    return jnp.stack([p["alpha"] * x - p["beta"] * x * z, p["delta"] * x * z - p["gamma"] * z])


def reference(params):
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(lv),
        diffrax.Tsit5(),
        0.0,
        15.0,
        None,
        jnp.asarray(Y0),
        args=params,
        saveat=diffrax.SaveAt(ts=TS),
        stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-10),
    )
    return np.asarray(sol.ys)


def scipy_fit(data, rtol=None):
    """What a SciPy user writes: least_squares (defaults: TRF, 2-point Jacobian) + solve_ivp."""
    kw = {} if rtol is None else {"rtol": rtol, "atol": rtol}

    def rhs(t, y, a, b, d, g):
        return [a * y[0] - b * y[0] * y[1], d * y[0] * y[1] - g * y[1]]

    def residuals(x):
        sol = solve_ivp(rhs, (0.0, 15.0), Y0, t_eval=TS, args=tuple(x), **kw)
        return (sol.y.T - data).ravel() / NOISE

    return least_squares(residuals, [START[k] for k in KEYS]).x


def lm_fit(residuals, p0, data):
    """Plain optimistix LM as a user would write it: forward-mode Jacobians, simkit's default
    tolerances and step limit. Returns the fitted parameters."""
    return optx.least_squares(
        residuals,
        optx.LevenbergMarquardt(rtol=1e-8, atol=1e-8),
        p0,
        data,
        options={"jac": "fwd"},
        max_steps=256,
    ).value


def plain_optimistix():
    """Plain optimistix LM as a user would write it (diffrax inside, forward-mode adjoint)."""

    def residuals(p, data):
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(lv),
            diffrax.Tsit5(),
            0.0,
            15.0,
            None,
            jnp.asarray(Y0),
            args=p,
            saveat=diffrax.SaveAt(ts=jnp.asarray(TS)),
            stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-8),
            adjoint=diffrax.ForwardMode(),
        )
        return (sol.ys - data) / NOISE

    return jax.jit(lambda p0, data: lm_fit(residuals, p0, data))


def plain_optimistix_rk4(model_rk4):
    return jax.jit(lambda p0, data: lm_fit(lambda p, d: (model_rk4(p) - d) / NOISE, p0, data))


def jacobian_ratio(model, params, n: int, reps: int = 7) -> dict:
    """Median time of one jitted `jacfwd(model)` call (member 0) vs `vmap(jacfwd(model))` over
    the `n` members of `params` (per member), interleaved; their ratio bounds what batching can
    gain per LM iteration."""
    keys = sorted(params)
    one = jax.jit(jax.jacfwd(lambda x: model(dict(zip(keys, x, strict=True)))))
    many = jax.jit(jax.vmap(jax.jacfwd(lambda x: model(dict(zip(keys, x, strict=True))))))
    x1 = jnp.asarray([float(params[k][0]) for k in keys])
    xs = jnp.stack([params[k] for k in keys], axis=1)
    jax.block_until_ready((one(x1), many(xs)))
    t_one, t_many = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(20):
            jax.block_until_ready(one(x1))
        t_one.append((time.perf_counter() - t0) / 20)
        t0 = time.perf_counter()
        jax.block_until_ready(many(xs))
        t_many.append((time.perf_counter() - t0) / n)
    single, per_member = float(np.median(t_one)), float(np.median(t_many))
    return {
        "single_s": single,
        "vmapped_per_member_s": per_member,
        "ratio": single / per_member,
    }


def _ratio(result: dict, batch: str) -> float:
    """Loop of single fits over `batch`'s median time, in one workload's result."""
    med = {r["candidate"]: r["median_s"] for r in result["rows"]}
    return med["loop of simkit fit"] / med[batch]


def main() -> int:
    problem = ODEProblem(lv, jnp.asarray(Y0), TRUE, 0.0, 15.0)
    model_dfx = ode_model(problem, TS)  # defaults: adaptive Tsit5, rtol = atol = 1e-8
    model_rk4 = ode_model(problem, TS, method="rk4", substeps=4)
    model_ada = ode_model(problem, TS, method="adaptive")  # simkit's Tsit5, rtol = atol = 1e-8
    clean = reference(TRUE)
    rk4_err = float(np.max(np.abs(np.asarray(jax.jit(model_rk4)(TRUE)) - clean)))
    rng = np.random.default_rng(0)
    data1 = clean + NOISE * rng.normal(size=clean.shape)
    d1 = jnp.asarray(data1)
    start = {k: jnp.asarray(v) for k, v in START.items()}

    # -- agreement check: every candidate lands on the same optimum --------------------------
    ref = fit(model_dfx, START, d1, sigma=NOISE, bounds=BOUNDS)
    best = np.array([float(ref.params[k]) for k in KEYS])
    opx = plain_optimistix()
    checks = {
        "simkit rk4": np.array(
            [float(fit(model_rk4, START, d1, sigma=NOISE, bounds=BOUNDS).params[k]) for k in KEYS]
        ),
        "optimistix": np.array([float(opx(start, d1)[k]) for k in KEYS]),
        "scipy default": scipy_fit(data1),
        "scipy rtol 1e-8": scipy_fit(data1, 1e-8),
    }
    se = np.array([float(ref.stderr[k]) for k in KEYS])
    agreement = {name: float(np.max(np.abs(v - best) / se)) for name, v in checks.items()}
    print("max |difference from simkit| in standard errors:", agreement)

    lm = optx.LevenbergMarquardt(rtol=1e-8, atol=1e-8)
    single = compare(
        "LV 4-parameter fit, one data set (31 times x 2 species)",
        [
            Candidate(
                "simkit fit (defaults)",
                lambda: jax.block_until_ready(
                    fit(model_dfx, START, d1, sigma=NOISE, bounds=BOUNDS).params
                ),
                setup=lambda: fit(model_dfx, START, d1, sigma=NOISE, bounds=BOUNDS),
            ),
            Candidate(
                "simkit fit (rk4 model)",
                lambda: jax.block_until_ready(
                    fit(model_rk4, START, d1, sigma=NOISE, bounds=BOUNDS).params
                ),
                setup=lambda: fit(model_rk4, START, d1, sigma=NOISE, bounds=BOUNDS),
            ),
            Candidate(
                "simkit fit (method='adaptive' model)",
                lambda: jax.block_until_ready(
                    fit(model_ada, START, d1, sigma=NOISE, bounds=BOUNDS).params
                ),
                setup=lambda: fit(model_ada, START, d1, sigma=NOISE, bounds=BOUNDS),
                note="simkit's adaptive Tsit5 instead of diffrax's, same rtol/atol",
            ),
            Candidate(
                "simkit fit (solver='simkit-lm')",
                lambda: jax.block_until_ready(
                    fit(model_dfx, START, d1, sigma=NOISE, bounds=BOUNDS, solver="simkit-lm").params
                ),
                setup=lambda: fit(
                    model_dfx, START, d1, sigma=NOISE, bounds=BOUNDS, solver="simkit-lm"
                ),
                note="simkit's masked LM (the fit_batch one) on a single fit",
            ),
            Candidate(
                "optimistix LM (plain, jitted)",
                lambda: jax.block_until_ready(opx(start, d1)),
                setup=lambda: jax.block_until_ready(opx(start, d1)),
            ),
            Candidate(
                "scipy least_squares+solve_ivp",
                lambda: scipy_fit(data1),
                note="defaults: TRF, 2-point Jacobian, RK45 rtol 1e-3",
            ),
            Candidate(
                "scipy (solve_ivp rtol=1e-8)",
                lambda: scipy_fit(data1, 1e-8),
                note="tolerance matched to simkit's ODE solve",
            ),
        ],
        rounds=3,
        min_time=0.2,
    )

    n = 1000
    datas = clean[None] + NOISE * rng.normal(size=(n, *clean.shape))
    D = jnp.asarray(datas)
    starts = {k: jnp.full((n,), v) for k, v in START.items()}
    data_list = [jnp.asarray(d) for d in datas]
    opx_rk4 = plain_optimistix_rk4(model_rk4)

    def batch_and_loop(model) -> list[Candidate]:
        """`fit_batch` of all n data sets, and a loop of single fits on the fastest single-fit
        path (`solver='simkit-lm'`), each compiled by its first call."""

        def batch(threads=None):
            return jax.block_until_ready(
                fit_batch(model, starts, D, sigma=NOISE, bounds=BOUNDS, threads=threads).params
            )

        def batch_one_thread():
            return batch(threads=1)

        def loop():
            for d in data_list:
                out = fit(model, START, d, sigma=NOISE, bounds=BOUNDS, solver="simkit-lm")
            return jax.block_until_ready(out.params)

        return [
            Candidate("simkit fit_batch", batch, setup=batch, note="threads: one per core"),
            Candidate(
                "fit_batch, 1 thread", batch_one_thread, setup=batch_one_thread, note="threads=1"
            ),
            Candidate(
                "loop of simkit fit",
                loop,
                setup=loop,
                note="solver='simkit-lm': the fastest single-fit path",
            ),
        ]

    def loop_optimistix():
        for d in data_list:
            out = opx_rk4(start, d)
        return jax.block_until_ready(out)

    def lockstep():
        return jax.block_until_ready(
            fit_batch(model_rk4, starts, D, sigma=NOISE, bounds=BOUNDS, solver=lm).params
        )

    res_b = fit_batch(model_rk4, starts, D, sigma=NOISE, bounds=BOUNDS)
    steps = np.asarray(res_b.n_steps)
    many = compare(
        f"{n} independent LV fits (RK4 model)",
        [
            *batch_and_loop(model_rk4),
            Candidate("loop of jitted optimistix LM", loop_optimistix, setup=loop_optimistix),
            Candidate("vmap optimistix LM (lockstep)", lockstep, setup=lockstep),
        ],
        rounds=3,
        work=n,
        work_unit="fits",
        baseline="loop of simkit fit",
    )

    def loop_dfx_default():
        for d in data_list:
            out = fit(model_dfx, START, d, sigma=NOISE, bounds=BOUNDS)
        return jax.block_until_ready(out.params)

    res_dfx = fit_batch(model_dfx, starts, D, sigma=NOISE, bounds=BOUNDS)
    steps_dfx = np.asarray(res_dfx.n_steps)
    many_dfx = compare(
        f"{n} independent LV fits (adaptive diffrax model)",
        [
            *batch_and_loop(model_dfx),
            Candidate(
                "loop of simkit fit (default solver)",
                loop_dfx_default,
                setup=loop_dfx_default,
                note="optimistix LM (the baseline before 2026-12)",
            ),
        ],
        rounds=3,
        work=n,
        work_unit="fits",
        baseline="loop of simkit fit",
    )

    res_ada = fit_batch(model_ada, starts, D, sigma=NOISE, bounds=BOUNDS)
    many_ada = compare(
        f"{n} independent LV fits (method='adaptive' model)",
        batch_and_loop(model_ada),
        rounds=3,
        work=n,
        work_unit="fits",
        baseline="loop of simkit fit",
    )
    agreement["fit_batch adaptive vs diffrax model (max over members, stderr)"] = float(
        np.max(
            [
                np.max(
                    np.abs(np.asarray(res_ada.params[k]) - np.asarray(res_dfx.params[k]))
                    / np.asarray(res_dfx.stderr[k])
                )
                for k in KEYS
            ]
        )
    )
    bound = {
        # At the fitted parameters (spread by the noise, as during the fits).
        "rk4": jacobian_ratio(model_rk4, res_b.params, n),
        "adaptive diffrax": jacobian_ratio(model_dfx, res_dfx.params, n),
        "method='adaptive'": jacobian_ratio(model_ada, res_ada.params, n),
    }
    print("one Jacobian, single jitted call vs vmapped per member:", bound)

    write_report(
        "fit",
        [single, many, many_dfx, many_ada],
        extra={
            "agreement_in_stderr": agreement,
            "rk4_max_error_vs_rtol1e-10": rk4_err,
            "noise_sd": NOISE,
            "batch_steps": {"max": int(steps.max()), "mean": float(steps.mean())},
            "batch_steps_adaptive": {
                "max": int(steps_dfx.max()),
                "mean": float(steps_dfx.mean()),
            },
            "batch_steps_method_adaptive": {
                "max": int(np.max(res_ada.n_steps)),
                "mean": float(np.mean(res_ada.n_steps)),
            },
            "jacobian_single_vs_vmapped_per_member": bound,
        },
    )
    base = {r["candidate"]: r["median_s"] for r in single["rows"]}
    loops = {r["candidate"]: r["median_s"] for r in many["rows"]}
    one = "fit_batch, 1 thread"
    print(
        f"\n1000 fits, 1 thread: fit_batch vs loop of simkit fit: RK4 "
        f"{loops['loop of simkit fit'] / loops[one]:.1f}x, adaptive diffrax model "
        f"{_ratio(many_dfx, one):.1f}x, method='adaptive' model {_ratio(many_ada, one):.1f}x"
    )
    print(
        f"1000 fits: fit_batch vs loop of simkit fit "
        f"{loops['loop of simkit fit'] / loops['simkit fit_batch']:.1f}x, vs loop of jitted "
        f"optimistix {loops['loop of jitted optimistix LM'] / loops['simkit fit_batch']:.1f}x"
    )
    dfx = {r["candidate"]: r["median_s"] for r in many_dfx["rows"]}
    print(
        f"1000 fits, adaptive model: fit_batch vs loop of simkit fit "
        f"{dfx['loop of simkit fit'] / dfx['simkit fit_batch']:.1f}x, vs loop of default fit "
        f"{dfx['loop of simkit fit (default solver)'] / dfx['simkit fit_batch']:.1f}x"
    )
    ada = {r["candidate"]: r["median_s"] for r in many_ada["rows"]}
    print(
        f"1000 fits, method='adaptive' model: fit_batch vs loop of simkit fit "
        f"{ada['loop of simkit fit'] / ada['simkit fit_batch']:.1f}x; vs the diffrax model's "
        f"loop of simkit fit {dfx['loop of simkit fit'] / ada['simkit fit_batch']:.1f}x"
    )
    print(
        f"single fit: SciPy default / simkit default = "
        f"{base['scipy least_squares+solve_ivp'] / base['simkit fit (defaults)']:.0f}x; "
        f"RK4 model error {rk4_err:.1e} (noise sd {NOISE}); batch LM steps max "
        f"{steps.max()}, mean {steps.mean():.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
