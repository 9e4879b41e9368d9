"""One process of the two-process CPU run in tests/test_distributed.py (not a test module).

Joins a `jax.distributed` run through `simkit.ensemble.initialize_distributed` (gloo on
127.0.0.1), solves a Lorenz-63 ensemble with `simkit.ode.solve_ensemble(shard=True)` over the
global device mesh, and writes what this process got back to an .npz file.

The Lorenz-63 problem and its initial states are defined here and imported by the test, so the
reference (one process, unsharded) solves exactly the same problem.
"""

from __future__ import annotations

import argparse

import numpy as np

# Lorenz (1963) classic parameters: sigma = 10, rho = 28, beta = 8/3.
SIGMA, RHO, BETA = 10.0, 28.0, 8.0 / 3.0
T1 = 1.0
DT = 0.01


def lorenz_vector_field(t, y, p):
    """dy/dt of Lorenz-63; y = (x, y, z), p = {"sigma", "rho", "beta"}."""
    import jax.numpy as jnp

    x, yy, z = y[0], y[1], y[2]
    return jnp.stack([p["sigma"] * (yy - x), x * (p["rho"] - z) - yy, x * yy - p["beta"] * z])


def lorenz_problem():
    """The one-member problem: y0 = (1, 1, 1) on [0, T1]."""
    import jax.numpy as jnp

    from simkit.ode import ODEProblem

    params = {"sigma": jnp.asarray(SIGMA), "rho": jnp.asarray(RHO), "beta": jnp.asarray(BETA)}
    return ODEProblem(lorenz_vector_field, jnp.ones(3), params, 0.0, T1)


def initial_states(n: int) -> np.ndarray:
    """n distinct initial states, shape (n, 3): a line through (1, 1, 1) in x."""
    y0 = np.ones((n, 3))
    y0[:, 0] += np.linspace(0.0, 1.0, n)
    return y0


def solve_lorenz(n: int, *, shard: bool):
    """(ts, ys) of the ensemble: Tsit5, fixed steps DT, saved at 11 times in [0, T1]."""
    import diffrax
    import numpy as np

    from simkit.ode import solve_ensemble

    return solve_ensemble(
        lorenz_problem(),
        y0=initial_states(n),
        solver=diffrax.Tsit5(),
        dt0=DT,
        fixed_step=True,
        saveat=np.linspace(0.0, T1, 11),
        shard=shard,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--coordinator", required=True, help="host:port of process 0")
    ap.add_argument("--num-processes", type=int, required=True)
    ap.add_argument("--process-id", type=int, required=True)
    ap.add_argument("--local-devices", type=int, required=True)
    ap.add_argument("--n-members", type=int, required=True)
    ap.add_argument("--x64", action="store_true", help="enable float64 (match the test)")
    ap.add_argument("--out", required=True, help=".npz file to write")
    args = ap.parse_args(argv)

    import jax

    from simkit.ensemble import initialize_distributed, make_mesh

    jax.config.update("jax_enable_x64", args.x64)
    initialize_distributed(
        args.coordinator, args.num_processes, args.process_id, local_device_count=args.local_devices
    )
    mesh = make_mesh()
    ts, ys = solve_lorenz(args.n_members, shard=True)
    try:  # a second initialisation must be refused with a clear message
        initialize_distributed(args.coordinator, args.num_processes, args.process_id)
        second_init_error = ""
    except RuntimeError as exc:
        second_init_error = str(exc)
    np.savez(
        args.out,
        ts=np.asarray(ts),
        ys=np.asarray(ys),
        ys_type=type(ys).__name__,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
        global_devices=len(jax.devices()),
        local_devices=len(jax.local_devices()),
        mesh_multi_process=mesh.is_multi_process,
        second_init_error=second_init_error,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
