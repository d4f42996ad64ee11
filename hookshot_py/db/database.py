"""Postgres access: the asyncpg pool and the alembic migrations that shape it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _alembic_url(dsn: str) -> str:
    scheme, sep, rest = dsn.partition("://")
    if not sep or scheme not in ("postgres", "postgresql"):
        raise ValueError(f"database.url must be a postgresql:// URL, got {dsn!r}")
    return f"postgresql+asyncpg://{rest}"


def _alembic_config(dsn: str) -> Any:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", _alembic_url(dsn).replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer hookshot_py than this one."""


async def apply_migrations(dsn: str) -> None:
    """Upgrade the schema to the newest alembic revision, on the event loop (SQLAlchemy's asyncpg
    dialect): cancelling it (a signal during start-up) interrupts the migration, whose transaction
    is then rolled back. Refuses a database at a revision this version does not know."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy.ext.asyncio import create_async_engine

    cfg = _alembic_config(dsn)

    def upgrade(connection: Any) -> None:
        known = {script.revision for script in ScriptDirectory.from_config(cfg).walk_revisions()}
        unknown = [rev for rev in MigrationContext.configure(connection).get_current_heads() if rev not in known]
        if unknown:
            raise SchemaTooNew(
                f"the database schema is at revision {', '.join(unknown)}, which this version of hookshot_py "
                "does not know: a newer version migrated it. Run that version again, or restore the backup "
                "taken before the upgrade (docs/deploy.md, \"Rolling back\")."
            )
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "heads")

    engine = create_async_engine(_alembic_url(dsn))
    try:
        async with engine.begin() as connection:
            await connection.run_sync(upgrade)
    finally:
        await engine.dispose()


_REVISION = re.compile(r"^revision\s*=\s*[\"']([^\"']+)[\"']", re.M)
_DOWN_REVISION = re.compile(r"^down_revision\s*=\s*(.+)$", re.M)
LOCK_MIGRATIONS = 0x686B5203  # an advisory lock class (see cluster.py for the others)


def head_revisions() -> set[str]:
    """The newest revisions of the migrations shipped, read from their files (without importing
    alembic and SQLAlchemy, which cost ~25 MiB and half a second that a start does not need when
    the schema is current)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        text = path.read_text()
        if (rev := _REVISION.search(text)) is not None:
            revisions.add(rev.group(1))
        if (down := _DOWN_REVISION.search(text)) is not None:
            parents.update(re.findall(r"[\"']([^\"']+)[\"']", down.group(1)))
    return revisions - parents


# A server that accepts a connection but never answers it (shutting down, overloaded) fails the
# caller within this many seconds rather than asyncpg's default of 60.
CONNECT_TIMEOUT_S = 10.0


async def schema_is_current(dsn: str) -> bool:
    """Whether the schema is at the newest revision shipped. A version table locked by a migration
    in progress elsewhere counts as "not current": the caller then queues behind it."""
    conn = await asyncpg.connect(dsn, server_settings={"lock_timeout": "2s"})
    try:
        rows = await conn.fetch("SELECT version_num FROM alembic_version")
    except (asyncpg.UndefinedTableError, asyncpg.LockNotAvailableError):
        return False
    finally:
        await conn.close()
    return {r["version_num"] for r in rows} == head_revisions()


@contextlib.asynccontextmanager
async def _migrating(dsn: str) -> AsyncIterator[None]:
    """Hold the migration lock (a session advisory lock) for the block: when several processes
    start at once, one migrates and the others find the schema current."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1, 0)", LOCK_MIGRATIONS)
        yield
    finally:
        await conn.close()


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typ in ("json", "jsonb"):
        await conn.set_type_codec(typ, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pooled connections never hold session state (LISTEN, advisory locks and settings live on
    the cluster's own connection, `cluster.py`): returning one to the pool costs no query (asyncpg
    still rolls back a transaction left open)."""


@dataclass
class Database:
    """Owns the pool. Everything else receives this object and borrows connections from it."""

    dsn: str
    _pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("Database.start() was not called")
        return self._pool

    async def start(
        self, *, migrate: bool = True, min_size: int = 2, max_size: int = 10, application_name: str = "hookshot_py"
    ) -> None:
        """Migrate (only when the schema is behind), then open the pool. A bridge process runs
        the migrations in a child process, so alembic never takes up its memory."""
        if migrate and not await schema_is_current(self.dsn):
            async with _migrating(self.dsn):
                if not await schema_is_current(self.dsn):
                    log.info("Applying database migrations")
                    if "alembic" in sys.modules:  # loaded already (tests, `migrate`): no child needed
                        await apply_migrations(self.dsn)
                    else:
                        from hookshot_py.db.migrate_child import migrate_in_child

                        await migrate_in_child(self.dsn)
        self._pool = await asyncpg.create_pool(
            self.dsn, min_size=min_size, max_size=max_size, init=_init_connection, reset=_keep_session,
            server_settings={"application_name": application_name}, timeout=CONNECT_TIMEOUT_S,
        )

    async def stop(self, timeout: float = 2.0) -> None:
        """Close the pool; connections still busy after `timeout` seconds are cut."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), timeout)
        except TimeoutError:
            log.warning("Database connections still busy after %.0fs: closing them", timeout)
            pool.terminate()

    def acquire(self) -> Any:
        """`async with db.acquire() as conn:` — a pooled connection (for transactions)."""
        return self.pool.acquire()

    async def execute(self, query: str, *args: object) -> str:
        return await self.pool.execute(query, *args)

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        return await self.pool.fetch(query, *args)

    async def fetchrow(self, query: str, *args: object) -> asyncpg.Record | None:
        return await self.pool.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: object) -> Any:
        return await self.pool.fetchval(query, *args)
