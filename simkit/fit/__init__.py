"""Parameter fitting: least squares, minimisation, uncertainties, batches (LM, optimistix).

- `fit(model, params0, data, sigma=..., bounds=...)`: one least-squares fit (optimistix's
  Levenberg-Marquardt by default; any optimistix least-squares solver or minimiser, or
  `solver="simkit-lm"`, simkit's Levenberg-Marquardt that `fit_batch` runs, selectable);
  returns a `FitResult` with params, covariance, stderr, correlation, residuals, chi2, n_steps
  and a status. A failed fit raises `FitError` (carrying the last iterate) unless `throw=False`.
- `fit_batch`: many independent fits (one per experiment) as one batch, advanced in segments
  with the finished members dropped in between (not lockstep with the slowest member).
- `fit_multistart`: many starts of one fit as one batch; the best converged one is returned.
- `minimise(loss, params0)`: general minimisation (e.g. a negative log-likelihood) with an
  inverse-Hessian covariance.
- `ode_model(problem, ts)`: `model(params)` from a simkit `ODEProblem` solved at the data times
  (adaptive diffrax, or fixed-step RK4 for fast batches).

Design choices:
- Jacobians are forward-mode by default: a fit has few parameters and many residuals, so
  p forward passes beat m reverse passes, and forward mode goes through diffrax solves with
  `diffrax.ForwardMode()` while diffrax's default adjoint (a `custom_vjp`) only supports reverse
  mode. `jac="bwd"` is available for models that only support reverse mode.
- Bounds are handled by transforms to an unconstrained space (log / sigmoid); the covariance is
  reported in the user's parameters (delta method, see `_transforms`).
- Covariance: `(J^T J)^-1` of the weighted residuals at the optimum, scaled by
  `s^2 = chi2 / (m - p)` when no sigma is given (or `absolute_sigma=False`); with sigma given it
  is taken as the true noise level (SciPy `curve_fit(absolute_sigma=True)`). A singular `J^T J`
  gives an inf covariance with `covariance_ok=False` and a message, never an exception.
- Fitting needs float64 (`jax_enable_x64`); the entry points refuse to run without it.
"""

from ._batch import fit_batch as fit_batch
from ._batch import fit_multistart as fit_multistart
from ._least_squares import (
    MinimiseResult as MinimiseResult,
)
from ._least_squares import (
    fit as fit,
)
from ._least_squares import (
    minimise as minimise,
)
from ._ode import ode_model as ode_model
from ._ode import rk4_saveat as rk4_saveat
from ._result import FitError as FitError
from ._result import FitResult as FitResult
from ._result import FitStatus as FitStatus
from ._transforms import ParamTransform as ParamTransform
