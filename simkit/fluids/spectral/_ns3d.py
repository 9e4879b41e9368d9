"""`NavierStokes3D`: incompressible 3-D Navier-Stokes in velocity form on a triply periodic box,
as a `simkit.run.AbstractStepper`.

    du/dt = P[u x w] + nu lap u - mu u + P f,     w = curl u,   div u = 0,

with viscosity nu, linear drag mu and a steady force f. The advection term is written in
rotational form, -(u . grad) u = u x w - grad(|u|^2 / 2), and the gradient, together with the
pressure, is removed by the Leray projection P(k) = I - k k^T / |k|^2 (Orszag & Patterson 1972,
Phys. Rev. Lett. 28:76; Canuto et al., Spectral Methods, Springer 2006, sec. 3.4).
Pseudo-spectral in space (Fourier, 2/3-rule dealiasing, so the truncated system is the exact
Galerkin truncation and conserves energy without viscosity), integrating-factor Runge-Kutta 4
in time (the scheme of `NavierStokes2D`): the linear terms are integrated exactly, so a flow
whose nonlinear term vanishes (a Beltrami flow such as `abc_flow`) decays exactly.

Cost per evaluation of the nonlinear term: 6 inverse real 3-D FFTs (u and w) and 3 forward
(u x w); 36 per step (`FFTS_PER_STEP_3D`), 3 more per step with a force field.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike
from jaxtyping import Array, Complex, Float, Int

from ..._checks import SimkitInputError
from ...io import Variable
from ...run import AbstractStepper
from ._checks import check_dt, check_dtype, real_number, round_down
from ._grid import _real_dtype, lift
from ._grid3d import SpectralGrid3D
from ._ifrk4 import ifrk4_step
from ._initial import default_spectrum
from ._stepper import _INTERNAL_DIRS, MAX_CFL

FFTS_PER_STEP_3D = 36  # 4 stages x (6 inverse + 3 forward); +3 with a force field
"""FFTs of one `NavierStokes3D` step (4 RK4 stages x (6 inverse + 3 forward); 3 more with a
force field): the unit of the benchmarks' cost model."""


class SpectralState3D(eqx.Module):
    """State of a 3-D spectral Navier-Stokes run (a pytree).

    Attributes:
        velocity_hat: `(3, nx, ny, nz // 2 + 1)` complex rfftn of the velocity components
            (length / time), divergence-free, dealiased, zero mean. Memory: 3 nx ny (nz/2+1)
            x 8 bytes in float32 (64^3: 3.2 MiB).
        step: int32 number of steps taken; model time is `step * dt`.

    Example:
        >>> state = ns.init(params, taylor_green_3d(ns.grid))
        >>> state.velocity_hat.shape  # (3, 64, 64, 33) on a 64^3 grid
    """

    velocity_hat: Complex[Array, "3 nx ny nk"]
    step: Int[Array, ""]


