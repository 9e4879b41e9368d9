"""ODE problems and solvers on diffrax: single solves, ensembles, driver steppers."""

from ._fused import FusedSolution as FusedSolution
from ._fused import solve_ensemble_fused as solve_ensemble_fused
from ._problem import ODEProblem as ODEProblem
from ._problem import validate_problem as validate_problem
from ._rosenbrock import Rodas5 as Rodas5
from ._rosenbrock import Rodas5P as Rodas5P
from ._solve import (
    default_solver as default_solver,
)
from ._solve import (
    solve as solve,
)
from ._solve import (
    solve_ensemble as solve_ensemble,
)
from ._stepper import ODEState as ODEState
from ._stepper import ODEStepper as ODEStepper
from ._stiff import solve_stiff as solve_stiff
from ._stiff import solve_stiff_ensemble as solve_stiff_ensemble
