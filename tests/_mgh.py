"""Test problems for unconstrained least squares from

    J. J. Moré, B. S. Garbow and K. E. Hillstrom, "Testing unconstrained optimization software",
    ACM Transactions on Mathematical Software 7 (1981) 17-41, doi:10.1145/355934.355936,

written here from the paper's definitions (section 3), independent of simkit: each problem is a
residual vector `r(x)` (shape `(m,)`, jax.numpy) with `f(x) = sum_i r_i(x)^2`, the paper's
standard starting point `x0`, and the minimum values of `f` the paper reports. Problem numbers
are the paper's. Where the paper lists more than one minimum (a local one next to the global),
all are given; `f_star[0]` is the one usually reached from `x0`.

Residual functions are module-level objects built once, so jitted fits that take them as static
arguments compile once per test session.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np


@dataclass(frozen=True, eq=False)
class Problem:
    """One test problem: `f(x) = sum(residuals(x)**2)`, started from `x0`."""

    number: int  # the paper's problem number
    name: str
    n: int
    m: int
    residuals: Callable  # x (n,) -> r (m,)
    x0: np.ndarray
    f_star: tuple[float, ...]  # published minimum values of f (sum of squares)

    @property
    def key(self) -> str:
        slug = self.name.lower().replace(" ", "_").replace("-", "_")
        return f"{self.number:02d}_{slug}_n{self.n}"

    def f(self, x) -> float:
        r = np.asarray(self.residuals(jnp.asarray(x, dtype=jnp.float64)))
        return float(np.sum(r * r))


def _arr(*v):
    return np.asarray(v, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# Fixed-size problems 1-18


def rosenbrock(x):  # (1) n = m = 2; f = 0 at (1, 1)
    return jnp.stack([10.0 * (x[1] - x[0] ** 2), 1.0 - x[0]])


def freudenstein_roth(x):  # (2) f = 0 at (5, 4); f = 48.9842... at (11.41..., -0.8968...)
    return jnp.stack(
        [
            -13.0 + x[0] + ((5.0 - x[1]) * x[1] - 2.0) * x[1],
            -29.0 + x[0] + ((x[1] + 1.0) * x[1] - 14.0) * x[1],
        ]
    )


def powell_badly_scaled(x):  # (3) f = 0 at (1.098...e-5, 9.106...)
    return jnp.stack([1e4 * x[0] * x[1] - 1.0, jnp.exp(-x[0]) + jnp.exp(-x[1]) - 1.0001])


def brown_badly_scaled(x):  # (4) m = 3; f = 0 at (1e6, 2e-6)
    return jnp.stack([x[0] - 1e6, x[1] - 2e-6, x[0] * x[1] - 2.0])


_BEALE_Y = jnp.asarray([1.5, 2.25, 2.625])


def beale(x):  # (5) m = 3; f = 0 at (3, 0.5)
    i = jnp.arange(1.0, 4.0)
    return _BEALE_Y - x[0] * (1.0 - x[1] ** i)


def jennrich_sampson(x):  # (6) m = 10; f = 124.362 at x1 = x2 = 0.2578
    i = jnp.arange(1.0, 11.0)
    return 2.0 + 2.0 * i - (jnp.exp(i * x[0]) + jnp.exp(i * x[1]))


def helical_valley(x):  # (7) n = m = 3; f = 0 at (1, 0, 0)
    theta = jnp.arctan(x[1] / x[0]) / (2.0 * jnp.pi) + jnp.where(x[0] < 0.0, 0.5, 0.0)
    return jnp.stack(
        [10.0 * (x[2] - 10.0 * theta), 10.0 * (jnp.sqrt(x[0] ** 2 + x[1] ** 2) - 1.0), x[2]]
    )


_BARD_Y = jnp.asarray(
    [0.14, 0.18, 0.22, 0.25, 0.29, 0.32, 0.35, 0.39, 0.37, 0.58, 0.73, 0.96, 1.34, 2.10, 4.39]
)


def bard(x):  # (8) m = 15; f = 8.21487e-3; f = 17.4286 at (0.8406, -inf, -inf)
    u = jnp.arange(1.0, 16.0)
    v = 16.0 - u
    w = jnp.minimum(u, v)
    return _BARD_Y - (x[0] + u / (v * x[1] + w * x[2]))


_GAUSS_Y = jnp.asarray(
    [
        0.0009,
        0.0044,
        0.0175,
        0.0540,
        0.1295,
        0.2420,
        0.3521,
        0.3989,
        0.3521,
        0.2420,
        0.1295,
        0.0540,
        0.0175,
        0.0044,
        0.0009,
    ]
)


def gaussian(x):  # (9) m = 15; f = 1.12793e-8
    t = (8.0 - jnp.arange(1.0, 16.0)) / 2.0
    return x[0] * jnp.exp(-x[1] * (t - x[2]) ** 2 / 2.0) - _GAUSS_Y


_MEYER_Y = jnp.asarray(
    [
        34780.0,
        28610.0,
        23650.0,
        19630.0,
        16370.0,
        13720.0,
        11540.0,
        9744.0,
        8261.0,
        7030.0,
        6005.0,
        5147.0,
        4427.0,
        3820.0,
        3307.0,
        2872.0,
    ]
)


def meyer(x):  # (10) m = 16; f = 87.9458
    t = 45.0 + 5.0 * jnp.arange(1.0, 17.0)
    return x[0] * jnp.exp(x[1] / (t + x[2])) - _MEYER_Y


def gulf(x):  # (11) here m = 10; f = 0 at (50, 25, 1.5)
    t = jnp.arange(1.0, 11.0) / 100.0
    y = 25.0 + (-50.0 * jnp.log(t)) ** (2.0 / 3.0)
    return jnp.exp(-(jnp.abs(y - x[1]) ** x[2]) / x[0]) - t


def box3d(x):  # (12) here m = 10; f = 0 at (1, 10, 1), (10, 1, -1) and (a, a, 0)
    t = 0.1 * jnp.arange(1.0, 11.0)
    return jnp.exp(-t * x[0]) - jnp.exp(-t * x[1]) - x[2] * (jnp.exp(-t) - jnp.exp(-10.0 * t))


def powell_singular(x):  # (13) n = m = 4; f = 0 at the origin (singular Jacobian there)
    return jnp.stack(
        [
            x[0] + 10.0 * x[1],
            math.sqrt(5.0) * (x[2] - x[3]),
            (x[1] - 2.0 * x[2]) ** 2,
            math.sqrt(10.0) * (x[0] - x[3]) ** 2,
        ]
    )


def wood(x):  # (14) n = 4, m = 6; f = 0 at (1, 1, 1, 1)
    return jnp.stack(
        [
            10.0 * (x[1] - x[0] ** 2),
            1.0 - x[0],
            math.sqrt(90.0) * (x[3] - x[2] ** 2),
            1.0 - x[2],
            math.sqrt(10.0) * (x[1] + x[3] - 2.0),
            (x[1] - x[3]) / math.sqrt(10.0),
        ]
    )


_KO_Y = jnp.asarray(
    [0.1957, 0.1947, 0.1735, 0.1600, 0.0844, 0.0627, 0.0456, 0.0342, 0.0323, 0.0235, 0.0246]
)
_KO_U = jnp.asarray([4.0, 2.0, 1.0, 0.5, 0.25, 0.167, 0.125, 0.1, 0.0833, 0.0714, 0.0625])


def kowalik_osborne(x):  # (15) m = 11; f = 3.07505e-4; f = 1.02734e-3 at (inf, -14.07, -inf, -inf)
    u = _KO_U
    return _KO_Y - x[0] * (u**2 + u * x[1]) / (u**2 + u * x[2] + x[3])


def brown_dennis(x):  # (16) here m = 20; f = 85822.2
    t = jnp.arange(1.0, 21.0) / 5.0
    return (x[0] + t * x[1] - jnp.exp(t)) ** 2 + (x[2] + x[3] * jnp.sin(t) - jnp.cos(t)) ** 2


_OSB1_Y = jnp.asarray(
    [
        0.844,
        0.908,
        0.932,
        0.936,
        0.925,
        0.908,
        0.881,
        0.850,
        0.818,
        0.784,
        0.751,
        0.718,
        0.685,
        0.658,
        0.628,
        0.603,
        0.580,
        0.558,
        0.538,
        0.522,
        0.506,
        0.490,
        0.478,
        0.467,
        0.457,
        0.448,
        0.438,
        0.431,
        0.424,
        0.420,
        0.414,
        0.411,
        0.406,
    ]
)


def osborne1(x):  # (17) m = 33; f = 5.46489e-5
    t = 10.0 * jnp.arange(0.0, 33.0)
    return _OSB1_Y - (x[0] + x[1] * jnp.exp(-t * x[3]) + x[2] * jnp.exp(-t * x[4]))


def biggs_exp6(x):  # (18) here m = 13; f = 5.65565e-3, and f = 0 at (1, 10, 1, 5, 4, 3)
    t = 0.1 * jnp.arange(1.0, 14.0)
    y = jnp.exp(-t) - 5.0 * jnp.exp(-10.0 * t) + 3.0 * jnp.exp(-4.0 * t)
    return x[2] * jnp.exp(-t * x[0]) - x[3] * jnp.exp(-t * x[1]) + x[5] * jnp.exp(-t * x[4]) - y


# (19) data y_i, i = 1..65, at t_i = (i - 1) / 10 (the paper's table for Osborne 2).
_OSB2_Y = np.asarray(
    [1.366, 1.191, 1.112, 1.013, 0.991, 0.885, 0.831, 0.847, 0.786, 0.725, 0.746, 0.679, 0.608,
     0.655, 0.616, 0.606, 0.602, 0.626, 0.651, 0.724, 0.649, 0.649, 0.694, 0.644, 0.624, 0.661,
     0.612, 0.558, 0.533, 0.495, 0.500, 0.423, 0.395, 0.375, 0.372, 0.391, 0.396, 0.405, 0.428,
     0.429, 0.523, 0.562, 0.607, 0.653, 0.672, 0.708, 0.633, 0.668, 0.645, 0.632, 0.591, 0.559,
     0.597, 0.625, 0.739, 0.710, 0.729, 0.720, 0.636, 0.581, 0.428, 0.292, 0.162, 0.098, 0.054]
)  # fmt: skip


def osborne2(x):  # (19) n = 11, m = 65; f = 4.01377e-2
    # One decaying exponential plus three Gaussian bumps centred at x9, x10, x11.
    t = jnp.arange(0.0, 65.0) / 10.0
    model = x[0] * jnp.exp(-t * x[4])
    for amp, width, centre in ((1, 5, 8), (2, 6, 9), (3, 7, 10)):
        model = model + x[amp] * jnp.exp(-((t - x[centre]) ** 2) * x[width])
    return _OSB2_Y - model


# ---------------------------------------------------------------------------------------------
# Variable-size problems 20-35 (one size each, chosen from the sizes the paper reports)


def _watson(n):
    def watson(x):  # (20) m = 31
        t = jnp.arange(1.0, 30.0) / 29.0
        j = jnp.arange(1, n + 1)
        powers = t[:, None] ** (j[None, :] - 1).astype(jnp.float64)  # t^(j-1), (29, n)
        # sum_j (j - 1) x_j t^(j-2) and sum_j x_j t^(j-1)
        s1 = (powers[:, :-1] * ((j[1:] - 1.0) * x[1:])[None, :]).sum(axis=1)
        s2 = (powers * x[None, :]).sum(axis=1)
        return jnp.concatenate([s1 - s2**2 - 1.0, jnp.stack([x[0], x[1] - x[0] ** 2 - 1.0])])

    return watson


def _extended_rosenbrock(n):
    def extended_rosenbrock(x):  # (21) m = n even; f = 0 at (1, ..., 1)
        odd, even = x[0::2], x[1::2]
        return jnp.stack([10.0 * (even - odd**2), 1.0 - odd], axis=1).reshape(-1)

    return extended_rosenbrock


def _extended_powell(n):
    def extended_powell(x):  # (22) m = n, n a multiple of 4; f = 0 at the origin
        # Problem 13 on each block of four (x1, x2, x3, x4), blocks independent.
        b = x.reshape(n // 4, 4)
        r = jnp.stack(
            [
                b[:, 0] + 10.0 * b[:, 1],
                math.sqrt(5.0) * (b[:, 2] - b[:, 3]),
                (b[:, 1] - 2.0 * b[:, 2]) ** 2,
                math.sqrt(10.0) * (b[:, 0] - b[:, 3]) ** 2,
            ],
            axis=1,
        )
        return r.reshape(n)

    return extended_powell


def _penalty1(n):
    def penalty1(x):  # (23) m = n + 1
        return jnp.concatenate([math.sqrt(1e-5) * (x - 1.0), jnp.sum(x * x)[None] - 0.25])

    return penalty1


def _penalty2(n):
    def penalty2(x):  # (24) m = 2n
        a = math.sqrt(1e-5)
        i = jnp.arange(2.0, n + 1.0)
        y = jnp.exp(i / 10.0) + jnp.exp((i - 1.0) / 10.0)
        mid = a * (jnp.exp(x[1:] / 10.0) + jnp.exp(x[:-1] / 10.0) - y)
        tail = a * (jnp.exp(x[1:] / 10.0) - math.exp(-0.1))
        last = jnp.sum((n - jnp.arange(n)) * x * x) - 1.0
        return jnp.concatenate([(x[0] - 0.2)[None], mid, tail, last[None]])

    return penalty2


def _variably_dimensioned(n):
    def variably_dimensioned(x):  # (25) m = n + 2; f = 0 at (1, ..., 1)
        s = jnp.sum(jnp.arange(1.0, n + 1.0) * (x - 1.0))
        return jnp.concatenate([x - 1.0, jnp.stack([s, s * s])])

    return variably_dimensioned


def _trigonometric(n):
    def trigonometric(x):  # (26) m = n
        i = jnp.arange(1.0, n + 1.0)
        return n - jnp.sum(jnp.cos(x)) + i * (1.0 - jnp.cos(x)) - jnp.sin(x)

    return trigonometric


def _brown_almost_linear(n):
    def brown_almost_linear(x):  # (27) m = n; f = 0 at (a, ..., a, a^(1-n)); f = 1 elsewhere
        return jnp.concatenate([x[:-1] + jnp.sum(x) - (n + 1.0), (jnp.prod(x) - 1.0)[None]])

    return brown_almost_linear


def _discrete_bv(n):
    h = 1.0 / (n + 1)

    def discrete_boundary_value(x):  # (28) m = n; f = 0
        t = h * jnp.arange(1.0, n + 1.0)
        xp = jnp.concatenate([jnp.zeros(1), x, jnp.zeros(1)])
        return 2.0 * x - xp[:-2] - xp[2:] + h**2 * (x + t + 1.0) ** 3 / 2.0

    return discrete_boundary_value


def _discrete_ie(n):
    h = 1.0 / (n + 1)

    def discrete_integral_equation(x):  # (29) m = n; f = 0
        t = h * jnp.arange(1.0, n + 1.0)
        c = (x + t + 1.0) ** 3
        lower = jnp.cumsum(t * c)  # sum_{j <= i} t_j c_j
        upper = jnp.sum((1.0 - t) * c) - jnp.cumsum((1.0 - t) * c)  # sum_{j > i} (1 - t_j) c_j
        return x + h * ((1.0 - t) * lower + t * upper) / 2.0

    return discrete_integral_equation


def _broyden_tridiagonal(n):
    def broyden_tridiagonal(x):  # (30) m = n; f = 0
        xp = jnp.concatenate([jnp.zeros(1), x, jnp.zeros(1)])
        return (3.0 - 2.0 * x) * x - xp[:-2] - 2.0 * xp[2:] + 1.0

    return broyden_tridiagonal


def _broyden_banded(n):
    idx = np.arange(n)
    band = (
        (idx[None, :] >= idx[:, None] - 5)
        & (idx[None, :] <= idx[:, None] + 1)
        & (idx[None, :] != idx[:, None])
    ).astype(np.float64)
    band_j = jnp.asarray(band)

    def broyden_banded(x):  # (31) m = n; f = 0
        return x * (2.0 + 5.0 * x * x) + 1.0 - band_j @ (x * (1.0 + x))

    return broyden_banded


def _linear_full_rank(n, m):
    def linear_full_rank(x):  # (32) f = m - n
        s = jnp.sum(x)
        return jnp.concatenate([x - 2.0 * s / m - 1.0, jnp.full(m - n, -2.0 * s / m - 1.0)])

    return linear_full_rank


def _linear_rank1(n, m):
    def linear_rank1(x):  # (33) f = m(m - 1) / (2(2m + 1))
        return jnp.arange(1.0, m + 1.0) * jnp.sum(jnp.arange(1.0, n + 1.0) * x) - 1.0

    return linear_rank1


def _linear_rank1_zero(n, m):
    def linear_rank1_zero(x):  # (34) f = (m^2 + 3m - 6) / (2(2m - 3))
        # Rows 1 and m and columns 1 and n are zero: r_1 = r_m = -1, and for i = 2..m-1
        # r_i = (i - 1) sum_{j=2}^{n-1} j x_j - 1.
        s = jnp.sum(jnp.arange(2.0, n) * x[1 : n - 1])
        i = jnp.arange(1.0, m + 1.0)
        inner = (i > 1.0) & (i < m)
        return jnp.where(inner, (i - 1.0) * s, 0.0) - 1.0

    return linear_rank1_zero


def _chebyquad(n):
    m = n
    even = np.arange(1, m + 1) % 2 == 0
    i = np.arange(1, m + 1)
    integral = np.where(even, -1.0 / np.where(even, i * i - 1.0, 1.0), 0.0)
    integral_j = jnp.asarray(integral)

    def chebyquad(x):  # (35) m = n
        y = 2.0 * x - 1.0  # shifted Chebyshev polynomials on [0, 1]: T_i(2x - 1)
        ts = [jnp.ones_like(y), y]
        for _ in range(2, m + 1):
            ts.append(2.0 * y * ts[-1] - ts[-2])
        return jnp.stack([jnp.mean(ts[i]) for i in range(1, m + 1)]) - integral_j

    return chebyquad


def _build() -> dict[str, Problem]:
    ps = [
        Problem(1, "Rosenbrock", 2, 2, rosenbrock, _arr(-1.2, 1.0), (0.0,)),
        Problem(2, "Freudenstein-Roth", 2, 2, freudenstein_roth, _arr(0.5, -2.0), (48.9842, 0.0)),
        Problem(3, "Powell badly scaled", 2, 2, powell_badly_scaled, _arr(0.0, 1.0), (0.0,)),
        Problem(4, "Brown badly scaled", 2, 3, brown_badly_scaled, _arr(1.0, 1.0), (0.0,)),
        Problem(5, "Beale", 2, 3, beale, _arr(1.0, 1.0), (0.0,)),
        Problem(6, "Jennrich-Sampson", 2, 10, jennrich_sampson, _arr(0.3, 0.4), (124.362,)),
        Problem(7, "Helical valley", 3, 3, helical_valley, _arr(-1.0, 0.0, 0.0), (0.0,)),
        Problem(8, "Bard", 3, 15, bard, _arr(1.0, 1.0, 1.0), (8.21487e-3, 17.4286)),
        Problem(9, "Gaussian", 3, 15, gaussian, _arr(0.4, 1.0, 0.0), (1.12793e-8,)),
        Problem(10, "Meyer", 3, 16, meyer, _arr(0.02, 4000.0, 250.0), (87.9458,)),
        Problem(11, "Gulf", 3, 10, gulf, _arr(5.0, 2.5, 0.15), (0.0,)),
        Problem(12, "Box 3-D", 3, 10, box3d, _arr(0.0, 10.0, 20.0), (0.0,)),
        Problem(13, "Powell singular", 4, 4, powell_singular, _arr(3.0, -1.0, 0.0, 1.0), (0.0,)),
        Problem(14, "Wood", 4, 6, wood, _arr(-3.0, -1.0, -3.0, -1.0), (0.0,)),
        Problem(
            15,
            "Kowalik-Osborne",
            4,
            11,
            kowalik_osborne,
            _arr(0.25, 0.39, 0.415, 0.39),
            (3.07505e-4, 1.02734e-3),
        ),
        Problem(16, "Brown-Dennis", 4, 20, brown_dennis, _arr(25.0, 5.0, -5.0, -1.0), (85822.2,)),
        Problem(17, "Osborne 1", 5, 33, osborne1, _arr(0.5, 1.5, -1.0, 0.01, 0.02), (5.46489e-5,)),
        Problem(
            18,
            "Biggs EXP6",
            6,
            13,
            biggs_exp6,
            _arr(1.0, 2.0, 1.0, 1.0, 1.0, 1.0),
            (5.65565e-3, 0.0),
        ),
        Problem(
            19,
            "Osborne 2",
            11,
            65,
            osborne2,
            _arr(1.3, 0.65, 0.65, 0.7, 0.6, 3.0, 5.0, 7.0, 2.0, 4.5, 5.5),
            (4.01377e-2,),
        ),
        Problem(20, "Watson", 6, 31, _watson(6), np.zeros(6), (2.28767e-3,)),
        Problem(
            21,
            "Extended Rosenbrock",
            10,
            10,
            _extended_rosenbrock(10),
            np.tile(_arr(-1.2, 1.0), 5),
            (0.0,),
        ),
        Problem(
            22,
            "Extended Powell singular",
            8,
            8,
            _extended_powell(8),
            np.tile(_arr(3.0, -1.0, 0.0, 1.0), 2),
            (0.0,),
        ),
        Problem(23, "Penalty I", 4, 5, _penalty1(4), np.arange(1.0, 5.0), (2.24997e-5,)),
        Problem(24, "Penalty II", 4, 8, _penalty2(4), np.full(4, 0.5), (9.37629e-6,)),
        Problem(
            25,
            "Variably dimensioned",
            10,
            12,
            _variably_dimensioned(10),
            1.0 - np.arange(1.0, 11.0) / 10.0,
            (0.0,),
        ),
        Problem(
            26,
            "Trigonometric",
            10,
            10,
            _trigonometric(10),
            np.full(10, 0.1),
            (0.0, 2.79506e-5),
        ),
        Problem(
            27,
            "Brown almost-linear",
            10,
            10,
            _brown_almost_linear(10),
            np.full(10, 0.5),
            (0.0, 1.0),
        ),
        Problem(
            28,
            "Discrete boundary value",
            10,
            10,
            _discrete_bv(10),
            (lambda t: t * (t - 1.0))(np.arange(1.0, 11.0) / 11.0),
            (0.0,),
        ),
        Problem(
            29,
            "Discrete integral equation",
            10,
            10,
            _discrete_ie(10),
            (lambda t: t * (t - 1.0))(np.arange(1.0, 11.0) / 11.0),
            (0.0,),
        ),
        Problem(
            30, "Broyden tridiagonal", 10, 10, _broyden_tridiagonal(10), np.full(10, -1.0), (0.0,)
        ),
        Problem(31, "Broyden banded", 10, 10, _broyden_banded(10), np.full(10, -1.0), (0.0,)),
        Problem(32, "Linear full rank", 5, 10, _linear_full_rank(5, 10), np.ones(5), (5.0,)),
        Problem(33, "Linear rank 1", 5, 10, _linear_rank1(5, 10), np.ones(5), (10 * 9 / (2 * 21),)),
        Problem(
            34,
            "Linear rank 1 with zero columns and rows",
            5,
            10,
            _linear_rank1_zero(5, 10),
            np.ones(5),
            ((10 * 10 + 3 * 10 - 6) / (2 * (2 * 10 - 3)),),
        ),
        Problem(35, "Chebyquad", 8, 8, _chebyquad(8), np.arange(1.0, 9.0) / 9.0, (3.51687e-3,)),
    ]
    return {p.key: p for p in ps}


PROBLEMS: dict[str, Problem] = _build()
