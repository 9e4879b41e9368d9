"""Write tests/data/spectral_jaxcfd_reference.npz: a short jax-cfd trajectory of 2-D Kolmogorov
flow, the reference for simkit's pseudo-spectral Navier-Stokes solver.

Runs in the jax-cfd peer venv (jax-cfd 0.2.1 on jax 0.4.30 / jaxlib 0.4.30, numpy 2.4.6, Python
3.11; made by `python benchmarks/spectral_peers/setup_peers.py`), never in simkit's own venv:

    benchmarks/.peers/jaxcfd/bin/python tests/data/make_spectral_reference.py

The case (float64: jax's x64 mode is switched on before anything else):
  box [0, 2 pi)^2, periodic, n = 64 points a side; jax-cfd's
  `grids.Grid((64, 64), domain=((0, 2 pi), (0, 2 pi)))`, array axis 0 = x, axis 1 = y, the
  samples taken at the FFT nodes x_i = i dx, y_j = j dy, dx = dy = 2 pi / 64 (offset 0);
  `spectral.equations.NavierStokes2D(viscosity=1e-2, grid, drag=0.1, smooth=True,
  forcing_fn)` with `base.forcings.kolmogorov_forcing(grid, scale=1, k=4,
  offsets=((0, 0), (0, 0)))`, i.e. the force f = (sin(4 y), 0) on the same nodes, stepped by
  `spectral.time_stepping.crank_nicolson_rk4` with dt = 1e-3; the state is the rfftn of the
  vorticity. The equation it solves is
      dw/dt = P[-(u dw/dx + v dw/dy)] + nu lap w - drag w - A k cos(k y),
      u = d psi/dy, v = -d psi/dx, lap psi = -w   (so w = dv/dx - du/dy),
  P being jax-cfd's 2/3-rule brick-wall filter (see DEALIAS below), applied to the advection
  term only.

Initial vorticity (made here with numpy, seed SEED): the sum over the wavevectors (kx, ky) of
one half-plane (kx > 0, or kx = 0 and ky > 0) with 0 < |k| <= 8, in the order kx = 0..8, then
ky = -8..8, of a cos(kx x + ky y) + b sin(kx x + ky y), (a, b) standard normal pairs from
`numpy.random.default_rng(SEED)`, minus its mean, scaled to rms 2.

Stored (every array float64 unless said): `vorticity` (5, 64, 64) at `times` 0, 0.1, 0.2, 0.5,
1.0 (`steps` int64: 0, 100, 200, 500, 1000), `x`, `y` (64,) the node coordinates, `energy` and
`enstrophy` (5,) from jax-cfd's own velocity (grid means of (u^2 + v^2) / 2 and w^2 / 2),
`max_speed` (5,), and every parameter as a scalar or string (versions, conventions). The zip is
written with fixed member timestamps, so re-running the script gives a bitwise identical file
(sha256 09c3c010dd9bebd96bb2aabee07615c8fe21f5bee1b75fc417132777e84d9924 on the 2-core x86-64
box it was made on, also after rebuilding the venv).

A plain numpy re-implementation of the equation above (same filter, same Carpenter-Kennedy
coefficients) reproduces the stored fields to 1e-15 (relative, max norm); with a symmetric
2/3 filter (|kx|, |ky| <= 21) instead of jax-cfd's, the difference is 1e-5 at t = 0.1 and
3e-3 at t = 1 (the spectrum at |k| ~ 21 is ~1e-2 of the peak by t = 1), and halving dt changes
the fields by 4e-9.
"""

from __future__ import annotations

import hashlib
import io
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax_cfd.base import forcings, funcutils, grids  # noqa: E402
from jax_cfd.spectral import equations, time_stepping  # noqa: E402
from jax_cfd.spectral import utils as spectral_utils  # noqa: E402

OUT = Path(__file__).resolve().parent / "spectral_jaxcfd_reference.npz"

N = 64
LENGTH = 2 * np.pi
VISCOSITY = 1e-2
DRAG = 0.1
FORCING_AMPLITUDE = 1.0
FORCING_K = 4
DT = 1e-3
SAVE_STEPS = (0, 100, 200, 500, 1000)
SEED = 20240601
KMAX = 8
RMS = 2.0

DEALIAS = (
    "jax-cfd brick_wall_filter_2d on the rfft2 array (n, n//2+1), applied to the "
    "advection term only: rows kept [0, a//2) and [n + (-a)//2, n) with a = int(2/3*n), "
    "columns kept [0, int(2/3*(n//2+1))); n = 64: kx in -21..20, ky in 0..21 "
    "(so the (+21, ky) modes are dropped but (-21, ky) kept)"
)


def initial_vorticity(n: int) -> np.ndarray:
    rng = np.random.default_rng(SEED)
    modes = [
        (kx, ky)
        for kx in range(0, KMAX + 1)
        for ky in range(-KMAX, KMAX + 1)
        if (kx > 0 or ky > 0) and kx * kx + ky * ky <= KMAX * KMAX
    ]
    coef = rng.standard_normal((len(modes), 2))
    x = LENGTH * np.arange(n) / n
    w = np.zeros((n, n))
    for (kx, ky), (a, b) in zip(modes, coef, strict=False):
        phase = kx * x[:, None] + ky * x[None, :]
        w += a * np.cos(phase) + b * np.sin(phase)
    w -= w.mean()
    return w * (RMS / np.sqrt(np.mean(w * w)))


