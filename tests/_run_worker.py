"""Worker process for kill/interrupt/resume tests: runs a Lorenz ensemble through the driver.

usage: python _run_worker.py OUT FINAL_NPY [--resume] [--no-out] [--keep-ignored]
                             [--checkpoint-interval S] [--n-steps N] [--chunk-steps N]
                             [--walkers]
Prints "chunk <step>" (flushed) after every chunk is on disk. Errors go through the command
line's handler, so the exit code is the documented one (143 for SIGTERM, 5 for a locked file).
"""

import signal
import sys

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from simkit.cli import handle_errors  # noqa: E402
from simkit.ode import ODEStepper  # noqa: E402
from simkit.run import run  # noqa: E402


def lorenz(t, y, p):
    return jnp.stack(
        [
            p["sigma"] * (y[1] - y[0]),
            y[0] * (p["rho"] - y[2]) - y[1],
            y[0] * y[1] - p["beta"] * y[2],
        ]
    )


def option(name, default):
    return type(default)(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


def walkers(out, final, resume):
    """Per-quantity save rates (thermo every 10, trajectory every 50) through the driver."""
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from _toy import Walkers

    res = run(
        Walkers(),
        Walkers.initial(),
        {"D": jnp.asarray(0.5)},
        n_steps=option("--n-steps", 100_000),
        save_every={"thermo": 10, "trajectory": 50},
        chunk_steps=500,
        out=None if "--no-out" in sys.argv else out,
        resume=resume,
        progress=False,
        checkpoint_interval=0.0,
        callback=lambda step, n_frames: print(f"chunk {step}", flush=True),
    )
    np.save(final, np.asarray(res.state["x"]))


def main():
    out, final = sys.argv[1], sys.argv[2]
    resume = "--resume" in sys.argv
    if "--walkers" in sys.argv:
        return walkers(out, final, resume)
    params = {"sigma": jnp.asarray(10.0), "rho": jnp.asarray(28.0), "beta": jnp.asarray(8 / 3)}
    y0 = jnp.asarray(np.random.default_rng(1).normal(size=(256, 3))) + jnp.asarray(
        [[1.0, 1.0, 20.0]]
    )
    stepper = ODEStepper(lorenz, dt=1e-3)
    state = stepper.init(y0, params)
    res = run(
        stepper,
        state,
        params,
        n_steps=option("--n-steps", 40_000),
        save_every=100,
        chunk_steps=option("--chunk-steps", 200),
        out=None if "--no-out" in sys.argv else out,
        resume=resume,
        progress=False,
        config={"worker": "lorenz"},
        checkpoint_interval=option("--checkpoint-interval", 0.0),
        callback=lambda step, n_frames: print(f"chunk {step}", flush=True),
    )
    np.save(final, np.asarray(res.state.y))


if __name__ == "__main__":
    if "--keep-ignored" not in sys.argv:
        # A suite started as a background job inherits SIGINT as ignored; the tests send
        # SIGINT on purpose, so restore Python's default handler (Ctrl-C -> KeyboardInterrupt).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        # Likewise SIGHUP, which `nohup` (a suite run in the background) leaves ignored: the
        # driver keeps ignored signals ignored, so the SIGHUP test would never stop the worker.
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
    raise SystemExit(handle_errors(main))
