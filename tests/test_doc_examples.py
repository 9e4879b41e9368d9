"""Every Python code block in README.md and docs/**/*.md runs, and its shown output matches.

The convention (also for pages added to docs/ later):

- A fenced block whose language is ``python`` (or ``py``) is run. Attributes after the language
  (```` ```python title="x.py" ````) are allowed. A block that must not run is not Python to
  run: fence it as ``text``, ``bash``, ``pycon``, ... (keep such blocks rare).
- The blocks of one page run in order, in one namespace, in a fresh temporary working directory
  (blocks may write files and read what earlier blocks of the same page wrote), like one Python
  session started in an empty folder: jax's settings are those of a fresh process (float32
  default, rank promotion allowed), not the test suite's (tests/conftest.py), and are restored
  afterwards.
- Shown output: a fenced block tagged ``text`` or ``output`` that follows a Python block with
  only blank lines between is what that block prints on stdout. It must match exactly, after
  trailing spaces on each line and blank lines at both ends are removed. ``...`` in the shown
  output matches any text, newlines included (doctest's ELLIPSIS): use it only for values that
  legitimately differ between machines or runs (timings, dates, paths), never to hide a number
  the example is about. An untagged fence right after a Python block is an error (tag it
  ``text`` to check it as output, or put prose between).
- Fences may be indented (admonitions, content tabs): the fence's indentation is removed from
  its lines.

One test per page; a failing block is named by file and line, and tracebacks point at the
page's own line numbers.
"""

import contextlib
import difflib
import doctest
import io
import os
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import _background
import jax
import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN_LANGUAGES = {"python", "py"}
OUTPUT_LANGUAGES = {"text", "output"}
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")

# What a fresh Python process has; tests/conftest.py changes these for the test suite.
FRESH_JAX_CONFIG = {"jax_enable_x64": False, "jax_numpy_rank_promotion": "allow"}


@dataclass
class Block:
    language: str  # first word of the info string, lower case; "" for an untagged fence
    line: int  # 1-based line number of the first line of code (the line after the fence)
    end_line: int  # 1-based line number of the closing fence
    source: str


def extract_blocks(text: str) -> list[Block]:
    """Fenced code blocks of a Markdown page, in order."""
    lines = text.splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m or (m["fence"][0] == "`" and "`" in m["info"]):
            i += 1
            continue
        indent, fence = m["indent"], m["fence"]
        info = m["info"].strip()
        language = info.split()[0].lstrip("{.").rstrip("}").lower() if info else ""
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        j = i + 1
        while j < len(lines) and not closing.match(lines[j]):
            j += 1
        body = [
            ln[len(indent) :] if ln.startswith(indent) else ln.lstrip() for ln in lines[i + 1 : j]
        ]
        blocks.append(Block(language, i + 2, j + 1, "\n".join(body) + "\n"))
        i = j + 1
    return blocks


def examples(path: Path) -> list[tuple[Block, Block | None]]:
    """(python block, its shown output or None) pairs of a page."""
    lines = path.read_text().splitlines()
    blocks = extract_blocks("\n".join(lines))
    out = []
    for k, block in enumerate(blocks):
        if block.language not in RUN_LANGUAGES:
            continue
        shown = None
        if k + 1 < len(blocks):
            nxt = blocks[k + 1]
            between = lines[block.end_line : nxt.line - 2]
            if all(not ln.strip() for ln in between):
                if nxt.language in OUTPUT_LANGUAGES:
                    shown = nxt
                elif nxt.language == "":
                    raise AssertionError(
                        f"{_name(path)}:{nxt.line - 1}: untagged fence right after the Python "
                        f"block at line {block.line - 1}: tag it ```text to check it as that "
                        "block's output, or put prose between"
                    )
        out.append((block, shown))
    return out


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _normalise(text: str) -> str:
    return "\n".join(ln.rstrip() for ln in text.strip("\n").splitlines()).strip("\n") + "\n"