class NavierStokes3D(AbstractStepper):
    """3-D incompressible Navier-Stokes, velocity form, pseudo-spectral, on a periodic box.

    Reduced units as `NavierStokes2D`: lengths in the box's units (default 2 pi per side), time
    in those of `dt`, viscosity = length^2 / time, drag = 1 / time.

    Args:
        shape: grid points `(nx, ny, nz)`, each >= 8 (even, FFT-friendly sizes are fastest).
        dt: time step (> 0); `init` refuses one whose advective CFL number
            dt max(|u|/dx + |v|/dy + |w|/dz) exceeds `MAX_CFL` for the initial field.
        box: box lengths `(Lx, Ly, Lz)` (default `(2 pi,) * 3`).
        forcing: None (default) or `"field"`: a steady force (per unit mass) given as
            `params["forcing"]` `(nx, ny, nz, 3)`; its divergence-free, dealiased part acts.
        dtype: "float32" (default) or "float64"; the state is complex64 / complex128.

    Params (from `stepper.params(...)`): `viscosity` nu > 0, `drag` mu >= 0, and `forcing`
    with `forcing="field"`: array leaves, so `jax.grad` reaches all of them.

    Saved quantities (`observe`), in three save groups:
        fields: `velocity` and `vorticity` `(nx, ny, nz, 3)`.
        diagnostics: `energy` <|u|^2>/2, `enstrophy` <|w|^2>/2, `dissipation` nu <|w|^2>,
            `injection` <f . u>, `cfl`, `max_divergence` max |div u| (round-off only).
            Energy budget: d(energy)/dt = injection - dissipation - 2 mu energy.
        spectrum: `energy_spectrum` E(k) on shells k_s = s 2 pi / max(Lx, Ly, Lz).

    Example (decaying Taylor-Green vortex, 64^3):
        >>> from simkit.fluids import spectral
        >>> ns = spectral.NavierStokes3D((64, 64, 64), dt=0.01)
        >>> params = ns.params(viscosity=1 / 400)
        >>> state = ns.init(params, spectral.taylor_green_3d(ns.grid))
        >>> state = ns.step(state, params)
    """

    shape: tuple[int, int, int] = eqx.field(static=True)
    box: tuple[float, float, float] = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    forcing: Any = eqx.field(static=True, default=None)
    dtype: str = eqx.field(static=True, default="float32")

    def __init__(
        self,
        shape: Sequence[int],
        dt: float,
        *,
        box: Sequence[float] = (2 * math.pi,) * 3,
        forcing: Any = None,
        dtype: str = "float32",
    ):
        grid = SpectralGrid3D(shape, box)
        self.shape, self.box = grid.shape, grid.box
        self.dt = check_dt(dt)
        if not (forcing is None or (isinstance(forcing, str) and forcing == "field")):
            raise SimkitInputError(
                f'forcing must be None or "field" (a force field in params), got {forcing!r}.'
            )
        self.forcing = forcing
        self.dtype = check_dtype(dtype)

    @property
    def grid(self) -> SpectralGrid3D:
        """The `SpectralGrid3D` of this stepper."""
        return SpectralGrid3D(self.shape, self.box)

    @property
    def complex_dtype(self) -> np.dtype:
        """dtype of the spectral state: complex64 for float32, complex128 for float64."""
        return np.result_type(np.dtype(self.dtype), np.complex64)

    # ---- parameters and initial state ----------------------------------------------------

    def params(
        self, viscosity: float, *, drag: float = 0.0, forcing: Any = None
    ) -> dict[str, Array]:
        """Checked run parameters as a dict of arrays.

        Args:
            viscosity: kinematic viscosity nu > 0 (length^2 / time).
            drag: linear drag coefficient mu >= 0 (1 / time).
            forcing: the force field `(nx, ny, nz, 3)` for `forcing="field"` (length / time^2).

        Raises:
            SimkitInputError: a non-positive or non-finite viscosity, a negative drag, a
                forcing that does not match the stepper's, a field of the wrong shape or with
                NaN.
        """
        out = {
            "viscosity": self._scalar("viscosity", viscosity, positive=True),
            "drag": self._scalar("drag", drag, positive=False),
        }
        if self.forcing == "field":
            if forcing is None:
                raise SimkitInputError(
                    'the stepper has forcing="field": pass params(..., '
                    "forcing=<(nx, ny, nz, 3) force field>)."
                )
            out["forcing"] = self._field("forcing", forcing)
        elif forcing is not None:
            raise SimkitInputError(
                "a forcing was given but the stepper has forcing=None; build "
                'it with NavierStokes3D(..., forcing="field").'
            )
        return out

    def _scalar(self, name, value, *, positive):
        if isinstance(value, jax.core.Tracer):
            return value
        v = real_number(value)
        if v is None:
            raise SimkitInputError(f"{name} must be a real number, got {value!r}.")
        if not math.isfinite(v):
            raise SimkitInputError(f"{name} must be finite, got {value!r}.")
        if positive and v <= 0:
            raise SimkitInputError(f"{name} must be > 0, got {value!r}.")
        if not positive and v < 0:
            raise SimkitInputError(f"{name} must be >= 0, got {value!r}.")
        return jnp.asarray(v, self.dtype)

    def _field(self, name, value):
        want = self.shape + (3,)
        try:
            arr = value if isinstance(value, jax.core.Tracer) else np.asarray(value)
        except ValueError:  # e.g. a ragged nested list
            raise SimkitInputError(
                f"{name} must be an array of shape {want}, got a "
                f"{type(value).__name__} numpy cannot read as one."
            ) from None
        if arr.shape != want:
            raise SimkitInputError(
                f"{name} must have shape {want} (nx, ny, nz, component), got {arr.shape}."
            )
        if not isinstance(arr, jax.core.Tracer):
            if arr.dtype.kind not in "fiu":
                raise SimkitInputError(f"{name} must be a real array, got dtype {arr.dtype}.")
            bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
            if bad:
                raise SimkitInputError(f"{name} contains {bad} NaN/inf value(s).")
        return jnp.asarray(arr, self.dtype)

    def init(self, params: Mapping[str, Array], velocity: Any) -> SpectralState3D:
        """The initial state from a velocity field `(nx, ny, nz, 3)` (length / time).

        The field is projected onto what the solver represents: its divergence-free part,
        without the mean (a uniform flow is only a Galilean shift) and without the modes the 2/3
        rule removes. Differentiable with respect to the field (the checks are skipped for
        traced values).

        Args:
            params: from `params()`.
            velocity: `(nx, ny, nz, 3)`, e.g. from `taylor_green_3d`, `abc_flow` or
                `random_velocity_3d`.

        Raises:
            SimkitInputError: a wrong shape, NaN/inf, or a time step above the CFL limit
                `MAX_CFL` for this field (the message gives a stable dt).
        """
        u_hat = _initial_hat(self.grid, self.complex_dtype, self._field("velocity", velocity))
        state = SpectralState3D(velocity_hat=u_hat, step=jnp.asarray(0, jnp.int32))
        if not isinstance(u_hat, jax.core.Tracer):
            self.check_time_step(state)
        return state

    def cfl(self, state: SpectralState3D) -> Float[Array, ""]:
        """Advective CFL number dt max(|u|/dx + |v|/dy + |w|/dz) of `state`."""
        return cfl_number_3d(self.grid, self.grid.vector_to_physical(state.velocity_hat), self.dt)

    def check_time_step(self, state: SpectralState3D) -> None:
        """Raise `SimkitInputError` if the CFL number of `state` exceeds `MAX_CFL`; warn above
        half of it."""
        c = float(_cfl_of_state(self.grid, self.dt, state.velocity_hat))
        if c > MAX_CFL:
            raise SimkitInputError(
                f"dt = {self.dt:g} gives an advective CFL number of {c:.3g} for the initial "
                f"field, above the stability limit {MAX_CFL}; use dt <= "
                f"{round_down(self.dt * MAX_CFL / c):g} (CFL 0.5: "
                f"{round_down(self.dt * 0.5 / c):g})."
            )
        if c > 0.5 * MAX_CFL:
            warnings.warn(
                f"dt = {self.dt:g} gives a CFL number of {c:.3g} for the initial field, "
                f"close to the limit {MAX_CFL}; a flow that speeds up may blow up.",
                skip_file_prefixes=_INTERNAL_DIRS,
            )

    # ---- the step ------------------------------------------------------------------------

    def nonlinear(self, velocity_hat: Complex[Array, "3 nx ny nk"]) -> Complex[Array, "3 nx ny nk"]:
        """P[u x w] in spectral space, dealiased: -(u . grad) u without its gradient part
        (6 inverse + 3 forward real FFTs)."""
        grid = self.grid
        both = grid.to_physical(jnp.concatenate([velocity_hat, grid.curl_hat(velocity_hat)]))
        u, w = both[:3], both[3:]
        cross = jnp.stack(
            [u[1] * w[2] - u[2] * w[1], u[2] * w[0] - u[0] * w[2], u[0] * w[1] - u[1] * w[0]]
        )
        return grid.project(grid.to_spectral(cross))

    def forcing_hat(self, params) -> Complex[Array, "3 nx ny nk"] | None:
        """The projected, dealiased spectral force of `params`, or None without forcing."""
        if self.forcing is None:
            return None
        grid = self.grid
        return grid.project(grid.vector_to_spectral(params["forcing"])).astype(self.complex_dtype)

    def step(self, state: SpectralState3D, params) -> SpectralState3D:
        """One integrating-factor RK4 step (Lawson 1967, SIAM J. Numer. Anal. 4:372), as
        `NavierStokes2D.step` with L = -nu k^2 - mu and N(u) = P[u x w] + P f. Pure and
        jittable; 36 real 3-D FFTs (39 with a force field)."""
        u = state.velocity_hat
        k2 = self.grid.k_squared_like(u)
        lin = -(params["viscosity"] * k2 + params["drag"])
        new = ifrk4_step(u, lin, self.dt, self.nonlinear, self.forcing_hat(params))
        return SpectralState3D(velocity_hat=new, step=state.step + 1)

    def time(self, state: SpectralState3D) -> Array:
        return state.step.astype(self.dtype) * self.dt

    # ---- observables ---------------------------------------------------------------------

    def injection(self, state: SpectralState3D, params) -> Float[Array, ""]:
        """Power input by the forcing <f . u> (velocity^2 / time)."""
        f = self.forcing_hat(params)
        if f is None:
            return jnp.zeros((), self.dtype)
        return box_mean_product_3d(self.grid, f, state.velocity_hat)

    def observe(self, state: SpectralState3D, params) -> dict[str, Array]:
        # One compiled call also when called eagerly (the driver observes the initial state
        # outside its chunk program): op by op it costs seconds of small compiles.
        return _observe(self, state, params)

    def save_groups(self) -> dict[str, tuple[str, ...]]:
        return {
            "fields": ("velocity", "vorticity"),
            "diagnostics": (
                "energy",
                "enstrophy",
                "dissipation",
                "injection",
                "cfl",
                "max_divergence",
            ),
            "spectrum": ("energy_spectrum",),
        }

    def variables(self, state: SpectralState3D, params) -> dict[str, Variable]:
        shape, dt = self.shape + (3,), self.dtype
        n_shells = len(shell_wavenumbers_3d(self.grid))
        dims = ("x", "y", "z", "component")
        # Reduced units "1" (as NavierStokes2D and the LBM stepper); dimensions in long_name.
        return {
            "velocity": Variable(dims, shape, dt, "1", "velocity (u, v, w) [length/time]"),
            "vorticity": Variable(dims, shape, dt, "1", "vorticity curl u [1/time]"),
            "energy": Variable((), (), dt, "1", "kinetic energy <|u|^2>/2 [length^2/time^2]"),
            "enstrophy": Variable((), (), dt, "1", "enstrophy <|curl u|^2>/2 [1/time^2]"),
            "dissipation": Variable(
                (), (), dt, "1", "viscous dissipation rate nu <|curl u|^2> [length^2/time^3]"
            ),
            "injection": Variable((), (), dt, "1", "forcing power <f . u> [length^2/time^3]"),
            "cfl": Variable(
                (), (), dt, "1", "advective CFL number dt max(|u|/dx + |v|/dy + |w|/dz)"
            ),
            "max_divergence": Variable(
                (), (), dt, "1", "max |div u| (round-off; 0 in exact arithmetic) [1/time]"
            ),
            "energy_spectrum": Variable(
                ("k",), (n_shells,), dt, "1", "shell-summed energy spectrum E(k) [length^3/time^2]"
            ),
        }

    def coords(self, state, params) -> dict[str, tuple[Any, str]]:
        x, y, z = self.grid.points()
        return {
            "x": (x, "1"),
            "y": (y, "1"),
            "z": (z, "1"),
            "component": (["x", "y", "z"], ""),
            "k": (shell_wavenumbers_3d(self.grid), "1"),
        }

    def time_units(self) -> str:
        return "1"

    def blow_up_hint(self) -> str:
        return (
            "A spectral Navier-Stokes run blows up when the advective CFL number "
            "dt max(|u|/dx + |v|/dy + |w|/dz) grows past ~1.35: lower dt, or raise the "
            "viscosity or the resolution if the flow is under-resolved (energy piling up at "
            "the largest wavenumbers of the spectrum)."
        )


