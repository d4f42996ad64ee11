"""Postgres access: the asyncpg pool and the alembic migrations that shape it."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _alembic_url(dsn: str) -> str:
    scheme, sep, rest = dsn.partition("://")
    if not sep or scheme not in ("postgres", "postgresql"):
        raise ValueError(f"database.url must be a postgresql:// URL, got {dsn!r}")
    return f"postgresql+asyncpg://{rest}"


def run_migrations(dsn: str) -> None:
    """Upgrade the schema to the newest alembic revision. Blocking; run it in a thread."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", _alembic_url(dsn).replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, "heads")


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typ in ("json", "jsonb"):
        await conn.set_type_codec(typ, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


@dataclass
class Database:
    """Owns the pool. Everything else receives this object and borrows connections from it."""

    dsn: str
    pool: asyncpg.Pool | None = None

    async def start(self, *, migrate: bool = True, min_size: int = 2, max_size: int = 10) -> None:
        if migrate:
            log.info("Applying database migrations")
            await asyncio.to_thread(run_migrations, self.dsn)
        self.pool = await asyncpg.create_pool(
            self.dsn, min_size=min_size, max_size=max_size, init=_init_connection
        )

    async def stop(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    def acquire(self):  # type: ignore[no-untyped-def]
        assert self.pool is not None, "Database.start() was not called"
        return self.pool.acquire()

    async def execute(self, query: str, *args: object) -> str:
        assert self.pool is not None
        return await self.pool.execute(query, *args)

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        assert self.pool is not None
        return await self.pool.fetch(query, *args)

    async def fetchrow(self, query: str, *args: object) -> asyncpg.Record | None:
        assert self.pool is not None
        return await self.pool.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: object) -> object:
        assert self.pool is not None
        return await self.pool.fetchval(query, *args)
