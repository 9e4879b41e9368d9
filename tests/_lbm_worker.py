"""Worker process for the LBM kill/resume test, and the run it shares with
tests/test_lbm_driver.py: a lid-driven cavity (32 x 32 fluid cells, Re = 100, float32) written
to a FieldStore (HDF5 + XDMF).

usage: python _lbm_worker.py OUT [--hold-at STEP]
Prints "chunk <step>" (flushed) after every chunk is on disk and checkpointed (a checkpoint
after every chunk). With --hold-at, it then waits at that step for a line on stdin (which never
comes: the test kills it there), so the kill lands at a known step however fast chunks run.
"""

import sys

import jax

jax.config.update("jax_enable_x64", True)  # as tests/conftest.py
jax.config.update("jax_numpy_rank_promotion", "raise")

from simkit.fluids import lbm
from simkit.io import FieldStore
from simkit.run import run

N = 34  # 32 fluid cells + 2 wall layers
SAVE_EVERY = {"fields": 100, "diagnostics": 20}
CHUNK = 100
N_STEPS = 400


def cavity():
    """(stepper, initial state, params): walls on three sides, the lid (a moving wall) on y+."""
    stepper = lbm.LBMStepper(lbm.D2Q9, (N, N), periodic=(False, False), moving_walls=("lid",))
    params = stepper.params(viscosity=0.1 * (N - 2) / 100, lid=(0.1, 0.0))
    lid = lbm.face((N, N), "y+")
    state = stepper.init(params, walls=lbm.box_walls((N, N)) & ~lid, moving={"lid": lid})
    return stepper, state, params


def run_cavity(out, **kw):
    stepper, state, params = cavity()
    return run(
        stepper,
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

    run_cavity(out, checkpoint_interval=0.0, callback=report)


if __name__ == "__main__":
    main()