@functools.partial(jax.jit, static_argnums=0)
def _observe(stepper: NavierStokes3D, state: SpectralState3D, params) -> dict[str, Array]:
    grid = stepper.grid
    u_hat = state.velocity_hat
    velocity = grid.vector_to_physical(u_hat)
    w_hat = grid.curl_hat(u_hat)
    return {
        "velocity": velocity,
        "vorticity": grid.vector_to_physical(w_hat),
        "energy": energy_3d(grid, u_hat),
        "enstrophy": 0.5 * box_mean_product_3d(grid, w_hat, w_hat),
        "dissipation": params["viscosity"] * box_mean_product_3d(grid, w_hat, w_hat),
        "injection": stepper.injection(state, params),
        "cfl": cfl_number_3d(grid, velocity, stepper.dt),
        "max_divergence": jnp.max(jnp.abs(grid.to_physical(grid.divergence_hat(u_hat)))),
        "energy_spectrum": energy_spectrum_3d(grid, u_hat),
    }


@functools.partial(jax.jit, static_argnums=(0, 1))
def _initial_hat(grid: SpectralGrid3D, complex_dtype, velocity):
    """The projected (solenoidal, dealiased, zero-mean) spectral velocity of a physical field;
    one compiled call (eager, op by op, it costs ~1 s of compiles per new grid)."""
    u_hat = grid.project(grid.vector_to_spectral(velocity))
    return u_hat.at[:, 0, 0, 0].set(0).astype(complex_dtype)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _cfl_of_state(grid: SpectralGrid3D, dt: float, velocity_hat):
    return cfl_number_3d(grid, grid.vector_to_physical(velocity_hat), dt)


