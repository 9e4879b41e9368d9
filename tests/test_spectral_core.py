"""simkit.fluids.spectral core: the grid (mode numbers, wavenumbers, the 2/3 rule on even, odd
and non-square grids), the transforms, velocity <-> vorticity on single Fourier modes against
their analytic derivatives, the Parseval diagnostics against direct grid means, the energy
spectrum, seeded random initial fields, the curl of a force, Kolmogorov's Reynolds number and
laminar state, and the CFL helpers.

No time stepping here (see test_spectral_validation.py): numpy references and eager or
jitted jax calls on small grids; the cost is compiling jax operations for each new shape, so the
jax tests use two grid shapes. Conventions under test: axis 0 = x, nodes
x_i = i Lx / nx, w = dv/dx - du/dy, lap psi = -w, u = dpsi/dy, v = -dpsi/dx.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simkit._checks import SimkitInputError
from simkit.fluids import spectral as sp

# (shape, box): even square, odd, mixed even/odd, and a non-square box of aspect ratio 2.
GRIDS = [
    ((16, 16), (2 * math.pi, 2 * math.pi)),
    ((15, 9), (2 * math.pi, 2 * math.pi)),
    ((12, 21), (3.0, 5.0)),
    ((64, 32), (4 * math.pi, 2 * math.pi)),
]
GRID_IDS = ["16x16", "15x9-odd", "12x21-box3x5", "64x32-box4pix2pi"]
# The tests that call jax use two of them (every new shape costs compiles): odd sizes on a
# square box, even sizes on a box of aspect ratio 2. (32, 32) is the validation tests' grid.
JAX_GRIDS = [GRIDS[1], GRIDS[3]]
JAX_IDS = [GRID_IDS[1], GRID_IDS[3]]


def _grid(shape_box):
    return sp.SpectralGrid(*shape_box)


def _random_hat(grid, seed, dealiased=True):
    """rfft2 of a random real zero-mean field, optionally with the 2/3 rule applied."""
    w = np.random.default_rng(seed).standard_normal(grid.shape)
    w_hat = np.fft.rfft2(w)
    w_hat[0, 0] = 0.0
    return w_hat * grid.dealias_mask() if dealiased else w_hat


# ---------------------------------------------------------------- grid and wavenumbers


@pytest.mark.parametrize("shape_box", GRIDS, ids=GRID_IDS)
def test_mode_numbers_and_wavenumbers_follow_the_fft_layout_with_the_even_nyquist_zeroed(shape_box):
    grid = _grid(shape_box)
    (nx, ny), (lx, ly) = grid.shape, grid.box
    mx, my = grid.mode_numbers()
    assert mx.shape == (nx, 1) and my.shape == (1, ny // 2 + 1)
    assert grid.spectral_shape == (nx, ny // 2 + 1)
    # fft order: 0, 1, ..., then the negative modes; rfft keeps 0..ny//2
    np.testing.assert_array_equal(mx[:, 0], [m if 2 * m < nx else m - nx for m in range(nx)])
    np.testing.assert_array_equal(mx[:, 0], np.rint(np.fft.fftfreq(nx) * nx))
    np.testing.assert_array_equal(my[0], np.arange(ny // 2 + 1))
    kx, ky = grid.wavenumbers()
    want_kx = 2 * math.pi / lx * np.where(2 * np.abs(mx) == nx, 0, mx)
    want_ky = 2 * math.pi / ly * np.where(2 * np.abs(my) == ny, 0, my)
    np.testing.assert_allclose(kx, want_kx, rtol=1e-15, atol=0)
    np.testing.assert_allclose(ky, want_ky, rtol=1e-15, atol=0)
    # only an even axis has a Nyquist mode to zero
    assert (kx == 0).sum() == 1 + (nx % 2 == 0)
    assert (ky == 0).sum() == 1 + (ny % 2 == 0)
    np.testing.assert_allclose(grid.k_squared(), kx**2 + ky**2, rtol=1e-15)
    x, y = grid.points()
    np.testing.assert_allclose(x, np.arange(nx) * lx / nx, rtol=1e-15)
    np.testing.assert_allclose(y, np.arange(ny) * ly / ny, rtol=1e-15)
    assert grid.spacing == pytest.approx((lx / nx, ly / ny), rel=1e-15)
    xx, yy = grid.mesh()
    assert xx.shape == yy.shape == (nx, ny)
    np.testing.assert_array_equal(xx[:, 0], x)
    np.testing.assert_array_equal(yy[0], y)


@pytest.mark.parametrize("shape_box", GRIDS, ids=GRID_IDS)
def test_dealias_mask_keeps_three_m_below_n_and_removes_every_alias_of_a_product(shape_box):
    # The 2/3 rule (Orszag 1971, J. Atmos. Sci. 28:1074): with |m| < n/3 kept, a product of
    # two kept fields has |m| < 2n/3, whose aliases m -/+ n land at |m| > n/3: removed. So the
    # kept modes of a product computed on the grid equal those of the exact product (computed
    # here on a grid twice as fine, where nothing aliases). Tolerance 1e-12 (rounding only).
    grid = _grid(shape_box)
    nx, ny = grid.shape
    mask = grid.dealias_mask()
    mx, my = grid.mode_numbers()
    np.testing.assert_array_equal(mask, (3 * np.abs(mx) < nx) & (3 * np.abs(my) < ny))
    kept_x = sorted({int(m) for m in mx[:, 0] if 3 * abs(m) < nx})
    assert max(kept_x) == (nx - 1) // 3 and min(kept_x) == -((nx - 1) // 3)
    a_hat, b_hat = _random_hat(grid, 1), _random_hat(grid, 2)

    def fine(f_hat):  # the same band-limited field sampled on a (2 nx, 2 ny) grid
        full = np.fft.fft2(np.fft.irfft2(f_hat, s=grid.shape))  # the full (nx, ny) spectrum
        big = np.zeros((2 * nx, 2 * ny), complex)
        ix = np.rint(np.fft.fftfreq(nx) * nx).astype(int)
        iy = np.rint(np.fft.fftfreq(ny) * ny).astype(int)
        big[np.ix_(ix % (2 * nx), iy % (2 * ny))] = full
        return np.real(np.fft.ifft2(big)) * 4

    exact = np.fft.fft2(fine(a_hat) * fine(b_hat)) / 4  # exact product, on the fine grid
    coarse = np.fft.rfft2(np.fft.irfft2(a_hat, s=grid.shape) * np.fft.irfft2(b_hat, s=grid.shape))
    mxk = np.broadcast_to(mx, mask.shape)[mask]
    myk = np.broadcast_to(my, mask.shape)[mask]
    want = exact[mxk % (2 * nx), myk % (2 * ny)]
    got = coarse[mask]
    assert np.abs(got - want).max() <= 1e-12 * np.abs(want).max()
    # without the rule (a field with all modes) the product does alias
    a_full = _random_hat(grid, 1, dealiased=False)
    exact_full = np.fft.fft2(fine(a_full) ** 2) / 4
    coarse_full = np.fft.rfft2(np.fft.irfft2(a_full, s=grid.shape) ** 2)
    assert np.abs(coarse_full[mask] - exact_full[mxk % (2 * nx), myk % (2 * ny)]).max() > 1e-3


# ---------------------------------------------------------------- transforms


@pytest.mark.parametrize("shape_box", JAX_GRIDS, ids=JAX_IDS)
def test_transforms_are_unnormalised_rfft2_and_round_trip_to_rounding(shape_box):
    # Tolerance 1e-13 relative (float64 FFT rounding); batched over a leading axis.
    grid = _grid(shape_box)
    w = np.random.default_rng(0).standard_normal((3,) + grid.shape)
    w_hat = grid.to_spectral(jnp.asarray(w))
    assert w_hat.shape == (3,) + grid.spectral_shape
    np.testing.assert_allclose(w_hat, np.fft.rfft2(w), rtol=1e-13, atol=1e-12)
    back = grid.to_physical(w_hat)
    assert back.shape == w.shape
    assert np.abs(np.asarray(back) - w).max() <= 1e-13 * np.abs(w).max()
    # a single mode cos(kx x + ky y) has coefficient nx ny / 2 at its (mx, my)
    x, y = grid.mesh()
    kx, ky = 2 * math.pi * 2 / grid.box[0], 2 * math.pi * 1 / grid.box[1]
    c_hat = np.array(grid.to_spectral(jnp.asarray(np.cos(kx * x + ky * y))))
    assert c_hat[2, 1] == pytest.approx(grid.shape[0] * grid.shape[1] / 2, rel=1e-13)
    c_hat[2, 1] = 0
    assert np.abs(c_hat).max() < 1e-10


# ---------------------------------------------------------------- velocity and vorticity


MODES = [(1, 0), (0, 1), (2, 3), (-3, 1), (3, -2)]


@pytest.mark.parametrize("shape_box", JAX_GRIDS, ids=JAX_IDS)
def test_velocity_of_single_modes_matches_the_analytic_derivatives_of_the_streamfunction(shape_box):
    # w = sin(a x + b y + phase) -> psi = w / (a^2 + b^2) (lap psi = -w),
    # u = dpsi/dy = b cos(.) / k^2, v = -dpsi/dx = -a cos(.) / k^2; then dv/dx - du/dy = w and
    # div u = 0. Tolerance 1e-12 (rounding).
    grid = _grid(shape_box)
    x, y = grid.mesh()
    for mx, my in MODES:
        if 3 * abs(mx) >= grid.shape[0] or 3 * abs(my) >= grid.shape[1]:
            continue
        a, b = 2 * math.pi * mx / grid.box[0], 2 * math.pi * my / grid.box[1]
        phase = a * x + b * y + 0.3
        w = np.sin(phase)
        vel = np.asarray(grid.velocity(grid.to_spectral(jnp.asarray(w))))
        assert vel.shape == grid.shape + (2,)
        k2 = a * a + b * b
        np.testing.assert_allclose(vel[..., 0], b * np.cos(phase) / k2, rtol=0, atol=1e-12)
        np.testing.assert_allclose(vel[..., 1], -a * np.cos(phase) / k2, rtol=0, atol=1e-12)
        u_hat, v_hat = grid.velocity_hat(grid.to_spectral(jnp.asarray(w)))
        kx, ky = grid.wavenumbers()
        div = np.asarray(grid.to_physical(1j * kx * u_hat + 1j * ky * v_hat))
        curl = np.asarray(grid.to_physical(1j * kx * v_hat - 1j * ky * u_hat))
        assert np.abs(div).max() < 1e-12
        np.testing.assert_allclose(curl, w, rtol=0, atol=1e-12)


def test_streamfunction_solves_minus_laplacian_and_drops_the_mean():
    grid = sp.SpectralGrid((16, 12), box=(2.0, 3.0))
    w_hat = _random_hat(grid, 3) + 5.0  # 5.0 on every mode incl. the mean
    psi = np.asarray(grid.streamfunction_hat(jnp.asarray(w_hat)))
    k2 = grid.k_squared()
    assert psi[0, 0] == 0
    np.testing.assert_allclose((k2 * psi)[k2 > 0], w_hat[k2 > 0], rtol=1e-14)


@pytest.mark.parametrize("shape_box", JAX_GRIDS, ids=JAX_IDS)
def test_vorticity_from_velocity_inverts_velocity_and_drops_the_divergent_part(shape_box):
    # Tolerance 1e-12 relative (rounding). A gradient field grad(phi) and a uniform flow have
    # no vorticity.
    grid = _grid(shape_box)
    w_hat = _random_hat(grid, 4)
    vel = grid.velocity(jnp.asarray(w_hat))
    back = np.asarray(grid.vorticity_hat_from_velocity(vel))
    assert np.abs(back - w_hat).max() <= 1e-12 * np.abs(w_hat).max()
    x, y = grid.mesh()
    a, b = 2 * math.pi / grid.box[0], 2 * math.pi * 2 / grid.box[1]
    phi = np.cos(a * x - b * y)
    grad_phi = np.stack([-a * np.sin(a * x - b * y), b * np.sin(a * x - b * y)], -1)
    uniform = np.broadcast_to(np.array([0.7, -1.3]), grid.shape + (2,))
    polluted = np.asarray(vel) + grad_phi + uniform
    assert phi.shape == grid.shape
    back = np.asarray(grid.vorticity_hat_from_velocity(jnp.asarray(polluted)))
    assert np.abs(back - w_hat).max() <= 1e-12 * np.abs(w_hat).max()
    # vmapped over a batch
    batch = jnp.stack([vel, 2 * vel])
    np.testing.assert_allclose(
        jax.vmap(grid.vorticity_hat_from_velocity)(batch)[1],
        2 * w_hat,
        rtol=0,
        atol=1e-12 * np.abs(w_hat).max(),
    )


def test_velocity_and_diagnostics_take_explicit_batch_axes():
    # Leading batch axes '*batch' (not only vmap), under jax_numpy_rank_promotion='raise':
    # each batched result equals the per-field ones (tolerance 1e-13 relative).
    grid = _grid(JAX_GRIDS[1])
    batch = jnp.asarray(np.stack([_random_hat(grid, 8), _random_hat(grid, 9)]))
    funcs = (
        grid.velocity,
        lambda w: grid.vorticity_hat_from_velocity(grid.velocity(w)),
        lambda w: sp.energy(grid, w),
        lambda w: sp.enstrophy(grid, w),
        lambda w: sp.dissipation(grid, w, 0.1),
        lambda w: sp.energy_spectrum(grid, w),
    )

    @jax.jit
    def both(batch):
        return [(f(batch), jnp.stack([f(batch[0]), f(batch[1])])) for f in funcs]

    for batched, single in both(batch):
        assert batched.shape == single.shape
        np.testing.assert_allclose(
            batched, single, rtol=1e-13, atol=1e-13 * float(np.abs(np.asarray(single)).max())
        )


def test_nonlinear_term_is_minus_u_dot_grad_w_on_the_kept_modes():
    # The stepper evaluates -(u . grad w) as -(d_xx - d_yy)(u v) - d_xy (v^2 - u^2) (Basdevant
    # 1983, J. Comput. Phys. 50:209), equal to the advective form because div u = 0. Here the
    # advective form is computed directly (u, v and grad w on the grid, their products, then
    # the 2/3 rule): the products of kept modes alias only onto removed modes, so both agree
    # on every mode to rounding (tolerance 1e-12 of the largest coefficient), and the removed
    # modes of the stepper's term are zero. 64 x 32 on (4 pi, 2 pi), float64.
    shape, box = GRIDS[3]
    ns = sp.NavierStokes2D(shape, 0.01, box=box, dtype="float64")
    grid = ns.grid
    w_hat = _random_hat(grid, 10)
    kx, ky = grid.wavenumbers()
    vel = np.asarray(grid.velocity(jnp.asarray(w_hat)))
    w_x = np.fft.irfft2(1j * kx * w_hat, s=shape)
    w_y = np.fft.irfft2(1j * ky * w_hat, s=shape)
    want = -np.fft.rfft2(vel[..., 0] * w_x + vel[..., 1] * w_y) * grid.dealias_mask()
    got = np.asarray(ns.nonlinear(jnp.asarray(w_hat)))
    assert np.abs(got - want).max() <= 1e-12 * np.abs(want).max()
    assert np.all(got[~grid.dealias_mask()] == 0)


# ---------------------------------------------------------------- diagnostics


@pytest.mark.parametrize("shape_box", JAX_GRIDS, ids=JAX_IDS)
@pytest.mark.parametrize("dealiased", [True, False], ids=["dealiased", "all-modes"])
def test_parseval_diagnostics_equal_direct_grid_means(shape_box, dealiased):
    # energy = <|u|^2>/2, enstrophy = <w^2>/2, dissipation = nu <w^2> = nu <|grad u|^2>
    # (periodic box), all as box means of the physical fields. Tolerance 1e-12 relative.
    grid = _grid(shape_box)
    nu = 0.013
    w_hat = jnp.asarray(_random_hat(grid, 5, dealiased))
    w = np.asarray(grid.to_physical(w_hat))
    vel = np.asarray(grid.velocity(w_hat))
    e = float(sp.energy(grid, w_hat))
    z = float(sp.enstrophy(grid, w_hat))
    d = float(sp.dissipation(grid, w_hat, nu))
    assert e == pytest.approx(0.5 * np.mean(np.sum(vel**2, -1)), rel=1e-12)
    assert z == pytest.approx(0.5 * np.mean(w**2), rel=1e-12)
    assert d == pytest.approx(nu * np.mean(w**2), rel=1e-12)
    if dealiased:  # nu <|grad u|^2> from spectral derivatives of u, v (no Nyquist content)
        kx, ky = grid.wavenumbers()
        u_hat, v_hat = grid.velocity_hat(w_hat)
        grads = [grid.to_physical(1j * k * f) for k in (kx, ky) for f in (u_hat, v_hat)]
        assert d == pytest.approx(nu * np.mean(sum(np.asarray(g) ** 2 for g in grads)), rel=1e-12)
    # box_mean_product <a b> of two fields, and batching over a leading axis
    b_hat = jnp.asarray(_random_hat(grid, 6, dealiased))
    b = np.asarray(grid.to_physical(b_hat))
    assert float(sp.box_mean_product(grid, w_hat, b_hat)) == pytest.approx(
        np.mean(w * b), rel=1e-12, abs=1e-15
    )
    batch = jnp.stack([w_hat, 3 * w_hat])
    np.testing.assert_allclose(
        jax.vmap(lambda f: sp.energy(grid, f))(batch), [e, 9 * e], rtol=1e-12
    )


@pytest.mark.parametrize("shape_box", JAX_GRIDS, ids=JAX_IDS)
def test_energy_spectrum_sums_to_the_energy_and_puts_a_single_mode_in_its_shell(shape_box):
    # sum_s E(k_s) dk = energy (tolerance 1e-12); one mode of wavenumber |k| adds its energy / dk
    # to shell round(|k| / dk), dk = 2 pi / max(Lx, Ly).
    grid = _grid(shape_box)
    dk = 2 * math.pi / max(grid.box)
    k_s = sp.shell_wavenumbers(grid)
    np.testing.assert_allclose(k_s, np.arange(len(k_s)) * dk, rtol=1e-15)
    kx, ky = grid.wavenumbers()
    assert k_s[-1] >= math.sqrt(np.max(kx**2) + np.max(ky**2)) - dk / 2
    w_hat = jnp.asarray(_random_hat(grid, 7, dealiased=False))
    spec = np.asarray(sp.energy_spectrum(grid, w_hat))
    assert spec.shape == k_s.shape and (spec >= 0).all() and spec[0] == 0
    assert spec.sum() * dk == pytest.approx(float(sp.energy(grid, w_hat)), rel=1e-12)
    x, y = grid.mesh()
    for mx, my in [(1, 0), (0, 2), (2, -1), (-1, 2)]:
        a, b = 2 * math.pi * mx / grid.box[0], 2 * math.pi * my / grid.box[1]
        w = 0.7 * np.cos(a * x + b * y + 1.0)
        w_hat = grid.to_spectral(jnp.asarray(w))
        e = float(sp.energy(grid, w_hat))
        assert e == pytest.approx(0.25 * 0.49 / (a * a + b * b), rel=1e-12)  # |u| = 0.7 / k
        spec = np.asarray(sp.energy_spectrum(grid, w_hat))
        shell = int(round(math.hypot(a, b) / dk))
        assert spec[shell] == pytest.approx(e / dk, rel=1e-12)
        assert np.abs(np.delete(spec, shell)).max() <= 1e-12 * spec[shell]
    batch = jnp.stack([w_hat, 2 * w_hat])
    np.testing.assert_allclose(
        jax.vmap(lambda f: sp.energy_spectrum(grid, f))(batch)[1], 4 * spec, rtol=1e-12, atol=1e-14
    )


# ---------------------------------------------------------------- random initial fields


def test_random_vorticity_has_the_exact_energy_zero_mean_and_only_dealiased_modes():
    # Tolerances: energy 1e-12 relative (float32: 1e-5), mean and removed modes 1e-12 of the
    # field's scale. On the 64 x 32, (4 pi, 2 pi) grid; one compiled call makes all fields.
    grid = _grid(GRIDS[3])

    @jax.jit
    def fields(seed):
        return (
            sp.random_vorticity(grid, seed, energy=0.37, peak_wavenumber=3.0),
            sp.random_vorticity(grid, seed, energy=0.37, peak_wavenumber=3.0, dtype="float32"),
        )

    w, w32 = fields(3)
    assert w.shape == w32.shape == grid.shape
    assert w.dtype == jnp.float64 and w32.dtype == jnp.float32
    w_hat = np.fft.rfft2(np.asarray(w))
    assert float(sp.energy(grid, jnp.asarray(w_hat))) == pytest.approx(0.37, rel=1e-12)
    scale = np.abs(w_hat).max()
    assert abs(w_hat[0, 0]) <= 1e-12 * scale
    assert np.abs(w_hat[~grid.dealias_mask()]).max() <= 1e-12 * scale
    # float32 draws its own noise (another field of the same seed), with the same energy
    w32_hat = jnp.asarray(np.fft.rfft2(np.asarray(w32, np.float64)))
    assert float(sp.energy(grid, w32_hat)) == pytest.approx(0.37, rel=1e-5)


def test_random_vorticity_is_reproducible_per_seed_and_vmaps_over_keys():
    # vmapped over keys (two equal, one different), and an int seed n is the key
    # jax.random.key(n); tolerance 0 (the same computation) for equal seeds.
    grid = sp.SpectralGrid((32, 32))
    keys = jnp.stack([jax.random.key(11), jax.random.key(11), jax.random.key(12)])
    batch, energies = jax.jit(
        jax.vmap(
            lambda k: (lambda w: (w, sp.energy(grid, grid.to_spectral(w))))(
                sp.random_vorticity(grid, k)
            )
        )
    )(keys)
    batch = np.asarray(batch)
    assert batch.shape == (3,) + grid.shape
    np.testing.assert_array_equal(batch[0], batch[1])
    assert np.abs(batch[0] - batch[2]).max() > 0.1 * np.abs(batch[0]).max()
    np.testing.assert_allclose(energies, 0.5, rtol=1e-12)
    from_int = np.asarray(jax.jit(lambda n: sp.random_vorticity(grid, n))(11))
    np.testing.assert_allclose(from_int, batch[0], rtol=0, atol=1e-12 * np.abs(from_int).max())


def test_random_vorticity_spectrum_peaks_near_the_peak_wavenumber():
    # The default spectrum k^4 exp(-2 (k / k_p)^2) peaks at k = k_p. Averaged over 32 seeds
    # (32^2 grid, k_p = 4) the peak shell is within one shell (dk = 1) of k_p, and the spectrum
    # follows the prescribed shape: rms deviation of E(k) / shape(k) (normalised) below 0.25
    # over the shells k_p / 2 <= k <= 2 k_p (sampling noise: a shell of radius k holds ~pi k
    # independent coefficients, so ~1 / sqrt(32 pi k) ~ 0.06-0.1 per shell). A user spectrum
    # (a narrow band around k = 6) puts > 95% of the energy in shells 5-7.
    grid = sp.SpectralGrid((32, 32))
    k_s = sp.shell_wavenumbers(grid)
    keys = jax.random.split(jax.random.key(1), 32)
    k_p = 4.0

    @jax.jit
    def spectra(keys):
        def one(key, **kw):
            return sp.energy_spectrum(grid, grid.to_spectral(sp.random_vorticity(grid, key, **kw)))

        band = one(keys[0], spectrum=lambda k: jnp.exp(-(((k - 6.0) / 0.7) ** 2)))
        return jax.vmap(lambda key: one(key, peak_wavenumber=k_p))(keys), band

    default, band = (np.asarray(a) for a in spectra(keys))
    spec = default.mean(0)
    assert abs(k_s[np.argmax(spec)] - k_p) <= 1.0
    shape = k_s**4 * np.exp(-2 * (k_s / k_p) ** 2)
    sel = (k_s >= k_p / 2) & (k_s <= 2 * k_p)
    ratio = spec[sel] / shape[sel]
    ratio /= ratio.mean()
    assert np.sqrt(np.mean((ratio - 1) ** 2)) < 0.25, ratio
    assert band[5:8].sum() > 0.95 * band.sum()


# ---------------------------------------------------------------- forcing


def test_curl_of_a_force_field_is_dfy_dx_minus_dfx_dy():
    # Tolerance 1e-12 (rounding): Kolmogorov's force (A sin(K y), 0) has curl -A K cos(K y);
    # (0, sin(a x)) has a cos(a x); a gradient field has none.
    grid = sp.SpectralGrid((24, 16), box=(4 * math.pi, 2 * math.pi))
    x, y = grid.mesh()
    kol = sp.Kolmogorov(3)
    k_f = kol.k_f(grid)
    assert k_f == pytest.approx(3.0, rel=1e-15)
    f = np.stack([0.8 * np.sin(k_f * y), np.zeros_like(y)], -1)
    np.testing.assert_allclose(
        sp.curl(grid, jnp.asarray(f)), -0.8 * k_f * np.cos(k_f * y), rtol=0, atol=1e-12
    )
    # the stepper's built-in forcing is the same curl
    np.testing.assert_allclose(
        kol.curl_hat(grid) * 0.8, grid.to_spectral(sp.curl(grid, f)), rtol=0, atol=1e-10
    )
    a = 2 * math.pi * 2 / grid.box[0]
    g = np.stack([np.zeros_like(x), np.sin(a * x)], -1)
    np.testing.assert_allclose(sp.curl(grid, jnp.asarray(g)), a * np.cos(a * x), rtol=0, atol=1e-12)
    grad = np.stack([np.cos(a * x) * np.sin(y), np.sin(a * x) * np.cos(y) / a], -1) * a
    np.testing.assert_allclose(sp.curl(grid, jnp.asarray(grad)), 0, atol=1e-12)


def test_kolmogorov_reynolds_number_laminar_state_and_resolution_check():
    # Re = A / (nu^2 k_f^3), k_f = 2 pi n / Ly, and the laminar u = A / (nu k_f^2 + mu)
    # sin(k_f y) solves nu lap w - mu w + F = 0 with F = -A k_f cos(k_f y) (tolerance 1e-12).
    grid = sp.SpectralGrid((32, 48), box=(2.0, 3.0))
    kol = sp.Kolmogorov(2)
    k_f = 2 * math.pi * 2 / 3.0
    assert kol.reynolds(grid, 0.5, 0.02) == pytest.approx(0.5 / (0.02**2 * k_f**3), rel=1e-14)
    amp, nu, mu = 0.5, 0.02, 0.3
    lam = kol.laminar_velocity(grid, amp, nu, mu)
    assert lam.shape == grid.shape + (2,) and np.all(lam[..., 1] == 0)
    w_hat = np.asarray(grid.vorticity_hat_from_velocity(jnp.asarray(lam)))
    residual = -(nu * grid.k_squared() + mu) * w_hat + amp * kol.curl_hat(grid)
    assert np.abs(residual).max() <= 1e-12 * np.abs(amp * kol.curl_hat(grid)).max()
    with pytest.raises(SimkitInputError, match="needs ny > 12"):
        sp.Kolmogorov(4).check(sp.SpectralGrid((64, 12)))
    with pytest.raises(SimkitInputError, match="positive integer"):
        sp.Kolmogorov(0)


# ---------------------------------------------------------------- CFL


@pytest.mark.parametrize(
    "box", [(2 * math.pi, 2 * math.pi), (4 * math.pi, 2 * math.pi)], ids=["square", "aspect2"]
)
def test_stable_time_step_gives_at_most_the_target_cfl_number(box):
    # dt = cfl min(dx, dy) / (2 U): a flow with |u|, |v| <= U has dt (|u|/dx + |v|/dy) <= cfl,
    # with equality for |u| = |v| = U when dx = dy (tolerance 1e-14).
    grid = sp.SpectralGrid((32, 32), box=box)
    dx, dy = grid.spacing
    for target in (0.25, 0.5, 1.0):
        dt = sp.stable_time_step(2.0, grid, cfl=target)
        assert dt == pytest.approx(target * min(dx, dy) / 4.0, rel=1e-15)
        corner = jnp.full(grid.shape + (2,), 2.0)
        c = float(sp.cfl_number(grid, corner, dt))
        assert c == pytest.approx(target * min(dx, dy) * (1 / dx + 1 / dy) / 2, rel=1e-14)
        assert c <= target * (1 + 1e-14)
        w = sp.taylor_green(grid, 1) + np.sin(2 * grid.mesh()[1])
        vel = np.asarray(grid.velocity(grid.to_spectral(jnp.asarray(w))))
        umax = float(np.abs(vel).max())
        c = float(sp.cfl_number(grid, jnp.asarray(vel), sp.stable_time_step(umax, grid, target)))
        assert 0.5 * target * min(dx, dy) / max(dx, dy) <= c <= target * (1 + 1e-14)
        direct = dt * np.max(np.abs(vel[..., 0]) / dx + np.abs(vel[..., 1]) / dy)
        assert float(sp.cfl_number(grid, jnp.asarray(vel), dt)) == pytest.approx(direct, rel=1e-14)
    # the stepper's own CFL of a state agrees, and init refuses dt above MAX_CFL
    ns = sp.NavierStokes2D((32, 32), 0.01, box=box, dtype="float64")
    params = ns.params(0.01)
    w = sp.taylor_green(ns.grid, 1) + np.sin(2 * ns.grid.mesh()[1])
    state = ns.init(params, vorticity=w)
    vel = ns.grid.velocity(state.vorticity_hat)
    assert float(ns.cfl(state)) == pytest.approx(
        float(sp.cfl_number(ns.grid, vel, 0.01)), rel=1e-14
    )
    big = 1.5 * sp.MAX_CFL / float(ns.cfl(state)) * 0.01
    with pytest.raises(SimkitInputError, match="CFL"):
        sp.NavierStokes2D((32, 32), big, box=box, dtype="float64").init(params, vorticity=w)
