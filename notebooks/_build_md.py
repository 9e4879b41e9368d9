"""Writes notebooks/md_lj_liquid.ipynb from the cells below (kept as code so reviews see plain
Python diffs). Run: .venv/bin/python notebooks/_build_md.py"""

from pathlib import Path

import nbformat as nbf

cells = []


def md(text):
    cells.append(nbf.v4.new_markdown_cell(text.strip()))


def code(text):
    cells.append(nbf.v4.new_code_cell(text.strip()))


md("""
# A Lennard-Jones liquid: from lattice to melt

This notebook runs top to bottom in the test suite (`tests/test_notebooks.py`). It

1. builds LAMMPS's `in.lj` system (fcc at rho* = 0.8442, T* = 1.44) with 500 atoms,
2. runs NVE dynamics through simkit's run driver into an H5MD file,
3. reads the file back (h5py and MDAnalysis) and checks energy conservation,
4. computes the radial distribution function of the melt and its mean squared displacement.

All quantities are in reduced Lennard-Jones units (sigma, epsilon, tau = sigma sqrt(m/epsilon)).
""")

code("""
import tempfile, pathlib
import jax
import jax.numpy as jnp
import numpy as np
import h5py
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
%matplotlib inline

import simkit
import simkit.md as md
from simkit.io import H5MDStore
from simkit.run import run
print("simkit", simkit.__version__, "| jax", jax.__version__)
""")

md("""
## 1. Set-up

An fcc crystal of 5^3 unit cells, Maxwell-Boltzmann velocities at T* = 1.44 with zero total
momentum, and Lennard-Jones cut at 2.5 sigma with the energy shifted to zero at the cutoff (so
the total energy is a conserved quantity of the truncated model). The perfect lattice energy
with plain truncation is the lattice sum -6.7734 per atom; the shift raises it by a constant.
""")

code("""
positions, box = md.lattice("fcc", 5, density=0.8442)
lj = md.LennardJones(cutoff=2.5, shift="energy")
params = lj.params(epsilon=1.0, sigma=1.0)
stepper = md.VelocityVerlet(lj, box=box, dt=0.005, skin=0.3)
velocities = md.maxwell_boltzmann(jax.random.key(87287), positions.shape, kT=1.44)
state = stepper.init(positions, params, velocities)
print(f"N = {positions.shape[0]}, box = {box[0]:.4f}^3, neighbor capacity {state.neighbors.capacity}")
print({k: round(float(v), 5) for k, v in stepper.thermo(state, params).items()})
""")

md("""
## 2. Run through the driver into H5MD

Thermodynamics every 10 steps, configurations every 100: each group at its own rate. The driver
compiles a chunk of steps, checks for NaN and neighbor-list overflow after each chunk, appends
to the file and writes checkpoints (a killed run resumes with `resume=True`).
""")

code("""
out = pathlib.Path(tempfile.mkdtemp()) / "melt.h5md"
result = run(stepper, state, params, n_steps=3000, save_every={"thermo": 10, "trajectory": 100},
             out=out, store_type=H5MDStore, store_options=stepper.h5md_options(), progress=False)
print(result.steps_done, "steps;", result.frames_per_group, "frames per group")
""")

md("""
## 3. Read it back: energy conservation

The file follows H5MD 1.1: `/observables/<name>/{step,time,value}` and
`/particles/trajectory/{position,velocity,image,box}`. MDAnalysis reads it with its H5MD reader; since reduced
units have no unit attribute, tell it not to convert units.
""")

code("""
with h5py.File(out, "r") as f:
    obs = {k: f[f"observables/{k}/value"][:] for k in
           ("kinetic_energy", "potential_energy", "total_energy", "temperature", "msd")}
    t = f["observables/total_energy/time"][:]
e = obs["total_energy"]
print(f"total energy per atom: {e[0]:.5f} -> {e[-1]:.5f}; relative drift {(e[-1]-e[0])/abs(e[0]):+.1e}, "
      f"fluctuation {e.std()/abs(e.mean()):.1e}")
print(f"temperature after melting: {obs['temperature'][len(t)//2:].mean():.3f}")

fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
for k in ("kinetic_energy", "potential_energy", "total_energy"):
    ax[0].plot(t, obs[k], label=k.replace("_", " "))
ax[0].set_xlabel("t (tau)"); ax[0].set_ylabel("energy per atom (epsilon)"); ax[0].legend()
ax[1].plot(t, (e - e[0]) / abs(e[0]))
ax[1].set_xlabel("t (tau)"); ax[1].set_ylabel("relative total-energy change")
fig.tight_layout()
""")

code("""
import MDAnalysis as mda
# Reduced LJ units carry no unit attribute; MDAnalysis then needs convert_units=False, which it
# accepts on load_new (not in the Universe constructor).
u = mda.Universe.empty(positions.shape[0], trajectory=True)
u.load_new(str(out), format="H5MD", convert_units=False)
print(u.atoms.n_atoms, "atoms,", len(u.trajectory), "frames; box", u.dimensions[:3].round(4))
with h5py.File(out, "r") as f:
    last = f["particles/trajectory/position/value"][-1]
u.trajectory[-1]
print("MDAnalysis positions equal the file:", np.allclose(u.atoms.positions, last, atol=1e-5))
""")

md("""
## 4. Structure: the radial distribution function

g(r) averaged over the configurations of the second half of the run. A crystal has sharp
peaks at the fcc shell distances; the melt shows the broad liquid shells instead.
""")

code("""
with h5py.File(out, "r") as f:
    frames = f["particles/trajectory/position/value"][:]
rdf = jax.jit(lambda x: md.radial_distribution(x, box, r_max=box[0] / 2, bins=120))
r, g0 = rdf(jnp.asarray(frames[0]))
g = np.mean([np.asarray(rdf(jnp.asarray(x))[1]) for x in frames[len(frames) // 2:]], axis=0)
print(f"first peak of the liquid g(r): r = {float(r[np.argmax(g)]):.3f} sigma, height {g.max():.2f}")
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(r, g0, lw=0.8, label="t = 0 (fcc)")
ax.plot(r, g, label="melt (second half)")
ax.axhline(1, color="k", lw=0.5)
ax.set_xlabel("r (sigma)"); ax.set_ylabel("g(r)"); ax.set_ylim(0, 8); ax.legend()
""")

md("""
## 5. Dynamics: mean squared displacement

The driver saves the MSD from unwrapped positions (`image` counts make it continuous across
the periodic boundaries). At short times the motion is ballistic, MSD = <v^2> t^2 = 3 T t^2; at
long times diffusive, MSD = 6 D t.
""")

code("""
msd = obs["msd"]
T0 = 1.44
late = t > t[-1] / 2
D = np.polyfit(t[late], msd[late], 1)[0] / 6
print(f"self-diffusion coefficient from the late-time slope: D = {D:.4f} sigma^2/tau")
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.loglog(t[1:], msd[1:], label="simkit")
ax.loglog(t[1:40], 3 * T0 * t[1:40] ** 2, "--", label="ballistic 3 T t^2")
ax.loglog(t[late], 6 * D * t[late], ":", label=f"diffusive 6 D t, D = {D:.3f}")
ax.set_xlabel("t (tau)"); ax.set_ylabel("MSD (sigma^2)"); ax.legend()
""")

nb = nbf.v4.new_notebook()
nb["cells"] = cells
nb["metadata"]["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbf.write(nb, Path(__file__).with_name("md_lj_liquid.ipynb"))
