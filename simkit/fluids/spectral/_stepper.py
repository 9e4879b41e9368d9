"""`NavierStokes2D`: incompressible 2-D Navier-Stokes in vorticity form on a periodic box, as a
`simkit.run.AbstractStepper`.

    dw/dt + u . grad w = nu lap w - mu w + F,     w = dv/dx - du/dy,   div u = 0,

with viscosity nu, linear drag mu and the curl F of a steady force. Pseudo-spectral in space
(Fourier, 2/3-rule dealiasing), integrating-factor Runge-Kutta 4 in time: the linear terms
-nu k^2 - mu are integrated exactly, so they set no time-step limit and a flow without
nonlinear term (Taylor-Green, a single mode) decays exactly.

The nonlinear term uses the identity (u . grad) w = (d_xx - d_yy)(u v) + d_xy (v^2 - u^2)
(Basdevant 1983, J. Comput. Phys. 50:209): two inverse FFTs (u, v) and two forward FFTs
(u v, v^2 - u^2) per evaluation, 16 real FFTs of size nx x ny per step, fewer than the
5 FFTs per evaluation of the advective form u w_x + v w_y.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float, Int

from ..._checks import SimkitInputError
from ...io import Variable
from ...run import AbstractStepper
from . import _diagnostics as diag
from ._checks import check_dt, check_dtype, real_number, round_down
from ._forcing import Kolmogorov, forcing_hat
from ._grid import SpectralGrid
from ._ifrk4 import ifrk4_step

# Frames skipped when a warning names its caller: simkit's and equinox's (methods of a Module
# are called through an equinox wrapper, so a fixed stacklevel would point inside simkit).
_INTERNAL_DIRS = (
    os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    os.path.dirname(eqx.__file__),
)

MAX_CFL = 1.0
"""Largest advective CFL number dt (|u|/dx + |v|/dy) accepted at `init`. RK4 is stable for
imaginary eigenvalues up to 2 sqrt(2), and the largest dealiased wavenumber is (2/3) pi / dx,
so the stability limit is ~1.35; 1.0 leaves a margin for the flow's growth."""
FFTS_PER_STEP = 16  # 4 stages x (2 inverse + 2 forward); +1 with a user forcing field
"""FFTs of one `NavierStokes2D` step (4 RK4 stages x (2 inverse + 2 forward); one more with a
`"field"` forcing): the unit of the benchmarks' cost model."""


class SpectralState(eqx.Module):
    """State of a 2-D spectral Navier-Stokes run (a pytree; `vmap` over a leading axis works).

    Attributes:
        vorticity_hat: `(nx, ny // 2 + 1)` complex rfft2 of the vorticity (1 / time),
            dealiased, zero mean. Memory: nx (ny/2+1) x 8 bytes in float32 (256^2: 264 KiB).
        step: int32 number of steps taken; model time is `step * dt`.

    Example:
        >>> state = ns.init(params, vorticity=w0)
        >>> w = ns.grid.to_physical(state.vorticity_hat)  # (nx, ny) vorticity
    """

    vorticity_hat: Complex[Array, "nx nk"]
    step: Int[Array, ""]


