"""Create the jax-cfd venv for the spectral Navier-Stokes comparison on demand (git-ignored).

    python benchmarks/spectral_peers/setup_peers.py

jax-cfd 0.2.1 only runs on an old jax, so it gets its own venv, `benchmarks/.peers/jaxcfd`, on
Python 3.11 with jax/jaxlib 0.4.30 (JAXCFD_REQUIREMENTS also pins the numpy / scipy / ml-dtypes
/ tree-math it was tested with). That jax times jax-cfd itself (spectral_peers/jaxcfd_worker.py)
and writes the validation reference (tests/data/make_spectral_reference.py), never simkit. The
venv is made, stamped and rebuilt by `md_peers/setup_peers.ensure` exactly like the other peers'
venvs.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def _md_helper():
    """md_peers/setup_peers.py, loaded by path under its own name (every peers folder has a
    setup_peers.py, and bench_md imports md_peers' one as plain `setup_peers`)."""
    name = "_md_setup_peers"
    if name not in sys.modules:
        path = Path(__file__).resolve().parent.parent / "md_peers" / "setup_peers.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_md = _md_helper()

# jax-cfd 0.2.1 itself pulls only numpy, scipy and tree-math, unpinned; numpy, scipy and
# ml-dtypes (jaxlib's) are pinned to the set tested with jax 0.4.30 here, so a rebuilt venv
# behaves, and writes tests/data/spectral_jaxcfd_reference.npz, the same.
JAXCFD_REQUIREMENTS = [
    "jax-cfd==0.2.1",
    "jax==0.4.30",
    "jaxlib==0.4.30",
    "numpy==2.4.6",
    "scipy==1.17.1",
    "ml-dtypes==0.6.0",
    "tree-math==0.2.1",
]
_md.SPECS.setdefault(
    "jaxcfd",
    {
        "python": ("3.11",),
        "requirements": JAXCFD_REQUIREMENTS,
        "probe": "import jax, jax_cfd.base, jax_cfd.spectral; from importlib.metadata import "
        "version; print('jax', jax.__version__, 'jax-cfd', version('jax-cfd'))",
    },
)

PEERS_DIR = _md.PEERS_DIR
env_for = _md.env_for


def ensure(*, quiet: bool = True) -> Path:
    """Return the jax-cfd venv's python, creating and installing the venv first if needed."""
    return _md.ensure("jaxcfd", quiet=quiet)


if __name__ == "__main__":
    print(ensure(quiet=False))
