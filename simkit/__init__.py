"""simkit: differentiable scientific simulation on JAX.

Subpackages: `simkit.ode` (ODE problems and ensemble solves on diffrax), `simkit.run` (the
resumable run driver), `simkit.io` (HDF5 stores), `simkit.ensemble` (sharded batched calls),
`simkit.fit` (parameter fitting on optimistix).
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from ._checks import (
    SimkitInputError as SimkitInputError,
)
from ._checks import (
    require_finite as require_finite,
)
from ._checks import (
    require_positive as require_positive,
)

try:
    __version__ = _version("simkit")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from ._options import (  # noqa: E402 - argparse types for problem scripts
    finite_float as finite_float,
)
from ._options import (
    nonnegative_float as nonnegative_float,
)
from ._options import (
    positive_int as positive_int,
)
