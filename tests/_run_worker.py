"""Worker process for kill/interrupt/resume tests: runs a Lorenz ensemble through the driver.

usage: python _run_worker.py OUT FINAL_NPY [--resume] [--no-out]
Prints "chunk <step>" (flushed) after every chunk is on disk.
"""

import sys

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from simkit.ode import ODEStepper  # noqa: E402
from simkit.run import run  # noqa: E402


def lorenz(t, y, p):
    return jnp.stack([p["sigma"] * (y[1] - y[0]), y[0] * (p["rho"] - y[2]) - y[1],
                      y[0] * y[1] - p["beta"] * y[2]])


def main():
    out, final = sys.argv[1], sys.argv[2]
    resume = "--resume" in sys.argv
    params = {"sigma": jnp.asarray(10.0), "rho": jnp.asarray(28.0), "beta": jnp.asarray(8 / 3)}
    y0 = jnp.asarray(np.random.default_rng(1).normal(size=(256, 3))) + jnp.asarray([[1.0, 1.0, 20.0]])
    stepper = ODEStepper(lorenz, dt=1e-3)
    state = stepper.init(y0, params)
    res = run(stepper, state, params, n_steps=40_000, save_every=100, chunk_steps=200,
              out=None if "--no-out" in sys.argv else out, resume=resume, progress=False,
              config={"worker": "lorenz"},
              callback=lambda step, n_frames: print(f"chunk {step}", flush=True))
    np.save(final, np.asarray(res.state.y))


if __name__ == "__main__":
    main()
