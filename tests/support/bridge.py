"""Running the bridge under test: in-process (most tests) or as a subprocess (crash tests).

Each bridge gets a fresh Postgres database on the session's server (embedded, or the one of
HOOKSHOT_DATABASE_URL), and binds the appservice port written into the registration.
"""

from __future__ import annotations

import asyncio
import copy
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import yaml

from hookshot_py.app import Bridge
from hookshot_py.config import load_registration, parse_config
from hookshot_py.db.database import apply_migrations
from hookshot_py.devenv.synapse import SynapseServer, free_port

PROVISIONING_SECRET = "5d2f8a1c7e4b9036f1a8c5e2b7d4096a"  # 32 characters: shorter ones are refused
REPO_ROOT = Path(__file__).resolve().parents[2]


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


async def create_database(admin_dsn: str, *, template: str | None = None) -> str:
    """A fresh database on the test server (empty, or a copy of the database `template`); returns its DSN."""
    return with_database(admin_dsn, await _new_database(admin_dsn, template))


async def _new_database(admin_dsn: str, template: str | None) -> str:
    name = f"hs_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    finally:
        await conn.close()
    return name


_migrated_templates: dict[str, str] = {}
_template_lock = asyncio.Lock()
# Migrated databases handed back by finished tests, emptied, per admin DSN.
_reusable: dict[str, list[str]] = {}


async def create_migrated_database(admin_dsn: str) -> str:
    """A database with the current schema and no rows: one a finished test gave back
    (`release_migrated_database`), else a copy of one migrated once per session. Much cheaper
    than migrating, or even copying, for every test. Tests of the migrations use `create_database`."""
    free = _reusable.setdefault(admin_dsn, [])
    if free:
        return free.pop()
    async with _template_lock:
        template = _migrated_templates.get(admin_dsn)
        if template is None:
            template = await _new_database(admin_dsn, None)
            await apply_migrations(with_database(admin_dsn, template))
            _migrated_templates[admin_dsn] = template
    return await create_database(admin_dsn, template=template)


async def release_migrated_database(admin_dsn: str, dsn: str) -> None:
    """Empty a database from `create_migrated_database` (every table but the schema version and
    the install id; sequences restarted) and keep it for the next test. DELETE, not TRUNCATE:
    on a few rows it touches no files, so it stays cheap on a busy disk. A database something
    still holds locks in is left alone, not reused."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET lock_timeout = '2s'")
        tables = await conn.fetch(
            "SELECT quote_ident(tablename) AS t FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename NOT IN ('alembic_version', 'bridge_meta')"
        )
        sequences = await conn.fetch(
            "SELECT quote_ident(sequencename) AS s FROM pg_sequences WHERE schemaname = 'public'"
        )
        async with conn.transaction():
            for r in tables:
                await conn.execute(f"DELETE FROM {r['t']}")
            for r in sequences:
                await conn.execute(f"ALTER SEQUENCE {r['s']} RESTART")
    except asyncpg.LockNotAvailableError:
        return
    finally:
        await conn.close()
    _reusable.setdefault(admin_dsn, []).append(dsn)


def with_database(dsn: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


@dataclass
class BridgeHarness:
    synapse: SynapseServer
    registration_path: Path
    as_port: int
    workdir: Path
    dsn: str
    overrides: dict[str, Any] = field(default_factory=dict)
    listener_port: int = field(default_factory=free_port)
    bridge: Bridge | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.listener_port}"

    def config_dict(self) -> dict[str, Any]:
        base = {
            "bridge": {
                "domain": self.synapse.server_name,
                "url": self.synapse.base_url,
                "port": self.as_port,
                "bindAddress": "127.0.0.1",
            },
            "passFile": str(self.workdir / "passkey.pem"),
            "logging": {"level": "info"},
            "listeners": [
                {
                    "port": self.listener_port,
                    "bindAddress": "127.0.0.1",
                    "resources": ["webhooks", "provisioning", "metrics"],
                }
            ],
            "permissions": [
                {"actor": self.synapse.server_name, "services": [{"service": "*", "level": "admin"}]}
            ],
            "bot": {"displayname": "Hookshot Bot"},
            "generic": {
                "enabled": True,
                "urlPrefix": f"{self.base_url}/webhook/",
                "userIdPrefix": "_webhooks_",
            },
            "provisioning": {"secret": PROVISIONING_SECRET},
            "metrics": {"enabled": True},
            "database": {"url": self.dsn},
        }
        return deep_merge(base, self.overrides)

    def write_config(self) -> Path:
        path = self.workdir / "config.yaml"
        path.write_text(yaml.safe_dump(self.config_dict(), sort_keys=False))
        return path

    async def start(self) -> Bridge:
        config = parse_config(self.config_dict(), self.workdir)
        registration = load_registration(self.registration_path)
        self.bridge = Bridge(config, registration)
        try:
            await self.bridge.start()
        except BaseException:
            await self.bridge.stop()
            raise
        return self.bridge

    async def stop(self) -> None:
        if self.bridge is not None:
            await self.bridge.stop()
            self.bridge = None

    async def restart(self) -> Bridge:
        await self.stop()
        return await self.start()

    # -- as a separate process (for SIGKILL) -------------------------------------------------------

    async def spawn(self) -> None:
        config_path = self.write_config()
        log = open(self.workdir / "bridge.log", "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hookshot_py", "run", "-c", str(config_path), "-r", str(self.registration_path)],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        await self.wait_ready()

    async def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        async with aiohttp.ClientSession() as session:
            while True:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"bridge exited with {self.process.returncode}:\n{self.log_tail()}")
                try:
                    async with session.get(f"{self.base_url}/ready") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"bridge not ready after {timeout}s:\n{self.log_tail()}")
                await asyncio.sleep(0.1)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.process = None

    async def terminate(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(self.process.wait, 30)
        self.process = None
        return code

    def log_tail(self, lines: int = 60) -> str:
        path = self.workdir / "bridge.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


async def iterate_harness(harness: BridgeHarness) -> AsyncIterator[BridgeHarness]:
    try:
        yield harness
    finally:
        await harness.stop()
        if harness.process is not None:
            harness.kill()


def process_harnesses(
    synapse: SynapseServer, registration_path: Path, tmp_path: Path, dsn: str, overrides: dict[str, Any], n: int = 2
) -> list[BridgeHarness]:
    """`n` bridge processes (not started) sharing one database, passFile and config: behind a
    balancer (`devenv.balancer`), as in docs/scale-out.md."""
    shared = {"passFile": str(tmp_path / "passkey.pem"), **overrides}
    harnesses = []
    for i in range(n):
        workdir = tmp_path / f"process{i}"
        workdir.mkdir()
        harnesses.append(BridgeHarness(synapse, registration_path, free_port(), workdir, dsn, overrides=shared))
    return harnesses
