"""simkit worker for LAMMPS's in.lj (protocol: `_common.py`); runs in simkit's own venv.

The loop is what a user writes without output: a jitted `lax.fori_loop` chunk of
`stepper.step` (the neighbor list updates itself on device when some particle moved more than
skin / 2), called repeatedly, the overflow flag checked after each chunk. `compile_s` is the
ahead-of-time compile of that chunk; `setup_s` adds `stepper.init` (checks, first neighbor
list and forces) and the first energies.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load, parser, serve


class Engine:
    def __init__(self, d, chunk):
        self.d, self.granule = d, chunk

    def setup(self):
        import jax
        import jax.numpy as jnp

        from simkit import md

        d = self.d
        lj = md.LennardJones(cutoff=d["cutoff"])  # plain truncation (shift="none"), as lj/cut
        self.params = lj.params(epsilon=d["epsilon"], sigma=d["sigma"])
        box = tuple(float(b) for b in d["box"])
        stepper = md.VelocityVerlet(lj, box=box, dt=d["dt"], skin=d["skin"])
        t0 = time.perf_counter()
        self.state = stepper.init(
            jnp.asarray(d["positions"]), self.params, jnp.asarray(d["velocities"]), mass=d["mass"]
        )
        jax.block_until_ready(self.state)
        init_s = time.perf_counter() - t0
        params, chunk = self.params, self.granule

        def advance(s):
            return jax.lax.fori_loop(0, chunk, lambda i, s: stepper.step(s, params), s)

        t0 = time.perf_counter()
        self.compiled = jax.jit(advance).lower(self.state).compile()
        compile_s = time.perf_counter() - t0
        self.thermo = jax.jit(stepper.thermo)
        self.jax = jax
        return {
            "compile_s": compile_s,
            "init_s": init_s,
            "capacity": int(self.state.neighbors.capacity),
        }

    def advance(self, n):
        s = self.state
        b0 = int(s.neighbors.n_builds)
        for _ in range(n // self.granule):
            s = self.compiled(s)
            if bool(s.neighbors.overflow):  # the user's check after each chunk
                raise RuntimeError("simkit neighbor list overflow: capacity too small")
        self.state = self.jax.block_until_ready(s)
        return {"builds": int(s.neighbors.n_builds) - b0}

    def energies(self):
        th = self.thermo(self.state, self.params)
        return (
            float(th["potential_energy"]),
            float(th["kinetic_energy"]),
            float(th["total_energy"]),
        )


def source_digest() -> str:
    """sha256 (12 hex) of simkit's sources as imported: the engine is edited while benchmarks
    run, so every result records which code it timed."""
    import hashlib

    import simkit

    root = Path(simkit.__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def main():
    ap = parser(__doc__.split("\n")[0])
    ap.add_argument("--chunk", type=int, default=100, help="steps per jitted call")
    args = ap.parse_args()
    from importlib.metadata import version

    import jax

    d = load(args.init)
    serve(
        Engine(d, args.chunk),
        args.warmup,
        {
            "engine": "simkit",
            "version": version("simkit"),
            "jax": jax.__version__,
            "n": int(d["positions"].shape[0]),
            "chunk": args.chunk,
            "xla_flags": os.environ.get("XLA_FLAGS"),
            "devices": str(jax.devices()),
            "simkit_source": source_digest(),
        },
    )


if __name__ == "__main__":
    main()
