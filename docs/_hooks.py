"""MkDocs hooks for simkit's site (registered under `hooks:` in mkdocs.yml).

- README sections are included where a page says `<!-- readme: ## Heading -->`, so the site and
  the README never disagree (the section's body, up to the next heading of its level or above;
  `<!-- readme-top: ## Heading -->`: only up to its first subsection).
- `<!-- problems-gallery -->` becomes one entry per script in problems/: what it shows and what
  it is checked against (the README's problems table) and its options (the script's own
  argparse help). A script without a README row fails the build.
- `<!-- benchmark-results -->` becomes tables of the measured times in benchmarks/results/.
- The notebooks in notebooks/ become pages. SIMKIT_DOCS_NOTEBOOKS chooses which copy:
  `execute` runs each notebook (nbclient) into notebooks/_executed/ (git-ignored; rerun only
  when the notebook changed) and renders it with its plots, as `./dev.sh docs` does; `source`
  renders the stored notebooks, which hold no outputs (fast: the strict build in the tests);
  unset, executed copies are used where they are up to date and the stored ones otherwise.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
EXECUTED = NOTEBOOKS / "_executed"
log = logging.getLogger("mkdocs.hooks.simkit")

_README_MARK = re.compile(r"^<!-- readme(-top)?: (#+) (.+?) -->$", re.MULTILINE)
_HEADING = re.compile(r"^(#+) (.*)$")


# ------------------------------------------------------------------------------------------
# README sections


def readme_section(level: str, title: str, text: str | None = None, top: bool = False) -> str:
    """Body of the README section headed `level title`, up to the next heading of that level
    or above (with `top`: up to its first subsection); code fences are skipped when looking
    for headings."""
    lines = (text if text is not None else (ROOT / "README.md").read_text()).splitlines()
    start = None
    in_fence = False
    for i, line in enumerate(lines):
        if line.startswith("```"):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        m = _HEADING.match(line)
        if m is None:
            continue
        if start is None:
            if m.group(1) == level and m.group(2).strip() == title:
                start = i + 1
        elif top or len(m.group(1)) <= len(level):
            return "\n".join(lines[start:i]).strip() + "\n"
    if start is None:
        raise ValueError(f"README.md has no section {level} {title!r} (docs/_hooks.py)")
    return "\n".join(lines[start:]).strip() + "\n"


def _readme_table(level: str, title: str) -> dict[str, list[str]]:
    """Rows of the first table in a README section, keyed by the first cell without backticks."""
    rows: dict[str, list[str]] = {}
    body = False  # after the header row and its |---| line
    for line in readme_section(level, title).splitlines():
        if not line.startswith("|"):
            if rows:
                break
            continue
        if set(line) <= set("|-: "):
            body = True
            continue
        if body:
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            rows[cells[0].strip("`")] = cells[1:]
    return rows


# ------------------------------------------------------------------------------------------
# Problems gallery


# Every problem's argparse help, collected in a separate process (it imports jax and every
# problem script) started when the build starts, so it runs while the API pages are rendered.
_HELP_SCRIPT = """
import json, os, sys
os.environ["COLUMNS"] = "100"  # argparse wraps its help to the terminal width
from simkit.cli import available_problems, load_problem
helps = {}
for name in available_problems():
    parser = load_problem(name).build_parser()
    parser.prog = "simkit run " + name
    helps[name] = parser.format_help()
