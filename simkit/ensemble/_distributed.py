"""Multi-process start-up: a thin wrapper over `jax.distributed.initialize`."""

from __future__ import annotations

from typing import Any

import jax

from .._checks import SimkitInputError, require_positive

_ORDER_HINT = (
    "Call simkit.ensemble.initialize_distributed first thing in the program, right after the "
    "imports and before any JAX computation (creating an array, jax.devices(), jit, ...)."
)


def _check_address(address: str) -> None:
    if not isinstance(address, str) or ":" not in address:
        raise SimkitInputError(
            f"coordinator_address must be a 'host:port' string such as '10.0.0.1:1234', got "
            f"{address!r}."
        )
    port = address.rsplit(":", 1)[1]
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise SimkitInputError(
            f"coordinator_address {address!r} needs a port number in 1..65535 after the last ':'."
        )


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    local_device_count: int | None = None,
) -> None:
    """Join a multi-process JAX run (one process per host, or several per host for testing).

    Two ways to call it:

    * CPU cluster (or two processes on one machine): pass `coordinator_address`,
      `num_processes` and `process_id` on every process (the same address and count, a distinct
      id `0 .. num_processes-1`; process 0 hosts the coordinator). Cross-process collectives on
      CPU use gloo over TCP (`jax_cpu_collectives_implementation="gloo"` is set here), and
      `local_device_count` sets `jax_num_cpu_devices`, the number of CPU devices this process
      contributes.
    * GPU / TPU cluster under SLURM, Open MPI or a cloud TPU runtime: call it with no arguments.
      JAX's own cluster auto-detection fills in the coordinator, process count and id; nothing
      else is changed.

    After it returns, `jax.devices()` lists every process's devices and `make_mesh()` /
    `sharded_call` span all of them (see `sharded_call` for the multi-process contract).

    Args:
        coordinator_address: `"host:port"` of process 0, reachable from every process.
        num_processes: total number of processes, >= 1.
        process_id: this process's id, `0 <= process_id < num_processes`.
        local_device_count: CPU devices for this process (CPU runs only); default: JAX's
            default (one, or `--xla_force_host_platform_device_count`).

    Raises:
        SimkitInputError: malformed address, counts or ids, or only some of the three
            explicit arguments given.
        RuntimeError: JAX was already used in this process (backends initialised) or
            `jax.distributed` was already initialised; the message says what to do.

    Example (on each of two machines, id 0 and 1):
        >>> initialize_distributed("10.0.0.1:1234", num_processes=2, process_id=0,
        ...                        local_device_count=4)
    """
    explicit = (coordinator_address, num_processes, process_id)
    given = [v is not None for v in explicit]
    if any(given) and not all(given):
        raise SimkitInputError(
            "initialize_distributed needs coordinator_address, num_processes and process_id "
            "together (CPU cluster) or none of them (auto-detection on SLURM/MPI/TPU), got "
            f"coordinator_address={coordinator_address!r}, num_processes={num_processes!r}, "
            f"process_id={process_id!r}."
        )
    if coordinator_address is not None and num_processes is not None:  # all three given
        _check_address(coordinator_address)
        require_positive("num_processes", num_processes, integer=True)
        if (
            isinstance(process_id, bool)
            or not isinstance(process_id, int)
            or not 0 <= process_id < num_processes
        ):
            raise SimkitInputError(
                f"process_id must be an integer in [0, {num_processes - 1}] "
                f"(num_processes={num_processes}), got {process_id!r}."
            )
    if local_device_count is not None:
        require_positive("local_device_count", local_device_count, integer=True)
    if jax.distributed.is_initialized():
        raise RuntimeError(
            "jax.distributed is already initialised in this process; call "
            "initialize_distributed once per process."
        )
    if local_device_count is not None:
        try:
            jax.config.update("jax_num_cpu_devices", int(local_device_count))
        except RuntimeError as exc:
            raise RuntimeError(
                f"initialize_distributed(local_device_count={local_device_count}) came too late: "
                f"JAX backends are already initialised in this process. {_ORDER_HINT}"
            ) from exc
    previous = jax.config.jax_cpu_collectives_implementation
    kwargs: dict[str, Any] = {}
    if all(given):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        kwargs = dict(
            coordinator_address=coordinator_address,
            num_processes=num_processes,
            process_id=process_id,
        )
    try:
        jax.distributed.initialize(**kwargs)
    except RuntimeError as exc:
        jax.config.update("jax_cpu_collectives_implementation", previous)
        raise RuntimeError(f"jax.distributed.initialize failed: {exc} {_ORDER_HINT}") from exc
