"""Worker for the H5MD SIGKILL test: appends frames forever, printing each frame index once its
append (and flush) returned. Frame i: positions and velocities all i, kinetic energies 2i, 2i+1."""

import sys

import numpy as np

from simkit.io._h5md import H5MDStore
from simkit.io._hdf5 import SaveGroup, Variable

N = 16
vec = ("particle", "spatial")
groups = [
    SaveGroup(
        "trajectory",
        10,
        {
            "position": Variable(vec, (N, 3), "float32", units="nm"),
            "velocity": Variable(vec, (N, 3), "float32", units="nm ps-1"),
        },
    ),
    SaveGroup("thermo", 5, {"kinetic_energy": Variable((), (), "float64", units="kJ mol-1")}),
]
store = H5MDStore.create(
    sys.argv[1],
    groups,
    config={"writer": "h5md-kill-test"},
    time_units="ps",
    box=[4.0, 4.0, 4.0],
    repeat_box=True,
    particle_group="trajectory",
)
i = 0
while True:
    frame = np.full((1, N, 3), i, np.float32)
    store.append(
        {
            "trajectory": ([10 * i], [0.02 * i], {"position": frame, "velocity": frame}),
            "thermo": (
                [10 * i, 10 * i + 5],
                [0.02 * i, 0.02 * i + 0.01],
                {"kinetic_energy": np.array([2.0 * i, 2.0 * i + 1])},
            ),
        }
    )
    print(i, flush=True)
    i += 1
