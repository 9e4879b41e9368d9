"""simkit.md space and pair potentials: minimum image, wrapping with image counts, gradients
through displacements; potential forms and their truncation/shift; hand-written forces against
autodiff and an independent numpy pair sum; species tables; tail corrections; the virial.

Everything here is float64 and host-sized (N <= 128): no time stepping, few compilations."""

import functools
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from simkit import md

sys.path.insert(0, str(Path(__file__).parent))
from _md_common import lj_reference, min_image

F64 = jnp.float64


_forces = jax.jit(md.forces, static_argnums=0)
_energy_virial = jax.jit(md.energy_virial, static_argnums=0)
_energy = jax.jit(md.energy, static_argnums=0)
_grad_all_pairs = jax.jit(
    lambda potential, p, x, species, box: jax.grad(
        lambda x: md.energy_all_pairs(potential, p, x, species, box)
    )(x),
    static_argnums=0,
)


def _all_pairs_idx(n):
    """A full neighbor list holding every other particle (the all-pairs reference list)."""
    j = np.broadcast_to(np.arange(n), (n, n)).copy()
    np.fill_diagonal(j, n)
    return jnp.asarray(j, jnp.int32)  # a constant when traced


def _random_config(seed, n, box, min_distance=0.8, dim=3):
    return md.random_packing(jax.random.key(seed), n, box, min_distance=min_distance, dtype=F64)


# ------------------------------------------------------------------------------------ space


def test_space_displacement_is_minimum_image_periodic_and_plain_difference_in_free_space():
    rng = np.random.default_rng(0)
    box = np.array([5.0, 7.0, 6.0])
    a = rng.uniform(-8, 15, (200, 3))
    b = rng.uniform(-8, 15, (200, 3))
    d = np.asarray(md.displacement(jnp.asarray(a), jnp.asarray(b), jnp.asarray(box)))
    # Reference: the shortest of all image vectors a - b + k L, k in {-4..4}^3 (exhaustive).
    k = np.stack(np.meshgrid(*[np.arange(-4, 5)] * 3, indexing="ij"), -1).reshape(-1, 3)
    cand = (a - b)[:, None, :] + k[None] * box
    best = cand[np.arange(200), np.argmin(np.sum(cand**2, -1), 1)]
    np.testing.assert_allclose(d, best, atol=1e-12)
    assert np.all(np.abs(d) <= box / 2 + 1e-12)
    free = md.displacement(jnp.asarray(a), jnp.asarray(b), None)
    np.testing.assert_array_equal(np.asarray(free), a - b)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_space_wrap_counts_images_and_unwrap_of_wrap_is_identity(dtype):
    rng = np.random.default_rng(1)
    box = np.array([4.0, 5.5, 3.0])
    x = rng.uniform(-30, 40, (500, 3))
    x[:5] = [[0, 0, 0], [4, 5.5, 3], [-4, -5.5, -3], [8, 11, 6], [3.9999, 5.4999, 2.9999]]
    x = jnp.asarray(x, dtype)
    box_a = jnp.asarray(box, dtype)
    wrapped, image = md.wrap(x, box_a)
    w = np.asarray(wrapped)
    assert image.dtype == jnp.int32
    assert np.all(w >= 0) and np.all(w < box), "wrapped positions must lie in [0, L)"
    # unwrap(wrap(x)) == x up to the rounding of x - k L: |x| <= 40, so a few ulp of 40
    tol = 4 * 40 * float(jnp.finfo(dtype).eps)
    np.testing.assert_allclose(
        np.asarray(md.unwrap(wrapped, image, box_a)), np.asarray(x), atol=tol
    )
    np.testing.assert_array_equal(
        np.asarray(image), np.floor(np.asarray(x, np.float64) / box).astype(int)
    )
    # image counts accumulate from a given start
    w2, im2 = md.wrap(wrapped + 2 * box_a[None, :], box_a, image)
    np.testing.assert_array_equal(np.asarray(im2), np.asarray(image) + 2)
    np.testing.assert_allclose(np.asarray(w2), w, atol=tol)
    # free space: unchanged, no image counts
    same, none = md.wrap(x, None)
    assert none is None and same is x
    assert md.unwrap(x, image, None) is x


