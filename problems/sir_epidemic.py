"""SIR epidemic: epidemic peak found by an event, and parameter sensitivities by forward-mode AD.

Model (fractions of a population, time in days):
    dS/dt = -beta S I,   dI/dt = beta S I - gamma I,   dR/dt = gamma I,   R0 = beta / gamma.

Three things are computed and each is checked against a closed form (Kermack & McKendrick 1927;
see e.g. Hethcote, SIAM Review 42 (2000) 599, section 2):
  * the epidemic peak: an event stops the solve where dI/dt = 0, i.e. S = 1/R0; the peak height
    is I_max = S0 + I0 - (1 + ln(R0 S0)) / R0;
  * the final size: S_inf solves S_inf = S0 exp(-R0 (1 - S_inf)) (for R(0) = 0, S0 + I0 = 1);
  * sensitivities d(I_max, t_peak, S_inf)/d(beta, gamma) by `jax.jacfwd` through the solver and
    the event, against the derivatives of the closed forms (implicit differentiation).

Example:
    python problems/sir_epidemic.py --beta 0.3 --gamma 0.1 --out sir.h5
"""

from __future__ import annotations

import argparse
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)
import diffrax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optimistix as optx  # noqa: E402

NAME = "sir_epidemic"


def sir(t, y, p):
    """SIR vector field; y = (S, I, R) fractions, p = {"beta", "gamma"} in 1/day."""
    s, i = y[0], y[1]
    infection = p["beta"] * s * i
    recovery = p["gamma"] * i
    return jnp.stack([-infection, infection - recovery, recovery])


def _problem(params, i0, t1):
    from simkit.ode import ODEProblem

    y0 = jnp.stack([1.0 - i0, jnp.asarray(i0, jnp.float64), jnp.asarray(0.0, jnp.float64)])
    return ODEProblem(sir, y0, params, 0.0, t1)


def peak(params, i0=1e-4, t1=1000.0, rtol=1e-10):
    """(t_peak, I_max): the solve stops at the event dI/dt = 0 (S = gamma / beta). Differentiable
    in `params` with forward mode (event time via the implicit function theorem)."""
    from simkit.ode import solve

    event = diffrax.Event(
        lambda t, y, args, **kw: y[0] * args["beta"] - args["gamma"],
        root_finder=optx.Newton(rtol=1e-12, atol=1e-14),
    )
    sol = solve(
        _problem(params, i0, t1),
        event=event,
        rtol=rtol,
        atol=rtol * 1e-2,
        adjoint=diffrax.ForwardMode(),
        validate=False,
    )
    return sol.ts[-1], sol.ys[-1, 1]


def final_size(params, i0=1e-4, t1=2000.0, rtol=1e-10):
    """S(t1) for large t1: the susceptible fraction left when the epidemic is over."""
    from simkit.ode import solve

    sol = solve(
        _problem(params, i0, t1),
        rtol=rtol,
        atol=rtol * 1e-2,
        adjoint=diffrax.ForwardMode(),
        validate=False,
    )
    return sol.ys[-1, 0]


def trajectory(params, i0, t1, n_save):
    from simkit.ode import solve

    ts = jnp.linspace(0.0, t1, n_save)
    sol = solve(_problem(params, i0, t1), rtol=1e-10, atol=1e-12, saveat=ts)
    return ts, sol.ys


# ------------------------------------------------------------------ closed forms (references)


def analytic_peak(beta, gamma, i0):
    r0, s0 = beta / gamma, 1.0 - i0
    return s0 + i0 - (1.0 + np.log(r0 * s0)) / r0


def analytic_final_size(beta, gamma, i0):
    """Solve S = S0 exp(-R0 (1 - S)) for the root below 1/R0 by Newton's method."""
    r0, s0 = beta / gamma, 1.0 - i0
    s = 1e-3
    for _ in range(100):
        g = s - s0 * np.exp(-r0 * (1.0 - s))
        dg = 1.0 - r0 * s0 * np.exp(-r0 * (1.0 - s))
        s -= g / dg
    return s


def analytic_sensitivities(beta, gamma, i0):
    """d/d(beta, gamma) of I_max and S_inf from the closed forms (implicit differentiation).

    I_max(R0) = S0 + I0 - (1 + ln(R0 S0)) / R0  =>  dI_max/dR0 = ln(R0 S0) / R0^2.
    S_inf: F(S, R0) = S - S0 exp(-R0 (1 - S)) = 0  =>
        dS/dR0 = -F_R0 / F_S = -S (1 - S) / (1 - R0 S).
    dR0/dbeta = 1/gamma, dR0/dgamma = -beta/gamma^2.
    """
    r0, s0 = beta / gamma, 1.0 - i0
    s_inf = analytic_final_size(beta, gamma, i0)
    d_imax = np.log(r0 * s0) / r0**2
    d_sinf = -s_inf * (1.0 - s_inf) / (1.0 - r0 * s_inf)
    dr0 = np.array([1.0 / gamma, -beta / gamma**2])
    return d_imax * dr0, d_sinf * dr0


