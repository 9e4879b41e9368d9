"""Turbulent 2-D Kolmogorov flow (pseudo-spectral): energy spectrum and energy budget.

A doubly periodic box 2 pi x 2 pi is driven by the steady force f = (A sin(k_f y), 0), k_f =
`--forcing-wavenumber` (4 by default), and damped by viscosity nu and linear drag mu: the set-up
of Kochkov et al. (2021, PNAS 118:e2101784118), Re = 1000 (nu = 1e-3), A = 1, mu = 0.1. The
Reynolds number is Re = U L / nu with the length scale L = Ly / 2 pi = 1 and the forcing's
velocity scale U = sqrt(A L), so Re = 1 / nu for A = 1 as in Kochkov et al. (the laminar
flow's own Reynolds number A / (nu^2 k_f^3) is printed too). The run starts from a random
vorticity field peaked at k_f (`--seed`), becomes turbulent within a few time units and
settles, through the drag, to a statistically steady state after a few drag times 1 / (2 mu).

At the end the script reads the diagnostics and spectra back from the HDF5 file and prints,
over the statistically steady part (t >= `--spinup`, default a third of the run):
- the time-averaged energy spectrum E(k) and its least-squares slope in log-log over
  2 k_f <= k <= k_max / 2 (k_max the largest wavenumber kept by the 2/3 rule), next to the
  k^-3 of the direct enstrophy cascade (Kraichnan 1967, Phys. Fluids 10:1417; Boffetta & Ecke
  2012, Annu. Rev. Fluid Mech. 44:427). The default 128^2 grid resolves the cascade over less
  than a decade only, and linear drag is known to steepen the spectrum beyond k^-3 (Boffetta &
  Ecke 2012, sec. 4), so expect a slope of about -4 here: the comparison is a sanity check, not
  a validation of the -3 law (which needs 1024^2 and more, and weaker drag).
- the energy budget dE/dt = injection - dissipation - 2 mu E, each term averaged: the mean
  power injected <f . u>, the viscous dissipation nu <w^2>, the drag loss 2 mu <E> and the
  residual (which is the mean dE/dt, small in a steady state).

The default (128^2, float32, Re = 1000, t = 30, 7 500 steps) runs in well under a minute on 2
cores. The time step is the largest that keeps the advective CFL number near 0.5 for the
velocities this flow reaches (`spectral.stable_time_step`), shortened so that --time is a
whole number of steps; `--dt` caps it.

Fields (velocity, vorticity), diagnostics (energy, enstrophy, dissipation, injection, CFL) and
spectra go to an HDF5 file with an XDMF sidecar for ParaView.

Example:
    python problems/kolmogorov_flow.py --out kolmogorov.h5
    python problems/kolmogorov_flow.py --n 256 --time 60 --out kolmogorov256.h5
    xarray: xr.open_dataset("kolmogorov.h5", engine="h5netcdf"); ParaView: open kolmogorov.xdmf
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import jax
import numpy as np

NAME = "kolmogorov_flow"
FIELD_FRAMES = 10
SPECTRA_PER_FIELD = 10
DIAGNOSTICS_PER_SPECTRUM = 5
#: Largest speed of the turbulent flow per sqrt(A L): sets the default time step (measured: the
#: CFL number then peaks at ~0.5 at Re = 1000, A = 1, mu = 0.1, 128^2, t <= 30).
VELOCITY_FACTOR = 3.0
CFL_WARN = 0.8  # report a run whose CFL number came close to the RK4 limit ~1.35


def build_parser() -> argparse.ArgumentParser:
    from simkit import finite_float, positive_int
    from simkit.io import add_output_arguments

    p = argparse.ArgumentParser(
        prog=NAME,
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--n", type=positive_int, default=128, help="grid points per side")
    visc = p.add_mutually_exclusive_group()
    visc.add_argument(
        "--re",
        type=finite_float,
        default=None,
        help="Reynolds number sqrt(A L) L / nu, L = 1 (default 1000)",
    )
    visc.add_argument(
        "--viscosity",
        type=finite_float,
        default=None,
        help="kinematic viscosity nu instead of --re",
    )
    p.add_argument("--drag", type=finite_float, default=0.1, help="linear drag mu (1/time)")
    p.add_argument(
        "--forcing-wavenumber",
        type=positive_int,
        default=4,
        help="forcing periods across the box in y (k_f = 2 pi n / L_y)",
    )
    p.add_argument(
        "--amplitude", type=finite_float, default=1.0, help="forcing amplitude A (velocity/time)"
    )
    p.add_argument("--time", type=finite_float, default=30.0, help="run length (time units)")
    p.add_argument(
        "--spinup",
        type=finite_float,
        default=None,
        help="statistics over t >= this (default: a third of --time)",
    )
    p.add_argument(
        "--dt",
        type=finite_float,
        default=None,
        help="largest time step (default: CFL ~0.5 for the expected velocities)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random initial vorticity")
    p.add_argument("--float64", action="store_true", help="double precision (default float32)")
    add_output_arguments(p, NAME, resume=True)
    return p


def config_from_args(args) -> dict:
    return {
        k: getattr(args, k)
        for k in (
            "n",
            "re",
            "viscosity",
            "drag",
            "forcing_wavenumber",
            "amplitude",
            "time",
            "spinup",
            "dt",
            "seed",
            "float64",
        )
    } | {"problem": NAME}


def plan_steps(run_time: float, max_dt: float) -> tuple[int, float, dict[str, int]]:
    """(n_steps, dt, save_every): the fewest steps of at most `max_dt` that fill `run_time`
    and are a whole number of field frames, with `SPECTRA_PER_FIELD` spectra per field frame and
    `DIAGNOSTICS_PER_SPECTRUM` diagnostics per spectrum."""
    per_field = SPECTRA_PER_FIELD * DIAGNOSTICS_PER_SPECTRUM
    diag = max(1, math.ceil(run_time / max_dt / (FIELD_FRAMES * per_field)))
    n_steps = FIELD_FRAMES * per_field * diag
    return (
        n_steps,
        run_time / n_steps,
        {
            "fields": per_field * diag,
            "spectrum": DIAGNOSTICS_PER_SPECTRUM * diag,
            "diagnostics": diag,
        },
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.float64:
        jax.config.update("jax_enable_x64", True)
    from simkit import SimkitInputError, require_positive
    from simkit.cli import argv_without_output, log_to_stderr
    from simkit.fluids import spectral as sp
    from simkit.io import FieldStore, output_path
    from simkit.run import run

    log_to_stderr()
    # Everything is checked before anything is compiled.
    kf_n = args.forcing_wavenumber
    if args.n < 16 or args.n <= 3 * kf_n:
        raise SimkitInputError(
            f"--n must be at least 16 and above 3 x --forcing-wavenumber ({3 * kf_n}: the 2/3 "
            f"dealiasing rule keeps wavenumbers below n/3), got {args.n}."
        )
    if args.re is not None:
        require_positive("--re", args.re)
    if args.viscosity is not None:
        require_positive("--viscosity", args.viscosity)
    if args.drag < 0:
        raise SimkitInputError(f"--drag must be >= 0, got {args.drag}.")
    require_positive("--amplitude", args.amplitude)
    require_positive("--time", args.time)
    spinup = args.time / 3 if args.spinup is None else args.spinup
    if not 0 <= spinup < args.time:
        raise SimkitInputError(
            f"--spinup must be in [0, --time) = [0, {args.time:g}), got {spinup:g}."
        )
    if args.dt is not None:
        require_positive("--dt", args.dt)
    out = output_path(args.out, NAME, overwrite=args.overwrite, resume=args.resume)
    length = 1.0  # L = L_y / 2 pi
    u_scale = math.sqrt(args.amplitude * length)
    viscosity = (
        args.viscosity
        if args.viscosity is not None
        else u_scale * length / (1000.0 if args.re is None else args.re)
    )
    reynolds = u_scale * length / viscosity

    grid = sp.SpectralGrid((args.n, args.n))
    forcing = sp.Kolmogorov(kf_n)
    k_f = forcing.k_f(grid)
    laminar = args.amplitude / (viscosity * k_f**2 + args.drag)
    u_max = min(laminar, VELOCITY_FACTOR * u_scale)  # the laminar flow is the fastest
    max_dt = sp.stable_time_step(u_max, grid, cfl=0.5) if args.dt is None else args.dt
    n_steps, dt, save_every = plan_steps(args.time, max_dt)
    dtype = "float64" if args.float64 else "float32"
    stepper = sp.NavierStokes2D(grid.shape, dt, box=grid.box, forcing=forcing, dtype=dtype)
    params = stepper.params(viscosity, drag=args.drag, forcing_amplitude=args.amplitude)
    w0 = sp.random_vorticity(
        grid, args.seed, energy=0.5 * u_scale**2, peak_wavenumber=k_f, dtype=dtype
    )
    state = stepper.init(params, vorticity=w0)

    t0 = time.perf_counter()
    result = run(
        stepper,
        state,
        params,
        n_steps=n_steps,
        save_every=save_every,
        out=out,
        overwrite=args.overwrite,
        resume=args.resume,
        config=config_from_args(args),
        attrs={
            "problem": NAME,
            "argv": argv_without_output(argv),
            "parameters": {
                "reynolds": reynolds,
                "viscosity": viscosity,
                "drag": args.drag,
                "forcing_wavenumber": kf_n,
                "forcing_amplitude": args.amplitude,
                "dt": dt,
                "seed": args.seed,
                "spinup": spinup,
            },
            "solver": "pseudo-spectral vorticity form, 2/3 dealiasing, integrating-factor RK4",
            "geometry": "periodic box 2 pi x 2 pi, points x_i = i 2 pi / n; "
            "force f = (A sin(k_f y), 0)",
        },
        progress=not args.no_progress,
        store_type=FieldStore,
        checkpoint_every=args.checkpoint_every,
        checkpoint_interval=args.checkpoint_interval,
    )
    wall = time.perf_counter() - t0
    report(
        out,
        result,
        wall,
        args,
        grid,
        dt,
        viscosity,
        reynolds,
        spinup,
        forcing.reynolds(grid, args.amplitude, viscosity),
    )
    return 0


def spectrum_slope(
    k: np.ndarray, spectrum: np.ndarray, k_lo: float, k_hi: float
) -> tuple[float, int]:
    """Least-squares slope of log E against log k over the shells k_lo <= k <= k_hi, and the
    number of shells used."""
    sel = (k >= k_lo) & (k <= k_hi) & (spectrum > 0)
    if sel.sum() < 2:
        return float("nan"), int(sel.sum())
    return float(np.polyfit(np.log(k[sel]), np.log(spectrum[sel]), 1)[0]), int(sel.sum())


def report(
    out: Path,
    result,
    wall: float,
    args,
    grid,
    dt: float,
    viscosity: float,
    reynolds: float,
    spinup: float,
    laminar_re: float,
) -> dict:
    """Print the run summary, the mean spectrum with its slope and the energy budget (read back
    from the file); return the numbers."""
    import h5py

    with h5py.File(out, "r", locking=False) as f:
        t_diag = f["time_diagnostics"][:]
        diag = {
            q: f[q][:].astype(np.float64)
            for q in ("energy", "enstrophy", "dissipation", "injection", "cfl")
        }
        t_spec = f["time_spectrum"][:]
        spectra = f["energy_spectrum"][:].astype(np.float64)
        k = f["k"][:].astype(np.float64)
    n, mu = args.n, args.drag
    k_f = 2 * math.pi * args.forcing_wavenumber / grid.box[1]
    steps = result.steps_done
    print(
        f"\nKolmogorov flow: Re = {reynolds:g} (nu = {viscosity:.4g}; laminar-flow Re "
        f"A/(nu^2 k_f^3) = {laminar_re:.4g}), drag mu = {mu:g}, forcing {args.amplitude:g} "
        f"sin({args.forcing_wavenumber} y), {n} x {n} {'float64' if args.float64 else 'float32'}"
    )
    print(
        f"{steps} steps of dt = {dt:.4g} (t = {steps * dt:g}) in {wall:.1f} s "
        f"({steps / wall:.0f} steps/s including compilation); largest CFL number "
        f"{diag['cfl'].max():.2f}"
        + ("  -- close to the RK4 limit ~1.35: lower --dt" if diag["cfl"].max() > CFL_WARN else "")
    )
    print(
        f"output: {out} (+ {out.with_suffix('.xdmf').name} for ParaView; "
        f"xarray.open_dataset(path, engine='h5netcdf'))"
    )
    steady_d = t_diag >= spinup - 1e-9 * spinup
    steady_s = t_spec >= spinup - 1e-9 * spinup
    if steady_d.sum() < 2 or steady_s.sum() < 1:
        print(f"no statistics: the run has no saved frames after --spinup {spinup:g}")
        return {}
    mean = {q: float(v[steady_d].mean()) for q, v in diag.items()}
    span = t_diag[steady_d][-1] - t_diag[steady_d][0]
    dedt = (diag["energy"][steady_d][-1] - diag["energy"][steady_d][0]) / span
    e_mean = spectra[steady_s].mean(axis=0)
    k_max = (n - 1) // 3  # largest wavenumber the 2/3 rule keeps per axis (box 2 pi: dk = 1)
    k_lo, k_hi = 2 * k_f, k_max / 2
    slope, used = spectrum_slope(k, e_mean, k_lo, k_hi)
    print(
        f"statistics over {spinup:g} <= t <= {t_diag[-1]:g} ({steady_s.sum()} spectra, "
        f"{steady_d.sum()} diagnostic frames): mean energy {mean['energy']:.4f}, "
        f"enstrophy {mean['enstrophy']:.4f}"
    )
    print("time-averaged energy spectrum E(k):")
    show = [int(x) for x in np.unique(np.round(np.geomspace(1, k_max, 12)))]
    for s in show:
        tag = (
            "  <- forcing k_f"
            if abs(k[s] - k_f) < 0.5
            else ("  (fit range)" if k_lo <= k[s] <= k_hi else "")
        )
        print(f"  k = {k[s]:5.1f}   E = {e_mean[s]:.3e}{tag}")
    print(
        f"spectral slope d ln E / d ln k over {k_lo:g} <= k <= {k_hi:g} ({used} shells): "
        f"{slope:.2f}; direct enstrophy cascade k^-3 (Kraichnan 1967; Boffetta & Ecke 2012)"
    )
    print(
        f"  note: {n}^2 resolves the cascade over k_max/(2 k_f) = {k_max / (2 * k_f):.1f}x "
        "in wavenumber only, and linear drag steepens the spectrum beyond k^-3, so a slope "
        "steeper than -3 is expected here; the -3 law needs larger grids and weaker drag"
    )
    drag_loss = 2 * mu * mean["energy"]
    residual = mean["injection"] - mean["dissipation"] - drag_loss
    print("energy budget dE/dt = injection - dissipation - 2 mu E, time averages:")
    print(f"  injection <f.u>      {mean['injection']:.5f}")
    print(f"  dissipation nu<w^2>  {mean['dissipation']:.5f}")
    print(f"  drag loss 2 mu <E>   {drag_loss:.5f}")
    print(
        f"  residual             {residual:+.5f}  = mean dE/dt, which the energy's change "
        f"gives as {dedt:+.5f}"
    )
    print(
        f"budget closes to |residual - dE/dt| / injection = "
        f"{abs(residual - dedt) / mean['injection']:.1e}"
    )
    return {
        "slope": slope,
        "injection": mean["injection"],
        "dissipation": mean["dissipation"],
        "drag_loss": drag_loss,
        "residual": residual,
        "dedt": dedt,
    }


if __name__ == "__main__":
    from simkit.cli import script_main

    raise SystemExit(script_main(main))