def test_space_wrap_just_below_zero_in_float32_keeps_unwrap_exact():
    box = jnp.asarray([4.0, 4.0, 4.0], jnp.float32)
    x = jnp.asarray([[-1e-9, -1e-8, -1e-7]], jnp.float32)
    wrapped, image = md.wrap(x, box)
    assert np.all(np.asarray(wrapped) >= 0) and np.all(np.asarray(wrapped) < 4.0)
    np.testing.assert_allclose(np.asarray(md.unwrap(wrapped, image, box)), np.asarray(x), atol=1e-6)


def test_space_displacement_is_differentiable_in_positions_and_box():
    box = jnp.asarray([3.0, 4.0, 5.0], F64)
    ri = jnp.asarray([0.2, 3.9, 1.0], F64)
    rj = jnp.asarray([2.9, 0.1, 4.8], F64)

    def r2(ri, box):
        d = md.displacement(ri, rj, box)
        return jnp.sum(d * d)

    d = np.asarray(md.displacement(ri, rj, box))
    g_r, g_box = jax.grad(r2, argnums=(0, 1))(ri, box)
    # d(|d|^2)/d(ri) = 2 d with d the minimum image (not the raw difference)
    np.testing.assert_allclose(np.asarray(g_r), 2 * d, rtol=1e-12)
    # d = dr - L round(dr / L): d(|d|^2)/dL = -2 d round(dr / L)
    k = np.round((np.asarray(ri) - np.asarray(rj)) / np.asarray(box))
    np.testing.assert_allclose(np.asarray(g_box), -2 * d * k, rtol=1e-12)
    assert np.all(k != 0)  # every axis crosses the boundary: the box gradient is exercised
    # free space: plain difference
    g_free = jax.grad(lambda ri: jnp.sum(md.displacement(ri, rj, None) ** 2))(ri)
    np.testing.assert_allclose(np.asarray(g_free), 2 * (np.asarray(ri) - np.asarray(rj)))


# ------------------------------------------------------------------------------- potentials


def _u(potential, p, r):
    r = jnp.asarray(r, F64)
    u, du_dr2 = potential.energy_and_derivative(r * r, p)
    return np.asarray(u), np.asarray(2 * r * du_dr2)  # (U, dU/dr)


def _lj(r, eps=1.0, sig=1.0):
    s6 = (sig / np.asarray(r, np.float64)) ** 6
    return 4 * eps * (s6 * s6 - s6)


def _lj_dr(r, eps=1.0, sig=1.0):
    s6 = (sig / np.asarray(r, np.float64)) ** 6
    return -24 * eps * (2 * s6 * s6 - s6) / r


def test_potential_lj_plain_truncation_values_and_jump_at_cutoff():
    lj = md.LennardJones(cutoff=2.5)
    p = lj.params(F64, epsilon=1.3, sigma=1.1)
    r = np.array([0.95, 1.1, 1.1 * 2 ** (1 / 6), 1.7, 2.4999])
    u, du = _u(lj, p, r)
    np.testing.assert_allclose(u, _lj(r, 1.3, 1.1), rtol=1e-13)
    np.testing.assert_allclose(du, _lj_dr(r, 1.3, 1.1), rtol=1e-12, atol=1e-13)
    assert u[2] == pytest.approx(-1.3, rel=1e-13)  # well depth epsilon at 2^(1/6) sigma
    u_out, du_out = _u(lj, p, [2.5, 2.50001, 7.0])
    np.testing.assert_array_equal(u_out, 0.0)
    np.testing.assert_array_equal(du_out, 0.0)
    # plain truncation: U jumps by U(rc) at the cutoff
    assert _u(lj, p, [2.5 - 1e-9])[0][0] == pytest.approx(_lj(2.5, 1.3, 1.1), rel=1e-6)


