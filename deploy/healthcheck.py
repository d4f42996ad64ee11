"""Container healthcheck: exit 0 when the bridge answers `GET /live`, 1 otherwise.

Standard library only. The URL is $HOOKSHOT_HEALTHCHECK_URL, default http://127.0.0.1:9000/live
(the webhooks listener of config.yaml.sample; every listener answers /live).
"""

import os
import sys
import urllib.error
import urllib.request

URL = os.environ.get("HOOKSHOT_HEALTHCHECK_URL", "http://127.0.0.1:9000/live")

try:
    with urllib.request.urlopen(URL, timeout=5) as resp:
        ok = resp.status == 200
except (urllib.error.URLError, OSError) as e:
    print(f"{URL}: {e}", file=sys.stderr)
    sys.exit(1)
sys.exit(0 if ok else 1)