# ---- diagnostics of a spectral velocity `(..., 3, nx, ny, nk)` (Parseval, no FFT) -------------


def box_mean_product_3d(
    grid: SpectralGrid3D,
    a_hat: Complex[Array, "*b 3 nx ny nk"],
    b_hat: Complex[Array, "*b 3 nx ny nk"],
) -> Float[Array, "*b"]:
    """<a . b>, the box mean of the dot product of two real vector fields given by their
    rfftn (Parseval).

    Example (twice the kinetic energy per unit volume):
        >>> u2 = box_mean_product_3d(ns.grid, state.velocity_hat, state.velocity_hat)
    """
    n2 = float(math.prod(grid.shape)) ** 2
    w = lift(grid.rfft_weights().astype(_real_dtype(a_hat)) / n2, a_hat)
    return jnp.sum(w * jnp.real(jnp.conj(a_hat) * b_hat), axis=(-4, -3, -2, -1))


def energy_3d(
    grid: SpectralGrid3D, velocity_hat: Complex[Array, "*b 3 nx ny nk"]
) -> Float[Array, "*b"]:
    """Kinetic energy per unit volume <|u|^2> / 2 (velocity^2), of each field of a batch.

    Example:
        >>> e = energy_3d(ns.grid, state.velocity_hat)  # 1/8 for a unit Taylor-Green vortex
    """
    return 0.5 * box_mean_product_3d(grid, velocity_hat, velocity_hat)