def build_parser() -> argparse.ArgumentParser:
    from simkit import finite_float
    from simkit.io import add_output_arguments

    p = argparse.ArgumentParser(
        prog=NAME,
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--beta", type=finite_float, default=0.3, help="infection rate (1/day)")
    p.add_argument("--gamma", type=finite_float, default=0.1, help="recovery rate (1/day)")
    p.add_argument("--i0", type=finite_float, default=1e-4, help="initially infected fraction")
    p.add_argument(
        "--days", type=finite_float, default=200.0, help="length of the saved trajectory"
    )
    add_output_arguments(p, NAME)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    from simkit import SimkitInputError, require_positive
    from simkit.io import output_path, save_results

    require_positive("--beta", args.beta)
    require_positive("--gamma", args.gamma)
    require_positive("--days", args.days)
    if not 0.0 < args.i0 < 1.0:
        raise SimkitInputError(f"--i0 must be in (0, 1), got {args.i0}.")
    if args.beta / args.gamma * (1 - args.i0) <= 1.0:
        raise SimkitInputError(
            f"R0 * S0 = {args.beta / args.gamma * (1 - args.i0):.3g} <= 1: no epidemic peak "
            "(I decreases from the start). Choose beta > gamma / (1 - i0)."
        )
    out = output_path(args.out, NAME, overwrite=args.overwrite)

    params = {"beta": jnp.asarray(args.beta), "gamma": jnp.asarray(args.gamma)}
    t0 = time.perf_counter()
    t_peak, i_max = jax.jit(lambda p: peak(p, args.i0))(params)
    s_inf = jax.jit(lambda p: final_size(p, args.i0))(params)
    jac_peak = jax.jit(jax.jacfwd(lambda p: jnp.stack(peak(p, args.i0))))(params)
    jac_final = jax.jit(jax.jacfwd(lambda p: final_size(p, args.i0)))(params)
    ts, ys = trajectory(params, args.i0, args.days, 401)
    wall = time.perf_counter() - t0

    ref_imax = analytic_peak(args.beta, args.gamma, args.i0)
    ref_sinf = analytic_final_size(args.beta, args.gamma, args.i0)
    ref_dimax, ref_dsinf = analytic_sensitivities(args.beta, args.gamma, args.i0)
    d_imax = np.array([jac_peak["beta"][1], jac_peak["gamma"][1]])
    d_tpeak = np.array([jac_peak["beta"][0], jac_peak["gamma"][0]])
    d_sinf = np.array([jac_final["beta"], jac_final["gamma"]])

    print(
        f"SIR epidemic, beta={args.beta}, gamma={args.gamma} (R0 = {args.beta / args.gamma:.3g}), "
        f"I0={args.i0}   [{wall:.1f} s incl. compilation]"
    )
    print(f"{'quantity':<22}{'simkit':>16}{'closed form':>16}{'rel. error':>12}")
    for name, got, ref in [
        ("peak infected I_max", float(i_max), ref_imax),
        ("final susceptible", float(s_inf), ref_sinf),
        ("dI_max/dbeta", d_imax[0], ref_dimax[0]),
        ("dI_max/dgamma", d_imax[1], ref_dimax[1]),
        ("dS_inf/dbeta", d_sinf[0], ref_dsinf[0]),
        ("dS_inf/dgamma", d_sinf[1], ref_dsinf[1]),
    ]:
        print(f"{name:<22}{got:>16.8g}{ref:>16.8g}{abs(got - ref) / abs(ref):>12.2e}")
    print(f"{'peak time (days)':<22}{float(t_peak):>16.6g}{'(event)':>16}")
    print(f"{'dt_peak/dbeta':<22}{d_tpeak[0]:>16.6g}{'(AD)':>16}")

    save_results(
        out,
        {
            "y": (("time", "compartment"), np.asarray(ys), "1"),
            "sensitivity": (
                ("quantity", "parameter"),
                np.stack([d_tpeak, d_imax, d_sinf]),
                "mixed",
            ),
        },
        coords={
            "time": (np.asarray(ts), "day"),
            "compartment": (["S", "I", "R"], ""),
            "quantity": (["t_peak", "I_max", "S_inf"], ""),
            "parameter": (["beta", "gamma"], ""),
        },
        attrs={
            "problem": NAME,
            "parameters": {"beta": args.beta, "gamma": args.gamma, "i0": args.i0},
            "t_peak": float(t_peak),
            "I_max": float(i_max),
            "S_inf": float(s_inf),
            "solver": "Tsit5, PID rtol 1e-10, diffrax Event + Newton root finder",
        },
        overwrite=args.overwrite,
    )
    print(f"output: {out}")
    return 0


if __name__ == "__main__":
    from simkit.cli import script_main

    raise SystemExit(script_main(main))
