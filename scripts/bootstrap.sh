#!/usr/bin/env bash
# Creates (or refreshes) the project's virtualenvs from the pinned requirement files.
#   .venv          hookshot_py itself (+ test tools with --test)
#   .venv-synapse  Synapse, the real homeserver used by the quickstart, tests and benchmarks
# Re-running is cheap: each venv is rebuilt only when its requirement files change.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "hookshot_py needs Python 3.11+"'

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

make_venv() {  # make_venv DIR STAMP_INPUT... -- PIP_ARGS...
  local dir=$1; shift
  local inputs=()
  while [ "$1" != "--" ]; do inputs+=("$1"); shift; done
  shift
  local stamp
  stamp=$(cat "${inputs[@]}" | sha256sum | cut -c1-16)
  if [ -f "$dir/.stamp" ] && [ "$(cat "$dir/.stamp")" = "$stamp" ]; then
    return 0
  fi
  echo ">> installing $dir (${inputs[*]})" >&2
  [ -x "$dir/bin/python" ] || "$PYTHON" -m venv "$dir"
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
  echo "$stamp" > "$dir/.stamp"
}

if [ $want_test = 1 ]; then
  make_venv .venv requirements.txt requirements-test.txt pyproject.toml -- -r requirements-test.txt
else
  make_venv .venv requirements.txt pyproject.toml -- -r requirements.txt
fi
# The project itself, editable, without touching the pinned deps.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e . 2>/dev/null \
  || .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
make_venv .venv-synapse requirements-synapse.txt -- -r requirements-synapse.txt