def test_potential_lj_energy_shift_makes_energy_continuous_at_cutoff():
    lj = md.LennardJones(cutoff=2.5, shift="energy")
    p = lj.params(F64)
    r = np.array([1.0, 1.5, 2.0])
    u, du = _u(lj, p, r)
    np.testing.assert_allclose(u, _lj(r) - _lj(2.5), rtol=1e-13)
    np.testing.assert_allclose(du, _lj_dr(r), rtol=1e-12)  # the force is unchanged
    for delta in (1e-3, 1e-5, 1e-7):
        u_in, du_in = _u(lj, p, [2.5 - delta])
        # |U(rc - delta)| <= |U'(rc)| delta (1 + delta): Taylor bound, U'' small at rc
        assert abs(u_in[0]) <= abs(_lj_dr(2.5)) * delta * 1.01
        # the force still jumps: this shift is energy-only
        assert du_in[0] == pytest.approx(_lj_dr(2.5), rel=1e-2)


def test_potential_lj_force_shift_makes_force_continuous_at_cutoff():
    lj = md.LennardJones(cutoff=2.5, shift="force")
    p = lj.params(F64)
    r = np.array([1.0, 1.5, 2.0])
    u, du = _u(lj, p, r)
    ref = _lj(r) - _lj(2.5) - (r - 2.5) * _lj_dr(2.5)
    np.testing.assert_allclose(u, ref, rtol=1e-12)
    np.testing.assert_allclose(du, _lj_dr(r) - _lj_dr(2.5), rtol=1e-12)
    d2 = abs(_lj_dr(2.5 + 1e-5) - _lj_dr(2.5 - 1e-5)) / 2e-5  # |U''(rc)|, about 0.09
    for delta in (1e-3, 1e-5):
        u_in, du_in = _u(lj, p, [2.5 - delta])
        # Taylor: |U'(rc - delta)| <= |U''| delta, |U(rc - delta)| <= |U''| delta^2 / 2 (+1 %)
        assert abs(du_in[0]) <= d2 * delta * 1.01 + 1e-14
        assert abs(u_in[0]) <= d2 * delta**2 / 2 * 1.01 + 1e-14


def test_potential_wca_is_zero_from_its_minimum_and_continuous_there():
    wca = md.WCA(cutoff=2 ** (1 / 6) * 1.5)
    p = wca.params(F64, sigma=jnp.asarray([[1.0, 1.25], [1.25, 1.5]]))
    for sig in (1.0, 1.25, 1.5):
        pp = {"epsilon": jnp.asarray(1.0, F64), "sigma": jnp.asarray(sig, F64)}
        rm = 2 ** (1 / 6) * sig
        u, du = _u(wca, pp, [rm, rm * 1.0001, rm * 1.3])
        np.testing.assert_array_equal(u, 0.0)  # zero at and after 2^(1/6) sigma
        np.testing.assert_array_equal(du, 0.0)
        r = np.array([0.9, 1.0, 1.1]) * sig
        np.testing.assert_allclose(_u(wca, pp, r)[0], _lj(r, 1.0, sig) + 1.0, rtol=1e-12)
        # continuity at the minimum: U = U''(rm) delta^2 / 2 + O(delta^3), U''(rm) = 57.15 / sig^2
        delta = 1e-4 * sig
        assert 0 <= _u(wca, pp, [rm - delta])[0][0] <= 57.2 / sig**2 * delta**2 / 2 * 1.01
    # the species table: pair (0, 1) uses sigma_01 = 1.25
    u01 = wca.energy(jnp.asarray([1.3**2]), {"epsilon": p["epsilon"], "sigma": p["sigma"][0, 1]})
    np.testing.assert_allclose(np.asarray(u01), _lj(1.3, 1.0, 1.25) + 1.0, rtol=1e-12)