def shell_wavenumbers_3d(grid: SpectralGrid3D) -> np.ndarray:
    """Centres k_s = s dk of the spectrum's shells, dk = 2 pi / max(box) (1 / length).

    Example:
        >>> k = shell_wavenumbers_3d(SpectralGrid3D((64, 64, 64)))  # numpy (n_shells,)
    """
    dk = 2 * math.pi / max(grid.box)
    k_max = math.sqrt(sum(float(np.max(k**2)) for k in grid.wavenumbers()))
    return np.arange(int(np.rint(k_max / dk)) + 1) * dk


def energy_spectrum_3d(
    grid: SpectralGrid3D, velocity_hat: Complex[Array, "*b 3 nx ny nk"]
) -> Float[Array, "*b nshell"]:
    """Shell-summed energy spectrum E(k_s) at `shell_wavenumbers_3d(grid)` (velocity^2 x
    length): the energy of the modes with |k| in [k_s - dk/2, k_s + dk/2), divided by dk, so
    that sum_s E(k_s) dk = `energy_3d`.

    Example:
        >>> k = shell_wavenumbers_3d(ns.grid)
        >>> e_k = energy_spectrum_3d(ns.grid, state.velocity_hat)  # (len(k),)
    """
    dk = 2 * math.pi / max(grid.box)
    n_shells = len(shell_wavenumbers_3d(grid))
    n2 = float(math.prod(grid.shape)) ** 2
    power = 0.5 * jnp.sum(jnp.abs(velocity_hat) ** 2, axis=-4) / n2
    power = power * lift(grid.rfft_weights().astype(power.dtype), power)
    index = np.rint(np.sqrt(grid.k_squared()) / dk).astype(np.int32).reshape(-1)
    flat = power.reshape(power.shape[:-3] + (-1,))
    summed = jax.ops.segment_sum(jnp.moveaxis(flat, -1, 0), index, num_segments=n_shells)
    return jnp.moveaxis(summed, 0, -1) / dk


