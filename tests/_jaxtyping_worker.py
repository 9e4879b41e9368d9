"""Worker for tests/test_jaxtyping_hook.py: imports `simkit.ode` and `simkit.run` under
jaxtyping's import hook (every function and dataclass of those packages wrapped in
`@jaxtyped(typechecker=beartype)`), then calls their public entry points on tiny problems.

usage: python _jaxtyping_worker.py TMP_DIR
Prints "ok <entry point>" after each call that passed its checks and "rejected <what>" for each
deliberately wrong call the hook caught; a dishonest annotation ends the process with jaxtyping's
TypeCheckError (exit code 1). The numeric tower is on (an int is a valid `float`), as in PEP 484
and pyright.
"""

import os
import sys

import jax

jax.config.update("jax_num_cpu_devices", 2)
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

import diffrax  # noqa: E402
import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jaxtyping  # noqa: E402

assert "simkit" not in sys.modules, "simkit must be imported after the hook is installed"
TYPECHECKER = "beartype.beartype(conf=beartype.BeartypeConf(is_pep484_tower=True))"
with jaxtyping.install_import_hook(["simkit.ode", "simkit.run"], TYPECHECKER):
    import simkit.ode as ode
    import simkit.run as srun

from simkit.io import Variable  # noqa: E402


def decay(t, y, p):
    return -p * y


class Toy(srun.AbstractStepper):
    """x <- x (1 - k dt): a stepper that is not an ODEStepper, so VmappedStepper can wrap it."""

    dt: float = eqx.field(static=True, default=0.1)

    def step(self, state, params):
        return {"n": state["n"] + 1, "x": state["x"] * (1 - params * self.dt)}

    def observe(self, state, params):
        return {"x": state["x"]}

    def time(self, state):
        return state["n"] * self.dt

    def variables(self, state, params):
        return {"x": Variable(("i",), state["x"].shape, state["x"].dtype.name)}


def expect_type_error(what, fn):
    try:
        fn()
    except jaxtyping.TypeCheckError:
        print("rejected", what, flush=True)
    else:
        raise AssertionError(f"the import hook did not reject {what}")


def main(tmp):
    k = jnp.array(1.0)
    prob = ode.ODEProblem(decay, jnp.ones(2), k, 0, 1.0)  # int t0: the numeric tower
    ode.validate_problem(prob)
    ode.default_solver(stiff=False)
    # Euler with fixed steps: the cheapest diffrax solve to compile (the annotations are the same)
    sol = ode.solve(
        prob, solver=diffrax.Euler(), dt0=0.25, fixed_step=True, saveat=jnp.linspace(0.0, 1.0, 3)
    )
    assert sol.ys.shape == (3, 2)
    print("ok solve", flush=True)
    ts, ys = ode.solve_ensemble(
        prob, y0=jnp.ones((3, 2)), solver="rk4", method="fused", fixed_step=True, dt0=0.25
    )
    assert ys.shape == (3, 1, 2)
    print("ok solve_ensemble", flush=True)
    fs = ode.solve_ensemble_fused(prob, params=jnp.linspace(0.5, 2.0, 4), dt0=0.1)
    assert fs.ys.shape == (4, 1, 2)
    fs = ode.solve_ensemble_fused(prob, y0=jnp.ones((3, 2)), solver="rk4", fixed_step=True, dt0=0.5)
    assert fs.ys.shape == (3, 1, 2)
    print("ok solve_ensemble_fused", flush=True)
    sol = ode.solve_stiff(prob, saveat=jnp.linspace(0.0, 1.0, 3), dt0=0.1)
    assert sol.ys.shape == (3, 2)
    print("ok solve_stiff", flush=True)
    ts, ys = ode.solve_stiff_ensemble(prob, params=jnp.linspace(0.5, 2.0, 3), dt0=0.1, shard=False)
    assert ys.shape == (3, 1, 2)
    print("ok solve_stiff_ensemble", flush=True)

    stepper = ode.ODEStepper(decay, dt=0.1)
    state = stepper.init(jnp.ones((3, 2)), k)
    final, frames = srun.simulate(stepper, state, k, 4, 2)
    assert frames["y"].shape == (2, 3, 2)
    print("ok simulate", flush=True)
    srun.describe_stepper(stepper)
    srun.check_structure(stepper, state, k)
    out = os.path.join(tmp, "ode.h5")
    result = srun.run(stepper, state, k, n_steps=4, save_every=2, out=out, progress=False)
    assert result.steps_done == 4, result
    print("ok run", flush=True)

    toy = Toy()
    toy_state = {"n": jnp.asarray(0), "x": jnp.ones(3)}
    ens = srun.VmappedStepper(toy, 2, shared_params=True)
    states = srun.shard_members(ens.stack([toy_state, toy_state]))
    final, frames = srun.simulate(ens, states, jnp.asarray(0.5), 2, 1)
    assert frames["x"].shape == (2, 2, 3)
    out = os.path.join(tmp, "ens.h5")
    srun.run(ens, states, jnp.asarray(0.5), n_steps=2, save_every=1, out=out, progress=False)
    print("ok VmappedStepper", flush=True)

    # The hook must really check: wrong shapes and types are rejected before the call runs.
    expect_type_error("ODEStepper.init(y0 of shape (3,))", lambda: stepper.init(jnp.ones(3), k))
    expect_type_error(
        "solve_ensemble(y0 of shape (2, 3, 2))",
        lambda: ode.solve_ensemble(prob, y0=jnp.ones((2, 3, 2))),
    )
    expect_type_error("simulate(n_steps=4.5)", lambda: srun.simulate(stepper, state, k, 4.5, 2))


if __name__ == "__main__":
    main(sys.argv[1])
