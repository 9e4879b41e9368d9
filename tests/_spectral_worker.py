"""Worker process for the spectral kill/resume test, and the run it shares with
tests/test_spectral_driver.py: 2-D Kolmogorov flow (32 x 32, float32, forcing at 4 periods,
Re = A / (nu^2 k_f^3) = 6.25, above the laminar flow's stability threshold sqrt(2)) from a
seeded random vorticity, written to a FieldStore (HDF5 + XDMF).

usage: python _spectral_worker.py OUT [--hold-at STEP]
Prints "chunk <step>" (flushed) after every chunk is on disk and checkpointed (a checkpoint
after every chunk). With --hold-at, it then waits at that step for a line on stdin (which never
comes: the test kills it there), so the kill lands at a known step however fast chunks run.
"""

import sys

import jax

jax.config.update("jax_enable_x64", True)  # as tests/conftest.py
jax.config.update("jax_numpy_rank_promotion", "raise")

from simkit.fluids import spectral
from simkit.io import FieldStore
from simkit.run import run

N = 32
DT = 0.01  # CFL ~ 0.1 for this flow (|u| ~ 1, dx = 2 pi / 32)
SAVE_EVERY = {"fields": 100, "diagnostics": 10, "spectrum": 50}
CHUNK = 100
N_STEPS = 400
VISCOSITY, FORCING_AMPLITUDE = 0.05, 1.0


def stepper():
    return spectral.NavierStokes2D((N, N), DT, forcing=spectral.Kolmogorov(4), dtype="float32")


def kolmogorov(viscosity=VISCOSITY, forcing_amplitude=FORCING_AMPLITUDE):
    """(stepper, initial state, params): the Kolmogorov run every driver test shares (other
    parameter values give the same compiled chunk: they are array leaves)."""
    ns = stepper()
    params = ns.params(viscosity, drag=0.0, forcing_amplitude=forcing_amplitude)
    w0 = spectral.random_vorticity(ns.grid, seed=0, energy=0.5, peak_wavenumber=4.0)
    return ns, ns.init(params, vorticity=w0), params


def run_kolmogorov(out, **kw):
    ns, state, params = kolmogorov()
    return run(
        ns,
        state,
        params,
        n_steps=N_STEPS,
        save_every=SAVE_EVERY,
        chunk_steps=CHUNK,
        out=out,
        store_type=FieldStore,
        progress=False,
        **kw,
    )


def main():
    out = sys.argv[1]
    hold = int(sys.argv[sys.argv.index("--hold-at") + 1]) if "--hold-at" in sys.argv else None

    def report(step, n_frames):
        print(f"chunk {step}", flush=True)
        if step == hold:
            sys.stdin.readline()

    run_kolmogorov(out, checkpoint_interval=0.0, callback=report)


if __name__ == "__main__":
    main()
