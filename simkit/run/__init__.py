"""The run driver (host loop over jitted chunks, HDF5 output, checkpoints) and the solver
contract it drives; `VmappedStepper` runs an ensemble of one stepper as one run."""

from ._driver import (
    ADAPTIVE_CHECKPOINT_FACTOR as ADAPTIVE_CHECKPOINT_FACTOR,
    RunResult as RunResult,
    SimulationBlowUp as SimulationBlowUp,
    check_structure as check_structure,
    describe_stepper as describe_stepper,
    run as run,
)
from ._saving import (
    SavePlan as SavePlan,
    resolve_save_plan as resolve_save_plan,
    scan_plan as scan_plan,
)
from ._signals import RunInterrupted as RunInterrupted
from ._simulate import simulate as simulate
from ._stepper import AbstractStepper as AbstractStepper
from ._vmapped import VmappedStepper as VmappedStepper, shard_members as shard_members
