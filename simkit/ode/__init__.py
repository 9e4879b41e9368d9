"""ODE problems and solvers on diffrax: single solves, ensembles, driver steppers."""

from ._problem import ODEProblem as ODEProblem, validate_problem as validate_problem
from ._solve import (
    default_solver as default_solver,
    solve as solve,
    solve_ensemble as solve_ensemble,
)
from ._stepper import ODEState as ODEState, ODEStepper as ODEStepper
