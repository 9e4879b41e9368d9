"""Fused ensemble kernels for explicit Runge-Kutta methods (Tsit5, Dopri5, RK4).

`jax.vmap(diffrax.diffeqsolve)` turns the per-member `while_loop` into one batched loop whose
members all step in lockstep with the slowest, and it carries diffrax's general machinery (terms,
interpolation, events, save states) through every step. The kernels here run the whole batch as
plain array code: one batched Runge-Kutta step is a handful of fused elementwise XLA ops.

Layout: the batch is stored member-first, `(n, dim)`, and the user's per-member vector field is
`jax.vmap`-ed. vmap of a field whose output is built with `jnp.stack` stacks along a new leading
axis and then transposes; with a member-first batch XLA's CPU backend keeps the stages in the
transposed layout and pays for it at every stage combination.

Cache blocking (fixed step): members are independent, so the batch is cut into blocks of ~128
members (`fixed_block_size`) and all steps of one block run before the next block starts
(`lax.map` over blocks). A block's state and stages then stay in L1 instead of every stage
streaming the whole batch through memory. Inside a block the state is member-last `(dim, B)`
(the layout the vmapped `jnp.stack` produces natively, so no transposes are left), each stage
state is materialised before the field reads it (else XLA recomputes the stage combination
once per output component) and the step loop is unrolled (`_FIXED_UNROLL`). On a 2-core AMD
EPYC (one core used), Lorenz-63, float64, Tsit5, N = 1e5 this took the kernel from ~41k to
~130k trajectories/s; see `_fixed_kernel` for each factor. Adaptive segments are blocked the
same way and also run member-last inside a block, with the loop state packed into one array per
dtype (fewer XLA kernels per step) and the controller's `x ** (1/5)` taken as a refined float32
root (`_power`); see `_adaptive_loop`. A segment runs on past `segment_steps` while a block's
members are about to finish.

Both kernels are compiled with 512-bit vectors when called at top level (`simkit._compile`),
and `solve_ensemble_fused` splits large ensembles over one host thread per core
(`simkit.ensemble._threads`).

Two kernels:

- `fixed_step_solve`: `lax.scan` over constant steps, saving at step indices. Differentiable
  (forward and reverse mode); each step is `jax.checkpoint`-ed so reverse mode stores one state
  per step rather than every stage.
- `adaptive_solve`: per-member time, step size and PI/PID control in a `lax.while_loop` run in
  bounded segments; a host loop between segments compacts the still-active members into a smaller
  batch (bucketed sizes), so a few stragglers do not keep the whole batch busy. It regroups only
  when that pays: when the member-steps saved (the stragglers' predicted remaining steps, from
  each one's pace so far, times the members dropped) exceed the measured host cost of a regroup. Not
  reverse-differentiable (use the diffrax path of `solve_ensemble(method="diffrax")` for gradients
  through adaptive solves).

Error control follows diffrax's `PIDController` (diffrax 0.7): scaled error
`rms(err / (atol + rtol * max(|y0|, |y1|)))`, accept if < 1, factor
`safety * e_n^(-b1/k) * e_{n-1}^(-b2/k) * e_{n-2}^(-b3/k)` clipped to `[factormin, factormax]`
(`[1, factormax]` after an accepted step, `[factormin, safety]` after a rejected one), with
`k` = the error order (5 for the 5(4) pairs, diffrax's convention), steps that would end within
100 ULP of a stop landing on it (diffrax's rule for `t1`, including halving the distance after a
rejected step). Without `dt0` the first step comes from the Hairer-Norsett-Wanner heuristic
("Solving ODEs I", Sec. II.4) per member; diffrax 0.7.2 implements the same heuristic, but
`diffeqsolve` wraps the term in a `WrapTerm`, the heuristic's `isinstance(terms, ODETerm)` test
fails and the first step is 0.01, so pass the same `dt0` to both to compare step sequences. Saving
at requested times is done by clipping steps to land on them exactly (no dense interpolation);
after landing on an intermediate save time the step size resumes from the unclipped proposal.
With saves only at `t1` and the same `dt0`, Tsit5 takes exactly diffrax's steps (tested).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PyTree

from .._checks import SimkitInputError
from .._compile import FIXED_STEP_OPTIONS, with_cpu_options
from ..ensemble._threads import (
    check_threads,
    chunk_count,
    join_members,
    run_chunks,
    split_members,
)
from ._tableau import ButcherTableau

# --------------------------------------------------------------------------------------------
# Batched vector field and one Runge-Kutta step on a batch (n, dim).
# --------------------------------------------------------------------------------------------


def _batched_field(
    vector_field: Callable, batched: bool, t_batched: bool, member_last: bool = False
) -> Callable:
    """`F(t, Y, P)` on a batch `Y (n, dim)`, from a per-member `f(t, y, p)`.

    With `batched=True` the given function already works on the batch (hand-batched field).
    `member_last=True`: `Y (dim, n)` and every params leaf with its member axis last (the
    fixed-step kernel's layout inside a cache block).
    """
    if batched:
        return vector_field
    ax = -1 if member_last else 0
    return jax.vmap(vector_field, in_axes=(0 if t_batched else None, ax, ax), out_axes=ax)


def _rk_step(
    F,
    tab: ButcherTableau,
    t,
    y,
    h,
    k1,
    params,
    *,
    with_error: bool,
    materialize_stages: bool = False,
    member_last: bool = False,
):
    """One explicit RK step for every member.

    Args:
        F: batched field on `(n, dim)`.
        t, h: time and step, each a scalar (shared) or `(n,)` (per member).
        y, k1: state and `F(t, y)`, `(n, dim)`.
        materialize_stages: write each stage state `y + h * sum_j a_ij k_j` to memory before the
            field reads it (`lax.optimization_barrier`). Otherwise XLA fuses the combination into
            the field and recomputes it for every output component that reads it (a field whose
            component `i` reads `dim` components computes the sum `dim` times). With the
            state in cache (the blocked fixed-step kernel) storing is cheaper: measured 1.0x
            (vmapped Lorenz-63 field) to 1.35x (hand-batched) faster per step there.
        member_last: the batch is `(dim, n)` (a per-member `h` is then broadcast along axis 0).

    Returns:
        (y1, err or None, k_last) where `k_last = F(t + h, y1)` for FSAL tableaus, else `None`.
    """
    dtype = y.dtype
    hb = h if jnp.ndim(h) == 0 else (h[None, :] if member_last else h[:, None])
    ks = [k1]
    for i in range(1, tab.stages):
        acc = None
        for j, a_ij in enumerate(tab.a[i]):
            if a_ij != 0.0:
                term = jnp.asarray(a_ij, dtype) * ks[j]
                acc = term if acc is None else acc + term
        yi = y + hb * acc
        if materialize_stages:
            yi = jax.lax.optimization_barrier(yi)
        if tab.fsal and i == tab.stages - 1:
            y1 = yi  # last row of A equals b
        ks.append(F(t + jnp.asarray(tab.c[i], dtype) * h, yi, params))
    if not tab.fsal:
        acc = None
        for b_j, k in zip(tab.b, ks, strict=False):
            if b_j != 0.0:
                term = jnp.asarray(b_j, dtype) * k
                acc = term if acc is None else acc + term
        y1 = y + hb * acc
    err = None
    if with_error:
        assert tab.b_err is not None  # only adaptive (embedded) tableaux ask for the error
        acc = None
        for e_j, k in zip(tab.b_err, ks, strict=False):
            if e_j != 0.0:
                term = jnp.asarray(e_j, dtype) * k
                acc = term if acc is None else acc + term
        err = hb * acc
    return y1, err, (ks[-1] if tab.fsal else None)


# --------------------------------------------------------------------------------------------
# Fixed step.
# --------------------------------------------------------------------------------------------


def fixed_step_plan(t0: float, t1: float, dt: float, save_ts, max_steps: int):
    """Host-side plan for a fixed-step solve: number of steps and the step index of each save.

    Args:
        t0, t1: time span; `t1 - t0` must be a whole number of steps `dt`.
        dt: the constant step, > 0.
        save_ts: save times `(n_save,)` inside `[t0, t1]`, each `t0 + k * dt` for an integer `k`,
            or `None` for `t1` only.
        max_steps: the step limit; more steps than this is refused before compiling.

    Returns:
        (n_steps, save_steps) with `save_steps` a tuple of ints (one per save time).

    Raises:
        SimkitInputError: the span or a save time is not a multiple of `dt` (relative tolerance
            1e-6 of a step), or the run needs more than `max_steps` steps.
    """
    span = (float(t1) - float(t0)) / dt
    n_steps = round(span)
    if abs(span - n_steps) > 1e-6 * max(1.0, span) or n_steps < 1:
        raise SimkitInputError(
            f"fixed-step fused solve needs t1 - t0 to be a whole number of steps dt0: "
            f"(t1 - t0) / dt0 = {span:.6g} with t0={t0}, t1={t1}, dt0={dt}. Choose "
            f"dt0 = (t1 - t0) / {max(1, n_steps)} or use method='diffrax' (which shortens the "
            "last step)."
        )
    if n_steps > max_steps:
        raise SimkitInputError(
            f"fixed-step solve needs {n_steps} steps of dt0={dt} but max_steps={max_steps}; "
            "raise max_steps or dt0."
        )
    if save_ts is None:
        return n_steps, (n_steps,)
    ts = np.asarray(save_ts, dtype=np.float64)
    k = (ts - float(t0)) / dt
    k_int = np.round(k)
    bad = np.abs(k - k_int) > 1e-6 * np.maximum(1.0, np.abs(k))
    if np.any(bad):
        i = int(np.argmax(bad))
        raise SimkitInputError(
            f"fixed-step save times must be t0 + k*dt0 for integer k: saveat[{i}] = "
            f"{float(ts[i])!r} is {float(k[i]):.6g} steps of dt0={dt} from t0={t0}. Use save "
            "times on the step grid, or "
            "method='diffrax' (which interpolates)."
        )
    return n_steps, tuple(int(x) for x in k_int)


# Members per block of the fixed-step kernel, as a number of state elements (block * dim).
# Measured on a 2-core AMD EPYC (L1d 32 KiB, L2 1 MiB per core), Lorenz-63, float64, Tsit5,
# one core, N = 1e5, CPU-time throughput: unblocked 41k trajectories/s (vmapped field) and 69k/s
# (hand-batched), each of the ~7 stage fusions per step streaming the whole batch from L3.
# Member-last blocks (see `_fixed_kernel`, unroll 1) of 64 / 128 / 256 / 512 members:
# 108k / 109k / 94k / 68k per s; the block's ~10 arrays of B * dim * 8 bytes leave L1 beyond
# ~128 members of a 3-dimensional state.
_BLOCK_ELEMENTS = 512
# Below this many members per block the per-step loop overhead dominates: no blocking.
_MIN_BLOCK = 8
# Steps per iteration of the fixed-step scan (see `_fixed_kernel`). Re-measured on the 2-core
# EPYC Zen 5 (AVX-512, L1d 48 KiB) with the kernels' 512-bit vectors (`simkit._compile`):
# N = 1e3, blocks of 128, one core, wall time of one 1000-step solve: unroll 4 / 8 / 16 / 32:
# 3.9 / 3.6 / 3.45 / 3.45 ms, compile 0.45 / 0.85 / 3.7 / 8.5 s. 8 is the compromise. Blocks of
# 64 / 128 / 256 / 512 at unroll 8: 3.8 / 3.6 / 3.7 / 5.7 ms (128 kept). With copy insertion's
# region analysis (`simkit._compile.FIXED_STEP_OPTIONS`) unroll 8 / 10 / 12: 3.24 / 3.24 / 3.0 ms,
# compile 0.8 / 1.1 / 1.8 s.
_FIXED_UNROLL = 8
# Adaptive segments (see `_adaptive_segment`), measured separately (same machine, Lorenz-63,
# rtol = atol = 1e-8, CPU-time throughput): N = 1e4 unblocked 103k trajectories/s, blocks of
# 128 / 256 / 1024 members 142k / 141k / 123k; N = 1e3 unblocked 114k, blocks of 256: 116k.
_ADAPTIVE_BLOCK_ELEMENTS = 768


def fixed_block_size(n: int, dim: int) -> int:
    """Members per block of the fixed-step kernel for `n` members of dimension `dim`
    (`n` itself when the batch is small or the state too large to block)."""
    b = _BLOCK_ELEMENTS // max(1, dim)
    if b < _MIN_BLOCK:
        return n
    b = 1 << (b.bit_length() - 1)  # power of two
    return n if n <= b else b


@functools.partial(
    with_cpu_options,
    jax.jit,
    options=FIXED_STEP_OPTIONS,
    static_argnames=("vector_field", "tab", "t0", "dt", "save_steps", "batched", "block"),
)
def _fixed_kernel(vector_field, tab, y0_b, params, t0, dt, save_steps, batched, block=None):
    """Fixed-step solve of `y0_b (n, dim)`; returns the saved states `(n, n_save, dim)`.

    Members are independent, so the batch is cut into blocks of `block` members (default
    `fixed_block_size`; `block=0`: the whole batch as one block) and every step of one block runs
    before the next block starts (`lax.map` over blocks, `lax.scan` over steps inside): a block's
    state and stages stay in L1 instead of streaming through memory at every stage. The last block
    is padded with copies of the last member, which are sliced off (zero cotangent).

    Inside a block a vmapped per-member field works member-last, `(dim, B)` with every params
    leaf's member axis last: vmap of a field that builds its output with `jnp.stack` produces
    that layout natively, so no transpose is left in the step. Measured at N = 1e5 (blocks of
    128, Lorenz-63): member-last 108k trajectories/s vs member-first 82k; a hand-batched field
    (member-first by contract) 102k. Each stage state is materialised (`materialize_stages`):
    without it the member-last block ran 59k/s (on the Zen 5 machine with 512-bit vectors:
    3.6 ms vs 93 ms at N = 1e3; XLA then fuses every stage into the next and recomputes them).
    The step scan is unrolled `_FIXED_UNROLL` steps per iteration (less loop overhead per step
    for a small block): unroll 4: 135k/s vs 109k/s (unroll 1) and 125k/s (unroll 2); see
    `_FIXED_UNROLL` for 8.
    """
    member_last = not batched
    F = _batched_field(vector_field, batched, t_batched=False, member_last=member_last)
    dtype = y0_b.dtype
    n, dim = y0_b.shape
    gaps = [s for s in np.diff((0,) + tuple(save_steps)) if s > 0]
    g = int(functools.reduce(math.gcd, gaps)) if gaps else 1
    n_chunks = max(save_steps) // g
    t0_ = jnp.asarray(t0, dtype)
    dt_ = jnp.asarray(dt, dtype)
    idx = np.asarray(save_steps) // g

    def solve_block(y0_blk, p_blk):
        """One block `(B, dim)` (member-last: `(dim, B)`) -> saved states `(n_save, *shape)`."""

        # Checkpointed so that reverse mode stores one state per step rather than every stage;
        # in the forward pass it costs nothing (measured within noise).
        @jax.checkpoint
        def step(carry, _):
            i, y, k1 = carry
            t = t0_ + i.astype(dtype) * dt_
            if not tab.fsal:
                k1 = F(t, y, p_blk)
            y1, _, k_last = _rk_step(
                F, tab, t, y, dt_, k1, p_blk, with_error=False, materialize_stages=True
            )
            return (i + 1, y1, k_last if tab.fsal else k1), None

        def chunk(carry, _):
            carry, _ = jax.lax.scan(step, carry, None, length=g, unroll=min(_FIXED_UNROLL, g))
            return carry, carry[1]

        k_init = F(t0_, y0_blk, p_blk) if tab.fsal else jnp.zeros_like(y0_blk)
        carry = (jnp.zeros((), jnp.int32), y0_blk, k_init)
        if n_chunks > 0:
            _, frames = jax.lax.scan(chunk, carry, None, length=n_chunks)
            frames = jnp.concatenate([y0_blk[None], frames], axis=0)
        else:
            frames = y0_blk[None]
        return frames[idx]

    b = fixed_block_size(n, dim) if block is None else (block or n)
    b = min(b, n)
    n_blocks = -(-n // b)
    pad = n_blocks * b - n

    def to_blocks(x):
        if pad:
            x = jnp.concatenate([x, jnp.broadcast_to(x[-1:], (pad,) + x.shape[1:])], axis=0)
        x = x.reshape((n_blocks, b) + x.shape[1:])
        return jnp.moveaxis(x, 1, -1) if member_last else x

    blocks = (to_blocks(y0_b), jax.tree_util.tree_map(to_blocks, params))
    if n_blocks == 1:
        frames = solve_block(*jax.tree_util.tree_map(lambda x: x[0], blocks))[None]
    else:
        frames = jax.lax.map(lambda a: solve_block(*a), blocks)
    # (n_blocks, n_save, dim, b) member-last or (n_blocks, n_save, b, dim) -> (n, n_save, dim)
    frames = jnp.transpose(frames, (0, 3, 1, 2) if member_last else (0, 2, 1, 3))
    return frames.reshape(n_blocks * b, len(save_steps), dim)[:n]


def fixed_step_solve(
    vector_field: Callable,
    tab: ButcherTableau,
    y0: Float[Array, "n dim"],
    params: PyTree,
    *,
    t0: float,
    dt: float,
    save_steps: tuple[int, ...],
    batched: bool = False,
    block: int | None = None,
) -> Float[Array, "n n_save dim"]:
    """Fixed-step batched RK solve; jittable and differentiable w.r.t. `y0` and `params`.

    Args:
        vector_field: per-member `f(t, y, p) -> dy/dt`, `y (dim,)` (or, with `batched=True`, a
            hand-batched field on `y (n, dim)`, params batched on axis 0).
        tab: the Butcher tableau.
        y0: initial states `(n, dim)`.
        params: pytree with a leading member axis `(n, ...)` on every leaf.
        t0, dt: start time and constant step (model time units).
        save_steps: step indices to save at (0 = initial state), e.g. from `fixed_step_plan`.
        block: members per cache block (default `fixed_block_size(n, dim)`; 0: the whole
            batch as one block). Results do not depend on it (to rounding).

    Returns:
        states at the save steps, `(n, n_save, dim)`, dtype of `y0`.
    """
    return _fixed_kernel(
        vector_field,
        tab,
        jnp.asarray(y0),
        params,
        float(t0),
        float(dt),
        tuple(int(s) for s in save_steps),
        batched,
        block,
    )


# --------------------------------------------------------------------------------------------
# Adaptive step.
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ControllerConfig:
    """Static PID step-size controller settings (diffrax `PIDController` semantics)."""

    rtol: float
    atol: float
    pcoeff: float = 0.0
    icoeff: float = 1.0
    dcoeff: float = 0.0
    safety: float = 0.9
    factormin: float = 0.2
    factormax: float = 10.0
    dtmax: float | None = None

    @classmethod
    def from_diffrax(cls, controller) -> ControllerConfig | None:
        """Config mirroring a `diffrax.PIDController`, or `None` if it uses options the fused
        kernel does not implement (dtmin, custom norm, step/jump times, error_order override)."""
        import diffrax
        import optimistix as optx

        if type(controller) is not diffrax.PIDController:
            return None
        if (
            controller.dtmin is not None
            or controller.error_order is not None
            or controller.norm is not optx.rms_norm
        ):
            return None
        try:
            vals = {
                f: float(getattr(controller, f))
                for f in (
                    "rtol",
                    "atol",
                    "pcoeff",
                    "icoeff",
                    "dcoeff",
                    "safety",
                    "factormin",
                    "factormax",
                )
            }
        except TypeError:  # traced coefficients
            return None
        dtmax = None if controller.dtmax is None else float(controller.dtmax)
        return cls(**vals, dtmax=dtmax)


class AdaptiveState(eqx.Module):
    """Per-member adaptive solver state, member axis first on every leaf (so it can be sliced,
    compacted and sharded along the ensemble axis)."""

    y: Float[Array, "n dim"]
    k1: Float[Array, "n dim"]  # F(t, y) (first stage, FSAL)
    t: Float[Array, " n"]
    tnext: Float[Array, " n"]
    dt_saved: Float[Array, " n"]  # unclipped proposal when tnext was clipped to a save time
    clipped: Bool[Array, " n"]
    inv_err1: Float[Array, " n"]  # 1 / scaled error of the last accepted step
    inv_err2: Float[Array, " n"]  # ... and of the one before
    stop_idx: Int[Array, " n"]  # index of the next stop time
    ys: Float[Array, "n n_stop dim"]
    num_steps: Int[Array, " n"]
    num_accepted: Int[Array, " n"]
    num_rejected: Int[Array, " n"]
    done: Bool[Array, " n"]
    success: Bool[Array, " n"]


def _rms(x):
    """Root mean square over the state axis of an `(n, dim)` batch.

    For small `dim` the sum is unrolled over columns: XLA on CPU runs a reduction over a short
    minor axis as a scalar loop, and the unrolled form measured ~1.5x faster per adaptive step.
    """
    dim = x.shape[1]
    if dim > 16:
        return jnp.sqrt(jnp.mean(x * x, axis=1))
    acc = x[:, 0] * x[:, 0]
    for i in range(1, dim):
        acc = acc + x[:, i] * x[:, i]
    return jnp.sqrt(acc / dim)


def initial_step(field, error_order: int, t, y, f0, params, rtol, atol, rms, expand):
    """Initial step size of Hairer, Norsett & Wanner ("Solving ODEs I", Sec. II.4), the
    heuristic diffrax implements, for one member or a batch.

    Args:
        field: `field(t, y, params) -> dy/dt` on the same layout as `y`.
        error_order: order of the embedded error estimate (5 for the 5(4) pairs).
        t, y, f0: time, state and `field(t, y)`; one member `y (dim,)`, `t` a scalar, or a
            member-first batch `y (n, dim)`, `t (n,)`.
        rms: root mean square over the state axis (`(dim,) -> ()` or `(n, dim) -> (n,)`).
        expand: broadcasts a step (scalar or `(n,)`) against `y`.

    Returns:
        the step, shaped like `t`, in model time units.
    """
    dtype = y.dtype
    scale = atol + jnp.abs(y) * rtol
    d0 = rms(y / scale)
    d1 = rms(f0 / scale)
    small = (d0 < 1e-5) | (d1 < 1e-5)
    h0 = jnp.where(small, jnp.asarray(1e-6, dtype), 0.01 * d0 / jnp.where(small, 1, d1))
    f1 = field(t + h0, y + expand(h0) * f0, params)
    d2 = rms((f1 - f0) / scale) / h0
    max_d = jnp.maximum(d1, d2)
    h1 = jnp.where(
        max_d <= 1e-15,
        jnp.maximum(jnp.asarray(1e-6, dtype), h0 * 1e-3),
        (0.01 / jnp.where(max_d <= 1e-15, 1, max_d)) ** (1.0 / error_order),
    )
    return jnp.minimum(100 * h0, h1)


def clip_factor(factor, keep, safety: float, factormin: float, factormax: float):
    """diffrax's `PIDController` limits on the step-size factor: `[1, factormax]` after an
    accepted step (`keep`), `[factormin, safety]` after a rejected one."""
    return jnp.clip(
        factor, jnp.where(keep, 1.0, factormin), jnp.where(keep, factormax, safety)
    ).astype(factor.dtype)


@functools.partial(
    jax.jit, static_argnames=("vector_field", "tab", "cfg", "batched", "n_initial_saves")
)
def _adaptive_init(vector_field, tab, cfg, batched, y0, params, t0, dt0, stops, n_initial_saves):
    """Initial state; `dt0` is a scalar (every member) or `None` (diffrax's initial-step
    heuristic, per member)."""
    F = _batched_field(vector_field, batched, t_batched=True)
    dtype = y0.dtype
    n, dim = y0.shape
    y = y0
    t = jnp.full((n,), t0, dtype)
    k1 = F(t, y, params)
    if dt0 is None:
        dt0 = initial_step(
            F, tab.error_order, t, y, k1, params, cfg.rtol, cfg.atol, _rms, lambda h: h[:, None]
        )
    dt0 = jnp.broadcast_to(jnp.asarray(dt0, dtype), (n,))
    if cfg.dtmax is not None:
        dt0 = jnp.minimum(dt0, cfg.dtmax)
    stop_idx = jnp.full((n,), n_initial_saves, jnp.int32)
    target = stops[jnp.minimum(stop_idx, stops.shape[0] - 1)]
    tnext = jnp.minimum(t + dt0, target)
    ys = jnp.full((n, stops.shape[0], dim), jnp.inf, dtype)  # unreached saves: inf, as diffrax
    if n_initial_saves:
        ys = ys.at[:, :n_initial_saves, :].set(y0[:, None, :])
    done = jnp.full((n,), n_initial_saves >= stops.shape[0])
    one = jnp.ones((n,), dtype)
    zeros_i = jnp.zeros((n,), jnp.int32)
    return AdaptiveState(
        y=y0,
        k1=k1,
        t=t,
        tnext=tnext,
        dt_saved=dt0,
        clipped=tnext < t + dt0,
        inv_err1=one,
        inv_err2=one,
        stop_idx=stop_idx,
        ys=ys,
        num_steps=zeros_i,
        num_accepted=zeros_i,
        num_rejected=zeros_i,
        done=done,
        success=done,
    )


def _pad_members(tree, pad: int):
    """Append `pad` copies of the last member to every leaf (leading member axis)."""
    if not pad:
        return tree
    return jax.tree_util.tree_map(
        lambda x: jnp.concatenate([x, jnp.broadcast_to(x[-1:], (pad,) + x.shape[1:])]), tree
    )


def adaptive_block_size(n: int, dim: int) -> int:
    """Members per block inside an adaptive segment (`n` when the batch is small or the state
    too large to block)."""
    b = _ADAPTIVE_BLOCK_ELEMENTS // max(1, dim)
    if b < _MIN_BLOCK:
        return n
    b = 1 << (b.bit_length() - 1)
    return n if n <= b else b


@functools.partial(
    with_cpu_options,
    jax.jit,
    static_argnames=(
        "vector_field",
        "tab",
        "cfg",
        "batched",
        "max_steps",
        "segment_steps",
        "block",
    ),
)
def _adaptive_segment(
    vector_field,
    tab,
    cfg,
    batched,
    max_steps,
    segment_steps,
    state,
    params,
    stops,
    floors,
    block=None,
):
    """Up to `segment_steps` attempted steps for every active member (while any is active).

    Run block by block like the fixed-step kernel (`block` members, default
    `adaptive_block_size`, 0 = whole batch): each block's loop also stops as soon as its own
    members are done. Padding members copy the last member and are marked done (masked).
    Inside the loop every leaf is member-last (`y (dim, B)`, `ys (n_stop, dim, B)`, scalars
    `(B,)`), as in the fixed-step kernel: each elementwise op then runs along the member axis,
    which XLA's CPU backend vectorises, instead of along a short state axis.
    """
    n, dim = state.y.shape
    b = adaptive_block_size(n, dim) if block is None else (block or n)
    b = min(b, n)
    n_blocks = -(-n // b)
    pad = n_blocks * b - n
    if pad:
        done = jnp.concatenate([state.done, jnp.ones((pad,), bool)])
        state = eqx.tree_at(lambda s: s.done, _pad_members(state, pad), done)
        params = _pad_members(params, pad)
    fields = {f.name: getattr(state, f.name) for f in dataclasses.fields(state)}

    def to_blocks(x, move=True):
        x = x.reshape((n_blocks, b) + x.shape[1:])
        return jnp.moveaxis(x, 1, -1) if move else x

    blocks = jax.tree_util.tree_map(to_blocks, fields)
    # A hand-batched field takes its params member-first (its contract); they stay so.
    pblocks = jax.tree_util.tree_map(lambda x: to_blocks(x, move=not batched), params)

    def loop(a):
        fields_blk, params_blk = a
        return _adaptive_loop(
            vector_field,
            tab,
            cfg,
            batched,
            max_steps,
            segment_steps,
            fields_blk,
            params_blk,
            stops,
            floors,
        )

    if n_blocks == 1:
        out = jax.tree_util.tree_map(
            lambda x: x[None], loop(jax.tree_util.tree_map(lambda x: x[0], (blocks, pblocks)))
        )
    else:
        out = jax.lax.map(loop, (blocks, pblocks))
    out = jax.tree_util.tree_map(
        lambda x: jnp.moveaxis(x, -1, 1).reshape((n_blocks * b,) + x.shape[1:-1])[:n], out
    )
    return AdaptiveState(**out)


def _power(x, c: float):
    """`x ** c` for `x >= 0` (inf and 0 included), per member, at every attempted step.

    XLA's CPU `pow` is ~10x slower than `exp(c log x)`, and float64 `exp` and `log` are not
    vectorised there: measured 13 ns per element against 5 ns in float32 (2-core EPYC). For
    `c = 1/m` with a small integer `m` (the default I controller's `1/5`) the root is taken in
    float32 and refined by two float64 Newton steps on `r^m = x` (relative error 1e-7 -> 1e-14
    -> rounding): ~7.5 ns. Other exponents (PID coefficients) use float64 `exp(c log x)`.
    """
    m = round(1.0 / c) if c > 0 else 0
    if x.dtype != jnp.float64 or m < 2 or m > 8 or abs(1.0 / m - c) > 1e-15:
        return jnp.exp(c * jnp.log(x))
    r0 = jnp.exp(jnp.float32(c) * jnp.log(x.astype(jnp.float32))).astype(x.dtype)
    r = r0
    for _ in range(2):
        r = ((m - 1) * r + x / r ** (m - 1)) / m
    # 0 and inf (and float32 under/overflow, where any factor is clipped anyway) keep r0.
    ok = (r0 > 0) & (r0 < jnp.inf)
    return jnp.where(ok, r, r0)


def _rms_member_last(x):
    """Root mean square over the state axis of a member-last `(dim, B)` batch: a sum of `dim`
    rows, each a vector op along the members."""
    dim = x.shape[0]
    if dim > 16:
        return jnp.sqrt(jnp.mean(x * x, axis=0))
    acc = x[0] * x[0]
    for i in range(1, dim):
        acc = acc + x[i] * x[i]
    return jnp.sqrt(acc / dim)


# Per-member scalars of `AdaptiveState`, packed into one array per dtype inside the loop (see
# `_adaptive_loop`). `target`/`floor` (the next stop and its 100-ULP floor) exist only there.
_FLOAT_ROWS = ("t", "tnext", "dt_saved", "inv_err1", "inv_err2", "target", "floor")
_INT_ROWS = ("stop_idx", "num_steps", "num_accepted", "num_rejected")
_BOOL_ROWS = ("clipped", "done", "success")


def _adaptive_loop(
    vector_field, tab, cfg, batched, max_steps, segment_steps, s0, params, stops, floors
):
    """The segment's `while_loop` on one block of members, every leaf member-last.

    `s0` maps `AdaptiveState`'s field names to member-last arrays (a plain dict: the class's
    shape annotations name the member-first layout).

    Why the loop state is packed: at the block sizes that fit in cache, a step's cost is
    dominated by the number of XLA kernels it launches (~0.3-1 us each on CPU, measured with
    `jax.profiler` at 1000 members: 48 kernels per step, most of them one `where` per state
    field). So `y` and `k1` share one `(2, dim, B)` array and the per-member scalars one
    `(rows, B)` array per dtype: each is updated by one fused `where`. The next stop time and
    its floor are carried as rows and re-read from `stops` only after a step that lands on a
    stop (a per-member gather).
    """
    if batched:
        # The hand-batched field's contract is member-first `(n, dim)`.
        def F(t, y, p):
            return vector_field(t, y.T, p).T
    else:
        F = _batched_field(vector_field, False, t_batched=True, member_last=True)
    dtype = s0["y"].dtype
    n_stop = stops.shape[0]
    k = tab.error_order
    c1 = (cfg.pcoeff + cfg.icoeff + cfg.dcoeff) / k
    c2 = -(cfg.pcoeff + 2 * cfg.dcoeff) / k
    c3 = cfg.dcoeff / k
    members = jnp.arange(s0["t"].shape[0])

    def next_stop(stop_idx):
        i = jnp.minimum(stop_idx, n_stop - 1)
        return stops[i], floors[i]

    def step(carry):
        yk, fl, ints, flags, ys = carry
        y, k1 = yk[0], yk[1]
        t, tnext, dt_saved, inv_err1, inv_err2, target, floor = fl
        stop_idx, num_steps, num_accepted, num_rejected = ints
        clipped, done, success = flags
        active = ~done
        h = tnext - t
        y1, err, k_last = _rk_step(
            F,
            tab,
            t,
            y,
            h,
            k1,
            params,
            with_error=True,
            member_last=True,
            materialize_stages=True,
        )
        assert err is not None and k_last is not None  # embedded tableaux here are all FSAL
        # A NaN anywhere in the step (in the error or in y1) makes the scaled error NaN: treat
        # it as infinite, so the step is rejected and shrunk by factormin.
        scaled = _rms_member_last(
            err / (cfg.atol + cfg.rtol * jnp.maximum(jnp.abs(y), jnp.abs(y1)))
        )
        scaled = jnp.where(jnp.isnan(scaled), jnp.inf, scaled)
        keep = scaled < 1
        inv = 1 / scaled
        factor = jnp.asarray(cfg.safety, dtype)
        if c1 != 0:
            factor = factor * _power(inv, c1)
        if c2 != 0:
            factor = factor * jnp.exp(c2 * jnp.log(inv_err1))
        if c3 != 0:
            factor = factor * jnp.exp(c3 * jnp.log(inv_err2))
        factor = clip_factor(factor, keep, cfg.safety, cfg.factormin, cfg.factormax)
        dt_new = h * factor
        inv = jnp.where((inv == 0) | jnp.isinf(inv), 1.0, inv).astype(dtype)
        t_new = jnp.where(keep, tnext, t)
        landed = keep & (tnext == target)
        # Resume from the unclipped proposal after landing on an intermediate stop.
        dt_new = jnp.where(landed & clipped, jnp.maximum(dt_new, dt_saved), dt_new)
        if cfg.dtmax is not None:
            dt_new = jnp.minimum(dt_new, cfg.dtmax)
        new_stop_idx = stop_idx + landed.astype(jnp.int32)
        finished = new_stop_idx >= n_stop
        record_mask = landed & active

        def record(ys):
            slot = jnp.minimum(stop_idx, n_stop - 1)
            old = ys[slot, :, members]  # (B, dim): the advanced indices' axis comes first
            new_ys = ys.at[slot, :, members].set(jnp.where(record_mask[:, None], y1.T, old))
            return (new_ys, *next_stop(new_stop_idx))

        ys, new_target, new_floor = jax.lax.cond(
            jnp.any(record_mask), record, lambda ys: (ys, target, floor), ys
        )
        tnext_new = t_new + dt_new
        clip = tnext_new > new_floor
        tnext_new = jnp.where(
            clip, jnp.where(keep, new_target, t_new + 0.5 * (new_target - t_new)), tnext_new
        )
        new_num_steps = num_steps + 1
        failed = ~finished & (new_num_steps >= max_steps)
        row = active[None, :]
        yk = jnp.where((keep & active)[None, None, :], jnp.stack([y1, k_last]), yk)
        fl = jnp.where(
            row,
            jnp.stack(
                [
                    t_new,
                    tnext_new,
                    dt_new,
                    jnp.where(keep, inv, inv_err1),
                    jnp.where(keep, inv_err1, inv_err2),
                    new_target,
                    new_floor,
                ]
            ),
            fl,
        )
        keep_i = keep.astype(jnp.int32)
        ints = jnp.where(
            row,
            jnp.stack(
                [new_stop_idx, new_num_steps, num_accepted + keep_i, num_rejected + 1 - keep_i]
            ),
            ints,
        )
        flags = jnp.stack(
            [
                jnp.where(active, clip, clipped),
                done | (active & (finished | failed)),
                success | (active & finished),
            ]
        )
        return yk, fl, ints, flags, ys

    def body(carry):
        it, inner = carry
        return it + 1, step(inner)

    t_end = stops[-1]
    slack = max(1, segment_steps // 4)

    def near_end(fl, active):
        """Every running member of the block is predicted (its time left over its current
        step) to reach t1 within `slack` more steps."""
        left = jnp.where(active, (t_end - fl[0]) / (fl[1] - fl[0]), 0)
        return jnp.max(left) <= slack

    def cond(carry):
        it, (_, _, _, flags, _) = carry
        return (it < segment_steps) & jnp.any(~flags[1])

    def cond_extend(carry):
        # Past `segment_steps` a block keeps going while its running members are about to
        # finish: ending the segment there would cost a host round trip and another launch of
        # every block for a few steps (1000 Lorenz-63 members at rtol 1e-8 take 120-133
        # steps: 0.2 ms of a 2.4 ms solve). Stragglers still end the segment on time, so the
        # host can regroup them. A second loop, so the first one's condition stays cheap.
        it, (_, fl, _, flags, _) = carry
        active = ~flags[1]
        return (it < segment_steps + slack) & jnp.any(active) & near_end(fl, active)

    target, floor = next_stop(s0["stop_idx"])
    rows = {**s0, "target": target, "floor": floor}
    inner = (
        jnp.stack([s0["y"], s0["k1"]]),
        jnp.stack([rows[r] for r in _FLOAT_ROWS]),
        jnp.stack([rows[r] for r in _INT_ROWS]),
        jnp.stack([rows[r] for r in _BOOL_ROWS]),
        s0["ys"],
    )
    carry = jax.lax.while_loop(cond, body, (jnp.zeros((), jnp.int32), inner))
    _, (yk, fl, ints, flags, ys) = jax.lax.while_loop(cond_extend, body, carry)
    out = {"y": yk[0], "k1": yk[1], "ys": ys}
    for names, packed in ((_FLOAT_ROWS[:5], fl), (_INT_ROWS, ints), (_BOOL_ROWS, flags)):
        out.update({name: packed[i] for i, name in enumerate(names)})
    return out


@functools.lru_cache(maxsize=64)
def _segment_fn(vector_field, tab, cfg, batched, max_steps, segment_steps, block=None):
    """One stable function object per configuration (sharded_call caches compiled code by it)."""

    def segment(state, params, stops, floors):
        return _adaptive_segment(
            vector_field,
            tab,
            cfg,
            batched,
            max_steps,
            segment_steps,
            state,
            params,
            stops,
            floors,
            block,
        )

    return segment


@functools.lru_cache(maxsize=64)
def _fixed_fn(vector_field, tab, t0, dt, save_steps, batched):
    """Stable batched fixed-step function `(y0 (n, dim), params) -> ys (n, n_save, dim)`."""

    def run(y0, params):
        return fixed_step_solve(
            vector_field, tab, y0, params, t0=t0, dt=dt, save_steps=save_steps, batched=batched
        )

    return run


@functools.lru_cache(maxsize=64)
def _stop_plan(save_bytes: bytes, t0: float, t1: float, dtype: str):
    """The stops of an adaptive solve, once per (save times, span, dtype): `(stops, floors,
    inverse or None, n_initial, ts)`, arrays on the device (building them cost ~0.2 ms of host
    work and transfers per call, a tenth of a 1000-member Lorenz-63 solve).

    Stops are the unique save times plus t1; `inverse` maps each save time to its stop (None
    when that is the identity); `n_initial` counts stops at or before t0 (saved at once).
    """
    save = np.frombuffer(save_bytes, np.float64)
    np_dtype = np.dtype(dtype)
    stops64, inverse = np.unique(np.concatenate([save, [t1]]), return_inverse=True)
    inverse = inverse[: save.shape[0]]
    stops = stops64.astype(np_dtype)
    identity = np.array_equal(inverse, np.arange(stops.shape[0]))
    return (
        jnp.asarray(stops),
        jnp.asarray(_stop_floors(stops)),
        None if identity else jnp.asarray(inverse),
        int(np.sum(stops64 <= t0)),
        jnp.asarray(save.astype(np_dtype)),
    )


def _stop_floors(stops: np.ndarray) -> np.ndarray:
    """Each stop minus 100 ULPs: a step ending past this is clipped to land on the stop
    (the same threshold diffrax uses for t1)."""
    floors = stops.copy()
    for _ in range(100):
        floors = np.nextafter(floors, -np.inf)
    return floors


def _bucket(m: int, multiple: int, min_bucket: int) -> int:
    b = max(min_bucket, 1 << max(0, (m - 1).bit_length()))
    return -(-b // multiple) * multiple


class FusedSolution(eqx.Module):
    """Result of a fused ensemble solve.

    Attributes:
        ts: save times `(n_save,)`.
        ys: states at the save times `(n, n_save, dim)`.
        num_steps, num_accepted, num_rejected: per-member step counts `(n,)` (fixed step: every
            member takes the same steps, up to the last save time, none rejected).
        success: per-member flag `(n,)`; False where `max_steps` was reached before `t1`.

    Example:
        >>> sol = solve_ensemble_fused(prob, params=jnp.linspace(0.5, 2.0, 100), throw=False)
        >>> sol.ys[:, -1], sol.num_steps.max(), bool(sol.success.all())
    """

    ts: Float[Array, " n_save"]
    ys: Float[Array, "n n_save dim"]
    num_steps: Int[Array, " n"]
    num_accepted: Int[Array, " n"]
    num_rejected: Int[Array, " n"]
    success: Bool[Array, " n"]


def adaptive_solve(
    vector_field: Callable,
    tab: ButcherTableau,
    y0: Float[Array, "n dim"],
    params: PyTree,
    *,
    t0: float,
    t1: float,
    cfg: ControllerConfig,
    save_ts: Any = None,
    dt0: float | None = None,
    max_steps: int = 100_000,
    segment_steps: int = 128,
    regroup: bool = True,
    min_bucket: int = 64,
    regroup_cost: float | None = None,
    batched: bool = False,
    shard: bool = False,
    mesh=None,
    block: int | None = None,
) -> FusedSolution:
    """Adaptive batched RK solve with per-member step sizes (host loop; not jittable).

    Args:
        vector_field: per-member `f(t, y, p)` (or a hand-batched member-last field, `batched`).
        tab: an embedded tableau (`tab.adaptive`).
        y0: initial states `(n, dim)`; dtype sets the working precision.
        params: pytree with a leading member axis on every leaf.
        t0, t1: time span.
        cfg: step-size controller settings.
        save_ts: save times `(n_save,)` in `[t0, t1]`, non-decreasing; `None` saves `t1` only.
            The solve always runs to `t1`.
        dt0: initial step for every member; `None` picks one per member (diffrax's heuristic).
        max_steps: per-member limit on attempted steps; members that reach it stop with
            `success=False`.
        segment_steps: attempted steps per compiled segment between host-side regroupings.
        regroup: compact still-active members into smaller batches between segments.
        min_bucket: smallest regrouped batch size (sizes are powers of two, to bound recompiles).
        regroup_cost: the host-side cost of one regroup in member-steps of the kernel; a regroup
            is done only when the member-steps it saves (the smaller batch times the steps the
            slowest running member is predicted to need) exceed it. Default: measured
            (`_REGROUP_COST + _REGROUP_COST_PER_MEMBER * n`); 0 regroups whenever it saves work.
        shard: run each segment through `simkit.ensemble.sharded_call` over `mesh`.
        block: members per cache block inside a segment (default `adaptive_block_size`; 0: the
            whole working batch at once). Results do not depend on it.

    Returns:
        `FusedSolution` (ys `(n, n_save, dim)`).
    """
    if not tab.adaptive:
        raise SimkitInputError(
            f"{tab.name} has no embedded error estimate, so it cannot adapt its step; use "
            "fixed_step=True with dt0, or an adaptive method (tsit5, dopri5)."
        )
    y0 = jnp.asarray(y0)
    dtype = y0.dtype
    n = y0.shape[0]
    np_dtype = np.dtype(dtype)
    if save_ts is None:
        save = np.array([t1], np.float64)
    else:
        save = np.asarray(save_ts, np.float64)
    stops_j, floors_j, inverse_j, n_initial, ts_out = _stop_plan(
        save.tobytes(), float(t0), float(t1), np_dtype.str
    )
    state = _adaptive_init(
        vector_field, tab, cfg, batched, y0, params, float(t0), dt0, stops_j, n_initial
    )

    n_dev = 1
    if shard:
        from ..ensemble import sharded_call

        n_dev = int(np.prod(mesh.devices.shape)) if mesh is not None else len(jax.devices())
    seg = _segment_fn(vector_field, tab, cfg, batched, max_steps, segment_steps, block)

    def run_segment(st, pr):
        if shard and n_dev > 1:
            return sharded_call(seg, st, pr, mesh=mesh, broadcast=(stops_j, floors_j))
        return seg(st, pr, stops_j, floors_j)

    full = state
    size = -(-n // n_dev) * n_dev
    # Working batch: members work_idx (n = padding) of the full batch. `gathered`: the working
    # batch is not the full batch itself, so it must be written back at the end.
    work_idx = np.concatenate([np.arange(n), np.full(size - n, n)])
    gathered = size != n
    work, work_params = (full, params) if not gathered else _take(full, params, work_idx)
    while True:
        work = run_segment(work, work_params)
        done, t_now, steps_now = jax.device_get((work.done, work.t, work.num_steps))
        active = ~done & (work_idx < n)
        n_active = int(np.count_nonzero(active))
        if n_active == 0:
            break
        new_size = _bucket(n_active, n_dev, min_bucket)
        cur_size = work_idx.shape[0]
        if regroup and new_size <= cur_size // 2:
            left = _predicted_steps_left(
                t_now[active], steps_now[active], float(t0), float(t1), max_steps
            )
            cost = (
                _REGROUP_COST + _REGROUP_COST_PER_MEMBER * n
                if regroup_cost is None
                else regroup_cost
            )
            if left * (cur_size - new_size) > cost:
                full = _put(full, work, work_idx) if gathered else work
                keep_idx = work_idx[active]
                work_idx = np.concatenate([keep_idx, np.full(new_size - n_active, n)])
                work, work_params = _take(full, params, work_idx)
                gathered = True
    if gathered:
        full = _put(full, work, work_idx)
    else:
        full = work
    ys = full.ys if inverse_j is None else _select_saves(full.ys, inverse_j)
    return FusedSolution(
        ts=ts_out,
        ys=ys,
        num_steps=full.num_steps,
        num_accepted=full.num_accepted,
        num_rejected=full.num_rejected,
        success=full.success,
    )


# Fewest members per host thread (`simkit.ensemble._threads`). Measured on the 2-core EPYC
# (Lorenz-63, Tsit5, benchmarks/bench_ode_ensemble.py, interleaved with the other candidates):
# at N = 1e4 two threads gave 1.75x (fixed step) and 1.5x (adaptive) one thread; at N = 1e3 they
# gave nothing or lost (fixed 7.7 vs 7.4 ms, adaptive 4.7 vs 3.2 ms), although the same call
# repeated back to back ran 1.9x faster: XLA's CPU client runs each call on its own worker
# threads (asynchronous dispatch), and right after other jax work the two chunks often ran
# one after the other. So only chunks of at least 2048 members are split off.
_MIN_CHUNK = 2048


# Host-side cost of regrouping the still-running members into a smaller batch (gather, scatter
# back, one more dispatch), in member-steps of the kernel: measured on the 2-core EPYC with
# Lorenz-63 (float64, one stop), a regroup of a 1000-member batch cost ~1 ms, ~20k member-steps
# at ~45 ns each; the gather/scatter of the full batch adds ~2 member-steps per member.
_REGROUP_COST = 20_000
_REGROUP_COST_PER_MEMBER = 2


def _predicted_steps_left(t_now, steps_now, t0: float, t1: float, max_steps: int) -> float:
    """Attempted steps the slowest of the running members still needs, extrapolated from each
    member's own pace so far (steps taken per unit of time covered); host-side, NumPy.

    A member that has not yet moved gets `max_steps` (nothing is known about its pace).
    """
    covered = np.abs(t_now - t0)
    left_t = np.abs(t1 - t_now)
    with np.errstate(divide="ignore", invalid="ignore"):
        pace = np.where(covered > 0, steps_now / covered, np.inf)
    left = np.minimum(pace * left_t, max_steps - steps_now)
    return float(np.max(left)) if left.size else 0.0


@jax.jit
def _select_saves(ys, inverse):
    """Saved states per requested time (duplicates and `t1` folded into unique stops)."""
    return ys[:, inverse]


@jax.jit
def _take(full: AdaptiveState, params, idx):
    """Gather members `idx` into a working batch; entries equal to `n` (one past the end) are
    padding: they copy member `n - 1` and are marked done, so the kernel masks them."""
    n = full.t.shape[0]
    pad = idx >= n
    safe = jnp.minimum(idx, n - 1)
    work = jax.tree_util.tree_map(lambda x: x[safe], full)
    work = eqx.tree_at(lambda s: s.done, work, work.done | pad)
    return work, jax.tree_util.tree_map(lambda x: x[safe], params)


@jax.jit
def _put(full: AdaptiveState, work: AdaptiveState, idx):
    """Write working members back to their places in the full batch (padding, idx == n, is
    dropped)."""
    return jax.tree_util.tree_map(lambda f, w: f.at[idx].set(w, mode="drop"), full, work)


def _per_member(sol: FusedSolution) -> dict:
    """A fused solution's per-member fields (every one but `ts`)."""
    return {
        "ys": sol.ys,
        "num_steps": sol.num_steps,
        "num_accepted": sol.num_accepted,
        "num_rejected": sol.num_rejected,
        "success": sol.success,
    }


def raise_on_fused_failure(sol: FusedSolution, method: str, max_steps: int) -> None:
    """RuntimeError naming how many members reached `max_steps` (explicit method: suggest stiff)."""
    failed = ~np.asarray(sol.success)
    if not failed.any():
        return
    n_failed = int(failed.sum())
    first = int(np.argmax(failed))
    raise RuntimeError(
        f"ODE solve reached max_steps={max_steps} before t1 in {n_failed} ensemble member(s) "
        f"(first: member {first}). {method} is explicit; if the problem is stiff use a stiff "
        "solver (stiff=True, i.e. simkit.ode.Rodas5) instead of raising max_steps."
    )


def _is_traced(*trees) -> bool:
    return any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(trees))


def _check_field_dtype(problem, y0s, params) -> None:
    """The per-member field must return y0's dtype: a float64 parameter with float32 states would
    silently upcast the whole solve."""
    p0 = jax.tree_util.tree_map(lambda x: x[0], params)
    out = jax.eval_shape(problem.vector_field, jnp.zeros((), y0s.dtype), y0s[0], p0)
    if out.dtype != y0s.dtype:
        raise SimkitInputError(
            f"vector_field returns dtype {out.dtype} for states of dtype {y0s.dtype}; the fused "
            f"solver keeps the dtype of y0. Give params (and constants) the dtype {y0s.dtype}, "
            f"e.g. jnp.asarray(p, jnp.{y0s.dtype})."
        )


def solve_ensemble_fused(
    problem,
    *,
    y0: Float[Array, "n dim"] | None = None,
    params: PyTree | None = None,
    solver: Any = "tsit5",
    dt0: float | None = None,
    fixed_step: bool = False,
    rtol: float = 1e-6,
    atol: float = 1e-6,
    controller: Any = None,
    saveat: Float[Array, " n_save"] | None = None,
    max_steps: int = 100_000,
    segment_steps: int = 128,
    regroup: bool = True,
    shard: bool = False,
    mesh: Any = None,
    throw: bool = True,
    batched_field: Callable | None = None,
    threads: int | None = None,
) -> FusedSolution:
    """Solve many members of `problem` with a fused explicit Runge-Kutta kernel.

    Fixed step (`fixed_step=True`): a `lax.scan` of constant steps `dt0`; jittable and
    differentiable (reverse mode through `jax.grad`) w.r.t. `y0` and `params`.
    Adaptive: per-member step sizes with diffrax `PIDController` error control; a host loop over
    compiled segments that regroups still-running members (not jittable / reverse-differentiable:
    use `solve_ensemble(..., method="diffrax")` for gradients through adaptive solves).

    Args:
        problem: the `ODEProblem` describing one member.
        y0: initial states `(n, dim)`; default `problem.y0` for every member. Its dtype (float32
            or float64) is the working precision; the vector field must return that dtype.
        params: pytree like `problem.params` with a leading `(n, ...)` axis on every leaf.
        solver: "tsit5", "dopri5", "rk4" (fixed step only), or `diffrax.Tsit5()`/`Dopri5()`.
        dt0: the constant step (fixed step; `t1 - t0` and every save time must be whole multiples
            of it), or the initial step (adaptive; default: chosen per member by the
            Hairer-Norsett-Wanner heuristic), in model time units.
        rtol: relative tolerance of the PI step-size controller (diffrax default otherwise).
        atol: absolute tolerance of the PI step-size controller (diffrax default otherwise).
        controller: a `diffrax.PIDController` to copy every setting from (pcoeff, icoeff,
            dcoeff, safety, factormin, factormax, dtmax); overrides `rtol`/`atol`.
        saveat: save times `(n_save,)` in `[t0, t1]`, non-decreasing; default `t1` only.
            Adaptive steps are clipped to land on them (no interpolation).
        max_steps: per-member limit on attempted steps (adaptive) or on the number of steps,
            at most 2**31 - 1 (32-bit step counters).
        segment_steps: attempted steps between host-side regroupings (adaptive).
        regroup: compact still-active members into smaller batches between segments.
        shard: spread members over the devices of `mesh` (`simkit.ensemble.sharded_call`);
            ignored when the inputs are traced (inside jit/grad: shard outside instead).
        mesh: device mesh (default: every device).
        throw: raise `RuntimeError` if any member reached `max_steps` before `t1`.
        batched_field: optional hand-batched version of `problem.vector_field`,
            `F(t, Y, P) -> dY/dt` with `Y (n, dim)`, `P` batched like `params` and `t` a scalar
            (fixed step) or `(n,)` (adaptive); used instead of `jax.vmap(vector_field)`. It must
            compute the same field. Since the fixed-step kernel runs vmapped fields member-last
            inside cache blocks, a hand-batched field is no longer faster there (Lorenz-63:
            ~0.8x, benchmarks/bench_ode_ensemble.py), nor in the adaptive kernel, which also
            runs member-last and transposes a hand-batched field's input and output at every
            stage (0.66x at N = 1e4).
        threads: split the members over this many host threads, each running its chunk's
            compiled kernels on one core (one CPU device, concrete inputs, no `shard`).
            Default None: one thread per core this process may use, when every chunk keeps at
            least 2048 members (`_MIN_CHUNK`: below it the gain was not reliable); 1: no threads.
            A member's result does not depend on it.

    Returns:
        `FusedSolution`: ts `(n_save,)`, ys `(n, n_save, dim)`, per-member step counts `(n,)`
        and success flags `(n,)`.

    Raises:
        SimkitInputError: bad shapes, unknown solver, a save time off the fixed-step grid, a
            field that changes the dtype, an adaptive solve with a method without error estimate.
        RuntimeError: (`throw=True`) members that reached `max_steps`.

    Example:
        >>> prob = ODEProblem(lambda t, y, p: -p * y, jnp.ones(1), jnp.array(1.0), 0.0, 1.0)
        >>> sol = solve_ensemble_fused(prob, params=jnp.linspace(0.5, 2.0, 100), rtol=1e-8,
        ...                            atol=1e-8)
        >>> sol.ys.shape, sol.num_steps.shape
        ((100, 1, 1), (100,))
    """
    from .._checks import require_positive
    from ._fastpath import (
        build_module,
        check_once_per_structure,
        constant_array,
        memo_on_save_times,
        output_save_times,
        validate_problem_once,
    )
    from ._solve import (
        broadcast_ensemble,
        check_max_steps,
    )
    from ._tableau import tableau_for

    tab = tableau_for(solver)
    if tab is None:
        raise SimkitInputError(
            f"the fused ensemble solver supports 'tsit5', 'dopri5', 'rk4' (or diffrax.Tsit5(), "
            f"diffrax.Dopri5()), got {solver!r}; use solve_ensemble(method='diffrax') for other "
            "solvers."
        )
    traced = _is_traced(y0, params, problem.y0, problem.params)
    # On one device sharding only adds placement work (~2 ms a call, issue 13): run directly.
    shard = shard and (mesh is not None or jax.device_count() > 1)
    if not traced:
        validate_problem_once(problem)  # the vector field traced once per input structure
    y0s, batched_params, n = broadcast_ensemble(problem, y0, params)
    if not jnp.issubdtype(y0s.dtype, jnp.floating):
        raise SimkitInputError(f"ensemble y0 must be floating point, got dtype {y0s.dtype}.")
    check_max_steps(max_steps)
    check_threads(threads)
    if dt0 is not None:
        require_positive("dt0", dt0)
    # shape / range / order checks on the host, cached per jax array (issue 13)
    ts_out = output_save_times(problem.t0, problem.t1, saveat, y0s.dtype)
    check_once_per_structure(
        "fused field dtype",
        lambda: _check_field_dtype(problem, y0s, batched_params),
        problem.vector_field,
        problem.t0,
        problem.t1,
        y0s,
        batched_params,
    )
    vf, is_batched = problem.vector_field, False
    if batched_field is not None:
        out = jax.eval_shape(batched_field, jnp.zeros((n,), y0s.dtype), y0s, batched_params)
        if getattr(out, "shape", None) != y0s.shape or out.dtype != y0s.dtype:
            raise SimkitInputError(
                f"batched_field must map y ({n}, dim) to an array of the same shape and dtype "
                f"{tuple(y0s.shape)} {y0s.dtype}, got {getattr(out, 'shape', out)}."
            )
        vf, is_batched = batched_field, True
    if fixed_step:
        if dt0 is None:
            raise SimkitInputError("fixed_step=True needs dt0 (the constant step size).")
        t0, t1, dt = problem.t0, problem.t1, float(dt0)
        _, save_steps = memo_on_save_times(  # the plan once per save-time array
            ("fixed_step_plan", t0, t1, dt, max_steps),
            saveat,
            lambda save_ts: fixed_step_plan(t0, t1, dt, save_ts, max_steps),
        )
        run = _fixed_fn(vf, tab, float(problem.t0), float(dt0), save_steps, is_batched)
        if shard and not traced:
            from ..ensemble import sharded_call

            ys = sharded_call(run, y0s, batched_params, mesh=mesh)
        else:
            chunks = chunk_count(n, _MIN_CHUNK, threads, y0s, batched_params)
            pieces = split_members((y0s, batched_params), n, chunks)
            ys = join_members(run_chunks(run, pieces), n)
        # steps after the last save are skipped; cached constants: no dispatch per call
        full = constant_array((n,), max(save_steps), np.int32)
        return build_module(  # FusedSolution(...) without equinox's __init__ (~60 us)
            FusedSolution,
            ts=ts_out,
            ys=ys,
            num_steps=full,
            num_accepted=full,
            num_rejected=constant_array((n,), 0, np.int32),
            success=constant_array((n,), True, bool),
        )
    if not tab.adaptive:
        raise SimkitInputError(
            f"{tab.name} has no embedded error estimate, so it cannot adapt its step; pass "
            "fixed_step=True with dt0, or use solver='tsit5' / 'dopri5'."
        )
    if traced:
        raise SimkitInputError(
            "the adaptive fused solver runs a host loop and cannot be traced (jit/grad/vmap); "
            "use fixed_step=True, or solve_ensemble(..., method='diffrax') for adaptive "
            "gradients."
        )
    require_positive("segment_steps", segment_steps, integer=True)
    if controller is not None:
        cfg = ControllerConfig.from_diffrax(controller)
        if cfg is None:
            raise SimkitInputError(
                f"the fused solver implements diffrax.PIDController with its default norm and "
                f"no dtmin/error_order override (got {controller!r}); use "
                "solve_ensemble(method='diffrax') for other step-size controllers."
            )
    else:
        for name, tol in (("rtol", rtol), ("atol", atol)):
            if not (math.isfinite(float(tol)) and float(tol) >= 0):
                raise SimkitInputError(f"{name} must be a finite number >= 0, got {tol!r}.")
        if float(rtol) == 0 and float(atol) == 0:
            raise SimkitInputError("rtol and atol cannot both be 0; e.g. rtol=atol=1e-6.")
        cfg = ControllerConfig(rtol=float(rtol), atol=float(atol))
    save_ts = None if saveat is None else np.asarray(saveat)

    def solve_chunk(y0_c, params_c):
        return adaptive_solve(
            vf,
            tab,
            y0_c,
            params_c,
            t0=problem.t0,
            t1=problem.t1,
            cfg=cfg,
            save_ts=save_ts,
            dt0=dt0,
            max_steps=max_steps,
            segment_steps=segment_steps,
            regroup=regroup,
            batched=is_batched,
            shard=shard,
            mesh=mesh,
        )

    # Sharded: the devices split the members. Otherwise one host loop per core (each chunk
    # regroups its own stragglers).
    chunks = 1 if shard else chunk_count(n, _MIN_CHUNK, threads, y0s, batched_params)
    parts = run_chunks(solve_chunk, split_members((y0s, batched_params), n, chunks))
    sol = (
        parts[0]
        if chunks == 1
        else FusedSolution(
            ts=parts[0].ts,
            **join_members([_per_member(p) for p in parts], n),
        )
    )
    if throw:
        raise_on_fused_failure(sol, tab.name, max_steps)
    return sol
