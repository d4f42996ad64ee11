#!/usr/bin/env bash
# Sets up everything the tests need (venvs from pinned requirements) and runs the whole suite:
# unit tests and end-to-end tests against a real Synapse and a real Postgres (embedded, or
# HOOKSHOT_DATABASE_URL). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --test
# A unit-only run (-m "not e2e") is spread over the machine's cores, unless -n is given; the
# end-to-end tests share one Synapse and run in one process.
args=("$@")
unit_only=0 workers_given=0
for a in "$@"; do
  [ "$a" = "not e2e" ] && unit_only=1
  case "$a" in -n|-n*|--numprocesses*|-pno:xdist) workers_given=1 ;; esac
done
if [ $unit_only = 1 ] && [ $workers_given = 0 ]; then
  args=(-n auto "${args[@]}")
fi
set +e
.venv/bin/python -m pytest "${args[@]}"
rc=$?
set -e
if [ $rc -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit $rc
