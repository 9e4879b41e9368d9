"""One-dimensional device meshes for ensembles."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh

from .._checks import SimkitInputError

DEFAULT_AXIS = "ensemble"


def make_mesh(
    # jax exports Device as a plain alias (`Device = _xc.Device`), which pyright refuses as a type
    devices: Sequence[jax.Device] | None = None,  # pyright: ignore[reportInvalidTypeForm]
    axis_name: str = DEFAULT_AXIS,
) -> Mesh:
    """A 1-D device mesh whose single axis carries the ensemble.

    The axis is built with `AxisType.Auto`: with explicit axis types, vmapped `lax.scan` /
    `lax.while_loop` with unbatched carries (every diffrax solve) fail to trace.

    Args:
        devices: the devices to spread members over, in order; default `jax.devices()`, which in
            a multi-process run (after `initialize_distributed`) is every device of every process.
        axis_name: name of the mesh axis (default `"ensemble"`); pass the same name to
            `sharded_call`.

    Returns:
        `jax.sharding.Mesh` of shape `{axis_name: len(devices)}`.

    Example:
        >>> mesh = make_mesh(jax.devices()[:3])
        >>> mesh.shape["ensemble"]
        3
    """
    if not isinstance(axis_name, str) or not axis_name:
        raise SimkitInputError(f"axis_name must be a non-empty string, got {axis_name!r}.")
    devs = jax.devices() if devices is None else list(devices)
    if len(devs) == 0:
        raise SimkitInputError("make_mesh needs at least one device, got an empty device list.")
    for d in devs:
        if not isinstance(d, jax.Device):
            raise SimkitInputError(
                f"make_mesh devices must be jax.Device objects (e.g. from jax.devices()), got "
                f"{type(d).__name__} {d!r}."
            )
    if len({d.id for d in devs}) != len(devs):
        ids = [d.id for d in devs]
        raise SimkitInputError(f"make_mesh devices must be distinct, got device ids {ids}.")
    return Mesh(np.array(devs, dtype=object), (axis_name,), axis_types=(AxisType.Auto,))
