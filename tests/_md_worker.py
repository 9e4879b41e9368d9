"""Worker process for the MD kill/resume test: the driver test's run (tight neighbor-list
capacities that overflow and grow) written to an H5MD file.

usage: python _md_worker.py OUT [--resume] [--cells]
Prints "chunk <step>" (flushed) after every chunk is on disk.
"""

import sys
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")  # as tests/conftest.py

sys.path.insert(0, str(Path(__file__).parent))
from _md_common import driver_system, run_driver


def main():
    out = sys.argv[1]
    stepper, tight, _, params = driver_system(cells="--cells" in sys.argv)
    run_driver(
        stepper,
        tight,
        params,
        out,
        resume="--resume" in sys.argv,
        callback=lambda step, n_frames: print(f"chunk {step}", flush=True),
    )


if __name__ == "__main__":
    main()
