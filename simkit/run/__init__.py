"""The run driver (host loop over jitted chunks, HDF5 output, checkpoints) and the solver
contract it drives."""

from ._driver import (
    RunResult as RunResult,
    SimulationBlowUp as SimulationBlowUp,
    describe_stepper as describe_stepper,
    run as run,
)
from ._simulate import scan_frames as scan_frames, simulate as simulate
from ._stepper import AbstractStepper as AbstractStepper
