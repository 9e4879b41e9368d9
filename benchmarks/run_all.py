"""Run every benchmark script in this folder (or the ones named), each in its own process."""

import subprocess
import sys
from pathlib import Path

here = Path(__file__).resolve().parent
names = sys.argv[1:]
scripts = sorted(
    p
    for p in here.glob("bench_*.py")
    if not names or p.stem.removeprefix("bench_") in names or p.stem in names
)
if not scripts:
    sys.exit(
        f"no benchmark matches {names}; available: {[p.stem for p in here.glob('bench_*.py')]}"
    )
failed = []
for s in scripts:
    print(f"\n===== {s.name} =====", flush=True)
    if subprocess.call([sys.executable, str(s)]) != 0:
        failed.append(s.name)
sys.exit(f"failed: {failed}" if failed else 0)
