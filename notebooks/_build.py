"""Writes notebooks/ensembles_and_fitting.ipynb from the cells below (kept as code so reviews
see plain Python diffs). Run: .venv/bin/python notebooks/_build.py"""

from pathlib import Path

import nbformat as nbf

cells = []


def md(text):
    cells.append(nbf.v4.new_markdown_cell(text.strip()))


def code(text):
    cells.append(nbf.v4.new_code_cell(text.strip()))


md("""
# Ensembles and fitting with simkit

This notebook runs top to bottom in the test suite (`tests/test_notebooks.py`). It shows

1. a Lorenz-63 ensemble solved as one fused, adaptive, sharded batch (`simkit.ode.solve_ensemble`),
2. a parameter sweep in one call,
3. a Lotka-Volterra fit with standard errors, correlations and a confidence band (`simkit.fit`),
4. results written to HDF5 and read back with xarray.
""")

code("""
import jax
jax.config.update("jax_enable_x64", True)   # fitting and tight ODE tolerances need float64
import jax.numpy as jnp
import numpy as np
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
%matplotlib inline

import simkit
from simkit.ode import ODEProblem, solve_ensemble
from simkit import fit as skfit
print("simkit", simkit.__version__, "| jax", jax.__version__, "| devices:", jax.devices())
""")

md("""
## 1. A Lorenz-63 ensemble

One `ODEProblem` describes one member; `solve_ensemble` takes batched initial states (or
parameters). Tsit5 runs as a fused kernel in which every member keeps its own step size.
""")

code("""
def lorenz(t, y, p):
    return jnp.stack([p["sigma"] * (y[1] - y[0]), y[0] * (p["rho"] - y[2]) - y[1],
                      y[0] * y[1] - p["beta"] * y[2]])

params = {"sigma": jnp.asarray(10.0), "rho": jnp.asarray(28.0), "beta": jnp.asarray(8 / 3)}
problem = ODEProblem(lorenz, jnp.asarray([1.0, 1.0, 20.0]), params, t0=0.0, t1=15.0)

n = 1000
y0 = problem.y0[None, :] + 1e-6 * jax.random.normal(jax.random.key(0), (n, 3))
ts = jnp.linspace(0.0, 15.0, 1501)
ts, ys = solve_ensemble(problem, y0=y0, saveat=ts, rtol=1e-9, atol=1e-9)
print("ys:", ys.shape, "(members, times, components)")
""")

code("""
spread = jnp.sqrt(jnp.mean(jnp.sum((ys - ys.mean(axis=0)) ** 2, axis=-1), axis=0))
fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
for m in range(4):
    a.plot(ys[m, :, 0], ys[m, :, 2], lw=0.6)
a.set(xlabel="x", ylabel="z", title="phase portrait, 4 members")
b.semilogy(ts, spread)
b.semilogy(ts, 1e-6 * np.exp(0.9056 * ts), "k--", label="exp(0.9056 t) (Sprott 2003)")
b.set(xlabel="t", ylabel="ensemble spread", title="divergence of nearby trajectories")
b.legend();
""")

md("""
## 2. A parameter sweep in one call

Batched `params` (a leading member axis on every leaf) sweep the Rayleigh number `rho`. Fixed
steps (`fixed_step=True, dt0=...`) give a `lax.scan` kernel that is also differentiable.
""")

code("""
rho = jnp.linspace(0.5, 40.0, 400)
sweep = {"sigma": jnp.full_like(rho, 10.0), "rho": rho, "beta": jnp.full_like(rho, 8 / 3)}
prob_sweep = ODEProblem(lorenz, jnp.asarray([1.0, 1.0, 1.0]), params, t0=0.0, t1=30.0)
t_late = jnp.linspace(20.0, 30.0, 201)
_, z = solve_ensemble(prob_sweep, params=sweep, solver="rk4", fixed_step=True, dt0=0.005,
                      saveat=t_late)
zmax = z[:, :, 2].max(axis=1); zmin = z[:, :, 2].min(axis=1)
plt.figure(figsize=(6, 3.5))
plt.fill_between(rho, zmin, zmax, alpha=0.4, label="range of z for t in [20, 30]")
plt.axvline(24.74, color="k", ls=":", label="subcritical Hopf, rho = 24.74")
plt.xlabel("rho"); plt.ylabel("z"); plt.legend();
""")

md("""
## 3. Fitting Lotka-Volterra with uncertainties

Synthetic noisy data from known parameters; `simkit.fit.fit` runs Levenberg-Marquardt
(optimistix) with forward-mode Jacobians through the ODE solve and returns standard errors and
correlations. Positivity is imposed with `bounds`.
""")