def output_matches(shown: str, printed: str) -> bool:
    """Exact match after _normalise; ``...`` in ``shown`` matches any text (doctest ELLIPSIS)."""
    want, got = _normalise(shown), _normalise(printed)
    return want == got or doctest.OutputChecker().check_output(want, got, doctest.ELLIPSIS)


@contextlib.contextmanager
def fresh_jax_config():
    """jax settings of a fresh process inside; every setting a page changed is put back after."""
    saved = dict(jax.config.values)
    for name, value in FRESH_JAX_CONFIG.items():
        jax.config.update(name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            if jax.config.values.get(name) != value:
                jax.config.update(name, value)


# Pages with at least one Python block: README.md and whatever docs/ holds when the tests run.
PAGES = [
    p
    for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
    if p.is_file() and any(b.language in RUN_LANGUAGES for b in extract_blocks(p.read_text()))
]


def run_page(path: Path) -> str | None:
    """Run a page's Python blocks in order in the current directory; the failure, or None."""
    pairs = examples(path)
    os.environ["MPLBACKEND"] = "Agg"
    namespace = {"__name__": "__main__"}
    try:
        with fresh_jax_config():
            for block, shown in pairs:
                where = f"{_name(path)}:{block.line - 1}"
                # Leading newlines make tracebacks show the page's own line numbers.
                code = compile("\n" * (block.line - 1) + block.source, str(path), "exec")
                printed = io.StringIO()
                try:
                    with contextlib.redirect_stdout(printed):
                        exec(code, namespace)
                except Exception as e:
                    trace = "".join(traceback.format_exception(e)[-12:])
                    return f"the Python block at {where} raised {type(e).__name__}: {e}\n{trace}"
                if shown is not None and not output_matches(shown.source, printed.getvalue()):
                    diff = "".join(
                        difflib.unified_diff(
                            _normalise(shown.source).splitlines(keepends=True),
                            _normalise(printed.getvalue()).splitlines(keepends=True),
                            f"shown ({_name(path)}:{shown.line - 1})",
                            "printed",
                        )
                    )
                    return f"the output of the Python block at {where} differs:\n{diff}"
    finally:
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:
            plt.close("all")
    return None


@pytest.mark.parametrize("path", PAGES, ids=[_name(p) for p in PAGES])
def test_page_examples(path):
    # Each page runs in a fresh interpreter in an empty folder (this file run as a script),
    # started at collection so it overlaps with the compile-bound tests (tests/_background.py).
    proc = _background.result(_background.page_job(path))
    assert proc.returncode == 0, proc.stderr[-12000:] or proc.stdout[-4000:]


def test_extractor_follows_the_convention(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "Intro.\n"
        "```python\n"
        "print(1)\n"
        "```\n"
        "\n"
        "```text\n"
        "1\n"
        "```\n"
        "Prose.\n"
        "```bash\n"
        "echo no\n"
        "```\n"
        '!!! note\n    ```python title="x.py"\n    x = 2\n    ```\n'
        "Prose between.\n"
        "```output\n"
        "not x's output\n"
        "```\n"
    )
    (first, shown), (second, none) = examples(page)
    assert (first.line, first.source, shown.source) == (3, "print(1)\n", "1\n")
    assert (second.line, second.source, none) == (15, "x = 2\n", None)
    page.write_text("```python\nprint(1)\n```\n```\n1\n```\n")
    with pytest.raises(AssertionError, match="untagged fence"):
        examples(page)


def test_output_matching():
    assert output_matches("a  \nb\n\n", "\na\nb")
    assert not output_matches("a\nb", "a\nc")
    assert output_matches("took ... s\nresult 3", "took 1.25 s\nresult 3")
    assert not output_matches("took ... s\nresult 3", "took 1.25 s\nresult 4")


if __name__ == "__main__":  # worker: python tests/test_doc_examples.py PAGE WORKDIR
    page, workdir = Path(sys.argv[1]), Path(sys.argv[2])
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)
    failure = run_page(page)
    if failure is not None:
        print(failure, file=sys.stderr)
        sys.exit(1)