json.dump(helps, sys.stdout)
"""
_help_process: subprocess.Popen | None = None


def _start_problem_help() -> None:
    global _help_process
    if _help_process is None:
        _help_process = subprocess.Popen(
            [sys.executable, "-c", _HELP_SCRIPT],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "JAX_PLATFORMS": "cpu"},
        )


def _problem_help() -> dict[str, str]:
    global _help_process
    _start_problem_help()
    assert _help_process is not None
    out, err = _help_process.communicate()
    code, _help_process = _help_process.returncode, None
    if code != 0:
        raise RuntimeError(f"collecting the problems' --help failed (exit {code}):\n{err}")
    return json.loads(out)


def problems_gallery() -> str:
    """One section per problem script, in the README table's order: what it shows and what it
    is checked against (the README's problems table), then its --help."""
    table = _readme_table("###", "Problems (`simkit list`)")
    helps = _problem_help()
    missing = [name for name in helps if name not in table]
    if missing:
        raise ValueError(
            f"problems without a row in the README's problems table: {', '.join(missing)}; "
            "add one (what it shows | checked against) so the gallery can describe them"
        )
    out = []
    for name, (what, checked, *_) in table.items():
        if name not in helps:
            raise ValueError(f"the README's problems table lists {name!r}: no problems/{name}.py")
        out += [
            f"## `{name}`",
            "",
            f"**What it shows:** {what}.",
            "",
            f"**Checked against:** {checked}.",
            "",
            f"Run it with `.venv/bin/simkit run {name}` or "
            f"`.venv/bin/python problems/{name}.py`; its options:",
            "",
            "```text",
            helps[name].rstrip(),
            "```",
            "",
        ]
    return "\n".join(out)


# ------------------------------------------------------------------------------------------
# Benchmark tables


def _seconds(t: float) -> str:
    if t >= 1:
        return f"{t:.3g} s"
    if t >= 1e-3:
        return f"{t * 1e3:.3g} ms"
    return f"{t * 1e6:.3g} us"


def benchmark_results() -> str:
    """The measured rows of every benchmarks/results/*.json that has candidate rows."""
    out = []
    for path in sorted((ROOT / "benchmarks" / "results").glob("*.json")):
        data = json.loads(path.read_text())
        machine = data.get("machine", {})
        tables = [r for r in data.get("results", []) if isinstance(r, dict) and r.get("rows")]
        if not tables:
            continue
        out += [
            f"### `{path.name}`",
            "",
            f"Measured {machine.get('time_utc', '?')} on {machine.get('cpu_count', '?')} cores "
            f"(jax {machine.get('jax', '?')}, Python {machine.get('python', '?')}, "
            f"git {machine.get('git', '?')}); medians of the rounds.",
            "",
        ]
        for r in tables:
            baseline = r.get("baseline")
            rounds = r.get("rounds", "?")
            out += [f"**{r.get('workload', path.stem)}** ({rounds} rounds)", ""]
            out += [
                "| candidate | median time | throughput | speed vs "
                + (f"{baseline}" if baseline else "the first row")
                + " |",
                "|---|---|---|---|",
            ]
            rows = r["rows"]
            base = next((x for x in rows if x.get("candidate") == baseline), rows[0])
            for row in rows:
                if "median_s" not in row:
                    continue
                thr = row.get("throughput")
                thr_text = f"{thr:.3g} {row.get('throughput_unit', '')}" if thr else ""
                unit = f" {row['time_unit'].removeprefix('s')}" if "time_unit" in row else ""
                ratio = base["median_s"] / row["median_s"]
                out.append(
                    f"| {row.get('candidate', '?')} | {_seconds(row['median_s'])}{unit} "
                    f"| {thr_text} | {ratio:.3g}x |"
                )
            out.append("")
    return "\n".join(out)


# ------------------------------------------------------------------------------------------
# Notebooks


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _executed_copy(source: Path) -> Path:
    return EXECUTED / source.name


def _is_fresh(source: Path) -> bool:
    copy = _executed_copy(source)
    stamp = copy.with_suffix(".sha256")
    return copy.is_file() and stamp.is_file() and stamp.read_text().strip() == _digest(source)


def execute_notebook(source: Path) -> Path:
    """Run `source` top to bottom (in a temporary folder, like the tests) into notebooks/_executed/;
    skipped when the executed copy is of the same source."""
    import nbformat
    from nbclient import NotebookClient

    copy = _executed_copy(source)
    if _is_fresh(source):
        return copy
    log.info("executing %s (a few minutes)", source.relative_to(ROOT))
    nb = nbformat.read(source, as_version=4)
    with tempfile.TemporaryDirectory() as work:
        NotebookClient(
            nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": work}}
        ).execute()
    EXECUTED.mkdir(exist_ok=True)
    nbformat.write(nb, copy)
    copy.with_suffix(".sha256").write_text(_digest(source) + "\n")
    return copy


def notebook_sources() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


# ------------------------------------------------------------------------------------------
# MkDocs events


@event_priority(100)  # before mkdocs-jupyter's on_files, which turns .ipynb files into pages
def on_files(files: Files, config) -> Files:
    mode = os.environ.get("SIMKIT_DOCS_NOTEBOOKS", "auto")
    if mode not in ("auto", "execute", "source"):
        raise ValueError(f"SIMKIT_DOCS_NOTEBOOKS={mode!r}: use execute, source or leave it unset")
    for source in notebook_sources():
        if mode == "execute":
            path = execute_notebook(source)
        elif mode == "auto" and _is_fresh(source):
            path = _executed_copy(source)
        else:
            path = source
        file = File(
            f"notebooks/{source.name}",
            str(ROOT),
            config["site_dir"],
            config["use_directory_urls"],
        )
        file.abs_src_path = str(path)
        files.append(file)
    return files


def on_config(config):
    _start_problem_help()
    return config


def on_page_markdown(markdown: str, page, config, files) -> str:
    markdown = _README_MARK.sub(
        lambda m: readme_section(m.group(2), m.group(3), top=bool(m.group(1))), markdown
    )
    if "<!-- problems-gallery -->" in markdown:
        markdown = markdown.replace("<!-- problems-gallery -->", problems_gallery())
    if "<!-- benchmark-results -->" in markdown:
        markdown = markdown.replace("<!-- benchmark-results -->", benchmark_results())
    return markdown
