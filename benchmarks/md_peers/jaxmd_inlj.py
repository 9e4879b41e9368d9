"""JAX MD worker for in.lj (protocol: `_common.py`); runs in the jaxmd venv (jax-md 0.2.29 on
the same jax/jaxlib as simkit).

Potential: plain-truncated LJ (`energy.lennard_jones` zeroed beyond r_c = 2.5 through
`smap.pair_neighbor_list`), the same as LAMMPS's lj/cut and simkit's `LennardJones(cutoff=2.5)`.
JAX MD's own `energy.lennard_jones_neighbor_list` multiplies LJ by a smooth switch from
r_onset = 2.0 to 2.5, a different potential, so it is not used.

Neighbor list: `partition.neighbor_list(displacement, box, r_cutoff=2.5, dr_threshold=0.3)`:
pairs within 2.8, rebuilt inside `update` when some particle moved more than 0.15 (the same rule
as simkit and LAMMPS `check yes`). `--format OrderedSparse` (half list, fastest on CPU) or
`Dense`.

Loop: the usual user loop from JAX MD's examples: `apply_fn` then `nbrs.update` every step in a
jitted `lax.fori_loop` chunk; after each chunk the overflow flag is checked and, on overflow,
the list is reallocated (at the chunk start, with growing `extra_capacity`) and the chunk
recomputed. Rebuilds are counted in the loop (a compare of
the list's reference positions, negligible next to the step).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load, parser, serve


class Engine:
    def __init__(self, d, chunk, fmt):
        self.d, self.granule, self.fmt = d, chunk, fmt
        self.reallocations = 0
        self.extra = 0

    def setup(self):
        import jax
        import jax.numpy as jnp
        from jax_md import energy, partition, simulate, smap, space

        d = self.d
        rc = d["cutoff"]
        box = jnp.asarray(d["box"], jnp.float32)
        displacement, shift = space.periodic(box)
        fmt = getattr(partition, self.fmt)
        self.neighbor_fn = partition.neighbor_list(
            displacement, box, r_cutoff=rc, dr_threshold=d["skin"], format=fmt
        )

        def lj_cut(dr, sigma, epsilon, **unused):  # plain truncation at rc
            return jnp.where(dr < rc, energy.lennard_jones(dr, sigma, epsilon), 0.0)

        self.energy_fn = smap.pair_neighbor_list(
            lj_cut,
            space.canonicalize_displacement_or_metric(displacement),
            sigma=jnp.float32(d["sigma"]),
            epsilon=jnp.float32(d["epsilon"]),
        )
        init_fn, apply_fn = simulate.nve(self.energy_fn, shift, dt=d["dt"])
        t0 = time.perf_counter()
        R = jnp.asarray(d["positions"], jnp.float32)
        mass = jnp.float32(d["mass"])
        self.nbrs = self.neighbor_fn.allocate(R)
        self.state = init_fn(
            jax.random.key(0),
            R,
            kT=0.0,
            mass=mass,
            momenta=mass * jnp.asarray(d["velocities"], jnp.float32),
            neighbor=self.nbrs,
        )
        jax.block_until_ready((self.state, self.nbrs))
        init_s = time.perf_counter() - t0
        chunk = self.granule

        def body(i, carry):
            state, nbrs, builds = carry
            state = apply_fn(state, neighbor=nbrs)
            new = nbrs.update(state.position)
            builds = builds + jnp.any(new.reference_position != nbrs.reference_position)
            return state, new, builds

        def advance(state, nbrs):
            return jax.lax.fori_loop(0, chunk, body, (state, nbrs, jnp.int32(0)))

        self.advance_fn = jax.jit(advance)
        t0 = time.perf_counter()
        self.compiled = self.advance_fn.lower(self.state, self.nbrs).compile()
        compile_s = time.perf_counter() - t0
        self.jax, self.jnp = jax, jnp
        self.e_fn = jax.jit(
            lambda s, nb: (
                self.energy_fn(s.position, neighbor=nb),
                0.5 * jnp.sum(s.momentum**2 / s.mass),
            )
        )
        return {
            "compile_s": compile_s,
            "init_s": init_s,
            "format": self.fmt,
            "capacity": int(self.nbrs.idx.shape[-1]),
        }

    def advance(self, n):
        builds = 0
        for _ in range(n // self.granule):
            state, nbrs, b = self.compiled(self.state, self.nbrs)
            tries = 0
            while bool(nbrs.did_buffer_overflow):
                # the user's fix: reallocate at the chunk start with more room and recompute the
                # chunk (allocating from the same positions alone would give the same capacity:
                # a melting lattice fills some cells beyond the lattice's occupancy)
                tries += 1
                if tries > 8:
                    raise RuntimeError("JAX MD neighbor list still overflows after 8 reallocations")
                self.reallocations += 1
                self.extra = max(4, 2 * self.extra)
                self.nbrs = self.neighbor_fn.allocate(
                    self.state.position, extra_capacity=self.extra
                )
                # a new capacity is a new shape: recompile (as jit would on the next call)
                self.compiled = self.advance_fn.lower(self.state, self.nbrs).compile()
                state, nbrs, b = self.compiled(self.state, self.nbrs)
            self.state, self.nbrs = state, nbrs
            builds += int(b)
        self.jax.block_until_ready(self.state)
        return {
            "builds": builds,
            "reallocations": self.reallocations,
            "capacity": [int(s) for s in self.nbrs.idx.shape],
        }

    def energies(self):
        u, k = self.e_fn(self.state, self.nbrs)
        n = self.state.position.shape[0]
        return float(u) / n, float(k) / n, (float(u) + float(k)) / n


def main():
    ap = parser(__doc__.split("\n")[0])
    ap.add_argument("--chunk", type=int, default=100, help="steps per jitted call")
    ap.add_argument(
        "--format", choices=["OrderedSparse", "Sparse", "Dense"], default="OrderedSparse"
    )
    args = ap.parse_args()
    from importlib.metadata import version

    import jax

    d = load(args.init)
    serve(
        Engine(d, args.chunk, args.format),
        args.warmup,
        {
            "engine": "jaxmd",
            "version": version("jax-md"),
            "jax": jax.__version__,
            "n": int(d["positions"].shape[0]),
            "chunk": args.chunk,
            "xla_flags": os.environ.get("XLA_FLAGS"),
            "devices": str(jax.devices()),
        },
    )


if __name__ == "__main__":
    main()
