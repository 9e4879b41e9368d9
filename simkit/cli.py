"""`simkit` command line: list problems, run one, resume a run, summarise a result file.

    simkit list
    simkit run NAME [problem options...]     (simkit run NAME --help for the options)
    simkit resume FILE [--no-progress]
    simkit info FILE
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType


def problems_dir() -> Path:
    """Folder of problem scripts: $SIMKIT_PROBLEMS, else `problems/` beside the package."""
    env = os.environ.get("SIMKIT_PROBLEMS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "problems"


def available_problems() -> dict[str, Path]:
    """Problem name -> script path."""
    d = problems_dir()
    if not d.is_dir():
        return {}
    return {p.stem: p for p in sorted(d.glob("*.py")) if not p.name.startswith("_")}


def load_problem(name: str) -> ModuleType:
    """Import the problem script `name`; SimkitInputError naming the known ones if unknown."""
    from ._checks import SimkitInputError

    problems = available_problems()
    if name not in problems:
        known = ", ".join(problems) or f"none found in {problems_dir()}"
        raise SimkitInputError(f"unknown problem {name!r}; available problems: {known}.")
    spec = importlib.util.spec_from_file_location(f"simkit_problem_{name}", problems[name])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _summary_line(path: Path) -> str:
    try:
        doc = path.read_text().split('"""')[1].strip().splitlines()[0]
    except (IndexError, OSError):
        doc = ""
    return doc


def cmd_list(_args) -> int:
    problems = available_problems()
    if not problems:
        print(f"no problems found in {problems_dir()}")
        return 1
    width = max(map(len, problems))
    for name, path in problems.items():
        print(f"{name:<{width}}  {_summary_line(path)}")
    return 0


def cmd_run(args) -> int:
    module = load_problem(args.name)
    return int(module.main(args.options) or 0)


def cmd_resume(args) -> int:
    from ._checks import SimkitInputError
    from .io import summarize

    info = summarize(args.file)
    attrs = info["attrs"]
    name = attrs.get("problem")
    argv = attrs.get("argv")
    if not name or argv is None:
        raise SimkitInputError(
            f"{args.file!r} does not record which problem wrote it (attributes 'problem' and "
            "'argv'); resume it from Python with simkit.run.run(..., resume=True).")
    if attrs.get("status") == "finished":
        print(f"{args.file}: run already finished ({info['progress'].get('last_step')} steps).")
        return 0
    module = load_problem(name)
    extra = ["--no-progress"] if args.no_progress else []
    return int(module.main([*argv, "--out", str(args.file), "--resume", *extra]) or 0)


def cmd_info(args) -> int:
    from .io import summarize

    info = summarize(args.file)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"file: {info['path']}")
    attrs = info["attrs"]
    for key in ("problem", "status", "simkit_version", "solver", "steps_done", "n_steps"):
        if key in attrs:
            print(f"{key}: {attrs[key]}")
    if "parameters" in attrs:
        print(f"parameters: {attrs['parameters']}")
    prog = info["progress"]
    if prog:
        n_steps = attrs.get("n_steps")
        frac = f" of {n_steps} ({100 * prog.get('last_step', 0) / n_steps:.0f}%)" if n_steps else ""
        print(f"progress: {prog['frames']} frames, last step {prog.get('last_step', '-')}{frac}, "
              f"last time {prog.get('last_time', '-')}")
    print("datasets:")
    for name, d in info["datasets"].items():
        units = f" [{d['units']}]" if d["units"] else ""
        print(f"  {name:<24} {str(d['shape']):<22} {d['dtype']}{units}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="simkit", description="simkit: differentiable simulation on JAX")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the problems").set_defaults(func=cmd_list)
    r = sub.add_parser("run", help="run a problem by name (options after the name go to it)")
    r.add_argument("name")
    r.add_argument("options", nargs=argparse.REMAINDER)
    r.set_defaults(func=cmd_run)
    s = sub.add_parser("resume", help="continue an interrupted run from its file")
    s.add_argument("file")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=cmd_resume)
    i = sub.add_parser("info", help="summarise a result file")
    i.add_argument("file")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.set_defaults(func=cmd_info)
    return p


def main(argv: list[str] | None = None) -> int:
    from ._checks import SimkitInputError
    from .io import StoreError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (SimkitInputError, StoreError) as exc:
        print(f"simkit: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