def test_potential_morse_soft_sphere_and_pair_function_match_their_formulas():
    r = np.array([0.7, 0.9, 1.0, 1.3, 2.0, 2.9])
    morse = md.Morse(cutoff=3.0)
    pm = morse.params(F64, epsilon=0.8, alpha=4.0, r0=1.1)
    ref = 0.8 * ((1 - np.exp(-4.0 * (r - 1.1))) ** 2 - 1)
    np.testing.assert_allclose(_u(morse, pm, r)[0], ref, rtol=1e-12)
    assert _u(morse, pm, [1.1])[0][0] == pytest.approx(-0.8, rel=1e-13)  # depth at r0
    assert _u(morse, pm, [3.0])[0][0] == 0.0

    for alpha in (2.0, 2.5):
        soft = md.SoftSphere(cutoff=1.2, alpha=alpha)
        ps = soft.params(F64, epsilon=3.0, sigma=1.2)
        ref = np.where(r < 1.2, 3.0 / alpha * np.clip(1 - r / 1.2, 0, None) ** alpha, 0.0)
        u, du = _u(soft, ps, r)
        np.testing.assert_allclose(u, ref, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(
            du,
            np.where(r < 1.2, -3.0 / 1.2 * np.clip(1 - r / 1.2, 0, None) ** (alpha - 1), 0.0),
            rtol=1e-12,
            atol=1e-15,
        )

    yukawa = md.PairFunction(
        fn=lambda r, A, kappa: A * jnp.exp(-kappa * r) / r,
        cutoff=2.5,
        shift="energy",
        param_names=("A", "kappa"),
        defaults=(1.0, 1.0),
    )
    py = yukawa.params(F64, A=2.0, kappa=1.5)

    def yk(r):
        return 2.0 * np.exp(-1.5 * r) / r

    u, du = _u(yukawa, py, r)
    np.testing.assert_allclose(u, np.where(r < 2.5, yk(r) - yk(2.5), 0.0), rtol=1e-12)
    np.testing.assert_allclose(
        du, np.where(r < 2.5, -2.0 * np.exp(-1.5 * r) * (1.5 * r + 1) / r**2, 0.0), rtol=1e-12
    )


def test_potential_pair_function_docstring_example_with_positional_fn():
    yukawa = md.PairFunction(
        lambda r, A, kappa: A * jnp.exp(-kappa * r) / r,
        cutoff=4.0,
        shift="energy",
        param_names=("A", "kappa"),
        defaults=(1.0, 1.0),
    )
    assert yukawa.cutoff == 4.0


_YUKAWA = md.PairFunction(
    fn=lambda r, A, kappa: A * jnp.exp(-kappa * r) / r,
    cutoff=2.5,
    shift="force",
    param_names=("A", "kappa"),
    defaults=(1.0, 1.0),
)
_POTENTIALS = {  # LennardJones "none" is checked against the numpy pair sum below
    "lj-energy": (md.LennardJones(cutoff=2.5, shift="energy"), {"sigma": 1.05}),
    "lj-force": (md.LennardJones(cutoff=2.2, shift="force"), {"epsilon": 0.7}),
    "wca": (md.WCA(), {}),
    "morse": (md.Morse(cutoff=2.5), {"alpha": 3.0}),
    "soft-sphere": (md.SoftSphere(cutoff=1.2, alpha=2.5), {"sigma": 1.2}),
    "pair-function": (_YUKAWA, {"kappa": 1.2}),
}


@functools.partial(jax.jit, static_argnums=0)
def _forces_and_minus_grad(potential, p, x, box):
    n = x.shape[0]
    f = md.forces(potential, p, x, _all_pairs_idx(n), jnp.zeros(n, jnp.int32), box)
    return f, -jax.grad(lambda x: md.energy_all_pairs(potential, p, x, box=box))(x)


@pytest.mark.parametrize("name", sorted(_POTENTIALS))
def test_potential_forces_equal_minus_grad_of_all_pairs_energy(name):
    potential, values = _POTENTIALS[name]
    p = potential.params(F64, **values)
    box = (5.5, 5.5, 5.5)
    x = _random_config(7, 64, box)
    # periodic for every potential; free space (no images) for one of them
    for box_a in [jnp.asarray(box, F64)] + ([None] if name == "lj-energy" else []):
        f, g = _forces_and_minus_grad(potential, p, x, box_a)
        assert float(jnp.max(jnp.abs(f))) > 0.1  # an interacting configuration
        # Same float64 pair terms summed in another order / by reverse- vs forward-mode: they
        # agree to ~K eps |F| (K <= 63 terms a row); 1e-11 of the largest force is ample.
        np.testing.assert_allclose(
            np.asarray(f), np.asarray(g), atol=1e-11 * float(jnp.max(jnp.abs(f)))
        )


@pytest.mark.parametrize("shift", ["none", "energy", "force"])
def test_potential_lj_energy_forces_virial_equal_independent_numpy_pair_sum(shift):
    box = (6.0, 6.0, 6.0)
    x = _random_config(3, 100, box)
    lj = md.LennardJones(cutoff=2.5, shift=shift)
    p = lj.params(F64, epsilon=1.2, sigma=0.95)
    idx, sp, box_a = _all_pairs_idx(100), jnp.zeros(100, jnp.int32), jnp.asarray(box, F64)
    u, w = _energy_virial(lj, p, x, idx, sp, box_a)
    f = _forces(lj, p, x, idx, sp, box_a)
    u_ref, f_ref, w_ref = lj_reference(x, box, 1.2, 0.95, 2.5, shift)
    # float64 sums of ~1000 pair terms: relative agreement ~1e-13; 1e-10 leaves room.
    assert float(u) == pytest.approx(u_ref, rel=1e-10)
    assert float(w) == pytest.approx(w_ref, rel=1e-10)
    np.testing.assert_allclose(np.asarray(f), f_ref, atol=1e-10 * np.abs(f_ref).max())
    assert float(_energy(lj, p, x, idx, sp, box_a)) == float(u)


def test_potential_species_tables_2x2_select_each_pairs_parameters():
    box = (6.0, 6.0, 6.0)
    x = _random_config(5, 100, box, min_distance=0.9)
    species = jnp.asarray(np.random.default_rng(2).integers(0, 2, 100), jnp.int32)
    eps = np.array([[1.0, 1.5], [1.5, 0.5]])
    sig = np.array([[1.0, 0.8], [0.8, 0.88]])
    lj = md.LennardJones(cutoff=2.5)
    p = lj.params(F64, epsilon=eps, sigma=sig)
    idx, box_a = _all_pairs_idx(100), jnp.asarray(box, F64)
    u, w = _energy_virial(lj, p, x, idx, species, box_a)
    f = _forces(lj, p, x, idx, species, box_a)
    u_ref, f_ref, w_ref = lj_reference(x, box, eps, sig, 2.5, "none", species)
    assert float(u) == pytest.approx(u_ref, rel=1e-10)
    assert float(w) == pytest.approx(w_ref, rel=1e-10)
    np.testing.assert_allclose(np.asarray(f), f_ref, atol=1e-10 * np.abs(f_ref).max())
    # and not the single-species answer (the table is really used)
    assert abs(u_ref - lj_reference(x, box, 1.0, 1.0, 2.5)[0]) > 1.0
    g = _grad_all_pairs(lj, p, x, species, box_a)
    np.testing.assert_allclose(np.asarray(f), -np.asarray(g), atol=1e-11 * np.abs(f_ref).max())


@pytest.mark.parametrize("cutoff", [2.5, 3.0])
def test_potential_lj_tail_corrections_equal_numerical_integrals(cutoff):
    """U_tail/N = 2 pi rho sum_ij x_i x_j int_rc^inf r^2 U_ij(r) dr and
    P_tail = -(2/3) pi rho^2 sum_ij x_i x_j int_rc^inf r^3 U_ij'(r) dr (Allen & Tildesley 2017,
    eqs. 2.144-2.145 before integration), evaluated by adaptive quadrature (error < 1e-12)."""
    lj = md.LennardJones(cutoff=cutoff)
    rho = 0.8
    p = lj.params(F64, epsilon=0.9, sigma=1.1)

    def u_int(e, s):
        return (
            2
            * np.pi
            * rho
            * integrate.quad(
                lambda r: r * r * _lj(r, e, s), cutoff, np.inf, epsabs=1e-14, epsrel=1e-12
            )[0]
        )

    def p_int(e, s):
        return (
            -2
            / 3
            * np.pi
            * rho**2
            * integrate.quad(
                lambda r: r**3 * _lj_dr(r, e, s), cutoff, np.inf, epsabs=1e-14, epsrel=1e-12
            )[0]
        )

    assert float(lj.tail_energy(rho, p)) == pytest.approx(u_int(0.9, 1.1), rel=1e-9)
    assert float(lj.tail_pressure(rho, p)) == pytest.approx(p_int(0.9, 1.1), rel=1e-9)
    # binary mixture with mole fractions x
    eps = np.array([[1.0, 0.6], [0.6, 0.4]])
    sig = np.array([[1.0, 1.2], [1.2, 1.4]])
    x = np.array([0.3, 0.7])
    pm = lj.params(F64, epsilon=eps, sigma=sig)
    u_ref = sum(x[i] * x[j] * u_int(eps[i, j], sig[i, j]) for i in range(2) for j in range(2))
    p_ref = sum(x[i] * x[j] * p_int(eps[i, j], sig[i, j]) for i in range(2) for j in range(2))
    assert float(lj.tail_energy(rho, pm, jnp.asarray(x))) == pytest.approx(u_ref, rel=1e-9)
    assert float(lj.tail_pressure(rho, pm, jnp.asarray(x))) == pytest.approx(p_ref, rel=1e-9)


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("shift", ["none", "force"])
def test_potential_virial_pressure_equals_minus_dU_dV_under_uniform_scaling(dim, shift):
    """W = sum_pairs r . F = -dU/ds at s = 1 when positions and box scale by s, so the
    configurational pressure W / (D V) equals -dU/dV (V = V0 s^D). Central differences with
    h = 1e-6: truncation ~h^2 |U'''| ~ 1e-10, roundoff ~eps |U| / h ~ 1e-8 (|U| < 1e3); no pair
    is within h r of the cutoff (checked), so plain truncation's jump is not crossed."""
    n, box = (100, (6.0,) * 3) if dim == 3 else (40, (8.0,) * 2)
    x = _random_config(11, n, box, min_distance=0.9)
    lj = md.LennardJones(cutoff=2.5, shift=shift)
    p = lj.params(F64)
    idx, sp = _all_pairs_idx(n), jnp.zeros(n, jnp.int32)

    def u_at(s):
        return float(_energy(lj, p, x * s, idx, sp, jnp.asarray(box, F64) * s))

    d = min_image(np.asarray(x)[:, None] - np.asarray(x)[None], box)
    r = np.sqrt(np.sum(d * d, -1))
    assert np.min(np.abs(r - 2.5)) > 1e-4
    h = 1e-6
    du_ds = (u_at(1 + h) - u_at(1 - h)) / (2 * h)
    _, w = _energy_virial(lj, p, x, idx, sp, jnp.asarray(box, F64))
    assert float(w) == pytest.approx(-du_ds, rel=1e-6, abs=1e-6)
    # pressure = (2 KE + W) / (D V)
    ke = jnp.asarray(12.5, F64)
    assert float(md.pressure(ke, w, jnp.asarray(box, F64))) == pytest.approx(
        (2 * 12.5 - du_ds) / (dim * np.prod(box)), rel=1e-6
    )
