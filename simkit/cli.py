"""`simkit` command line: list problems, run one, resume a run, summarise a result file.

    simkit [--debug] list
    simkit [--debug] run NAME [problem options...]     (simkit run NAME --help for the options)
    simkit [--debug] resume FILE [--no-progress]
    simkit [--debug] info FILE [--json]

Errors end with one line on stderr and an exit code (a traceback only with --debug or
SIMKIT_DEBUG=1):

    0    success
    1    unexpected internal error (a bug: please report it with the --debug traceback)
    2    invalid input or usage (bad option, unknown problem, missing file, changed settings)
    3    the simulation blew up (NaN/inf); the frames before the first bad step are kept
    4    output error: a file could not be written or read (full disk, read-only, corrupt)
    5    the output file is being written by another live run
    129  stopped by SIGHUP, 130 by SIGINT (Ctrl-C), 143 by SIGTERM; the run can be resumed
    141  the output pipe was closed (e.g. `simkit info f.h5 | head`)
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_BLOWUP, EXIT_OUTPUT, EXIT_LOCKED = 0, 1, 2, 3, 4, 5
EXIT_BROKEN_PIPE = 141


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
    if spec is None or spec.loader is None:
        raise SimkitInputError(f"cannot import problem script {str(problems[name])!r}.")
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs, as `import` does: dataclasses (and equinox modules) defined in
    # a script with postponed annotations look their module up in sys.modules.
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(spec.name, None)
        raise
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
            "'argv'); resume it from Python with simkit.run.run(..., resume=True)."
        )
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
            alive = _liveness(args.file) if key == "status" and attrs[key] == "running" else ""
            print(f"{key}: {attrs[key]}{alive}")
    if "parameters" in attrs:
        print(f"parameters: {attrs['parameters']}")
    prog = info["progress"]
    if prog:
        n_steps = attrs.get("n_steps")
        frac = f" of {n_steps} ({100 * prog.get('last_step', 0) / n_steps:.0f}%)" if n_steps else ""
        print(
            f"progress: {prog['frames']} frames, last step {prog.get('last_step', '-')}{frac}, "
            f"last time {prog.get('last_time', '-')}"
        )
    groups = info.get("groups", {})
    if len(groups) > 1 or any(groups):
        print("save groups:")
        for name, g in groups.items():
            last = (
                f", last step {g['last_step']}, time {g['last_time']}" if "last_step" in g else ""
            )
            print(
                f"  {name or '(all)':<16} every {g.get('every', '?')} steps: {g['frames']} "
                f"frames{last}  [{', '.join(g.get('quantities', []))}]"
            )
    print("datasets:")
    for name, d in info["datasets"].items():
        units = f" [{d['units']}]" if d["units"] else ""
        print(f"  {name:<24} {str(d['shape']):<22} {d['dtype']}{units}")
    return 0


def _liveness(path: str) -> str:
    """For a `running` status: is a process still writing the file?"""
    from .io import lock_owner

    owner = lock_owner(path)
    if owner is None:
        return " (no process is writing it: the run was killed; `simkit resume` continues it)"
    return f" (written now by PID {owner.get('pid', '?')} on {owner.get('host', '?')})"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="simkit",
        description="simkit: differentiable simulation on JAX",
        epilog="exit codes: 0 ok, 1 internal error, 2 bad input, 3 blow-up, "
        "4 output error, 5 file in use, 128+N stopped by signal N",
    )
    p.add_argument(
        "--debug",
        action="store_true",
        help="show the full traceback of an error (also SIMKIT_DEBUG=1)",
    )
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
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    debug = args.debug or "--debug" in getattr(args, "options", [])
    return handle_errors(lambda: args.func(args), debug=debug)


def argv_without_output(argv: list[str]) -> list[str]:
    """A problem's options minus the output and restart ones (`--out`, `--overwrite`,
    `--resume`, `--no-progress`, `--debug`): what `simkit resume` replays, stored in the file."""
    kept, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--out":
            skip = True
            continue
        if a.startswith("--out=") or a in ("--overwrite", "--resume", "--no-progress", "--debug"):
            continue
        kept.append(a)
    return kept


def log_to_stderr() -> None:
    """Show simkit's own INFO messages (resume, recomputation after an overflow) on stderr,
    without other libraries' noise. For problem scripts; library code only logs."""
    import logging

    class _CurrentStderr(logging.StreamHandler):
        def emit(self, record):  # follow sys.stderr if it is replaced (tests, notebooks)
            self.stream = sys.stderr
            super().emit(record)

    logger = logging.getLogger("simkit")
    if not logger.handlers:
        handler = _CurrentStderr()
        handler.setFormatter(logging.Formatter("[simkit] %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def script_main(main_fn: Callable[[list[str]], int | None], argv: list[str] | None = None) -> int:
    """Run a problem script's `main(argv)` with the command line's error handling and exit
    codes (for `if __name__ == "__main__": raise SystemExit(script_main(main))`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return handle_errors(lambda: main_fn(argv), debug="--debug" in argv)


def handle_errors(fn: Callable[[], int | None], *, debug: bool = False) -> int:
    """Call `fn` and turn what it raises into one line on stderr and an exit code (see the
    module docstring); with `debug` (or SIMKIT_DEBUG=1) the traceback is printed too."""
    from ._checks import SimkitInputError
    from .io import StoreError, StoreWriteError, WriterLockedError
    from .run import RunInterrupted, SimulationBlowUp

    debug = debug or os.environ.get("SIMKIT_DEBUG", "") not in ("", "0")

    def fail(code: int, message: str) -> int:
        if debug:
            traceback.print_exc()
        with contextlib.suppress(OSError):  # stderr itself may be a closed pipe
            print(f"simkit: {message}", file=sys.stderr)
        return code

    try:
        return int(fn() or 0)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly; point stdout at /dev/null so the
        # interpreter's final flush does not complain about the closed pipe either.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except RunInterrupted as exc:
        return fail(
            exc.exit_code, f"{exc}; the finished part is saved, `simkit resume FILE` continues it."
        )
    except KeyboardInterrupt:
        return fail(130, "interrupted.")
    except SimulationBlowUp as exc:
        return fail(EXIT_BLOWUP, f"simulation blew up: {exc}")
    except WriterLockedError as exc:
        return fail(EXIT_LOCKED, f"error: {exc}")
    except StoreWriteError as exc:
        return fail(EXIT_OUTPUT, f"output error: {exc}")
    except SimkitInputError as exc:
        return fail(EXIT_USAGE, f"error: {exc}")
    except StoreError as exc:
        return fail(EXIT_OUTPUT, f"error: {exc}")
    except OSError as exc:
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        return fail(EXIT_OUTPUT, f"output error: {exc.strerror or exc}{where}")
    except Exception as exc:  # noqa: BLE001 - a bug: one line, and the way to see more
        if debug:
            return fail(EXIT_INTERNAL, f"internal error: {type(exc).__name__}: {exc}")
        return fail(
            EXIT_INTERNAL,
            f"internal error: {type(exc).__name__}: {exc} (run with "
            "--debug for the traceback, and please report it)",
        )


if __name__ == "__main__":
    raise SystemExit(main())
