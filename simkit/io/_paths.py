"""Output-path rules shared by every problem script and writer."""

from __future__ import annotations

import os
import time
from pathlib import Path

from .._checks import SimkitInputError


def check_new_path(path: Path, overwrite: bool) -> None:
    """Refuse a path whose folder is missing, a directory, or an existing file unless
    `overwrite`."""
    if path.is_dir():
        raise SimkitInputError(
            f"output path {str(path)!r} is a directory; give a file name inside it, e.g. "
            f"--out {str(path / 'run.h5')!r}."
        )
    if not path.parent.exists():
        raise SimkitInputError(
            f"output folder {str(path.parent)!r} does not exist; create it first or choose "
            "another --out path."
        )
    if path.exists() and not overwrite:
        raise SimkitInputError(
            f"output file {str(path)!r} already exists; pass overwrite=True (--overwrite) to "
            "replace it, resume=True (--resume / `simkit resume`) to continue it, or choose "
            "another path."
        )


def output_path(
    out: str | os.PathLike | None,
    name: str,
    *,
    overwrite: bool = False,
    resume: bool = False,
    default_dir: str | os.PathLike = "results",
    suffix: str = ".h5",
) -> Path:
    """Where a problem writes its HDF5 output, checked before any compute.

    Args:
        out: the user's `--out`, or None for `<default_dir>/<name>-<YYYYmmdd-HHMMSS><suffix>`
            (the default folder is created; a user-given folder must exist).
        name: problem name (default file name).
        overwrite: an existing `out` may be replaced.
        resume: `out` must exist (it is continued, not replaced).
        suffix: of the default file name (".h5md" for particle trajectories, the suffix by
            which MDAnalysis recognises H5MD).

    Raises:
        SimkitInputError: missing folder, existing file without `overwrite`, `resume` without
            an existing `out`.

    Example (in a problem script, after `add_output_arguments`):
        >>> out = output_path(args.out, "lorenz", overwrite=args.overwrite, resume=args.resume)
        >>> output_path(None, "lorenz")  # PosixPath('results/lorenz-20260101-120000.h5')
    """
    if out is None:
        if resume:
            raise SimkitInputError("--resume needs --out (the file to continue).")
        folder = Path(default_dir)
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}{suffix}"
    out = Path(out)
    if resume:
        if not out.exists():
            raise SimkitInputError(f"cannot resume: {str(out)!r} does not exist.")
        return out
    check_new_path(out, overwrite)
    return out


def add_output_arguments(parser, name: str, *, resume: bool = False) -> None:
    """Add the options every problem script shares: `--out`, `--overwrite`, `--no-progress`,
    `--debug` (and `--resume`, `--checkpoint-every`, `--checkpoint-interval` for driver-based
    runs). Check them with `output_path`.

    Args:
        parser: an `argparse.ArgumentParser`.
        name: problem name (for the default file name in the help text).
        resume: also add `--resume`.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_output_arguments(parser, "lorenz", resume=True)
        >>> args = parser.parse_args(["--out", "run.h5", "--resume"])
    """
    parser.add_argument(
        "--out", type=Path, default=None, help=f"HDF5 output (default: results/{name}-<time>.h5)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    from .._options import nonnegative_float, positive_int

    if resume:
        parser.add_argument("--resume", action="store_true", help="continue the run in --out")
        parser.add_argument(
            "--checkpoint-every",
            type=positive_int,
            default=None,
            metavar="STEPS",
            help="checkpoint at the first chunk end this many steps after the last checkpoint "
            "(default: after every chunk, unless checkpoints would take > 2%% of the run)",
        )
        parser.add_argument(
            "--checkpoint-interval",
            type=nonnegative_float,
            default=None,
            metavar="SECONDS",
            help="checkpoint at the first chunk end this many seconds after the last one",
        )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar (for logs and batch jobs)"
    )
    parser.add_argument(
        "--debug", action="store_true", help="on an error, print the full traceback"
    )
