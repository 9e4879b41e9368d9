"""Rodas5 and Rodas5P: L-stable, stiffly accurate 5(4) Rosenbrock methods as `diffrax` solvers.

diffrax 0.7.2 has no Rosenbrock (linearly implicit) method. Its stiff solvers (Kvaerno, KenCarp)
are ESDIRK methods that run a Newton iteration at every stage; for small stiff systems on CPU
that iteration dominates the cost. A Rosenbrock method replaces it with one Jacobian and one LU
factorisation per step and exactly one linear solve per stage: no iteration, no convergence test.

Both methods have 8 stages, order 5 with an embedded order-4 solution, are L-stable and stiffly
accurate (the last two stages land on the embedded and the final solution, so the error
estimate is the last stage increment), and come with a 4th-order dense output. They are written
in the transformed form of E. Hairer and G. Wanner, *Solving Ordinary Differential Equations
II*, 2nd ed., Springer (1996), Sec. IV.7:

    (I / (h gamma) - J) u_i = f(t0 + c_i h, y0 + sum_j a_ij u_j) + sum_j (C_ij / h) u_j
                              + d_i h df/dt,                       y1 = y0 + sum_i m_i u_i,

with J = df/dy and df/dt at (t0, y0).

- Rodas5: G. Di Marzo, "RODAS5(4) -- Méthodes de Rosenbrock d'ordre 5(4) adaptées aux problèmes
  différentiels-algébriques", Master's thesis, Université de Genève (1993).
- Rodas5P: G. Steinebach, "Construction of Rosenbrock-Wanner method Rodas5P and numerical
  benchmarks within the Julia Differential Equations package", BIT Numer. Math. 63:27 (2023);
  same structure, coefficients chosen so that the order does not drop on stiff problems with a
  fast-varying forcing (Prothero-Robinson type).

Numerical values (method and dense output) are the published coefficients as tabulated in the
Julia SciML OrdinaryDiffEq.jl Rosenbrock tableaux. `tests/test_ode_stiff.py` checks the order of
each method and of its interpolant on problems with a closed-form solution.

States may be any pytree of floating or complex arrays; ensembles are a `jax.vmap` of the solve.
Reverse time (`t1 < t0`) follows diffrax's convention (see `AbstractRodas`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import diffrax
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
from jaxtyping import Array, Float, PyTree

from .._checks import SimkitInputError


@dataclasses.dataclass(frozen=True)
class RodasTableau:
    """Coefficients of an 8-stage, stiffly accurate Rosenbrock method in transformed form.

    Attributes:
        gamma: diagonal coefficient.
        a: `a_ij` for stages 2..6 (row i has i-1 entries). Stages 7 and 8 are stiffly
            accurate: each stage input is the previous stage input plus the previous stage
            increment, and y1 = (stage-8 input) + u_8.
        C: `C_ij` for stages 2..8.
        c: stage times as fractions of the step (8 entries; c_1 = 0, c_6 = c_7 = c_8 = 1).
        d: coefficients of `h df/dt` per stage (8 entries; zero for stages 6..8).
        h: dense output, 3 rows of 8: q_k = sum_i h[k][i] u_i and, for theta = (t - t0) / dt,
            y(theta) = (1 - theta) y0 + theta (y1 + (1 - theta)(q_0 + theta (q_1 + theta q_2))).
    """

    gamma: float
    a: tuple[tuple[float, ...], ...]
    C: tuple[tuple[float, ...], ...]
    c: tuple[float, ...]
    d: tuple[float, ...]
    h: tuple[tuple[float, ...], ...]


# Rodas5: G. Di Marzo (1993), see the module docstring.
RODAS5_TABLEAU = RodasTableau(
    gamma=0.19,
    a=(
        (2.0,),
        (3.040894194418781, 1.041747909077569),
        (2.576417536461461, 1.622083060776640, -0.9089668560264532),
        (2.760842080225597, 1.446624659844071, -0.3036980084553738, 0.2877498600325443),
        (
            -14.09640773051259,
            6.925207756232704,
            -41.47510893210728,
            2.343771018586405,
            24.13215229196062,
        ),
    ),
    C=(
        (-10.31323885133993,),
        (-21.04823117650003, -7.234992135176716),
        (32.22751541853323, -4.943732386540191, 19.44922031041879),
        (-20.69865579590063, -8.816374604402768, 1.260436877740897, -0.7495647613787146),
        (
            -46.22004352711257,
            -17.49534862857472,
            -289.6389582892057,
            93.60855400400906,
            318.3822534212147,
        ),
        (
            34.20013733472935,
            -14.15535402717690,
            57.82335640988400,
            25.83362985412365,
            1.408950972071624,
            -6.551835421242162,
        ),
        (
            42.57076742291101,
            -13.80770672017997,
            93.98938432427124,
            18.77919633714503,
            -31.58359187223370,
            -6.685968952921985,
            -5.810979938412932,
        ),
    ),
    c=(0.0, 0.38, 0.3878509998321533, 0.4839718937873840, 0.4570477008819580, 1.0, 1.0, 1.0),
    d=(
        0.19,
        -0.1823079225333714636,
        -0.319231832186874912,
        0.3449828624725343,
        -0.377417564392089818,
        0.0,
        0.0,
        0.0,
    ),
    h=(
        (
            27.354592673333357,
            -6.925207756232857,
            26.40037733258859,
            0.5635230501052979,
            -4.699151156849391,
            -1.6008677469422725,
            -1.5306074446748028,
            -1.3929872940716344,
        ),
        (
            44.19024239501722,
            1.3677947663381929e-13,
            202.93261852171622,
            -35.5669339789154,
            -181.91095152160645,
            3.4116351403665033,
            2.5793540257308067,
            2.2435122582734066,
        ),
        (
            -44.0988150021747,
            -5.755396159656812e-13,
            -181.26175034586677,
            56.99302194811676,
            183.21182741427398,
            -7.480257918273637,
            -5.792426076169686,
            -5.32503859794143,
        ),
    ),
)

# Rodas5P: G. Steinebach, "Construction of Rosenbrock-Wanner method Rodas5P and numerical
# benchmarks within the Julia Differential Equations package", BIT Numer. Math. 63:27 (2023).
RODAS5P_TABLEAU = RodasTableau(
    gamma=0.21193756319429014,
    a=(
        (3.0,),
        (2.849394379747939, 0.45842242204463923),
        (-6.954028509809101, 2.489845061869568, -10.358996098473584),
        (2.8029986275628964, 0.5072464736228206, -0.3988312541770524, -0.04721187230404641),
        (
            -7.502846399306121,
            2.561846144803919,
            -11.627539656261098,
            -0.18268767659942256,
            0.030198172008377946,
        ),
    ),
    C=(
        (-14.155112264123755,),
        (-17.97296035885952, -2.859693295451294),
        (147.12150275711716, -1.41221402718213, 71.68940251302358),
        (165.43517024871676, -0.4592823456491126, 42.90938336958603, -5.961986721573306),
        (
            24.854864614690072,
            -3.0009227002832186,
            47.4931110020768,
            5.5814197821558125,
            -0.6610691825249471,
        ),
        (
            30.91273214028599,
            -3.1208243349937974,
            77.79954646070892,
            34.28646028294783,
            -19.097331116725623,
            -28.087943162872662,
        ),
        (
            37.80277123390563,
            -3.2571969029072276,
            112.26918849496327,
            66.9347231244047,
            -40.06618937091002,
            -54.66780262877968,
            -9.48861652309627,
        ),
    ),
    c=(
        0.0,
        0.6358126895828704,
        0.4095798393397535,
        0.9769306725060716,
        0.4288403609558664,
        1.0,
        1.0,
        1.0,
    ),
    d=(
        0.21193756319429014,
        -0.42387512638858027,
        -0.3384627126235924,
        1.8046452872882734,
        2.325825639765069,
        0.0,
        0.0,
        0.0,
    ),
    h=(
        (
            25.948786856663858,
            -2.5579724845846235,
            10.433815404888879,
            -2.3679251022685204,
            0.524948541321073,
            1.1241088310450404,
            0.4272876194431874,
            -0.17202221070155493,
        ),
        (
            -9.91568850695171,
            -0.9689944594115154,
            3.0438037242978453,
            -24.495224566215796,
            20.176138334709044,
            15.98066361424651,
            -6.789040303419874,
            -6.710236069923372,
        ),
        (
            11.419903575922262,
            2.8879645146136994,
            72.92137995996029,
            80.12511834622643,
            -52.072871366152654,
            -59.78993625266729,
            -0.15582684282751913,
            4.883087185713722,
        ),
    ),
)

# Below this many unknowns the LU factorisation is written out with scalar operations (partial
# pivoting, unrolled at trace time). On CPU a LAPACK call per step and per stage costs more than
# the whole arithmetic of a 3x3 system: Robertson at rtol 1e-8 takes ~1.2 ms per solve with
# `jax.scipy.linalg.lu_factor/lu_solve` and ~0.1 ms with this (measured, 2-core CPU, separate
# processes). The unrolled form is also plain elementwise code under `vmap`.
_UNROLLED_LU_MAX_DIM = 8


def _lu_factor_small(m: Float[Array, "n n"]):
    """Gaussian elimination with partial pivoting, unrolled; returns (LU rows, pivot choices)."""
    n = m.shape[0]
    rows = [m[i] for i in range(n)]
    perm = []
    for k in range(n):
        # Bring the row with the largest |pivot| among rows k..n-1 to position k (a select, so
        # the choice stays traceable and vmappable).
        p = jnp.argmax(jnp.stack([jnp.abs(r[k]) for r in rows[k:]]))
        pivot_row = jnp.stack(rows[k:])[p]
        swapped = [jnp.where(p == j, rows[k], r) for j, r in enumerate(rows[k:])]
        rows = rows[:k] + [pivot_row] + swapped[1:]
        perm.append(p)
        for i in range(k + 1, n):
            factor = rows[i][k] / pivot_row[k]
            rows[i] = rows[i].at[k].set(factor).at[k + 1 :].add(-factor * pivot_row[k + 1 :])
    return jnp.stack(rows), perm


def _lu_solve_small(lu, perm, b: Float[Array, " n"]) -> Float[Array, " n"]:
    n = lu.shape[0]
    x = [b[i] for i in range(n)]
    for k in range(n):  # the row swaps, in the order they were made
        xk = jnp.stack(x[k:])[perm[k]]
        swapped = [jnp.where(perm[k] == j, x[k], v) for j, v in enumerate(x[k:])]
        x = x[:k] + [xk] + swapped[1:]
    for i in range(n):  # forward substitution, unit lower triangle
        for j in range(i):
            x[i] = x[i] - lu[i, j] * x[j]
    for i in reversed(range(n)):  # back substitution
        for j in range(i + 1, n):
            x[i] = x[i] - lu[i, j] * x[j]
        x[i] = x[i] / lu[i, i]
    return jnp.stack(x)


def _factor(m: Float[Array, "n n"]) -> Callable[[Float[Array, " n"]], Float[Array, " n"]]:
    """Factor `m` once; return a function that solves `m x = b`."""
    if m.shape[0] == 0:  # empty state: nothing to solve
        return lambda b: b
    if m.shape[0] <= _UNROLLED_LU_MAX_DIM:
        lu, perm = _lu_factor_small(m)
        return lambda b: _lu_solve_small(lu, perm, b)
    lu_piv = jsl.lu_factor(m)
    return lambda b: jsl.lu_solve(lu_piv, b)


class _Flat(NamedTuple):
    """A state pytree as one real vector: leaves raveled, cast to one dtype, and (for complex
    states) split into real and imaginary halves, so the Jacobian is that of a real system."""

    treedef: Any
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[Any, ...]
    dtype: Any  # common dtype of the leaves (complex or real)

    @classmethod
    def of(cls, tree) -> _Flat:
        leaves, treedef = jax.tree_util.tree_flatten(tree)
        dtypes = tuple(jnp.result_type(x) for x in leaves)
        with jax.numpy_dtype_promotion("standard"):
            common = jnp.result_type(*dtypes)
        return cls(treedef, tuple(jnp.shape(x) for x in leaves), dtypes, common)

    @property
    def complex(self) -> bool:
        return jnp.issubdtype(self.dtype, jnp.complexfloating)

    @property
    def real_dtype(self):
        return jnp.finfo(self.dtype).dtype

    def ravel(self, tree) -> Array:
        leaves = jax.tree_util.tree_leaves(tree)
        v = jnp.concatenate([jnp.ravel(x).astype(self.dtype) for x in leaves])
        return jnp.concatenate([v.real, v.imag]) if self.complex else v

    def unravel(self, v: Array):
        if self.complex:
            half = v.shape[0] // 2
            v = jax.lax.complex(v[:half], v[half:])
        leaves, i = [], 0
        for shape, dt in zip(self.shapes, self.dtypes, strict=False):
            size = math.prod(shape)
            leaves.append(v[i : i + size].reshape(shape).astype(dt))
            i += size
        return jax.tree_util.tree_unflatten(self.treedef, leaves)


class RodasDenseInterpolation(diffrax.AbstractLocalInterpolation):
    """4th-order continuous extension of one Rodas step (see `RodasTableau.h`).

    `y0`, `y1` have the structure of the state; `q` the same structure with a leading axis of 3
    on every leaf. Times are diffrax's internal (always increasing) times.
    """

    t0: float | Array
    t1: float | Array
    y0: PyTree[Array]
    y1: PyTree[Array]
    q: PyTree[Array]

    def evaluate(self, t0, t1=None, left: bool = True) -> PyTree[Array]:
        del left
        if t1 is not None:
            return jax.tree_util.tree_map(jnp.subtract, self.evaluate(t1), self.evaluate(t0))
        # A zero-length step happens in vmapped solves (members that reached t1 keep stepping,
        # masked): guard the division, or its NaN leaks into gradients through the mask.
        span = self.t1 - self.t0
        zero = span == 0
        theta = jnp.where(zero, 0, (t0 - self.t0) / jnp.where(zero, 1, span))

        def leaf(y0, y1, q):
            th = jnp.asarray(theta, y0.dtype)  # time and state dtypes may differ
            one_m = 1 - th
            return one_m * y0 + th * (y1 + one_m * (q[0] + th * (q[1] + th * q[2])))

        return jax.tree_util.tree_map(leaf, self.y0, self.y1, self.q)


class AbstractRodas(diffrax.AbstractAdaptiveSolver):
    """An 8-stage stiffly accurate Rosenbrock method of order 5(4), given by its `tableau`.

    Per step: one Jacobian `df/dy` (`jax.jacfwd`, exact), one `df/dt` (`jax.jvp`), one LU
    factorisation, 7 vector-field evaluations and 8 triangular solves; no Newton iteration.
    Error estimate: the last stage increment (order-5 solution minus the embedded order-4 one).
    Dense output: the method's own 4th-order interpolant, so `SaveAt(ts=...)` does not shorten
    steps.

    The step is written with diffrax's term interface: the stage function is
    `F(t, y) = terms.vf_prod(t, y, args, terms.contr(t0, t1))` (for an `ODETerm`, `h f(t, y)`),
    and the method reads, with `dt = t1 - t0` in diffrax's internal time,

        (I / gamma - dF/dy) u_i = F(t0 + c_i dt, y0 + sum_j a_ij u_j) + sum_j C_ij u_j
                                  + d_i dt dF/dt.

    This is the transformed form above multiplied by h. diffrax integrates `t1 < t0` by
    negating time and wrapping the term so that its control carries the sign; going through
    `contr`/`vf_prod` makes reverse-time solves (and so `BacksolveAdjoint`) correct.

    States: any pytree of floating or complex arrays (diffrax's convention). The step works
    on one real vector (leaves raveled; a complex state as real and imaginary parts, so the
    Jacobian is exact even for a non-holomorphic vector field). An empty state is carried
    through unchanged. float32 and float64 both work; stiff problems at tight tolerances need
    float64 (see `solve_stiff`).
    """

    tableau: ClassVar[RodasTableau]  # set by each concrete method
    term_structure: ClassVar = diffrax.AbstractTerm
    interpolation_cls: ClassVar[Callable[..., RodasDenseInterpolation]] = RodasDenseInterpolation

    def order(self, terms) -> int:
        return 5

    def init(self, terms, t0, t1, y0, args) -> None:
        leaves = jax.tree_util.tree_leaves(y0)
        if not leaves:
            raise SimkitInputError(
                f"{type(self).__name__} needs a state with at least one array, got {y0!r}."
            )
        for x in leaves:
            dtype = jnp.result_type(x)
            if not jnp.issubdtype(dtype, jnp.inexact):
                raise SimkitInputError(
                    f"{type(self).__name__} needs floating-point (or complex) state arrays, "
                    f"got dtype {dtype}; pass y0 as e.g. jnp.asarray(y0, float)."
                )
        return None

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        del solver_state, made_jump
        tab = self.tableau
        flat = _Flat.of(y0)
        control = terms.contr(t0, t1)

        def F(t, v):  # the stage function on the flat real vector
            return flat.ravel(terms.vf_prod(t, flat.unravel(v), args, control))

        v0 = flat.ravel(y0)
        n, dtype = v0.shape[0], v0.dtype
        dt = jnp.asarray(t1 - t0, dtype)
        F0, dFdt = jax.jvp(lambda t: F(t, v0), (t0,), (jnp.ones_like(t0),))
        jac = jax.jacfwd(lambda v: F(t0, v))(v0)
        solve = _factor(jnp.eye(n, dtype=dtype) / tab.gamma - jac)

        u: list[Array] = []
        v_in = v0
        for i in range(8):
            if i == 0:
                fi = F0
            else:
                if i < 6:
                    v_in = v0 + sum(a * uj for a, uj in zip(tab.a[i - 1], u, strict=False))
                else:  # stiffly accurate stages 7 and 8
                    v_in = v_in + u[i - 1]
                fi = F(t0 + tab.c[i] * (t1 - t0), v_in)
                fi = fi + sum(cij * uj for cij, uj in zip(tab.C[i - 1], u, strict=False))
            if tab.d[i] != 0.0:
                fi = fi + (tab.d[i] * dt) * dFdt.astype(dtype)
            u.append(solve(fi))
        v1 = v_in + u[7]
        q = jnp.asarray(tab.h, dtype=dtype) @ jnp.stack(u)  # (3, n)
        y1 = flat.unravel(v1)
        q_tree = jax.tree_util.tree_map(
            lambda *rows: jnp.stack(rows), *[flat.unravel(q[k]) for k in range(3)]
        )
        dense_info = dict(y0=y0, y1=y1, q=q_tree)
        return y1, flat.unravel(u[7]), dense_info, None, diffrax.RESULTS.successful

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)


class Rodas5(AbstractRodas):
    """Rodas5 (Di Marzo 1993): L-stable, stiffly accurate Rosenbrock method of order 5(4).

    A drop-in `diffrax` solver: `diffrax.diffeqsolve(diffrax.ODETerm(f), Rodas5(), ...)` or
    `simkit.ode.solve(problem, solver=Rodas5())`. See `AbstractRodas` for the cost per step.
    Like most Rosenbrock methods it loses order on stiff problems driven by a fast-varying
    forcing (Prothero-Robinson type, y' = -lam (y - g(t))): prefer `Rodas5P` there.

    Example (Robertson's kinetics, y `(3,)`, over 1e5 time units):
        >>> sol = solve_stiff(prob, solver=Rodas5(), rtol=1e-8, atol=1e-12)
        >>> controller = diffrax.PIDController(rtol=1e-8, atol=1e-12)
        >>> sol = diffrax.diffeqsolve(diffrax.ODETerm(f), Rodas5(), 0.0, 1e5, None, y0, args=k,
        ...                           stepsize_controller=controller)
    """

    tableau: ClassVar[RodasTableau] = RODAS5_TABLEAU


class Rodas5P(AbstractRodas):
    """Rodas5P (Steinebach 2023): Rodas5's structure with coefficients chosen to avoid order
    reduction on Prothero-Robinson-type stiff problems and to give a better dense output.
    A drop-in `diffrax` solver, as `Rodas5`.

    Example (y' = -1000 (y - cos t), a stiff problem driven by a fast forcing):
        >>> prob = ODEProblem(lambda t, y, p: -p * (y - jnp.cos(t)), jnp.zeros(1),
        ...                   jnp.array(1000.0), 0.0, 10.0)
        >>> sol = solve_stiff(prob, solver=Rodas5P(), rtol=1e-6, atol=1e-9)
    """

    tableau: ClassVar[RodasTableau] = RODAS5P_TABLEAU
