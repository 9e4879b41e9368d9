"""The run driver: a host loop over jitted chunks with HDF5 output, checks and checkpoints.

One chunk = `chunk_steps` steps computed on device by nested `lax.scan`s (`scan_plan`), each
save group observed at its own rate. After each chunk the host checks it (finite final state
and frames, capacity overflow), appends every group's frames to the store in one all-or-nothing
write, and checkpoints when due. The next chunk is queued on the device before the host waits
for the current one, so checks and file output overlap computation.

Guarantees (each backed by a test in tests/test_run_driver.py or tests/test_run_faults.py):
- Nothing wrong is written: an overflowing chunk is recomputed with a larger capacity from the
  last good state; a chunk that produced NaN/inf writes, for every group, only the frames before
  the first bad step, and raises `SimulationBlowUp` naming that step.
- A failed write (full disk, quota, read-only, file removed) stops the run at once with
  `StoreWriteError`; the file keeps the chunks written whole, its status says
  `failed: <cause>`, the last checkpoint is intact, and `resume` continues bitwise.
- SIGINT, SIGTERM and SIGHUP stop the run cleanly (`RunInterrupted`): finished chunks on disk, a
  checkpoint at the last finished chunk, status `interrupted`.
- One writer per file (`WriterLock`): a second run or resume on the same file is refused.
- A killed run resumes (`resume=True`) from its last checkpoint and reaches a final state bitwise
  equal to an uninterrupted run (same chunking, same compiled chunk).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import hashlib
import logging
import math
import os
import sys
import time as _time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np
from jaxtyping import PyTree

from .._checks import SimkitInputError, require_finite, require_positive
from ..io import (
    FrameStore,
    SaveGroup,
    StoreError,
    StoreWriteError,
    WriterLock,
    checkpoint_path,
    fingerprint,
    load_checkpoint,
    save_checkpoint,
)
from ..io._checkpoint import tree_paths
from ..io._hdf5 import describe_os_error
from ..io._paths import check_new_path
from ._saving import SavePlan, frames_finite, resolve_save_plan, scan_plan
from ._signals import InterruptGuard, RunInterrupted
from ._stepper import AbstractStepper

log = logging.getLogger("simkit.run")

ADAPTIVE_CHECKPOINT_FACTOR = 50
"""Without an explicit cadence, `run` checkpoints after a chunk unless the time since the last
checkpoint is under this many times what writing one took: checkpoints then cost at most
~1/50 = 2% of the run, and a SIGKILL loses the chunk in flight plus at most that interval."""


class SimulationBlowUp(RuntimeError):
    """The state became NaN/inf. `step` and `time` name the first bad step; frames before it are
    on disk."""

    def __init__(self, message: str, step: int, time: float, path: Path | None):
        super().__init__(message)
        self.step, self.time, self.path = step, time, path


@dataclasses.dataclass
class RunResult:
    """What `run` returns.

    Attributes:
        state: final state pytree (on device).
        stepper: the stepper at the end (capacities may have grown).
        steps_done: steps completed.
        n_frames: frames in the output (including the initial frame), all groups together.
        frames_per_group: frames per save group ("" is the single group of an integer
            `save_every`).
        path: output file, or None when running without output.
        frames: when `out is None`, the frames kept in memory `{quantity: (n_frames, ...)}`
            (each quantity with its own group's frame count).
        wall_s: wall-clock seconds of this call.
        chunks_recomputed: chunks recomputed after a capacity overflow.
        checkpoints: checkpoints written by this call.

    Example:
        >>> result = run(stepper, state, params, n_steps=1000, save_every=100, out=None)
        >>> result.steps_done, result.n_frames, result.frames["y"].shape  # 1000, 11, (11, ...)
    """

    state: PyTree
    stepper: AbstractStepper
    steps_done: int
    n_frames: int
    frames_per_group: dict[str, int]
    path: Path | None
    frames: dict[str, np.ndarray] | None
    wall_s: float
    chunks_recomputed: int = 0
    checkpoints: int = 0


# Plain `jax.jit` with the stepper and the plan static (steppers hold only static
# configuration): its dispatch is asynchronous, so the host writes chunk i while the device
# computes chunk i + 1. (`eqx.filter_jit` measured as blocking until the result is ready.)
_chunk = jax.jit(scan_plan, static_argnums=(0, 3, 4))
_one_step = jax.jit(lambda stepper, state, params: stepper.step(state, params), static_argnums=0)


@jax.jit
def _all_finite(state):
    """One device-side flag: every inexact leaf of `state` is finite. A separate program from the
    chunk (a reduction inside the chunk's scan measured ~8% slower on CPU), dispatched right
    after it, so the state never travels to the host just to be checked."""
    flags = [
        jax.numpy.isfinite(x).all()
        for x in jax.tree_util.tree_leaves(state)
        if jax.numpy.issubdtype(x.dtype, jax.numpy.inexact)
    ]
    return jax.numpy.all(jax.numpy.stack(flags)) if flags else jax.numpy.asarray(True)


def describe_stepper(stepper: AbstractStepper) -> dict[str, Any]:
    """A stable, JSON-able description of a stepper's static configuration (for fingerprints).

    Callables are named by module and qualified name, never by memory address, so the same
    configuration gives the same fingerprint in a new process.

    Example:
        >>> describe_stepper(ODEStepper(lorenz, dt=0.01))
        >>> # {"type": "simkit.ode._stepper.ODEStepper", "vector_field": "__main__.lorenz",
        >>> #  "dt": 0.01, "t0": 0.0, ...}
    """
    out: dict[str, Any] = {"type": f"{type(stepper).__module__}.{type(stepper).__qualname__}"}
    for f in dataclasses.fields(stepper):
        v = getattr(stepper, f.name)
        if callable(v) and not isinstance(v, eqx.Module):
            out[f.name] = f"{getattr(v, '__module__', '?')}.{getattr(v, '__qualname__', repr(v))}"
        elif isinstance(v, AbstractStepper):
            out[f.name] = describe_stepper(v)  # a wrapped stepper (e.g. a sharded one)
        elif isinstance(v, eqx.Module):
            out[f.name] = type(v).__qualname__
        elif dataclasses.is_dataclass(v) and not isinstance(v, type):
            # Static configuration objects (a collision model, a lattice): their repr, which
            # names their settings; their bytes would be object pointers, different per process.
            out[f.name] = repr(v)
        elif isinstance(v, (int, float, str, bool, tuple)) or v is None:
            out[f.name] = v
        else:
            out[f.name] = _digest(v)
    return out


def _digest(tree: PyTree) -> str:
    """Hash of every array leaf's bytes, shape and dtype: identifies initial states/params."""
    h = hashlib.sha256()
    for leaf in jax.tree_util.tree_leaves(tree):
        if hasattr(leaf, "dtype") and jax.numpy.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        arr = np.asarray(leaf)
        h.update(str((arr.shape, arr.dtype.str)).encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:16]


def run(
    stepper: AbstractStepper,
    state: PyTree,
    params: PyTree,
    *,
    n_steps: int,
    save_every: int | Mapping[str, int],
    groups: Mapping[str, Sequence[str]] | None = None,
    chunk_steps: int | None = None,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    resume: bool = False,
    config: dict[str, Any] | None = None,
    attrs: dict[str, Any] | None = None,
    progress: bool = True,
    checkpoint_every: int | None = None,
    checkpoint_interval: float | None = None,
    max_grow: int = 8,
    callback: Callable[[int, dict[str, int] | None], None] | None = None,
    store_type: Any = FrameStore,
    store_options: dict[str, Any] | None = None,
    handle_signals: bool = True,
) -> RunResult:
    """Run `stepper` for `n_steps` steps in jitted chunks, saving frames as it goes.

    Args:
        stepper: the solver (see `AbstractStepper`).
        state: initial state pytree (its values are ignored on `resume`, but it is the template
            the checkpoint is read into).
        params: parameter pytree.
        n_steps: total steps, a positive multiple of every save rate.
        save_every: steps between saved frames: one integer for every observed quantity, or
            per-quantity rates `{key: steps}`, each key a save group (from `groups` or the
            stepper's `save_groups()`) or one observed quantity, e.g. `{"thermo": 10,
            "trajectory": 1000}`. Every observed quantity needs exactly one rate, and rates must
            divide one another. Each group gets its own step/time axis in the file
            (`time_<group>`, `step_<group>`).
        groups: named groups of observed quantities for `save_every` (default: the stepper's
            `save_groups()`).
        chunk_steps: steps per jitted chunk, a multiple of the largest save rate and
            <= n_steps. Default: about 1/10 of the run but at most ~10 000 steps. Larger chunks
            mean less host overhead, smaller ones more frequent flushes and checkpoints.
        out: HDF5 output path (its folder must exist), or None to keep frames in memory.
        overwrite: replace an existing `out` (atomically, once the new file is complete).
        resume: continue the run in `out` from its checkpoint (`out.ckpt`); the configuration
            must be the one the file was written with.
        config: settings identifying the run (problem name, options); stored in the file and
            compared on resume, together with the stepper, chunking, save plan and a hash and
            the structure of the initial state and params.
        attrs: extra file attributes (units, parameter values for humans, ...).
        progress: show a progress bar (steps, steps/s, ETA) on stderr.
        checkpoint_every: write a checkpoint at the first chunk end at least this many steps
            after the previous one.
        checkpoint_interval: write a checkpoint at the first chunk end at least this many
            wall-clock seconds after the previous one (0: after every chunk).
            With neither given, a checkpoint follows every chunk unless that would spend more
            than ~2% of the run writing checkpoints (`ADAPTIVE_CHECKPOINT_FACTOR`). A checkpoint
            is always written at the end and when the run is interrupted or fails after a good
            chunk. A SIGKILL loses the work since the last checkpoint; `resume` recomputes it
            bit for bit.
        max_grow: how many times a chunk may be recomputed with a grown capacity.
        callback: called on the host as `callback(steps_done, frames_per_group)` after each
            chunk is safely on disk (live monitoring, tests).
        store_type: the file writer: `FrameStore` (netCDF-style, xarray-readable) by default;
            `H5MDStore` for particles, `FieldStore` for grids with an XDMF sidecar. Anything
            with `create(path, groups, *, config, coords, attrs, time_units, overwrite,
            **store_options)` and `open_resume(path, *, config)` returning an `HDF5Store`.
        store_options: layout options passed to `store_type.create` (e.g. an H5MD box).
        handle_signals: turn SIGINT/SIGTERM/SIGHUP into a clean stop (`RunInterrupted`) while
            the run is in the main thread. Signals ignored at the start stay ignored.

    Returns:
        `RunResult`.

    Raises:
        SimkitInputError: invalid arguments, or a state/params structure the stepper cannot
            use (before any compute).
        StoreError: `resume` into a corrupt/truncated/foreign file or a changed configuration.
        WriterLockedError: another live process writes `out`.
        StoreWriteError: writing the output or a checkpoint failed; frames written whole and
            the last checkpoint are kept.
        SimulationBlowUp: NaN/inf appeared; frames before the first bad step are on disk.
        RunInterrupted: SIGINT/SIGTERM/SIGHUP; finished chunks are on disk and checkpointed.

    Example (an ensemble of 100 Lorenz-63 members, then the same run continued after a kill):
        >>> stepper = ODEStepper(lorenz, dt=0.01)
        >>> state = stepper.init(y0s, params)  # y0s: (100, 3)
        >>> result = run(stepper, state, params, n_steps=100_000, save_every=100, out="lz.h5")
        >>> result = run(stepper, state, params, n_steps=100_000, save_every=100, out="lz.h5",
        ...              resume=True)  # after an interruption: continues from the checkpoint
        >>> result.steps_done, result.n_frames, result.path
    """
    t_start = _time.perf_counter()
    require_positive("n_steps", n_steps, integer=True)
    for name, value in (
        ("checkpoint_every", checkpoint_every),
        ("checkpoint_interval", checkpoint_interval),
    ):
        if value is not None and not (
            isinstance(value, int | float) and value >= 0 and math.isfinite(value)
        ):
            raise SimkitInputError(f"{name} must be >= 0 (or None), got {value!r}.")
    if checkpoint_every is not None and not isinstance(checkpoint_every, int):
        raise SimkitInputError(
            f"checkpoint_every must be a number of steps (int), got {checkpoint_every!r}."
        )
    if resume and overwrite:
        raise SimkitInputError("resume and overwrite exclude each other: choose one.")
    if resume and out is None:
        raise SimkitInputError("resume needs the output file to continue (out=...).")
    require_finite("initial state", state)
    require_finite("params", params)
    observed = check_structure(stepper, state, params)
    plan = resolve_save_plan(
        save_every, observed, stepper.save_groups() if groups is None else groups
    )
    if n_steps % plan.period:
        raise SimkitInputError(
            f"n_steps ({n_steps}) must be a multiple of save_every ({plan.period})."
        )
    if chunk_steps is None:
        # ~10 chunks for short runs (per-chunk host work measured ~2 ms: negligible then),
        # at most ~10 000 steps per chunk for long ones (progress and flushes stay frequent).
        periods = min(math.ceil(n_steps // plan.period / 10), max(1, 10_000 // plan.period))
        chunk_steps = plan.period * max(1, periods)
    require_positive("chunk_steps", chunk_steps, integer=True)
    if chunk_steps > n_steps:
        raise SimkitInputError(
            f"chunk_steps ({chunk_steps}) is larger than the run (n_steps={n_steps}); use "
            f"chunk_steps <= {n_steps}."
        )
    if chunk_steps % plan.period:
        raise SimkitInputError(
            f"chunk_steps ({chunk_steps}) must be a multiple of save_every ({plan.period})."
        )

    store_options = dict(store_options or {})
    groups_declared = _save_groups(stepper, state, params, plan)
    groups_stored = groups_declared
    if out is not None and hasattr(store_type, "stored_groups"):
        groups_stored = store_type.stored_groups(groups_declared, store_options)
        plan = dataclasses.replace(plan, transpose=_permutations(groups_declared, groups_stored))

    run_config = {
        **(config or {}),
        "stepper": describe_stepper(stepper),
        "save_every": save_every if isinstance(save_every, int) else plan.describe(),
        "chunk_steps": chunk_steps,
        "initial_state": _digest(state),
        "params": _digest(params),
        "state_structure": tree_paths(state),
        "params_structure": tree_paths(params),
    }
    fp = fingerprint(run_config)
    lock = None
    if out is not None:
        out = Path(out)
        if resume:
            if not out.exists():
                raise SimkitInputError(f"cannot resume: {str(out)!r} does not exist.")
        else:
            check_new_path(out, overwrite)
        lock = WriterLock(out).acquire()
    try:
        with InterruptGuard(handle_signals) as guard:
            return _run_locked(
                stepper,
                state,
                params,
                plan,
                n_steps,
                chunk_steps,
                out,
                resume,
                overwrite,
                run_config,
                fp,
                attrs,
                progress,
                checkpoint_every,
                checkpoint_interval,
                max_grow,
                callback,
                store_type,
                store_options,
                groups_stored,
                guard,
                t_start,
            )
    finally:
        if lock is not None:
            lock.release()


def _run_locked(
    stepper,
    state,
    params,
    plan,
    n_steps,
    chunk_steps,
    out,
    resume,
    overwrite,
    run_config,
    fp,
    attrs,
    progress,
    checkpoint_every,
    checkpoint_interval,
    max_grow,
    callback,
    store_type,
    store_options,
    groups_stored,
    guard,
    t_start,
):
    store = None
    mem = {g: [] for g in plan.names}
    step = 0
    ckpt = checkpoint_path(out) if out is not None else None
    n_ckpt, recomputed = 0, 0
    last_ckpt, ckpt_step, ckpt_cost = _time.monotonic(), 0, 0.0
    bar = None
    waiter = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="simkit-wait")
    try:
        with guard.critical():
            from_start = not resume
            if out is not None and resume:
                assert ckpt is not None  # set whenever out is
                store = store_type.open_resume(out, config=run_config)
                if not ckpt.exists() and max(store.n_frames.values(), default=0) <= 1:
                    # Killed before its first checkpoint: the file holds at most the initial
                    # frames, and the configuration check has verified that `state` is the
                    # run's initial state (its digest is part of the configuration): start over.
                    store.truncate({g: 0 for g in store.n_frames})
                    from_start = True
                    log.info("resuming %s from the start (no chunk was finished)", out)
                else:
                    state, step, n_kept = load_checkpoint(
                        ckpt, state, fingerprint=fp, resizable=stepper.resizable
                    )
                    store.truncate(n_kept)
                    ckpt_step = step
                    log.info("resuming %s at step %d (%s frames kept)", out, step, n_kept)
            elif out is not None:
                store = store_type.create(
                    out,
                    groups_stored,
                    config=run_config,
                    coords=stepper.coords(state, params),
                    attrs={**(attrs or {}), "n_steps": n_steps},
                    time_units=stepper.time_units(),
                    overwrite=overwrite,
                    **store_options,
                )
                checkpoint_path(out).unlink(missing_ok=True)
            if from_start:
                perms = dict(plan.transpose)
                obs = {
                    k: np.asarray(v).transpose(perms[k])[None]
                    if k in perms
                    else np.asarray(v)[None]
                    for k, v in stepper.observe(state, params).items()
                }
                t0 = np.array([float(stepper.time(state))])
                first = {
                    g: (np.array([0]), t0, {q: obs[q] for q in plan.quantities(g)})
                    for g in plan.names
                }
                if store is not None:
                    # No checkpoint of step 0: `resume` restarts a run that has none from the
                    # initial state it is given (checked against the file), which saves a
                    # checkpoint write (an fsync) per run.
                    store.append(first)
                else:
                    for g, (_, _, f) in first.items():
                        mem[g].append(f)
        bar = _progress_bar(n_steps, step, progress)
        pending = _dispatch(stepper, state, params, step, n_steps, chunk_steps, plan)
        while pending is not None:
            chunk_start_state, periods, (new_state, frames, times, overflow), finite = pending
            done = step + periods * plan.period
            # Queue the next chunk before waiting for this one, so the device never idles while
            # the host checks and writes; it is discarded if this chunk turns out bad.
            pending = _dispatch(stepper, new_state, params, done, n_steps, chunk_steps, plan)
            _wait_ready(finite, waiter)
            if np.asarray(overflow).any():
                stepper, state, pending, recomputed = _regrow(
                    stepper,
                    chunk_start_state,
                    params,
                    step,
                    n_steps,
                    chunk_steps,
                    plan,
                    recomputed,
                    max_grow,
                )
                continue
            frames_h = {g: {q: np.asarray(v) for q, v in f.items()} for g, f in frames.items()}
            times_h = {g: np.asarray(t) for g, t in times.items()}
            ok = {g: frames_finite(frames_h[g], len(times_h[g])) for g in plan.names}
            if not (all(o.all() for o in ok.values()) and bool(finite)):
                guard.stopping()
                _blow_up(
                    stepper,
                    chunk_start_state,
                    params,
                    step,
                    plan,
                    ok,
                    frames_h,
                    times_h,
                    store,
                    mem,
                    bar,
                )
            chunk = {
                g: (
                    step + plan.every(g) * np.arange(1, len(times_h[g]) + 1),
                    times_h[g],
                    frames_h[g],
                )
                for g in plan.names
            }
            with guard.critical():
                if store is not None:
                    store.append(chunk)
                else:
                    for g, (_, _, f) in chunk.items():
                        mem[g].append(f)
                state, step = new_state, done  # updated together: the last good (state, step)
                if store is not None and _checkpoint_due(
                    step,
                    n_steps,
                    ckpt_step,
                    last_ckpt,
                    ckpt_cost,
                    checkpoint_every,
                    checkpoint_interval,
                ):
                    t_ck = _time.monotonic()
                    assert ckpt is not None  # a store means an output file
                    save_checkpoint(ckpt, state, step=step, n_frames=store.n_frames, fingerprint=fp)
                    n_ckpt += 1
                    last_ckpt, ckpt_step = _time.monotonic(), step
                    ckpt_cost = last_ckpt - t_ck
            bar.update(periods * plan.period)
            if callback is not None:
                callback(step, store.n_frames if store is not None else None)
        if store is not None:
            store.set_attrs(status="finished", steps_done=step)
    except RunInterrupted as exc:
        guard.stopping()
        if store is not None:
            if step > ckpt_step:  # keep everything finished: resume continues from here
                _save_quietly(ckpt, state, step, store, fp)
            store.mark(status="interrupted", steps_done=step)
            log.warning(
                "interrupted by %s at step %d; %s is closed and can be resumed",
                exc.args[0].split()[-1],
                step,
                out,
            )
        raise
    except KeyboardInterrupt:  # raised by other code (a callback, a progress bar)
        guard.stopping()
        if store is not None:
            if step > ckpt_step:
                _save_quietly(ckpt, state, step, store, fp)
            store.mark(status="interrupted", steps_done=step)
        raise
    except SimulationBlowUp:
        raise
    except BaseException as exc:
        guard.stopping()
        if store is not None:
            if step > ckpt_step:
                _save_quietly(ckpt, state, step, store, fp)
            _fail(store, step, exc, guard)
        raise
    finally:
        waiter.shutdown(wait=False, cancel_futures=True)
        if bar is not None:
            bar.close()
        if store is not None:
            try:
                store.close()
            except StoreError as exc:
                if sys.exc_info()[0] is None:
                    raise
                log.error("%s", exc)
    if store is None:
        frames_mem = {
            q: np.concatenate([f[q] for f in mem[g]])
            for g in plan.names
            for q in plan.quantities(g)
        }
        per_group = {g: sum(len(next(iter(f.values()))) for f in mem[g]) for g in plan.names}
    else:
        frames_mem, per_group = None, store.n_frames
    return RunResult(
        state=state,
        stepper=stepper,
        steps_done=step,
        n_frames=sum(per_group.values()),
        frames_per_group=per_group,
        path=out,
        frames=frames_mem,
        wall_s=_time.perf_counter() - t_start,
        chunks_recomputed=recomputed,
        checkpoints=n_ckpt,
    )


def check_structure(stepper: AbstractStepper, state: PyTree, params: PyTree) -> tuple[str, ...]:
    """Trace `step` and `observe` abstractly (no compile, no compute) and refuse, by name, a
    state or params the stepper cannot use: a key it reads that is missing, a step that returns
    another structure, observed quantities that differ from `variables`. Returns the names of
    the observed quantities.

    The verdict depends only on the stepper and the structure, shapes and dtypes of state and
    params, so it is cached on those: a repeated `run` pays the trace (~65 ms for the Lorenz
    ensemble stepper) once.

    Example:
        >>> check_structure(stepper, state, params)  # ("y",) for an ODEStepper
    """
    specs = (_spec(state), _spec(params))
    try:
        return _check_cached(stepper, *specs)
    except TypeError as exc:
        if "unhashable" not in str(exc):
            raise
        return _check(stepper, *specs)


def _spec(tree: PyTree):
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return treedef, tuple(
        (tuple(np.shape(x)), jax.numpy.result_type(x), bool(getattr(x, "weak_type", False)))
        for x in leaves
    )


@functools.lru_cache(maxsize=64)
def _check_cached(stepper, state_spec, params_spec) -> tuple[str, ...]:
    return _check(stepper, state_spec, params_spec)


def _check(stepper, state_spec, params_spec) -> tuple[str, ...]:
    def abstract(spec):
        treedef, leaves = spec
        return jax.tree_util.tree_unflatten(
            treedef,
            [jax.ShapeDtypeStruct(shape, dtype, weak_type=weak) for shape, dtype, weak in leaves],
        )

    state, params = abstract(state_spec), abstract(params_spec)
    try:
        new = jax.eval_shape(stepper.step, state, params)
        obs = jax.eval_shape(stepper.observe, state, params)
    except KeyError as exc:
        key = exc.args[0] if exc.args else "?"
        raise SimkitInputError(
            f"the stepper reads the entry {key!r}, which is missing from the state or params "
            f"(state has {_keys(state)}; params has {_keys(params)})."
        ) from None
    if jax.tree_util.tree_structure(new) != jax.tree_util.tree_structure(state):
        from ..io._attrs import structure_difference

        raise SimkitInputError(
            f"{type(stepper).__name__}.step returns a state of another structure than it is "
            f"given: {structure_difference(tree_paths(state), tree_paths(new))}."
        )
    for path, a, b in zip(
        tree_paths(state),
        jax.tree_util.tree_leaves(state),
        jax.tree_util.tree_leaves(new),
        strict=False,
    ):
        if (a.shape, a.dtype) != (b.shape, b.dtype):
            raise SimkitInputError(
                f"{type(stepper).__name__}.step changes state{path} from {a.shape} "
                f"{a.dtype} to {b.shape} {b.dtype}; a step must keep shapes "
                "and dtypes (fixed shapes are what lets JAX compile the loop once)."
            )
    declared = stepper.variables(state, params)
    if set(declared) != set(obs):
        raise SimkitInputError(
            f"{type(stepper).__name__}.observe returns {sorted(obs)} but variables() declares "
            f"{sorted(declared)}; they must name the same quantities."
        )
    for name, var in declared.items():
        if tuple(obs[name].shape) != tuple(var.shape):
            raise SimkitInputError(
                f"{type(stepper).__name__}.observe gives {name!r} the shape "
                f"{tuple(obs[name].shape)}, variables() declares {tuple(var.shape)}."
            )
    return tuple(obs)


def _keys(tree) -> str:
    if isinstance(tree, Mapping):
        return str(sorted(map(str, tree)))
    return str(tree_paths(tree))


def _save_groups(stepper, state, params, plan: SavePlan) -> list[SaveGroup]:
    variables = stepper.variables(state, params)
    return [SaveGroup(g, every, {q: variables[q] for q in qs}) for g, every, qs in plan.groups]


def _wait_ready(x, waiter: concurrent.futures.ThreadPoolExecutor) -> None:
    """Wait for a device result without holding back signals.

    Python runs signal handlers only between bytecodes, so a blocking wait on a long chunk in
    the main thread would hold SIGTERM (a scheduler's notice before SIGKILL) until the chunk
    finished. A helper thread does the blocking wait; the main thread waits on its future,
    which a signal interrupts at once: the chunk in flight is discarded and the last finished
    one is checkpointed. (Polling with 1 ms sleeps did the same, but its wake-ups compete with
    the compute threads; it measured +10-14% output overhead in one noisy run on 2 cores.)
    """
    waiter.submit(jax.block_until_ready, x).result()


def _permutations(declared: list[SaveGroup], stored: list[SaveGroup]):
    """`(quantity, permutation)` for every quantity the writer stores in another axis order."""
    out = []
    for gd, gs in zip(declared, stored, strict=False):
        for name, var in gd.variables.items():
            perm = tuple(var.dims.index(d) for d in gs.variables[name].dims)
            if perm != tuple(range(len(perm))):
                out.append((name, perm))
    return tuple(sorted(out))


def _checkpoint_due(step, n_steps, ckpt_step, last_ckpt, ckpt_cost, every, interval) -> bool:
    if step >= n_steps:
        return True
    if every is None and interval is None:
        return _time.monotonic() - last_ckpt >= ADAPTIVE_CHECKPOINT_FACTOR * ckpt_cost
    if every is not None and step - ckpt_step >= every:
        return True
    return interval is not None and _time.monotonic() - last_ckpt >= interval


def _save_quietly(ckpt, state, step, store, fp) -> None:
    try:
        save_checkpoint(ckpt, state, step=step, n_frames=store.n_frames, fingerprint=fp)
    except Exception as exc:  # noqa: BLE001 - the previous checkpoint is intact; report why
        log.error("%s", exc)


def _fail(store, step, exc, guard) -> None:
    """Record a failure in the file's status (best effort: a full disk may refuse even that)."""
    guard.stopping()
    if isinstance(exc, StoreWriteError) and exc.cause is not None:
        cause = f"{describe_os_error(exc.cause)} ({exc})"
    else:
        cause = f"{type(exc).__name__}: {exc}"
    store.mark(status=f"failed: {cause}"[:500], steps_done=step)


def _dispatch(stepper, state, params, step, n_steps, chunk_steps, plan):
    """Start the next chunk on device (asynchronously); None when the run is complete."""
    if step >= n_steps:
        return None
    periods = min(chunk_steps, n_steps - step) // plan.period
    result = _chunk(stepper, state, params, periods, plan)
    return state, periods, result, _all_finite(result[0])


def _regrow(
    stepper, chunk_start_state, params, step, n_steps, chunk_steps, plan, recomputed, max_grow
):
    if recomputed >= max_grow:
        raise RuntimeError(
            f"capacity overflow persisted after growing {max_grow} times (chunk starting at "
            f"step {step}); the system may be unphysical (e.g. particles collapsing)."
        )
    stepper, state = stepper.grow(chunk_start_state)
    log.info("capacity overflow in chunk at step %d: grown, recomputing the chunk", step)
    pending = _dispatch(stepper, state, params, step, n_steps, chunk_steps, plan)
    return stepper, state, pending, recomputed + 1


def _state_finite(state) -> bool:
    return all(
        np.isfinite(np.asarray(x)).all()
        for x in jax.tree_util.tree_leaves(state)
        if jax.numpy.issubdtype(jax.numpy.result_type(x), jax.numpy.inexact)
    )


def _blow_up(
    stepper, chunk_start_state, params, step, plan, ok, frames_h, times_h, store, mem, bar
):
    """Write the good frames of a failed chunk (every group), find the first bad step, raise.

    The chunk is replayed one step at a time from its start state to find the first step whose
    state is NaN/inf. An observed quantity that is non-finite while the state is still finite
    names the failure if it comes first.
    """
    n_chunk = max(len(times_h[g]) * plan.every(g) for g in plan.names)
    bad_step, bad_time, what = None, float("nan"), "state"
    s = chunk_start_state
    for i in range(1, n_chunk + 1):
        s = _one_step(stepper, s, params)
        if not _state_finite(s):
            bad_step, bad_time = step + i, float(stepper.time(s))
            break
    for g in plan.names:  # the earliest non-finite observed frame of any group
        if ok[g].all():
            continue
        j = int(np.argmin(ok[g]))
        frame_step = step + (j + 1) * plan.every(g)
        if bad_step is None or frame_step < bad_step:
            bad_step, bad_time = frame_step, float(times_h[g][j])
            what = (
                "an observed quantity ("
                + ", ".join(
                    q
                    for q, v in frames_h[g].items()
                    if v.dtype.kind in "fc" and not np.isfinite(v[j]).all()
                )
                + ")"
            )
    if bad_step is None:
        # Only the compiled chunk's end state was bad and the step-by-step replay stayed finite
        # (the two may round differently): the chunk's last step is the first one known bad.
        bad_step, bad_time = step + n_chunk, float(stepper.time(s))
    chunk, last_good = {}, step
    for g in plan.names:
        every = plan.every(g)
        j = (bad_step - step - 1) // every  # frames strictly before the bad step
        steps_g = step + every * np.arange(1, j + 1)
        chunk[g] = (steps_g, times_h[g][:j], {q: v[:j] for q, v in frames_h[g].items()})
        if j:
            last_good = max(last_good, int(steps_g[-1]))
    path = None
    if store is not None:
        store.append(chunk)
        store.mark(
            status=f"failed: non-finite {what} at step {bad_step}",
            steps_done=last_good,
            first_bad_step=bad_step,
        )
        path = store.path
    else:
        for g, (_, _, f) in chunk.items():
            mem[g].append(f)
    bar.close()
    raise SimulationBlowUp(
        f"{what} became NaN/inf at step {bad_step} (t = {bad_time:.6g}); frames up to step "
        f"{last_good} are kept"
        + (f" in {str(path)!r}" if path else "")
        + ". "
        + stepper.blow_up_hint(),
        step=bad_step,
        time=bad_time,
        path=path,
    )


def _progress_bar(total, initial, enabled):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        unit="step",
        disable=not enabled,
        file=sys.stderr,
        dynamic_ncols=True,
        smoothing=0.1,
    )
