"""Shared helpers of the simkit.fluids.spectral tests: a compiled multi-step loop (one compile
per stepper configuration; the step count is traced), relative errors, and the linear stability
of Kolmogorov flow as an independent small eigenvalue problem."""

import functools

import jax
import numpy as np


@functools.partial(jax.jit, static_argnums=0)
def advance(stepper, state, params, n_steps):
    """`n_steps` steps in one compiled loop (the count is traced: one compile per stepper)."""
    return jax.lax.fori_loop(0, n_steps, lambda _, s: stepper.step(s, params), state)


def rel_l2(a, b):
    """||a - b|| / ||b|| over all entries (float64)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def kolmogorov_growth_rate(alpha, amplitude, forcing_mode, viscosity, drag, m_max):
    """Largest real part of the eigenvalues of Kolmogorov flow u = U sin(K y), linearised, for
    a perturbation vorticity sum_m a_m exp(i (alpha x + m y)) on a 2 pi-periodic y (integer m,
    |m| <= m_max, the modes a dealiased grid keeps). U = `amplitude` (the laminar velocity),
    K = `forcing_mode`.

    Derivation (w = dv/dx - du/dy, lap psi = -w, u = psi_y, v = -psi_x; base vorticity
    W = -U K cos(K y)): dw'/dt = -U sin(Ky) dw'/dx - v' dW/dy + nu lap w' - mu w', with
    dW/dy = U K^2 sin(K y), psi'_m = a_m / (alpha^2 + m^2). Projecting on exp(i m y):

        da_m/dt = -(U alpha / 2) [(1 - K^2 / q_{m-K}) a_{m-K} - (1 - K^2 / q_{m+K}) a_{m+K}]
                  - (nu q_m + mu) a_m,        q_m = alpha^2 + m^2,

    the tridiagonal (in steps of K) system of Meshalkin & Sinai (1961, J. Appl. Math. Mech.
    25:1700), whose long-wave limit alpha -> 0 is unstable for Re = U / (nu K) > sqrt(2).
    """
    ms = np.arange(-m_max, m_max + 1)
    index = {m: i for i, m in enumerate(ms)}
    q = alpha**2 + ms.astype(np.float64) ** 2
    mat = np.diag(-(viscosity * q + drag))
    half = amplitude * alpha / 2.0
    k2 = float(forcing_mode) ** 2
    for i, m in enumerate(ms):
        if m - forcing_mode in index:
            j = index[m - forcing_mode]
            mat[i, j] -= half * (1.0 - k2 / q[j])
        if m + forcing_mode in index:
            j = index[m + forcing_mode]
            mat[i, j] += half * (1.0 - k2 / q[j])
    return float(np.max(np.linalg.eigvals(mat).real))