def cfl_number_3d(
    grid: SpectralGrid3D, velocity: Float[Array, "*b nx ny nz 3"], dt: float
) -> Float[Array, "*b"]:
    """Advective CFL number dt max(|u|/dx + |v|/dy + |w|/dz) of a velocity
    `(..., nx, ny, nz, 3)`.

    Example:
        >>> cfl = cfl_number_3d(ns.grid, taylor_green_3d(ns.grid), ns.dt)
    """
    dx, dy, dz = grid.spacing
    return dt * jnp.max(
        jnp.abs(velocity[..., 0]) / dx
        + jnp.abs(velocity[..., 1]) / dy
        + jnp.abs(velocity[..., 2]) / dz,
        axis=(-3, -2, -1),
    )


# ---- initial fields -----------------------------------------------------------------------------


def _check_grid(grid) -> SpectralGrid3D:
    if not isinstance(grid, SpectralGrid3D):
        raise SimkitInputError(
            f"grid must be a spectral.SpectralGrid3D (e.g. stepper.grid), got "
            f"{type(grid).__name__}."
        )
    return grid


def _check_mode(grid: SpectralGrid3D, wavenumber) -> None:
    if (
        isinstance(wavenumber, bool)
        or not isinstance(wavenumber, (int, np.integer))
        or wavenumber < 1
    ):
        raise SimkitInputError(f"wavenumber must be a positive integer, got {wavenumber!r}.")
    if 3 * wavenumber >= min(grid.shape):
        raise SimkitInputError(
            f"wavenumber {wavenumber} is removed by the 2/3 rule on grid "
            f"{grid.shape}: it needs more than {3 * wavenumber} points per axis."
        )


def taylor_green_3d(
    grid: SpectralGrid3D, wavenumber: int = 1, amplitude: float = 1.0, dtype: str = "float64"
) -> np.ndarray:
    """The 3-D Taylor-Green vortex `(nx, ny, nz, 3)` (Taylor & Green 1937, Proc. R. Soc. A
    158:499; Brachet et al. 1983, J. Fluid Mech. 130:411):

        u = A sin(kx x) cos(ky y) cos(kz z),  v = -A (kx/ky) cos(kx x) sin(ky y) cos(kz z),  w = 0,

    with k = 2 pi n / L per axis (on a cubic box v = -A cos x sin y cos z; divergence-free on any
    box). Not a steady solution: its nonlinear term creates the k = 2n modes that start the
    transition to turbulence. Energy A^2 (1 + kx^2/ky^2) / 16 (1/8 for A = 1 on a cube).

    Example:
        >>> u0 = taylor_green_3d(SpectralGrid3D((64, 64, 64)))  # numpy (64, 64, 64, 3)
    """
    grid = _check_grid(grid)
    _check_mode(grid, wavenumber)
    x, y, z = grid.mesh()
    kx, ky, kz = (2 * math.pi * wavenumber / b for b in grid.box)
    u = amplitude * np.sin(kx * x) * np.cos(ky * y) * np.cos(kz * z)
    v = -amplitude * (kx / ky) * np.cos(kx * x) * np.sin(ky * y) * np.cos(kz * z)
    return np.stack([u, v, np.zeros_like(u)], axis=-1).astype(dtype)


def abc_flow(
    grid: SpectralGrid3D,
    a: float = 1.0,
    b: float = 1.0,
    c: float = 1.0,
    wavenumber: int = 1,
    dtype: str = "float64",
) -> np.ndarray:
    """The Arnold-Beltrami-Childress flow `(nx, ny, nz, 3)` on a cubic box (Dombre et al. 1986,
    J. Fluid Mech. 167:353), with k = 2 pi n / L:

        u = A sin(k z) + C cos(k y),  v = B sin(k x) + A cos(k z),  w = C sin(k y) + B cos(k x).

    A Beltrami field, curl u = k u, so u x w = 0: an exact Navier-Stokes solution that decays as
    exp(-(nu k^2 + mu) t). Energy (A^2 + B^2 + C^2) / 2.

    Example:
        >>> state = ns.init(params, abc_flow(ns.grid, a=1.0, b=0.8, c=0.6))
    """
    grid = _check_grid(grid)
    if len(set(grid.box)) != 1:
        raise SimkitInputError(f"abc_flow needs a cubic box (one k on all axes), got {grid.box}.")
    _check_mode(grid, wavenumber)
    x, y, z = grid.mesh()
    k = 2 * math.pi * wavenumber / grid.box[0]
    return np.stack(
        [
            a * np.sin(k * z) + c * np.cos(k * y),
            b * np.sin(k * x) + a * np.cos(k * z),
            c * np.sin(k * y) + b * np.cos(k * x),
        ],
        axis=-1,
    ).astype(dtype)


