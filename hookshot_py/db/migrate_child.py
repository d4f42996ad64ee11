"""Applies the migrations in a child process: alembic and SQLAlchemy cost the bridge ~25 MiB of
memory for good once imported, for a job done once at start, if at all.

`python -m hookshot_py.db.migrate_child` with the DSN in `HOOKSHOT_MIGRATE_DSN` (never on the
command line, where other users could read it); exits 1 with the reason on stderr."""

from __future__ import annotations

import asyncio
import os
import sys

DSN_ENV = "HOOKSHOT_MIGRATE_DSN"
TOO_NEW = 3  # the exit code for a schema migrated by a newer version


async def migrate_in_child(dsn: str) -> None:
    """Run the migrations in a child process; cancelling the caller stops the child."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hookshot_py.db.migrate_child",
        env={**os.environ, DSN_ENV: dsn}, stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await proc.communicate()
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0:
        lines = stderr.decode(errors="replace").strip().splitlines()
        reason = lines[-1] if lines else f"exit {proc.returncode}"
        if proc.returncode == TOO_NEW:
            from hookshot_py.db.database import SchemaTooNew

            raise SchemaTooNew(reason)
        raise RuntimeError(f"database migrations failed: {reason}")


def main() -> int:
    from hookshot_py.db.database import SchemaTooNew, apply_migrations

    try:
        asyncio.run(apply_migrations(os.environ[DSN_ENV]))
    except SchemaTooNew as e:
        print(e, file=sys.stderr)
        return TOO_NEW
    except Exception as e:
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
