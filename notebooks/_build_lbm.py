"""Writes notebooks/lbm_cavity_wake.ipynb from the cells below (kept as code so reviews see plain
Python diffs). Run: .venv/bin/python notebooks/_build_lbm.py"""

from pathlib import Path

import nbformat as nbf

cells = []


def md(text):
    cells.append(nbf.v4.new_markdown_cell(text.strip()))


def code(text):
    cells.append(nbf.v4.new_code_cell(text.strip()))


md("""
# Lattice Boltzmann: a lid-driven cavity and a cylinder wake

This notebook runs top to bottom in the test suite (`tests/test_notebooks.py`). It

1. builds a lid-driven cavity at Re = 100 with `simkit.fluids.lbm`, runs it to steady state
   through simkit's run driver into an HDF5 file (with an XDMF sidecar for ParaView),
2. reads the velocity back with xarray, draws the streamlines and compares the centreline
   profiles with Ghia, Ghia & Shin (1982),
3. runs the Schafer-Turek cylinder benchmark (problem script `cylinder_wake`) through simkit's
   command line and measures the Strouhal number from the lift force in its file.

Everything is in lattice units: cells, steps, density 1 (dx = dt = 1, c_s^2 = 1/3).
""")

code("""
import tempfile, pathlib
import numpy as np
import xarray as xr
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
%matplotlib inline

import jax
import simkit
import simkit.fluids.lbm as lbm
from simkit.fluids import GHIA_U, GHIA_V, GHIA_X, GHIA_Y, lattice_units
from simkit.io import FieldStore
from simkit.run import run
print("simkit", simkit.__version__, "| jax", jax.__version__)
workdir = pathlib.Path(tempfile.mkdtemp())
""")

md("""
## 1. The cavity

A square of N x N fluid cells inside a ring of wall cells; the top row is a moving wall (the lid)
sliding in +x at 0.1 cells per step. `lattice_units` turns Re = U L / nu and the resolution into
the lattice viscosity and checks that tau and the Mach number are safe. Halfway bounce-back puts
each wall surface half a cell outside the outermost fluid cells, so fluid cell i sits at
x / L = (i - 1/2) / N.
""")

code("""
N, Re, U = 48, 100.0, 0.1
units = lattice_units(length=1.0, velocity=1.0, resolution=N, reynolds=Re, lattice_velocity=U)
print(f"tau = {units.tau:.4f}, lattice viscosity = {units.viscosity:.4f}, Mach = {units.mach:.3f}")

shape = (N + 2, N + 2)
stepper = lbm.LBMStepper(lbm.D2Q9, shape, lbm.BGK(), periodic=False, moving_walls=("lid",))
params = stepper.params(viscosity=units.viscosity, lid=(U, 0.0))
lid = lbm.face(shape, "y+")
state = stepper.init(params, walls=lbm.box_walls(shape) & ~lid, moving={"lid": lid})
""")

md("""
Twenty-five lid passes (t U / L = 25, 12 000 steps) settle the Re = 100 flow. Fields every
1 200 steps, the diagnostics (kinetic energy, mass, Mach) every 120: each save group has its own
time axis in the file.
""")

code("""
cavity_file = workdir / "cavity.h5"
result = run(stepper, state, params, n_steps=12_000,
             save_every={"fields": 1_200, "diagnostics": 120},
             out=cavity_file, store_type=FieldStore, progress=False)
print(result.steps_done, "steps in", round(result.wall_s, 1), "s;", result.frames_per_group)
print(sorted(p.name for p in workdir.iterdir()))
""")

md("""
## 2. Read it back: streamlines and Ghia's centrelines

xarray opens the file directly. Fields are stored in CF order `(time, y, x, component)`, the order
ParaView reads through the XDMF sidecar.
""")

code("""
ds = xr.open_dataset(cavity_file, engine="h5netcdf")
print(ds.velocity.dims, ds.velocity.shape)
ke = ds.kinetic_energy.values
print(f"kinetic energy over the last tenth: relative change {abs(ke[-1] - ke[-11]) / ke[-1]:.1e}")

vel = ds.velocity.isel(time_fields=-1).values[1:-1, 1:-1] / U   # fluid cells, (y, x, component)
s = (np.arange(N) + 0.5) / N                                    # cell centres in units of L
speed = np.hypot(vel[..., 0], vel[..., 1])
fig, ax = plt.subplots(figsize=(5, 5))
ax.streamplot(s, s, vel[..., 0], vel[..., 1], color=speed, cmap="viridis", density=1.6,
              linewidth=0.8)
ax.set_xlim(0, 1); ax.set_ylim(0, 1); ax.set_aspect("equal")
ax.set_xlabel("x / L"); ax.set_ylabel("y / L"); ax.set_title(f"lid-driven cavity, Re = {Re:g}")
""")

md("""
Ghia et al. tabulate u on the vertical centreline and v on the horizontal one. With N even the
centrelines fall between two cell columns (rows): average them, add the wall values (u = 1 at
the lid), and interpolate to Ghia's points.
""")

