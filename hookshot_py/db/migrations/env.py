"""Alembic environment: runs migrations over SQLAlchemy's asyncpg dialect (no second driver)."""

import asyncio
from typing import Any

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine


def _do_run(connection: Any) -> None:
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("alembic was run without sqlalchemy.url")
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        await connection.run_sync(_do_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=context.config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif context.config.attributes.get("connection") is not None:
    # db.database.apply_migrations(): a connection of the bridge's event loop (alembic's asyncio recipe).
    _do_run(context.config.attributes["connection"])
else:
    asyncio.run(_run_online())
