"""The run driver: a host loop over jitted chunks with HDF5 output, checks and checkpoints.

One chunk = `chunk_steps` steps computed on device by `lax.scan` (`scan_frames`). After each chunk
the host checks the chunk (finite final state and frames, capacity overflow), appends the
frames to the HDF5 store and flushes it, and writes a checkpoint. The next chunk is queued on the
device before the host waits for the current one, so checks and file output overlap computation.

Guarantees:
- Nothing wrong is written: an overflowing chunk is recomputed with a larger capacity from the
  last good state; a chunk that produced NaN/inf writes only the frames before the first bad one
  and raises `SimulationBlowUp` naming the first bad step.
- A killed run resumes (`resume=True`) from its last checkpoint and reaches a final state bitwise
  equal to an uninterrupted run (same chunking, same compiled chunk).
- Ctrl-C closes the file cleanly with every finished chunk flushed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
import sys
import time as _time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np
from jaxtyping import PyTree

from .._checks import SimkitInputError, require_finite, require_positive
from ..io import FrameStore, checkpoint_path, fingerprint, load_checkpoint, save_checkpoint
from ._simulate import scan_frames
from ._stepper import AbstractStepper

log = logging.getLogger("simkit.run")


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
        n_frames: frames in the output file (including the initial frame).
        path: output file, or None when running without output.
        frames: when `out is None`, the frames kept in memory `{name: (n_frames, ...)}`.
        wall_s: wall-clock seconds of this call.
        chunks_recomputed: chunks recomputed after a capacity overflow.
    """

    state: PyTree
    stepper: AbstractStepper
    steps_done: int
    n_frames: int
    path: Path | None
    frames: dict[str, np.ndarray] | None
    wall_s: float
    chunks_recomputed: int = 0


# Plain `jax.jit` with the stepper static (steppers hold only static configuration): its
# dispatch is asynchronous, so the host writes chunk i while the device computes chunk i + 1.
# (`eqx.filter_jit` measured as blocking until the result is ready, which serialised the two.)
_chunk = jax.jit(scan_frames, static_argnums=(0, 3, 4))
_one_step = jax.jit(lambda stepper, state, params: stepper.step(state, params), static_argnums=0)


def describe_stepper(stepper: AbstractStepper) -> dict[str, Any]:
    """A stable, JSON-able description of a stepper's static configuration (for fingerprints).

    Callables are named by module and qualified name, never by memory address, so the same
    configuration gives the same fingerprint in a new process.
    """
    out: dict[str, Any] = {"type": f"{type(stepper).__module__}.{type(stepper).__qualname__}"}
    for f in dataclasses.fields(stepper):
        v = getattr(stepper, f.name)
        if callable(v) and not isinstance(v, eqx.Module):
            out[f.name] = f"{getattr(v, '__module__', '?')}.{getattr(v, '__qualname__', repr(v))}"
        elif isinstance(v, eqx.Module):
            out[f.name] = type(v).__qualname__
        elif isinstance(v, (int, float, str, bool, tuple)) or v is None:
            out[f.name] = v
        else:
            out[f.name] = _digest(v)
    return out