class NavierStokes2D(AbstractStepper):
    """2-D incompressible Navier-Stokes, vorticity form, pseudo-spectral, on a periodic box.

    Reduced units: lengths in the box's units (default box 2 pi x 2 pi), time in those of `dt`,
    velocity = length / time, viscosity = length^2 / time, drag = 1 / time.

    Args:
        shape: grid points `(nx, ny)`, each >= 8 (even, FFT-friendly sizes are fastest).
        dt: time step (> 0). See `stable_time_step`; `init` refuses a step whose advective
            CFL number exceeds `MAX_CFL` for the initial field.
        box: box lengths `(Lx, Ly)` (default `(2 pi, 2 pi)`).
        forcing: None (default), `Kolmogorov(wavenumber)` with amplitude
            `params["forcing_amplitude"]`, or `"field"`: a steady vorticity forcing F (the curl
            of the force, see `curl`) given as `params["forcing"]` `(nx, ny)`.
        dtype: "float32" (default) or "float64"; the state is complex64 / complex128.

    Params (from `stepper.params(...)`): `viscosity` nu > 0, `drag` mu >= 0, and
    `forcing_amplitude` or `forcing`: array leaves, so `jax.grad` reaches all of them.

    Saved quantities (`observe`), in three save groups:
        fields: `velocity` `(nx, ny, 2)`, `vorticity` `(nx, ny)`.
        diagnostics: `energy` <|u|^2>/2, `enstrophy` <w^2>/2, `dissipation` nu <w^2>,
            `injection` <f . u> (power input by the forcing), `cfl` the advective CFL number.
            Energy budget: d(energy)/dt = injection - dissipation - 2 mu energy.
        spectrum: `energy_spectrum` E(k) on shells k_s = s 2 pi / max(Lx, Ly).

    Example (Kolmogorov flow, 128^2):
        >>> from simkit.fluids import spectral
        >>> ns = spectral.NavierStokes2D((128, 128), dt=5e-3, forcing=spectral.Kolmogorov(4))
        >>> params = ns.params(viscosity=1e-3, drag=0.1, forcing_amplitude=1.0)
        >>> w0 = spectral.random_vorticity(ns.grid, seed=0, peak_wavenumber=4, energy=0.5)
        >>> state = ns.init(params, vorticity=w0)
        >>> state = ns.step(state, params)
    """

    shape: tuple[int, int] = eqx.field(static=True)
    box: tuple[float, float] = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    forcing: Any = eqx.field(static=True, default=None)
    dtype: str = eqx.field(static=True, default="float32")

    def __init__(
        self,
        shape: Sequence[int],
        dt: float,
        *,
        box: Sequence[float] = (2 * math.pi, 2 * math.pi),
        forcing: Any = None,
        dtype: str = "float32",
    ):
        grid = SpectralGrid(shape, box)
        self.shape, self.box = grid.shape, grid.box
        self.dt = check_dt(dt)
        if isinstance(forcing, Kolmogorov):
            forcing.check(grid)
        elif forcing not in (None, "field"):
            raise SimkitInputError(
                f'forcing must be None, spectral.Kolmogorov(wavenumber) or "field", got '
                f"{forcing!r}."
            )
        self.forcing = forcing
        self.dtype = check_dtype(dtype)

    @property
    def grid(self) -> SpectralGrid:
        """The `SpectralGrid` of this stepper."""
        return SpectralGrid(self.shape, self.box)

    @property
    def complex_dtype(self) -> np.dtype:
        """dtype of the spectral state: complex64 for float32, complex128 for float64."""
        return np.result_type(np.dtype(self.dtype), np.complex64)

    # ---- parameters and initial state ----------------------------------------------------

    def params(
        self,
        viscosity: float,
        *,
        drag: float = 0.0,
        forcing_amplitude: float | None = None,
        forcing: Any = None,
    ) -> dict[str, Array]:
        """Checked run parameters as a dict of arrays.

        Args:
            viscosity: kinematic viscosity nu > 0 (length^2 / time).
            drag: linear drag coefficient mu >= 0 (1 / time).
            forcing_amplitude: A of `Kolmogorov` forcing (velocity / time); default 1.
            forcing: the vorticity forcing `(nx, ny)` for `forcing="field"` (1 / time^2).

        Raises:
            SimkitInputError: a non-positive or non-finite viscosity, a negative drag, a
                forcing that does not match the stepper's, a field of the wrong shape or with
                NaN.
        """
        out = {
            "viscosity": self._scalar("viscosity", viscosity, positive=True),
            "drag": self._scalar("drag", drag, positive=False),
        }
        if isinstance(self.forcing, Kolmogorov):
            if forcing is not None:
                raise SimkitInputError(
                    "the stepper has Kolmogorov forcing: pass "
                    "forcing_amplitude=..., not a forcing field."
                )
            out["forcing_amplitude"] = self._scalar(
                "forcing_amplitude",
                1.0 if forcing_amplitude is None else forcing_amplitude,
                positive=False,
                sign_free=True,
            )
        elif self.forcing == "field":
            if forcing is None:
                raise SimkitInputError(
                    'the stepper has forcing="field": pass params(..., '
                    "forcing=<(nx, ny) vorticity forcing>)."
                )
            if forcing_amplitude is not None:
                raise SimkitInputError(
                    "forcing_amplitude is for Kolmogorov forcing; with "
                    'forcing="field" scale the field itself.'
                )
            out["forcing"] = self._field("forcing", forcing)
        elif forcing is not None or forcing_amplitude is not None:
            raise SimkitInputError(
                "a forcing was given but the stepper has forcing=None; build "
                'it with NavierStokes2D(..., forcing=Kolmogorov(k) or "field").'
            )
        return out

    def _scalar(self, name, value, *, positive, sign_free=False):
        if isinstance(value, jax.core.Tracer):
            return value
        v = real_number(value)
        if v is None:
            raise SimkitInputError(f"{name} must be a number, got {value!r}.")
        if not math.isfinite(v):
            raise SimkitInputError(f"{name} must be finite, got {value!r}.")
        if positive and v <= 0:
            raise SimkitInputError(f"{name} must be > 0, got {value!r}.")
        if not positive and not sign_free and v < 0:
            raise SimkitInputError(f"{name} must be >= 0, got {value!r}.")
        return jnp.asarray(v, self.dtype)

    def _field(self, name, value, components: int = 0):
        want = self.shape + ((components,) if components else ())
        try:
            arr = value if isinstance(value, jax.core.Tracer) else np.asarray(value)
        except ValueError:  # e.g. a ragged nested list
            raise SimkitInputError(
                f"{name} must be an array of shape {want}, got a "
                f"{type(value).__name__} numpy cannot read as one."
            ) from None
        if arr.shape != want:
            raise SimkitInputError(
                f"{name} must have shape {want} (the grid"
                f"{', components' if components else ''}), got {arr.shape}."
            )
        if not isinstance(arr, jax.core.Tracer):
            if arr.dtype.kind not in "fiu":
                raise SimkitInputError(f"{name} must be a real array, got dtype {arr.dtype}.")
            bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
            if bad:
                raise SimkitInputError(f"{name} contains {bad} NaN/inf value(s).")
        return jnp.asarray(arr, self.dtype)

    def init(
        self, params: Mapping[str, Array], vorticity: Any = None, *, velocity: Any = None
    ) -> SpectralState:
        """The initial state from a vorticity `(nx, ny)` or a velocity `(nx, ny, 2)` field.

        The field is projected onto what the solver represents: its mean vorticity (which no
        periodic velocity field has) and the modes the 2/3 rule removes are dropped, and of a
        velocity only the divergence-free part is kept. Differentiable with respect to the
        field (the checks are skipped for traced values).

        Args:
            params: from `params()` (used for the CFL check's context only).
            vorticity: `(nx, ny)` vorticity (1 / time), e.g. from `taylor_green` or
                `random_vorticity`.
            velocity: `(nx, ny, 2)` velocity instead (length / time).

        Raises:
            SimkitInputError: neither or both fields, a wrong shape, NaN/inf, or a time step
                above the CFL limit `MAX_CFL` for this field (the message gives the stable dt).
        """
        grid = self.grid
        if (vorticity is None) == (velocity is None):
            raise SimkitInputError(
                "init needs exactly one of vorticity=(nx, ny) or velocity=(nx, ny, 2)."
            )
        if vorticity is not None:
            w_hat = grid.to_spectral(self._field("vorticity", vorticity))
        else:
            w_hat = grid.vorticity_hat_from_velocity(self._field("velocity", velocity, 2))
        mask = grid.dealias_mask()
        w_hat = (w_hat * mask).at[0, 0].set(0).astype(self.complex_dtype)
        state = SpectralState(vorticity_hat=w_hat, step=jnp.asarray(0, jnp.int32))
        if not isinstance(w_hat, jax.core.Tracer):
            self.check_time_step(state)
        return state

    def cfl(self, state: SpectralState) -> Float[Array, ""]:
        """Advective CFL number dt max(|u| / dx + |v| / dy) of `state`."""
        return cfl_number(self.grid, self.grid.velocity(state.vorticity_hat), self.dt)

    def check_time_step(self, state: SpectralState) -> None:
        """Raise `SimkitInputError` if the CFL number of `state` exceeds `MAX_CFL`; warn above
        half of it (a growing flow will soon exceed it)."""
        c = float(self.cfl(state))
        if c > MAX_CFL:
            raise SimkitInputError(
                f"dt = {self.dt:g} gives an advective CFL number of {c:.3g} for the initial "
                f"field, above the stability limit {MAX_CFL}; use dt <= "
                f"{round_down(self.dt * MAX_CFL / c):g} (e.g. spectral.stable_time_step("
                f"max_velocity, grid, cfl=0.5) = {round_down(self.dt * 0.5 / c):g})."
            )
        if c > 0.5 * MAX_CFL:
            warnings.warn(
                f"dt = {self.dt:g} gives a CFL number of {c:.3g} for the initial field, "
                f"close to the limit {MAX_CFL}; a flow that speeds up may blow up.",
                skip_file_prefixes=_INTERNAL_DIRS,
            )  # shown at the user's call

    # ---- the step ------------------------------------------------------------------------

    def _constants(self):
        """Real float arrays of the rfft2 layout, folded into the compiled step."""
        grid = self.grid
        kx, ky = grid.wavenumbers()
        mask = grid.dealias_mask()
        k2 = grid.k_squared()
        inv_k2 = np.where(k2 > 0, 1.0 / np.where(k2 > 0, k2, 1.0), 0.0)
        dt = self.dtype
        return {
            "k2": k2.astype(dt),
            # psi = w / k^2; u_hat = i ky psi, v_hat = -i kx psi
            "u_of_w": (ky * inv_k2).astype(dt),
            "v_of_w": (-kx * inv_k2).astype(dt),
            # -(u.grad w)_hat = -(ky^2 - kx^2) (uv)_hat + kx ky (v^2 - u^2)_hat, dealiased
            "a": (-(ky * ky - kx * kx) * mask).astype(dt),
            "b": (kx * ky * mask).astype(dt),
        }

    def nonlinear(self, vorticity_hat: Complex[Array, "nx nk"]) -> Complex[Array, "nx nk"]:
        """-(u . grad w) in spectral space, dealiased (4 real FFTs)."""
        c = self._constants()
        grid = self.grid
        u_hat = 1j * c["u_of_w"] * vorticity_hat
        v_hat = 1j * c["v_of_w"] * vorticity_hat
        u, v = grid.to_physical(jnp.stack([u_hat, v_hat]))
        products = grid.to_spectral(jnp.stack([u * v, v * v - u * u]))
        return products[0] * c["a"] + products[1] * c["b"]

    def step(self, state: SpectralState, params) -> SpectralState:
        """One integrating-factor RK4 step (Lawson 1967, SIAM J. Numer. Anal. 4:372): with
        L = -nu k^2 - mu, e(h) = exp(L h), N(w) = nonlinear(w) + F,

            a = N(w);  b = N(e(h/2) (w + h/2 a));  c = N(e(h/2) w + h/2 b)
            d = N(e(h) w + h e(h/2) c)
            w' = e(h) w + h/6 (e(h) a + 2 e(h/2) (b + c) + d).

        Pure and jittable; 16 real FFTs (17 with a user forcing field)."""
        w = state.vorticity_hat
        c = self._constants()
        lin = -(params["viscosity"] * c["k2"] + params["drag"])
        f = forcing_hat(self.grid, self.forcing, params, self.complex_dtype)
        new = ifrk4_step(w, lin, self.dt, self.nonlinear, f)
        return SpectralState(vorticity_hat=new, step=state.step + 1)

    def time(self, state: SpectralState) -> Array:
        return state.step.astype(self.dtype) * self.dt

    # ---- observables ---------------------------------------------------------------------

    def injection(self, state: SpectralState, params) -> Float[Array, ""]:
        """Power input by the forcing <f . u> = <psi F> (velocity^2 / time)."""
        grid = self.grid
        f = forcing_hat(grid, self.forcing, params, self.complex_dtype)
        if f is None:
            return jnp.zeros((), self.dtype)
        return diag.box_mean_product(grid, grid.streamfunction_hat(state.vorticity_hat), f)

    def observe(self, state: SpectralState, params) -> dict[str, Array]:
        grid = self.grid
        w_hat = state.vorticity_hat
        velocity = grid.velocity(w_hat)
        return {
            "velocity": velocity,
            "vorticity": grid.to_physical(w_hat),
            "energy": diag.energy(grid, w_hat),
            "enstrophy": diag.enstrophy(grid, w_hat),
            "dissipation": diag.dissipation(grid, w_hat, params["viscosity"]),
            "injection": self.injection(state, params),
            "cfl": cfl_number(grid, velocity, self.dt),
            "energy_spectrum": diag.energy_spectrum(grid, w_hat),
        }

    def save_groups(self) -> dict[str, tuple[str, ...]]:
        return {
            "fields": ("velocity", "vorticity"),
            "diagnostics": ("energy", "enstrophy", "dissipation", "injection", "cfl"),
            "spectrum": ("energy_spectrum",),
        }

    def variables(self, state: SpectralState, params) -> dict[str, Variable]:
        shape, dt = self.shape, self.dtype
        n_shells = len(diag.shell_wavenumbers(self.grid))
        # Reduced units: "1" as the LBM stepper writes (udunits-parsable, dimensionless); the
        # dimensions in box length and time units are in each long_name.
        return {
            "velocity": Variable(
                ("x", "y", "component"), shape + (2,), dt, "1", "velocity (u, v) [length/time]"
            ),
            "vorticity": Variable(("x", "y"), shape, dt, "1", "vorticity dv/dx - du/dy [1/time]"),
            "energy": Variable((), (), dt, "1", "kinetic energy <|u|^2>/2 [length^2/time^2]"),
            "enstrophy": Variable((), (), dt, "1", "enstrophy <w^2>/2 [1/time^2]"),
            "dissipation": Variable(
                (), (), dt, "1", "viscous dissipation rate nu <w^2> [length^2/time^3]"
            ),
            "injection": Variable((), (), dt, "1", "forcing power <f . u> [length^2/time^3]"),
            "cfl": Variable((), (), dt, "1", "advective CFL number dt max(|u|/dx + |v|/dy)"),
            "energy_spectrum": Variable(
                ("k",),
                (n_shells,),
                dt,
                "1",
                "shell-averaged energy spectrum E(k) [length^3/time^2]",
            ),
        }

    def coords(self, state, params) -> dict[str, tuple[Any, str]]:
        x, y = self.grid.points()
        return {
            "x": (x, "1"),
            "y": (y, "1"),
            "component": (["x", "y"], ""),
            "k": (diag.shell_wavenumbers(self.grid), "1"),
        }

    def time_units(self) -> str:
        return "1"

    def blow_up_hint(self) -> str:
        return (
            "A spectral Navier-Stokes run blows up when the advective CFL number "
            "dt max(|u|/dx + |v|/dy) grows past ~1.35: lower dt (spectral.stable_time_step), "
            "or raise the viscosity or the resolution if the flow is under-resolved (energy "
            "piling up at the largest wavenumbers of the spectrum)."
        )


