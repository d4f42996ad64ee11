#!/usr/bin/env bash
# Creates (or refreshes) the project's virtualenvs from the pinned requirement files.
#   bootstrap.sh             .venv with hookshot_py alone: what a deployment needs
#   bootstrap.sh --synapse   also .venv-synapse: Synapse, the homeserver of the quickstart (242 MB)
#   bootstrap.sh --test      .venv with the test tools too, and .venv-synapse (tests and benchmarks)
# Re-running is cheap: a venv is reinstalled only when its requirement files change.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-}
case "$mode" in
  ""|--synapse|--test) ;;
  *) echo "usage: $0 [--synapse|--test]" >&2; exit 2 ;;
esac

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "hookshot_py needs Python 3.11+"'

stamp_of() { cat "$@" | sha256sum | cut -c1-16; }

install() {  # install DIR STAMPFILE STAMP PIP_ARGS...
  local dir=$1 file=$2 stamp=$3; shift 3
  echo ">> installing $dir ($*)" >&2
  [ -x "$dir/bin/python" ] || "$PYTHON" -m venv "$dir"
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
  echo "$stamp" > "$dir/$file"
}

run_stamp=$(stamp_of requirements.txt pyproject.toml)
test_stamp=$(stamp_of requirements.txt requirements-test.txt pyproject.toml)
fresh=0
if [ "$mode" = "--test" ]; then
  if [ "$(cat .venv/.stamp-test 2>/dev/null)" != "$test_stamp" ]; then
    install .venv .stamp-test "$test_stamp" -r requirements-test.txt; fresh=1
  fi
elif [ "$(cat .venv/.stamp-test 2>/dev/null)" != "$test_stamp" ] && [ "$(cat .venv/.stamp-run 2>/dev/null)" != "$run_stamp" ]; then
  install .venv .stamp-run "$run_stamp" -r requirements.txt; fresh=1
fi
if [ $fresh = 1 ] || [ ! -e .venv/bin/hookshot-py ]; then
  # The project itself, editable, without touching the pinned dependencies.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e . 2>/dev/null \
    || .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
fi
[ -n "$mode" ] || exit 0
synapse_stamp=$(stamp_of requirements-synapse.txt)
if [ "$(cat .venv-synapse/.stamp 2>/dev/null)" != "$synapse_stamp" ]; then
  install .venv-synapse .stamp "$synapse_stamp" -r requirements-synapse.txt
fi