def _digest(tree: PyTree) -> str:
    """Hash of every array leaf's bytes, shape and dtype: identifies initial states/params."""
    h = hashlib.sha256()
    for leaf in jax.tree_util.tree_leaves(tree):
        if hasattr(leaf, "dtype") and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
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
    save_every: int,
    chunk_steps: int | None = None,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    resume: bool = False,
    config: dict[str, Any] | None = None,
    attrs: dict[str, Any] | None = None,
    progress: bool = True,
    checkpoint_interval: float = 60.0,
    max_grow: int = 8,
    callback: Callable[[int, int], None] | None = None,
    store_type: type = FrameStore,
) -> RunResult:
    """Run `stepper` for `n_steps` steps in jitted chunks, saving a frame every `save_every`.

    Args:
        stepper: the solver (see `AbstractStepper`).
        state: initial state pytree (ignored values but used as template on `resume`).
        params: parameter pytree.
        n_steps: total steps, a positive multiple of `save_every`.
        save_every: steps between saved frames (> 0).
        chunk_steps: steps per jitted chunk, a multiple of `save_every` and <= n_steps. Default:
            about 1/10 of the run but at most ~10 000 steps, at least one frame. Larger chunks
            mean less host overhead, smaller ones more frequent flushes and progress updates.
        out: HDF5 output path (its folder must exist), or None to keep frames in memory.
        overwrite: replace an existing `out`.
        resume: continue the run in `out` from its checkpoint (`out.ckpt`); the configuration
            must be the one the file was written with.
        config: settings identifying the run (problem name, options); stored in the file and
            compared on resume, together with the stepper, chunking and a hash of the initial
            state and params.
        attrs: extra file attributes (units, parameter values for humans, ...).
        progress: show a progress bar (steps, steps/s, ETA) on stderr.
        checkpoint_interval: write a checkpoint when this many wall-clock seconds have passed
            since the last one (0: after every chunk), and always at the end and when the run
            is interrupted (Ctrl-C) or fails after a good chunk. A SIGKILL loses at most this
            much computation; `resume` recomputes it bit for bit.
        max_grow: how many times a chunk may be recomputed with a grown capacity.
        callback: called on the host as `callback(steps_done, n_frames)` after each chunk is
            safely on disk (live monitoring, tests).
        store_type: the file writer: `FrameStore` (netCDF-style, xarray-readable) by default.
            Another layout (e.g. H5MD for particles, fields with an XDMF sidecar) plugs in by
            providing the same interface: classmethods `create(path, variables, *, config,
            coords, attrs, time_units, overwrite)` and `open_resume(path, *, config)`, methods
            `append(steps, times, frames)`, `truncate(n)`, `set_attrs(**kw)`, `close()`, and the
            properties `n_frames` and `path`.

    Returns:
        `RunResult`.

    Raises:
        SimkitInputError: invalid arguments (before any compute).
        StoreError: `resume` into a corrupt/truncated/foreign file or a changed configuration.
        SimulationBlowUp: NaN/inf appeared; frames before the first bad step are on disk.
    """
    t_start = _time.perf_counter()
    require_positive("n_steps", n_steps, integer=True)
    require_positive("save_every", save_every, integer=True)
    if not checkpoint_interval >= 0:
        raise SimkitInputError(
            f"checkpoint_interval must be >= 0 seconds, got {checkpoint_interval!r}.")
    if n_steps % save_every:
        raise SimkitInputError(
            f"n_steps ({n_steps}) must be a multiple of save_every ({save_every}).")
    n_frames_total = n_steps // save_every
    if chunk_steps is None:
        # ~10 chunks for short runs (per-chunk host work measured ~2 ms: negligible then),
        # at most ~10 000 steps per chunk for long ones (progress and flushes stay frequent).
        frames_per_chunk = min(math.ceil(n_frames_total / 10), max(1, 10_000 // save_every))
        chunk_steps = save_every * max(1, frames_per_chunk)
    require_positive("chunk_steps", chunk_steps, integer=True)
    if chunk_steps > n_steps:
        raise SimkitInputError(
            f"chunk_steps ({chunk_steps}) is larger than the run (n_steps={n_steps}); use "
            f"chunk_steps <= {n_steps}.")
    if chunk_steps % save_every:
        raise SimkitInputError(
            f"chunk_steps ({chunk_steps}) must be a multiple of save_every ({save_every}).")
    if resume and overwrite:
        raise SimkitInputError("resume and overwrite exclude each other: choose one.")
    if resume and out is None:
        raise SimkitInputError("resume needs the output file to continue (out=...).")
    require_finite("initial state", state)
    require_finite("params", params)

    run_config = {
        **(config or {}),
        "stepper": describe_stepper(stepper),
        "save_every": save_every,
        "chunk_steps": chunk_steps,
        "initial_state": _digest(state),
        "params": _digest(params),
    }
    fp = fingerprint(run_config)

    store: FrameStore | None = None
    mem_frames: list[dict[str, np.ndarray]] = []
    step = 0
    if out is not None:
        out = Path(out)
        ckpt = checkpoint_path(out)
        if resume:
            store = store_type.open_resume(out, config=run_config)
            try:
                state, step, n_ck = load_checkpoint(ckpt, state, fingerprint=fp)
                store.truncate(n_ck)
            except BaseException:
                store.close()
                raise
            log.info("resuming %s at step %d (%d frames kept)", out, step, n_ck)
        else:
            store = store_type.create(
                out, stepper.variables(state, params), config=run_config,
                coords=stepper.coords(state, params), attrs={**(attrs or {}), "n_steps": n_steps},
                time_units=stepper.time_units(), overwrite=overwrite)
            ckpt.unlink(missing_ok=True)
    if not resume:
        first = {k: np.asarray(v)[None] for k, v in stepper.observe(state, params).items()}
        if store is not None:
            store.append(np.array([0]), np.array([float(stepper.time(state))]), first)
            save_checkpoint(ckpt, state, step=0, n_frames=store.n_frames, fingerprint=fp)
        else:
            mem_frames.append(first)

    bar = _progress_bar(n_steps, step, progress)
    recomputed = 0
    last_ckpt, ckpt_step = _time.monotonic(), step
    try:
        pending = _dispatch(stepper, state, params, step, n_steps, chunk_steps, save_every)
        while pending is not None:
            chunk_start_state, k, (new_state, frames, times, overflow) = pending
            done = step + k * save_every
            # Queue the next chunk before waiting for this one, so the device never idles while
            # the host checks and writes; it is discarded if this chunk turns out bad.
            pending = _dispatch(stepper, new_state, params, done, n_steps, chunk_steps,
                                save_every)
            overflow_h = np.asarray(overflow)
            if overflow_h.any():
                stepper, state, pending, recomputed = _regrow(
                    stepper, chunk_start_state, params, step, n_steps, chunk_steps, save_every,
                    recomputed, max_grow)
                continue
            frames_h = {name: np.asarray(v) for name, v in frames.items()}
            frame_ok = _finite_frames(frames_h, k)
            if not (frame_ok.all() and _state_finite(new_state)):
                _blow_up(stepper, chunk_start_state, params, step, save_every, frame_ok,
                         frames_h, np.asarray(times), store, mem_frames, bar)
            steps_h = step + save_every * np.arange(1, k + 1)
            times_h = np.asarray(times)
            if store is not None:
                store.append(steps_h, times_h, frames_h)
            else:
                mem_frames.append(frames_h)
            state, step = new_state, done  # updated together: the last good (state, step)
            if store is not None and (done == n_steps or checkpoint_interval == 0 or
                                      _time.monotonic() - last_ckpt >= checkpoint_interval):
                save_checkpoint(ckpt, state, step=step, n_frames=store.n_frames, fingerprint=fp)
                last_ckpt, ckpt_step = _time.monotonic(), step
            bar.update(k * save_every)
            if callback is not None:
                callback(step, store.n_frames if store is not None else None)
        if store is not None:
            store.set_attrs(status="finished", steps_done=step)
    except KeyboardInterrupt:
        if store is not None:
            if step > ckpt_step:  # keep everything finished: resume continues from here
                save_checkpoint(ckpt, state, step=step, n_frames=store.n_frames, fingerprint=fp)
            store.set_attrs(status="interrupted", steps_done=step)
            log.warning("interrupted at step %d; %s is closed and can be resumed", step, out)
        raise
    except SimulationBlowUp:
        raise
    except BaseException as exc:
        if store is not None:
            if step > ckpt_step:
                save_checkpoint(ckpt, state, step=step, n_frames=store.n_frames, fingerprint=fp)
            store.set_attrs(status=f"failed: {type(exc).__name__}: {exc}"[:500], steps_done=step)
        raise
    finally:
        bar.close()
        if store is not None:
            store.close()
    frames_mem = None
    if store is None:
        frames_mem = {name: np.concatenate([f[name] for f in mem_frames]) for name in mem_frames[0]}
    n_frames = store.n_frames if store is not None else len(frames_mem[next(iter(frames_mem))])
    return RunResult(state=state, stepper=stepper, steps_done=step, n_frames=n_frames,
                     path=out, frames=frames_mem, wall_s=_time.perf_counter() - t_start,
                     chunks_recomputed=recomputed)


def _dispatch(stepper, state, params, step, n_steps, chunk_steps, save_every):
    """Start the next chunk on device (asynchronously); None when the run is complete."""
    if step >= n_steps:
        return None
    k = min(chunk_steps, n_steps - step) // save_every
    return state, k, _chunk(stepper, state, params, k, save_every)


def _regrow(stepper, chunk_start_state, params, step, n_steps, chunk_steps, save_every,
            recomputed, max_grow):
    if recomputed >= max_grow:
        raise RuntimeError(
            f"capacity overflow persisted after growing {max_grow} times (chunk starting at "
            f"step {step}); the system may be unphysical (e.g. particles collapsing).")
    stepper, state = stepper.grow(chunk_start_state)
    log.info("capacity overflow in chunk at step %d: grown, recomputing the chunk", step)
    pending = _dispatch(stepper, state, params, step, n_steps, chunk_steps, save_every)
    return stepper, state, pending, recomputed + 1


def _finite_frames(frames_h: dict[str, np.ndarray], k: int) -> np.ndarray:
    """`(k,)` bool: every observed value of each frame is finite (host-side, on data that is
    transferred for writing anyway)."""
    ok = np.ones(k, bool)
    for v in frames_h.values():
        if v.dtype.kind in "fc":
            ok &= np.isfinite(v.reshape(k, -1)).all(axis=1)
    return ok


def _state_finite(state) -> bool:
    return all(np.isfinite(np.asarray(x)).all() for x in jax.tree_util.tree_leaves(state)
               if jax.numpy.issubdtype(jax.numpy.result_type(x), jax.numpy.inexact))


def _blow_up(stepper, chunk_start_state, params, step, save_every, frame_ok, frames_h, times_h,
             store, mem_frames, bar):
    """Write the good frames of a failed chunk, find the first non-finite step, raise.

    The chunk is replayed one step at a time from its start state to find the first step whose
    state is NaN/inf. If the state stays finite, an observed quantity is non-finite: the first
    such frame names the failure.
    """
    k = len(frame_ok)
    bad_step, bad_time, what = None, float("nan"), "state"
    s = chunk_start_state
    for i in range(1, k * save_every + 1):
        s = _one_step(stepper, s, params)
        if not _state_finite(s):
            bad_step, bad_time = step + i, float(stepper.time(s))
            break
    first_bad_frame = int(np.argmin(frame_ok)) if not frame_ok.all() else k
    if bad_step is None or step + (first_bad_frame + 1) * save_every < bad_step:
        bad_step = step + (first_bad_frame + 1) * save_every
        bad_time = float(times_h[first_bad_frame])
        what = "an observed quantity (" + ", ".join(
            n for n, v in frames_h.items()
            if v.dtype.kind in "fc" and not np.isfinite(v[first_bad_frame]).all()) + ")"
    j = min(first_bad_frame, (bad_step - step - 1) // save_every)  # frames strictly before
    good = {name: v[:j] for name, v in frames_h.items()}
    steps_h = step + save_every * np.arange(1, j + 1)
    last_good = int(steps_h[-1]) if j else step
    path = None
    if store is not None:
        store.append(steps_h, times_h[:j], good)
        store.set_attrs(status=f"failed: non-finite {what} at step {bad_step}",
                        steps_done=last_good, first_bad_step=bad_step)
        path = store.path
    else:
        mem_frames.append(good)
    bar.close()
    raise SimulationBlowUp(
        f"{what} became NaN/inf at step {bad_step} (t = {bad_time:.6g}); frames up to step "
        f"{last_good} are kept" + (f" in {str(path)!r}" if path else "")
        + ". Reduce the time step or check the parameters.",
        step=bad_step, time=bad_time, path=path)


def _progress_bar(total, initial, enabled):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="step", disable=not enabled,
                file=sys.stderr, dynamic_ncols=True, smoothing=0.1)