def cfl_number(
    grid: SpectralGrid, velocity: Float[Array, "*b nx ny 2"], dt: float
) -> Float[Array, "*b"]:
    """Advective CFL number dt max(|u| / dx + |v| / dy) of a velocity field `(..., nx, ny, 2)`.

    Example:
        >>> cfl = cfl_number(ns.grid, ns.grid.velocity(state.vorticity_hat), ns.dt)  # ()
    """
    dx, dy = grid.spacing
    return dt * jnp.max(
        jnp.abs(velocity[..., 0]) / dx + jnp.abs(velocity[..., 1]) / dy, axis=(-2, -1)
    )


def stable_time_step(max_velocity: float, grid: SpectralGrid, cfl: float = 0.5) -> float:
    """The time step dt = cfl min(dx, dy) / (2 max_velocity) for an expected largest speed.

    With |u|, |v| <= max_velocity, the CFL number dt (|u|/dx + |v|/dy) is then <= cfl.

    Args:
        max_velocity: the largest speed the run will reach (length / time), > 0.
        grid: the `SpectralGrid`.
        cfl: target CFL number, in (0, MAX_CFL].

    Example (speeds up to 2 on a 256^2 grid of a 2 pi box):
        >>> dt = stable_time_step(2.0, SpectralGrid((256, 256)))  # 0.5 * (2 pi / 256) / 4
    """
    if not isinstance(grid, SpectralGrid):
        raise SimkitInputError(
            f"grid must be a spectral.SpectralGrid (e.g. stepper.grid), got {type(grid).__name__}."
        )
    u, c = real_number(max_velocity), real_number(cfl)
    if u is None or not (math.isfinite(u) and u > 0):
        raise SimkitInputError(f"max_velocity must be a finite number > 0, got {max_velocity!r}.")
    if c is None or not (0 < c <= MAX_CFL):
        raise SimkitInputError(f"cfl must be in (0, {MAX_CFL}], got {cfl!r}.")
    return c * min(grid.spacing) / (2.0 * u)