code("""
def lotka_volterra(t, y, p):
    prey, pred = y[0], y[1]
    return jnp.stack([p["alpha"] * prey - p["beta"] * prey * pred,
                      p["delta"] * prey * pred - p["gamma"] * pred])

truth = {"alpha": 1.0, "beta": 0.4, "delta": 0.1, "gamma": 0.4}
t_data = jnp.linspace(0.0, 20.0, 41)
lv = ODEProblem(lotka_volterra, jnp.asarray([10.0, 5.0]),
                {k: jnp.asarray(v) for k, v in truth.items()}, t0=0.0, t1=20.0)
model = skfit.ode_model(lv, t_data)
clean = model({k: jnp.asarray(v) for k, v in truth.items()})
noise = 0.5
data = clean + noise * jax.random.normal(jax.random.key(42), clean.shape)

start = {"alpha": 0.8, "beta": 0.3, "delta": 0.15, "gamma": 0.5}
res = skfit.fit(model, start, data, sigma=noise,
                bounds={k: (0.0, None) for k in start})
print(f"converged: {res.success} in {int(res.n_steps)} steps, chi2/dof = {float(res.chi2) / res.dof:.3f}")
print(f"{'param':<8}{'true':>8}{'fit':>10}{'stderr':>10}")
for k in truth:
    print(f"{k:<8}{truth[k]:>8.3f}{float(res.params[k]):>10.4f}{float(res.stderr[k]):>10.4f}")
print("correlation matrix, order", res.param_names)
print(np.array2string(np.asarray(res.correlation), precision=2))
""")

md("""
A confidence band: draw parameter sets from the fitted Gaussian (mean = best fit, covariance
from the fit) and solve them all as one ensemble.
""")

code("""
names = sorted(start)  # covariance rows follow the pytree's (sorted-key) flattening order
print(res.param_names)
best = np.array([float(res.params[k]) for k in names])
draws = np.random.default_rng(0).multivariate_normal(best, np.asarray(res.covariance), size=300)
draw_params = {k: jnp.asarray(draws[:, i]) for i, k in enumerate(names)}
t_fine = jnp.linspace(0.0, 20.0, 401)
_, band = solve_ensemble(lv, params=draw_params, saveat=t_fine, rtol=1e-8, atol=1e-8)
lo, hi = np.percentile(np.asarray(band), [2.5, 97.5], axis=0)
_, best_curve = solve_ensemble(lv, params={k: jnp.asarray([best[i]]) for i, k in enumerate(names)},
                               saveat=t_fine, rtol=1e-8, atol=1e-8)

fig, ax = plt.subplots(figsize=(8, 4))
for j, (label, color) in enumerate([("prey", "C0"), ("predator", "C1")]):
    ax.fill_between(t_fine, lo[:, j], hi[:, j], color=color, alpha=0.3, label=f"{label} 95% band")
    ax.plot(t_fine, best_curve[0, :, j], color=color, label=f"{label} best fit")
    ax.plot(t_data, data[:, j], "o", color=color, ms=3)
ax.set(xlabel="time", ylabel="population", title="Lotka-Volterra fit with 95% confidence band")
ax.legend(ncol=2, fontsize=8);
""")

md("""
## 4. Results in HDF5, read back with xarray

`simkit.io.save_results` writes named dimensions (HDF5 dimension scales) and units, so xarray's
`h5netcdf` engine opens the file with labelled axes.
""")

code("""
import tempfile, xarray as xr
from pathlib import Path
from simkit.io import save_results

path = Path(tempfile.mkdtemp()) / "lv_fit.h5"
save_results(path, {
    "data": (("time", "species"), np.asarray(data), "1"),
    "band_low": (("time_fine", "species"), lo, "1"),
    "band_high": (("time_fine", "species"), hi, "1"),
}, coords={"time": (np.asarray(t_data), "1"), "time_fine": (np.asarray(t_fine), "1"),
           "species": (["prey", "predator"], "")},
   attrs={"parameters": {k: float(res.params[k]) for k in names},
          "stderr": {k: float(res.stderr[k]) for k in names}})
ds = xr.open_dataset(path, engine="h5netcdf")
ds
""")

code("""
assert res.success
for k in truth:  # the fit recovers the truth within 4 standard errors
    assert abs(float(res.params[k]) - truth[k]) < 4 * float(res.stderr[k]), k
assert ds["data"].dims == ("time", "species")
ds.close()
""")

nb = nbf.v4.new_notebook(
    cells=cells,
    metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
)
out = Path(__file__).with_name("ensembles_and_fitting.ipynb")
nbf.write(nb, out)
print(f"wrote {out}")