code("""
u_line = np.concatenate([[0], 0.5 * (vel[:, N // 2 - 1, 0] + vel[:, N // 2, 0]), [1]])
v_line = np.concatenate([[0], 0.5 * (vel[N // 2 - 1, :, 1] + vel[N // 2, :, 1]), [0]])
s_wall = np.concatenate([[0], s, [1]])
dev_u = np.max(np.abs(np.interp(GHIA_Y, s_wall, u_line) - GHIA_U[100]))
dev_v = np.max(np.abs(np.interp(GHIA_X, s_wall, v_line) - GHIA_V[100]))
print(f"max deviation from Ghia (units of the lid speed): u {dev_u:.4f}, v {dev_v:.4f}")

fig, ax = plt.subplots(1, 2, figsize=(10, 4))
ax[0].plot(u_line, s_wall, label=f"simkit, {N}$^2$ cells")
ax[0].plot(GHIA_U[100], GHIA_Y, "o", mfc="none", label="Ghia et al. (1982)")
ax[0].set_xlabel("u / U on x = L/2"); ax[0].set_ylabel("y / L"); ax[0].legend()
ax[1].plot(s_wall, v_line, label=f"simkit, {N}$^2$ cells")
ax[1].plot(GHIA_X, GHIA_V[100], "o", mfc="none", label="Ghia et al. (1982)")
ax[1].set_xlabel("x / L"); ax[1].set_ylabel("v / U on y = L/2"); ax[1].legend()
fig.tight_layout()
ds.close()
""")

md("""
## 3. The cylinder wake, through the command line

The `cylinder_wake` problem script sets up Schafer & Turek's benchmark 2D-2 (channel 22 D x 4.1 D,
cylinder 2 D from the inlet and 2 D above the floor, parabolic inflow of mean U, Re = U D / nu =
100) with a Zou-He velocity inlet and pressure outlet and TRT collision, ramps the inflow up
from rest, and prints the Strouhal number and force coefficients. `simkit run` is the same as
`python problems/cylinder_wake.py`. D = 12 cells keeps this notebook quick (the script's default
is 16; see `--help` for what resolution does to the numbers).
""")

code("""
from simkit.cli import main as simkit_cli

wake_file = workdir / "wake.h5"
rc = simkit_cli(["run", "cylinder_wake", "--d", "12", "--time", "50",
                 "--out", str(wake_file), "--no-progress"])
assert rc == 0, f"cylinder_wake exited with {rc}"
""")

md("""
The file holds the velocity, density and vorticity fields (20 frames) and the force on the
cylinder every 0.05 D / U. A vorticity snapshot of the last frame shows the Karman street:
""")

code("""
wake = xr.open_dataset(wake_file, engine="h5netcdf")
params = wake.attrs["parameters"]
print(params)
D, u_mean = 12, 0.05
w = wake.vorticity.isel(time_fields=-1).values * D / u_mean        # in units of U / D
fig, ax = plt.subplots(figsize=(11, 2.6))
im = ax.imshow(w, origin="lower", cmap="RdBu_r", vmin=-5, vmax=5,
               extent=(-0.5 / D, (w.shape[1] - 0.5) / D, -1 / D, (w.shape[0] - 1) / D))
ax.add_patch(plt.Circle((2, 2), 0.5, color="0.3"))
ax.set_xlabel("x / D"); ax.set_ylabel("y / D"); fig.colorbar(im, label="vorticity D / U")
""")

md("""
The lift coefficient c_L = 2 F_y / (rho U^2 D) oscillates at the shedding frequency. After the
start-up (the inflow ramp and the growth of the shedding) it is periodic; its spectrum's peak
gives St = f D / U, an independent check of the zero-crossing estimate the script printed.
""")

code("""
t = wake.time_diagnostics.values * u_mean / D                      # convective times
force = wake.obstacle_force.values
cl = 2 * force[:, 1] / (u_mean ** 2 * D)
cd = 2 * force[:, 0] / (u_mean ** 2 * D)
late = t > 0.6 * t[-1]
x = (cl[late] - cl[late].mean()) * np.hanning(late.sum())
spec = np.abs(np.fft.rfft(x, n=8 * late.sum()))
freq = np.fft.rfftfreq(8 * late.sum(), d=t[1] - t[0])
st = freq[np.argmax(spec)]
print(f"Strouhal number from the lift spectrum: {st:.3f} (Schafer & Turek 2D-2: 0.295-0.305)")
print(f"mean c_D {cd[late].mean():.3f}, max c_L {cl[late].max():.3f} over t U / D > {0.6 * t[-1]:.0f}")

fig, ax = plt.subplots(figsize=(9, 3))
ax.plot(t, cl, lw=0.8, label="lift c_L")
ax.plot(t, cd, lw=0.8, label="drag c_D")
ax.axvspan(t[late][0], t[-1], color="0.9", label="analysed")
ax.set_xlabel("t U / D"); ax.set_ylim(-1.5, 4); ax.legend(loc="lower left")
wake.close()
""")

nb = nbf.v4.new_notebook()
nb["cells"] = cells
nb["metadata"]["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbf.write(nb, Path(__file__).with_name("lbm_cavity_wake.ipynb"))
