"""`hookshot-py run` as a service manager sees it: SIGTERM/SIGINT stop it within 10 s in every
phase (start-up, migration, waiting for the homeserver, running, draining) and leave nothing
running; a homeserver that cannot be used is diagnosed (unreachable, registration not loaded,
wrong `url` in the registration) in the log and on `/ready`.

The 10 s are a requirement, not a measurement: systemd, Docker and Kubernetes SIGKILL a service
that overstays its stop timeout, which would orphan the embedded Postgres.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import psutil
import pytest
import pytest_asyncio
import yaml
from support.bridge import PROVISIONING_SECRET, create_database
from support.fixtures import SERVER_NAME, room_with_bot
from support.helpers import http

from hookshot_py.db.embedded import EmbeddedPostgres
from hookshot_py.devenv.synapse import SynapseServer, free_port, make_registration
from hookshot_py.generic.connection import EVENT_TYPE

REPO = Path(__file__).resolve().parents[1]
STOP_WITHIN = 10.0


class BridgeProcess:
    """One `python -m hookshot_py run` with its own config, logging to a file."""

    def __init__(self, workdir: Path, registration: Path, config: dict[str, Any]) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.port = config["listeners"][0]["port"]
        config_path = workdir / "config.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log_path = workdir / "bridge.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hookshot_py", "run", "-c", str(config_path), "-r", str(registration)],
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_ready(self, timeout: float = 30) -> None:
        """Until `/ready` says 200. Its homeserver check may fail once at start (the session's Synapse
        is busy with what earlier tests left) and is retried in the background."""
        deadline = time.monotonic() + timeout
        while (status := await self.ready())[0] != 200:
            assert time.monotonic() < deadline, f"/ready still says {status} after {timeout}s:\n{self.log()}"
            await asyncio.sleep(0.1)

    async def wait_log(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            assert self.proc.poll() is None, f"the bridge exited with {self.proc.returncode}:\n{self.log()}"
            assert time.monotonic() < deadline, f"no {text!r} in the log after {timeout}s:\n{self.log()}"
            await asyncio.sleep(0.05)

    async def ready(self) -> tuple[int, dict[str, Any]]:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{self.port}/ready") as resp:
                return resp.status, await resp.json()

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Send `sig`; the bridge must exit cleanly (0) within STOP_WITHIN seconds."""
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=STOP_WITHIN)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running {STOP_WITHIN:.0f}s after {sig.name}:\n{self.log()}") from None
        assert code == 0, self.log()
        assert "Traceback" not in self.log(), self.log()
        assert "Bridge stopped" in self.log(), self.log()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def config(
    workdir: Path, *, homeserver: str, as_port: int, database: dict[str, Any], **generic: Any
) -> dict[str, Any]:
    return {
        "bridge": {"domain": SERVER_NAME, "url": homeserver, "port": as_port, "bindAddress": "127.0.0.1"},
        "passFile": str(workdir / "passkey.pem"),
        "logging": {"level": "info"},
        "listeners": [{"port": free_port(), "bindAddress": "127.0.0.1", "resources": ["webhooks", "provisioning"]}],
        "permissions": [{"actor": SERVER_NAME, "services": [{"service": "*", "level": "admin"}]}],
        "generic": {"enabled": True, "urlPrefix": "http://127.0.0.1:1/webhook/", **generic},
        "provisioning": {"secret": PROVISIONING_SECRET},
        "database": database,
    }


def processes_using(path: Path) -> list[str]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(path) in cmdline:
            found.append(f"{proc.info['pid']}: {cmdline}")
    return found


def as_port(registration: Path) -> int:
    """The port the registration's url names: the bridge must listen there (`run` checks it)."""
    port = urlsplit(yaml.safe_load(registration.read_text())["url"]).port
    assert port is not None
    return port


def closed_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def bridges() -> Iterator[list[BridgeProcess]]:
    started: list[BridgeProcess] = []
    yield started
    for bridge in started:
        bridge.kill()


