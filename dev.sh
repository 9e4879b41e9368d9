#!/usr/bin/env bash
# simkit developer entry point: sets up .venv (once), runs the demos, tests, benchmarks; builds docs.
#   ./dev.sh demo [problem options]   set up if needed, run problems/lorenz_ensemble.py
#   ./dev.sh md [problem options]     set up if needed, run the MD demo problems/lj_melt.py
#   ./dev.sh fluids [problem options] set up if needed, run the fluids demo problems/cavity.py
#   ./dev.sh test [pytest options]    set up if needed, run the default test suite (not slow)
#   ./dev.sh slow                     set up if needed, run only the slow validations
#   ./dev.sh bench [name]             set up if needed, run benchmarks (peers installed on demand)
#   ./dev.sh docs                     set up if needed, execute the notebooks, build the site in site/
#   ./dev.sh setup                    only set up
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
venv="$here/.venv"

python_ok() {  # $1: interpreter; true if it is CPython >= 3.12 with venv
  "$1" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1
}

find_python() {
  local cand
  for cand in "${SIMKIT_PYTHON:-}" python3.13 python3.12 python3 python; do
    [ -n "$cand" ] || continue
    if command -v "$cand" >/dev/null 2>&1 && python_ok "$(command -v "$cand")"; then
      command -v "$cand"; return 0
    fi
  done
  # pyenv installs interpreters that are not on PATH by default.
  local roots=("${PYENV_ROOT:-}" "$HOME/.pyenv" /opt/pyenv /usr/local/pyenv)
  local r p
  for r in "${roots[@]}"; do
    [ -n "$r" ] && [ -d "$r/versions" ] || continue
    for p in $(ls -d "$r"/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -V -r); do
      python_ok "$p" && { echo "$p"; return 0; }
    done
  done
  for p in /usr/bin/python3.1[2-9] /usr/local/bin/python3.1[2-9]; do
    [ -x "$p" ] && python_ok "$p" && { echo "$p"; return 0; }
  done
  return 1
}

setup() {
  local stamp="$venv/.simkit-setup" want
  want="$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
  if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  local py
  if ! py="$(find_python)"; then
    cat >&2 <<'MSG'
simkit needs Python >= 3.12 and none was found (looked at $SIMKIT_PYTHON, python3.12, python3.13,
python3, python, and pyenv's versions/ folders).
Get one, then run this command again, for example:
  pyenv install 3.12          (then it is found automatically), or
  apt-get install python3.12 python3.12-venv, or
  SIMKIT_PYTHON=/path/to/python3.12 ./dev.sh ...
MSG
    exit 3
  fi
  echo "[setup] creating $venv with $py ($("$py" --version 2>&1))" >&2
  rm -rf "$venv"
  "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
  # constraints.txt pins every package of a known-good install (reproducible; never jax 0.10.2).
  "$venv/bin/python" -m pip install --quiet -c constraints.txt -e ".[test,bench]" >&2
  echo "$want" > "$stamp"
  echo "[setup] done" >&2
}

cmd="${1:-help}"; [ $# -gt 0 ] && shift
case "$cmd" in
  setup) setup ;;
  demo)  setup; exec "$venv/bin/python" problems/lorenz_ensemble.py "$@" ;;
  md)    setup; exec "$venv/bin/python" problems/lj_melt.py "$@" ;;
  fluids) setup; exec "$venv/bin/python" problems/cavity.py "$@" ;;
  test)  setup; exec "$venv/bin/python" -m pytest "$@" ;;
  slow)  setup; exec "$venv/bin/python" -m pytest -m slow "$@" ;;
  bench) setup; exec "$venv/bin/python" benchmarks/run_all.py "$@" ;;
  docs)  setup  # the notebooks run into notebooks/_executed/ (again only when they change)
         SIMKIT_DOCS_NOTEBOOKS=execute NO_MKDOCS_2_WARNING=1 "$venv/bin/python" -m mkdocs build --strict "$@"
         echo "[docs] site built: $here/site/index.html (browse: .venv/bin/python -m http.server -d site)" >&2 ;;
  *) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; [ "$cmd" = help ] || exit 2 ;;
esac
