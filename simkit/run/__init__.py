"""The run driver (host loop over jitted chunks, HDF5 output, checkpoints) and the solver
contract it drives; `VmappedStepper` runs an ensemble of one stepper as one run."""

from ._driver import (
    ADAPTIVE_CHECKPOINT_FACTOR as ADAPTIVE_CHECKPOINT_FACTOR,
)
from ._driver import (
    RunResult as RunResult,
)
from ._driver import (
    SimulationBlowUp as SimulationBlowUp,
)
from ._driver import (
    check_structure as check_structure,
)
from ._driver import (
    describe_stepper as describe_stepper,
)
from ._driver import (
    run as run,
)
from ._saving import (
    SavePlan as SavePlan,
)
from ._saving import (
    resolve_save_plan as resolve_save_plan,
)
from ._saving import (
    scan_plan as scan_plan,
)
from ._signals import RunInterrupted as RunInterrupted
from ._simulate import simulate as simulate
from ._stepper import AbstractStepper as AbstractStepper
from ._vmapped import VmappedStepper as VmappedStepper
from ._vmapped import shard_members as shard_members