@pytest.fixture(scope="module")
def pg_data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An initialised, stopped embedded-Postgres data directory the tests of this module share
    (one at a time), so only the start-up test pays for initdb."""
    data = tmp_path_factory.mktemp("embedded") / "postgres"
    server = EmbeddedPostgres(data)
    server.start()
    server.stop()
    yield data.parent
    EmbeddedPostgres(data).stop_leftover()  # in case a test failed before its bridge stopped it


@pytest.fixture
def unused_registration(tmp_path: Path) -> Path:
    """A registration no homeserver has loaded (fresh tokens)."""
    path = tmp_path / "registration.yaml"
    path.write_text(yaml.safe_dump(make_registration(f"http://127.0.0.1:{free_port()}", SERVER_NAME)))
    return path


# -- stopping in every phase ----------------------------------------------------------------------------


async def test_sigterm_while_the_embedded_postgres_is_initialised(tmp_path, bridges, unused_registration):
    data = tmp_path / "fresh"
    database = {"dataDirectory": str(data)}
    cfg = config(tmp_path, homeserver=closed_url(), as_port=as_port(unused_registration), database=database)
    bridges.append(bridge := BridgeProcess(tmp_path / "bridge", unused_registration, cfg))
    await bridge.wait_log("Initialising embedded Postgres")
    bridge.stop(signal.SIGTERM)
    assert "Start-up interrupted" in bridge.log()
    assert processes_using(data) == []


async def test_sigint_during_migrations(tmp_path, bridges, unused_registration, pg_admin_dsn):
    dsn = await create_database(pg_admin_dsn)
    name = urlsplit(dsn).path.lstrip("/")
    blocker, observer = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    sessions = "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()"
    try:
        # Alembic's first read of its version table waits for this lock: the bridge is stuck
        # inside the migration until we let go.
        await blocker.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE")
        cfg = config(tmp_path, homeserver=closed_url(), as_port=as_port(unused_registration), database={"url": dsn})
        bridges.append(bridge := BridgeProcess(tmp_path / "bridge", unused_registration, cfg))
        await bridge.wait_log("Applying database migrations")
        for _ in range(400):
            if await observer.fetchval(sessions + " AND wait_event_type = 'Lock'", name):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"the migration never waited for the lock:\n{bridge.log()}")
        bridge.stop(signal.SIGINT)
        await tx.rollback()
        assert await observer.fetchval(sessions, name) == 1  # the blocker alone: the bridge's are gone
    finally:
        await blocker.close()
        await observer.close()


async def test_unreachable_homeserver_is_said_and_sigterm_stops_the_wait(
    tmp_path, bridges, unused_registration, pg_data
):
    homeserver = closed_url()
    database = {"dataDirectory": str(pg_data)}
    cfg = config(tmp_path, homeserver=homeserver, as_port=as_port(unused_registration), database=database)
    bridges.append(bridge := BridgeProcess(tmp_path / "bridge", unused_registration, cfg))
    await bridge.wait_log(f"Homeserver at {homeserver} not reachable")
    status, body = await bridge.ready()
    assert status == 503 and body["ready"] is False
    assert body["homeserver"]["status"] == "unreachable" and "bridge.url" in body["homeserver"]["action"]
    await bridge.wait_log("retrying in 2s")  # it keeps waiting…
    bridge.stop(signal.SIGTERM)  # …until told to stop
    assert processes_using(pg_data) == []


# -- the homeserver's side of the registration ---------------------------------------------------------


async def test_registration_not_loaded_by_the_homeserver(tmp_path, bridges, unused_registration, synapse, pg_admin_dsn):
    database = {"url": await create_database(pg_admin_dsn)}
    cfg = config(tmp_path, homeserver=synapse.base_url, as_port=as_port(unused_registration), database=database)
    bridges.append(bridge := BridgeProcess(tmp_path / "bridge", unused_registration, cfg))
    await bridge.wait_log("does not know this bridge's as_token")
    log = bridge.log()
    assert f"add {unused_registration} to app_service_config_files" in log and "restart the homeserver" in log
    assert "M_UNKNOWN_TOKEN" in log
    status, body = await bridge.ready()
    assert status == 503 and body["homeserver"]["status"] == "unknown_token"
    assert "app_service_config_files" in body["homeserver"]["action"]
    bridge.stop(signal.SIGTERM)


async def test_wrong_url_in_the_registration(tmp_path, bridges, misrouted_registration_path, synapse, pg_admin_dsn):
    """Synapse loaded this registration, but its `url` does not lead to the bridge (https where the
    bridge serves http: a mistake no file check sees): the bridge runs (webhooks are accepted and
    sent) but would never receive an event, and says so."""
    registration = yaml.safe_load(misrouted_registration_path.read_text())
    database = {"url": await create_database(pg_admin_dsn)}
    port = as_port(misrouted_registration_path)
    cfg = config(tmp_path, homeserver=synapse.base_url, as_port=port, database=database)
    bridges.append(bridge := BridgeProcess(tmp_path / "bridge", misrouted_registration_path, cfg))
    await bridge.wait_log("Bridge ready")
    log = bridge.log()
    assert f"The homeserver cannot reach this bridge at {registration['url']}" in log, log
    assert f"Set `url` in {misrouted_registration_path} (now {registration['url']})" in log
    assert "HTTP 502" in log
    status, body = await bridge.ready()
    assert status == 503 and body["homeserver"]["status"] == "cannot_reach_bridge"
    assert "restart the homeserver" in body["homeserver"]["action"]
    bridge.stop(signal.SIGTERM)


# -- running and draining ------------------------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="session")
async def frozen_homeserver(synapse: SynapseServer) -> AsyncIterator[Any]:
    """`freeze()` SIGSTOPs the session's Synapse: requests to it hang. Thawed after the test."""
    frozen: list[int] = []

    def freeze() -> None:
        assert synapse._process is not None
        frozen.append(synapse._process.pid)
        os.kill(synapse._process.pid, signal.SIGSTOP)

    try:
        yield freeze
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)