def save_npz(path: Path, arrays: dict) -> None:
    """np.savez's layout (one .npy member per key), but with fixed timestamps and order."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for key, val in arrays.items():
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asanyarray(val), allow_pickle=False)
            zf.writestr(info, member.getvalue())
    path.write_bytes(buf.getvalue())


def main() -> None:
    grid = grids.Grid((N, N), domain=((0, LENGTH), (0, LENGTH)))
    forcing_fn = lambda g: forcings.kolmogorov_forcing(  # noqa: E731
        g, scale=FORCING_AMPLITUDE, k=FORCING_K, offsets=((0, 0), (0, 0))
    )
    eq = equations.NavierStokes2D(VISCOSITY, grid, drag=DRAG, smooth=True, forcing_fn=forcing_fn)
    step = time_stepping.crank_nicolson_rk4(eq, DT)
    to_velocity = spectral_utils.vorticity_to_velocity(grid)
    x = np.asarray(grid.axes(offset=(0, 0))[0], np.float64)
    y = np.asarray(grid.axes(offset=(0, 0))[1], np.float64)
    assert np.allclose(x, LENGTH * np.arange(N) / N, rtol=0, atol=1e-14)
    assert np.array_equal(x, y)

    w0 = initial_vorticity(N)
    state = jnp.fft.rfftn(jnp.asarray(w0))
    assert state.dtype == jnp.complex128

    fields, energy, enstrophy, speed = [], [], [], []
    done = 0
    for target in SAVE_STEPS:
        if target > done:
            state = jax.jit(funcutils.repeated(step, target - done))(state)
            done = target
        uh, vh = to_velocity(state)
        u, v = np.asarray(jnp.fft.irfftn(uh)), np.asarray(jnp.fft.irfftn(vh))
        w = np.asarray(jnp.fft.irfftn(state))
        if target == 0:
            assert np.max(np.abs(w - w0)) < 1e-13
        fields.append(w)
        energy.append(np.mean(0.5 * (u * u + v * v)))
        enstrophy.append(np.mean(0.5 * w * w))
        speed.append(np.sqrt(np.max(u * u + v * v)))
        print(
            f"t = {target * DT:.3f}  energy {energy[-1]:.12g}  enstrophy {enstrophy[-1]:.12g}"
            f"  max|u| {speed[-1]:.4g}  rms w {np.sqrt(np.mean(w * w)):.4g}",
            file=sys.stderr,
        )
    fields[0] = w0  # the exact initial field (the round trip above differs by ~1e-15)

    arrays = {
        "vorticity": np.stack(fields).astype(np.float64),
        "times": np.asarray(SAVE_STEPS, np.float64) * DT,
        "steps": np.asarray(SAVE_STEPS, np.int64),
        "x": x,
        "y": y,
        "energy": np.asarray(energy, np.float64),
        "enstrophy": np.asarray(enstrophy, np.float64),
        "max_speed": np.asarray(speed, np.float64),
        "n": np.int64(N),
        "length": np.float64(LENGTH),
        "viscosity": np.float64(VISCOSITY),
        "drag": np.float64(DRAG),
        "forcing_amplitude": np.float64(FORCING_AMPLITUDE),
        "forcing_k": np.int64(FORCING_K),
        "dt": np.float64(DT),
        "smooth": np.bool_(True),
        "seed": np.int64(SEED),
        "ic_kmax": np.int64(KMAX),
        "ic_rms": np.float64(RMS),
        "time_stepper": np.str_("jax_cfd.spectral.time_stepping.crank_nicolson_rk4"),
        "equation": np.str_(
            "dw/dt = P[-(u dw/dx + v dw/dy)] + nu lap w - drag w + curl f; "
            "u = dpsi/dy, v = -dpsi/dx, lap psi = -w (w = dv/dx - du/dy); "
            "f = (A sin(k y), 0), curl f = -A k cos(k y)"
        ),
        "dealias": np.str_(DEALIAS),
        "grid_offset": np.str_(
            "nodes: x_i = i*dx, y_j = j*dy (jax-cfd offset 0); "
            "vorticity[t, i, j] = w(x_i, y_j), axis 0 = x"
        ),
        "forcing": np.str_(
            "jax_cfd.base.forcings.kolmogorov_forcing(grid, scale=1.0, k=4, "
            "offsets=((0, 0), (0, 0))): f_x = sin(4 y_j), f_y = 0"
        ),
        "jax_version": np.str_(jax.__version__),
        "jaxlib_version": np.str_(version("jaxlib")),
        "jax_cfd_version": np.str_(version("jax-cfd")),
        "numpy_version": np.str_(np.__version__),
        "precision": np.str_("float64 (jax_enable_x64)"),
    }
    save_npz(OUT, arrays)
    digest = hashlib.sha256(OUT.read_bytes()).hexdigest()
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, sha256 {digest})", file=sys.stderr)


if __name__ == "__main__":
    main()
