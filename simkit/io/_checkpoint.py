"""Checkpoints: a run's full state, step, frame counts and configuration fingerprint.

A checkpoint file sits beside the run's output (`<out>.ckpt`). It is written to a temporary file,
fsynced and renamed over the previous one, so a kill or a full disk at any moment leaves either
the old or the new checkpoint, never a torn one, and no temporary file. State leaves are stored
bit for bit (PRNG keys as their raw key data) with their pytree paths, so a resumed run continues
exactly where the checkpoint was taken, and a state of another structure is refused by name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import jax
import numpy as np

from .._checks import SimkitInputError
from ._attrs import structure_difference
from ._hdf5 import (
    RESERVE_MARGIN,
    StoreError,
    StoreWriteError,
    _fd,
    dataset,
    describe_os_error,
    open_h5,
    reserve_space,
    text_attr,
)


def checkpoint_path(out: str | os.PathLike) -> Path:
    """Where the checkpoint of output file `out` lives.

    Example:
        >>> checkpoint_path("results/run.h5")  # PosixPath('results/run.h5.ckpt')
    """
    out = Path(out)
    return out.with_name(out.name + ".ckpt")


def _is_key(leaf) -> bool:
    return hasattr(leaf, "dtype") and jax.numpy.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def tree_paths(tree: Any) -> list[str]:
    """Readable paths of a pytree's leaves, e.g. `["['x']", ".solver_state"]`."""
    return [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def save_checkpoint(
    path: str | os.PathLike,
    state: Any,
    *,
    step: int,
    n_frames: dict[str, int],
    fingerprint: str,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write `state` (any pytree of arrays) with its step, frames per save group and config
    fingerprint. Atomic; on failure the previous checkpoint is intact, no temporary file is left,
    and `StoreWriteError` names the file and the cause.

    Example:
        >>> save_checkpoint(checkpoint_path("run.h5"), state, step=1000, n_frames={"": 11},
        ...                 fingerprint=fingerprint(config))
    """
    path = Path(path)
    leaves = jax.tree_util.tree_leaves(state)
    tmp = path.with_name(path.name + ".tmp")
    arrays = [
        np.asarray(jax.random.key_data(leaf)) if _is_key(leaf) else np.asarray(leaf)
        for leaf in leaves
    ]
    try:
        with open_h5(tmp, "w") as h5:
            # Claim the disk space first: a checkpoint that cannot be written whole fails here,
            # before HDF5 holds half-written buffers it would complain about when released.
            reserve_space(_fd(h5), RESERVE_MARGIN + sum(a.nbytes for a in arrays))
            for i, (leaf, arr) in enumerate(zip(leaves, arrays, strict=False)):
                ds = h5.create_dataset(f"leaf_{i:04d}", data=arr)
                if _is_key(leaf):
                    ds.attrs["prng_impl"] = str(jax.random.key_impl(leaf))
            h5.attrs["n_leaves"] = len(leaves)
            h5.attrs["paths"] = json.dumps(tree_paths(state))
            h5.attrs["step"] = int(step)
            h5.attrs["n_frames"] = json.dumps({str(k): int(v) for k, v in n_frames.items()})
            h5.attrs["fingerprint"] = fingerprint
            for k, v in (extra or {}).items():
                h5.attrs[k] = v
            h5.flush()
            os.fsync(h5.id.get_vfd_handle())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError | RuntimeError):
            raise StoreWriteError(
                f"writing checkpoint {str(path)!r} failed: {describe_os_error(exc)}. The previous "
                "checkpoint is intact.",
                path,
                exc,
            ) from None
        raise


def load_checkpoint(
    path: str | os.PathLike, like: Any, *, fingerprint: str, resizable: Any = None
) -> tuple[Any, int, dict[str, int]]:
    """Read a checkpoint into the structure of `like` (a template state of the same run).

    `resizable(path) -> bool` names entries whose shape may differ from the template's (same
    rank and dtype): fixed-capacity buffers that the run grew after an overflow.

    Returns:
        (state, step, n_frames) with `n_frames` the frames per save group at the checkpoint.

    Raises:
        SimkitInputError: no checkpoint exists.
        StoreError: unreadable, from another configuration, or not matching the template (the
            missing or unexpected state entries are named).

    Example:
        >>> state, step, n_frames = load_checkpoint(checkpoint_path("run.h5"), state0,
        ...                                         fingerprint=fingerprint(config))
    """
    path = Path(path)
    if not path.exists():
        raise SimkitInputError(
            f"cannot resume: no checkpoint {str(path)!r} (the run never finished a chunk, or the "
            "file was moved). Start a new run with --overwrite."
        )
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise StoreError(
            f"cannot resume: checkpoint {str(path)!r} is unreadable: {describe_os_error(exc)}"
        ) from None
    with h5:
        if h5.attrs.get("fingerprint") != fingerprint:
            raise StoreError(
                f"cannot resume: checkpoint {str(path)!r} belongs to a different configuration "
                f"(fingerprint {h5.attrs.get('fingerprint')!r}, this run {fingerprint!r})."
            )
        template, treedef = jax.tree_util.tree_flatten(like)
        stored_paths = json.loads(h5.attrs.get("paths", "[]"))
        if stored_paths != tree_paths(like):
            raise StoreError(
                "cannot resume: the checkpoint's state has another structure: "
                + structure_difference(stored_paths, tree_paths(like))
                + "."
            )
        leaves = []
        for i, ref in enumerate(template):
            data = dataset(h5, f"leaf_{i:04d}")[()]
            if _is_key(ref):
                leaves.append(jax.random.wrap_key_data(data, impl=jax.random.key_impl(ref)))
                continue
            ref_arr = np.asarray(ref)
            grown = (
                resizable is not None
                and resizable(stored_paths[i])
                and data.ndim == ref_arr.ndim
                and data.dtype == ref_arr.dtype
            )
            if (data.shape != ref_arr.shape and not grown) or data.dtype != ref_arr.dtype:
                raise StoreError(
                    f"cannot resume: checkpoint entry {stored_paths[i]} has shape {data.shape} "
                    f"{data.dtype}, the run's state expects {ref_arr.shape} {ref_arr.dtype}."
                )
            # Restore multi-device placement (sharded ensembles); single-device leaves stay
            # uncommitted so jit may co-locate them with sharded ones, as in the original run.
            sharding = getattr(ref, "sharding", None)
            if sharding is not None and len(sharding.device_set) > 1:
                leaves.append(jax.device_put(data, sharding))
            else:
                leaves.append(jax.numpy.asarray(data))
        n_frames = {k: int(v) for k, v in json.loads(text_attr(h5, "n_frames")).items()}
        step = h5.attrs["step"]
        if not isinstance(step, int | np.integer):
            raise StoreError(
                f"cannot resume: checkpoint {str(path)!r} has a non-integer step {step!r}."
            )
        return jax.tree_util.tree_unflatten(treedef, leaves), int(step), n_frames