async def test_sigterm_while_a_delivery_hangs(
    tmp_path, bridges, registration_path, bridge_as_port, synapse, make_user, pg_data, frozen_homeserver
):
    """Running, with a webhook waiting for a homeserver that stopped answering: the stop does not
    wait for it, and the embedded Postgres is stopped."""
    database = {"dataDirectory": str(pg_data)}
    cfg = config(
        tmp_path, homeserver=synapse.base_url, as_port=bridge_as_port, database=database, waitForComplete=True
    )
    bridges.append(bridge := BridgeProcess(tmp_path / "bridge", registration_path, cfg))
    await bridge.wait_log("Bridge ready")
    await bridge.wait_ready()
    alice = await make_user("alice")
    room = await room_with_bot(alice)
    status, body = await http(
        "PUT", f"http://127.0.0.1:{bridge.port}/v1/{room}/connections/{EVENT_TYPE}?userId={alice.user_id}",
        json={"name": "hanging"}, headers={"Authorization": f"Bearer {PROVISIONING_SECRET}"},
    )  # fmt: skip
    assert status == 200, body
    hook_url = f"http://127.0.0.1:{bridge.port}/webhook/" + body["secrets"]["url"].rsplit("/", 1)[1]

    frozen_homeserver()
    pending = asyncio.create_task(http("POST", hook_url, json={"text": "never answered"}))
    for _ in range(200):  # until the message is queued: its sender now waits for the homeserver
        if (await bridge.ready())[1]["outboxDepth"] >= 1:
            break
        await asyncio.sleep(0.05)
    assert not pending.done()  # waitForComplete: the webhook's answer waits for the delivery
    await asyncio.to_thread(bridge.stop, signal.SIGTERM)
    assert processes_using(pg_data) == []
    try:
        await asyncio.wait_for(pending, 5)
    except (aiohttp.ClientError, TimeoutError):
        pass  # the connection was cut: the sender will retry, and the row is in the outbox anyway
