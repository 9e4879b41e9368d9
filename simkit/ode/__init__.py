"""ODE problems and solvers on diffrax: single solves, ensembles, driver steppers."""

from ._problem import ODEProblem as ODEProblem, validate_problem as validate_problem
from ._solve import (
    default_solver as default_solver,
    solve as solve,
    solve_ensemble as solve_ensemble,
)
from ._stepper import ODEState as ODEState, ODEStepper as ODEStepper
from ._fused import FusedSolution as FusedSolution, solve_ensemble_fused as solve_ensemble_fused
from ._rosenbrock import Rodas5 as Rodas5, Rodas5P as Rodas5P
from ._stiff import solve_stiff as solve_stiff, solve_stiff_ensemble as solve_stiff_ensemble
