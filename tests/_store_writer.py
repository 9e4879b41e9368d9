"""Worker for the SIGKILL test: appends frames forever, printing each frame index once flushed."""

import sys

import numpy as np

from simkit.io import FrameStore, Variable

store = FrameStore.create(
    sys.argv[1],
    {"field": Variable(("x", "y"), (64, 64), "float32", "1")},
    config={"writer": "kill-test"},
)
i = 0
while True:
    store.append({"": ([i], [0.5 * i], {"field": np.full((1, 64, 64), i, np.float32)})})
    print(i, flush=True)
    i += 1
