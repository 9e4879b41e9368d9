"""Create the XLB venv for `bench_lbm.py` on demand (git-ignored), with md_peers' helper.

    python benchmarks/lbm_peers/setup_peers.py

XLB 0.3.1 lives in its own venv, `benchmarks/.peers/xlb`, on Python 3.11:
`pip install xlb==0.3.1 warp-lang==1.10.1` (a newer warp-lang breaks `import xlb`). It pulls
jax 0.10.2, which is fine for timing XLB itself and never used for simkit. The venv is made,
stamped and rebuilt by `md_peers/setup_peers.ensure` exactly like the MD peers' venvs.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def _md_helper():
    """md_peers/setup_peers.py, loaded by path under its own name (both files are called
    setup_peers, and bench_md imports md_peers' one as plain `setup_peers`)."""
    name = "_md_setup_peers"
    if name not in sys.modules:
        path = Path(__file__).resolve().parent.parent / "md_peers" / "setup_peers.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_md = _md_helper()

XLB_REQUIREMENTS = ["xlb==0.3.1", "warp-lang==1.10.1"]
_md.SPECS.setdefault(
    "xlb",
    {
        "python": ("3.11",),
        "requirements": XLB_REQUIREMENTS,
        "probe": "import jax, xlb; from importlib.metadata import version; "
        "print('jax', jax.__version__, 'xlb', version('xlb'))",
    },
)

PEERS_DIR = _md.PEERS_DIR
env_for = _md.env_for


def ensure(*, quiet: bool = True) -> Path:
    """Return the XLB venv's python, creating and installing the venv first if needed."""
    return _md.ensure("xlb", quiet=quiet)


if __name__ == "__main__":
    print(ensure(quiet=False))
