"""Worker for the FieldStore SIGKILL test: appends 2-D field frames forever (plus a diagnostic),
printing each frame index once `append` returned (data flushed, sidecar rewritten).

Frame i: vorticity[x, y] = i + (10 x + y) / 1000, velocity[x, y] = (i, -i).
"""

import sys

import numpy as np

from simkit.io import SaveGroup, Variable
from simkit.io._fields import FieldStore

NX, NY = 24, 16
groups = [
    SaveGroup(
        "fields",
        2,
        {
            "vorticity": Variable(("x", "y"), (NX, NY), "float32", "1/s"),
            "velocity": Variable(("x", "y", "component"), (NX, NY, 2), "float32", "m/s"),
        },
    ),
    SaveGroup("diagnostics", 1, {"energy": Variable((), (), "float64", "J")}),
]
store = FieldStore.create(
    sys.argv[1],
    groups,
    config={"writer": "kill-test"},
    time_units="s",
    coords={"x": (0.5 + 0.25 * np.arange(NX), "m"), "y": (-1.0 + 0.5 * np.arange(NY), "m")},
)
pattern = (10 * np.arange(NX)[:, None] + np.arange(NY)[None, :]) / 1000
i = 0
while True:
    velocity = np.broadcast_to(np.array([i, -i], np.float32), (1, NX, NY, 2))
    vorticity = (i + pattern)[None].astype(np.float32)
    store.append(
        {
            "fields": ([2 * i], [0.5 * i], {"vorticity": vorticity, "velocity": velocity}),
            "diagnostics": (
                [2 * i, 2 * i + 1],
                [0.5 * i, 0.5 * i + 0.25],
                {"energy": [float(i), i + 0.5]},
            ),
        }
    )
    print(i, flush=True)
    i += 1
