#!/usr/bin/env bash
# Sets up everything the tests need (venvs from pinned requirements) and runs the whole suite:
# unit tests and end-to-end tests against a real Synapse and a real Postgres (embedded, or
# HOOKSHOT_DATABASE_URL). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --test
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit $rc
