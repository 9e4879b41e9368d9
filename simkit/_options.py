"""argparse types for problem scripts: a bad option value is refused by the parser, naming the
option ("argument --sigma: must be a finite number, got 'nan'"), before anything is computed."""

from __future__ import annotations

import argparse
import math


def finite_float(text: str) -> float:
    """A finite float (refuses nan and inf), as an argparse `type=`.

    Example:
        >>> parser.add_argument("--sigma", type=finite_float, default=10.0)
        >>> finite_float("2.5")
        2.5
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def nonnegative_float(text: str) -> float:
    """A finite float >= 0, as an argparse `type=`.

    Example:
        >>> parser.add_argument("--noise", type=nonnegative_float, default=0.0)
    """
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer > 0, as an argparse `type=`.

    Example:
        >>> parser.add_argument("--n-steps", type=positive_int, default=1000)
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value
