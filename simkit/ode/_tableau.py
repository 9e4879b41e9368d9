"""Butcher tableaus of the explicit Runge-Kutta methods run by the fused ensemble kernels.

A tableau is static data (Python floats in tuples), so it hashes and can be a `jit` static
argument; the kernels cast the coefficients to the dtype of the state.

Sources (coefficients typed from the published tables; checked in tests/test_ode_fused.py against
the Runge-Kutta order conditions up to order 5 and by measured convergence order):

- Tsit5: Ch. Tsitouras, "Runge-Kutta pairs of order 5(4) satisfying only the first column
  simplifying assumption", Computers & Mathematics with Applications 62 (2011) 770-775, Table 1.
- Dopri5: J. R. Dormand and P. J. Prince, "A family of embedded Runge-Kutta formulae",
  J. Comput. Appl. Math. 6 (1980) 19-26, Table 2 (RK5(4)7M).
- RK4: the classical fourth-order method of Kutta (1901), e.g. Hairer, Norsett & Wanner,
  "Solving Ordinary Differential Equations I", 2nd ed., Table II.1.2.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ButcherTableau:
    """An explicit Runge-Kutta method, optionally with an embedded error estimate.

    Attributes:
        name: short lower-case name ("tsit5", "dopri5", "rk4").
        c: stage times as fractions of the step, length `s` (c[0] = 0).
        a: strictly lower-triangular coefficients, row `i` has `i` entries (row 0 is empty).
        b: weights of the propagated solution, length `s`.
        b_err: `b - b_hat` (weights of the embedded error estimate), length `s`, or `None`
            when the method has no embedded pair (fixed steps only).
        order: classical order of the propagated solution.
        embedded_order: order of the embedded solution `b_hat` (None without one).
        fsal: the last stage is evaluated at (t + dt, y1), so it is the next step's first stage.
        reference: where the coefficients come from.
    """

    name: str
    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    b_err: tuple[float, ...] | None
    order: int
    embedded_order: int | None
    fsal: bool
    reference: str

    @property
    def stages(self) -> int:
        return len(self.c)

    @property
    def error_order(self) -> int:
        """Order of the local error estimate, used as the step-size controller's exponent:
        min(order, embedded_order) + 1 (diffrax's convention for ODEs), 5 for a 5(4) pair."""
        if self.embedded_order is None:
            return self.order + 1
        return min(self.order, self.embedded_order) + 1

    @property
    def adaptive(self) -> bool:
        return self.b_err is not None


def _tsit5() -> ButcherTableau:
    # Tsitouras (2011), Table 1 (20 significant digits; float64 needs 17).
    c = (0.0, 0.161, 0.327, 0.9, 0.98002554090450968573, 1.0, 1.0)
    b = (
        0.096460766818065229518,
        0.01,
        0.47988965041449957478,
        1.3790085741037418932,
        -3.2900695154360806799,
        2.3247105240997739824,
        0.0,
    )
    b_hat = (
        0.094680755765839458075,
        0.0091835655403432530968,
        0.48777052842476157079,
        1.2342975669304789857,
        -2.7077123499835254549,
        1.8666284181705870358,
        1.0 / 66.0,
    )
    a = (
        (),
        (0.161,),
        (-0.0084806554923569885444, 0.33548065549235698854),
        (2.8971530571054934321, -6.3594484899750748431, 4.3622954328695814110),
        (
            5.3258648284392566044,
            -11.748883564062827878,
            7.4955393428898362083,
            -0.092495066361755249257,
        ),
        (
            5.8614554429464200287,
            -12.920969317847109292,
            8.1593678985761586432,
            -0.071584973281400997225,
            -0.028269050394068382909,
        ),
        b[:6],
    )
    return ButcherTableau(
        name="tsit5",
        c=c,
        a=a,
        b=b,
        b_err=tuple(x - y for x, y in zip(b, b_hat, strict=False)),
        order=5,
        embedded_order=4,
        fsal=True,
        reference="Tsitouras, Comput. Math. Appl. 62 (2011) 770, Table 1",
    )


def _dopri5() -> ButcherTableau:
    # Dormand & Prince (1980), RK5(4)7M.
    c = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
    b = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
    b_hat = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)
    a = (
        (),
        (1 / 5,),
        (3 / 40, 9 / 40),
        (44 / 45, -56 / 15, 32 / 9),
        (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
        (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
        b[:6],
    )
    return ButcherTableau(
        name="dopri5",
        c=c,
        a=a,
        b=b,
        b_err=tuple(x - y for x, y in zip(b, b_hat, strict=False)),
        order=5,
        embedded_order=4,
        fsal=True,
        reference="Dormand & Prince, J. Comput. Appl. Math. 6 (1980) 19, RK5(4)7M",
    )


def _rk4() -> ButcherTableau:
    return ButcherTableau(
        name="rk4",
        c=(0.0, 0.5, 0.5, 1.0),
        a=((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)),
        b=(1 / 6, 1 / 3, 1 / 3, 1 / 6),
        b_err=None,
        order=4,
        embedded_order=None,
        fsal=False,
        reference="classical RK4 (Kutta 1901); Hairer-Norsett-Wanner I, Table II.1.2",
    )


TSIT5 = _tsit5()
DOPRI5 = _dopri5()
RK4 = _rk4()

TABLEAUS: dict[str, ButcherTableau] = {t.name: t for t in (TSIT5, DOPRI5, RK4)}


def tableau_for(solver) -> ButcherTableau | None:
    """The fused-kernel tableau for `solver`, or `None` if the fused kernels do not cover it.

    Args:
        solver: a method name ("tsit5", "dopri5", "rk4", case-insensitive) or a diffrax solver
            instance (`diffrax.Tsit5()`, `diffrax.Dopri5()`); anything else gives `None`.

    Note: diffrax's `Dopri5` uses a different (also fourth-order) embedded weight set from the
    1980 paper's, so adaptive Dopri5 step sequences can differ slightly from diffrax; solutions
    agree within the tolerance. Tsit5's error estimate is the same as diffrax's.
    """
    if isinstance(solver, str):
        return TABLEAUS.get(solver.lower())
    # Exact type match: a user subclass of Tsit5 may change the method.
    import diffrax

    kinds = {diffrax.Tsit5: TSIT5, diffrax.Dopri5: DOPRI5}
    return kinds.get(type(solver))
