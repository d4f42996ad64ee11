#!/usr/bin/env bash
# Sets up and runs a complete local hookshot_py: Synapse on 127.0.0.1, the bridge on its embedded
# Postgres, a demo user and room with a generic webhook. Data stays in ./quickstart-data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --synapse
exec .venv/bin/python -m hookshot_py.devenv.quickstart "${1:-quickstart-data}"