@functools.lru_cache(maxsize=64)
def _default_spectrum(peak_wavenumber: float) -> Callable[[Array], Array]:
    """One function object per peak, so the compiled `_amplitude` is reused."""
    return default_spectrum(peak_wavenumber)


def random_velocity_3d(
    grid: SpectralGrid3D,
    seed: int | Array = 0,
    *,
    energy: float = 0.5,
    peak_wavenumber: float = 4.0,
    spectrum: Callable[[Array], Array] | None = None,
    dtype: DTypeLike | None = None,
) -> Float[Array, "nx ny nz 3"]:
    """A Gaussian random divergence-free velocity `(nx, ny, nz, 3)` with a prescribed energy
    spectrum (default k^4 exp(-2 (k/k_p)^2), as `random_vorticity`), random phases from `seed`,
    total energy <|u|^2>/2 exactly `energy`, zero mean, no modes the 2/3 rule removes.
    Jittable and vmappable over `seed` (a key or an int array).

    Example:
        >>> u0 = random_velocity_3d(ns.grid, seed=1, energy=0.5, peak_wavenumber=3.0)
        >>> state = ns.init(params, u0)
    """
    grid = _check_grid(grid)
    if not isinstance(energy, jax.core.Tracer):
        e = real_number(energy)
        if e is None or not (math.isfinite(e) and e > 0):
            raise SimkitInputError(f"energy must be a finite number > 0, got {energy!r}.")
    if spectrum is None:
        p = real_number(peak_wavenumber)
        if p is None or not (math.isfinite(p) and p > 0):
            raise SimkitInputError(f"peak_wavenumber must be > 0, got {peak_wavenumber!r}.")
        spectrum = _default_spectrum(p)
    seed_dtype = getattr(seed, "dtype", None)
    is_key = seed_dtype is not None and jnp.issubdtype(seed_dtype, jax.dtypes.prng_key)
    key = seed if is_key else jax.random.key(seed)
    dtype = jnp.dtype(dtype or jnp.zeros(()).dtype)
    amp = _amplitude(grid, spectrum, dtype)
    if not isinstance(amp, jax.core.Tracer):
        kept = np.asarray(amp)[grid.dealias_mask()]
        if not np.all(np.isfinite(kept)) or not np.any(kept > 0):
            raise SimkitInputError(
                "the spectrum must be finite and > 0 on at least one mode the 2/3 rule keeps."
            )
    return _random_velocity(grid, dtype, key, energy, amp)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _amplitude(grid: SpectralGrid3D, spectrum, dtype):
    """|u_hat| per mode for the spectrum E(k): a shell of radius k holds ~4 pi k^2 / dk modes,
    so |u_hat|^2 per mode ~ E(k) / k^2 (unnormalised; `_random_velocity` fixes the energy)."""
    k = np.sqrt(grid.k_squared())
    safe_k = np.where(k > 0, k, 1.0)
    e = jnp.maximum(spectrum(jnp.asarray(safe_k, dtype)), 0.0)
    return jnp.where(k > 0, jnp.sqrt(e) / safe_k, 0.0).astype(dtype)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _random_velocity(grid: SpectralGrid3D, dtype, key, energy, amp):
    # Drawn flat and reshaped: the same kind of numbers, but XLA:CPU compiles a rank-4 threefry
    # draw ~20x slower (measured 8 s vs 0.4 s for 3 x 16^3 float64, jax 0.12).
    noise = jax.random.normal(key, (3 * math.prod(grid.shape),), dtype).reshape((3,) + grid.shape)
    u_hat = grid.project(grid.to_spectral(noise) * amp[None])
    u_hat = u_hat.at[:, 0, 0, 0].set(0)
    scale = jnp.sqrt(energy / energy_3d(grid, u_hat))
    return grid.vector_to_physical(u_hat * scale).astype(dtype)
