"""`./scripts/quickstart.sh`: a local Synapse, the bridge on its embedded Postgres, a demo room.

Everything lives in ./quickstart-data (kept between runs: same user, room, webhook URL, ports and
Synapse secret). Ctrl-C stops the bridge, Synapse and the embedded Postgres, at any moment. A run
that died (SIGKILL, a crash) leaves Synapse and Postgres running: the next run stops that Synapse
and adopts that Postgres, so it starts as if the previous one had stopped cleanly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Only the standard library at import time: a Ctrl-C right after the start must not print a
# traceback from the middle of an import.
if TYPE_CHECKING:
    from hookshot_py.app import Bridge
    from hookshot_py.devenv.matrix_client import MatrixTestClient
    from hookshot_py.devenv.synapse import SynapseServer

log = logging.getLogger("quickstart")

SERVER_NAME = "localhost"
DEMO_USER = "demo"
HOOK_NAME = "demo"


class QuickstartError(Exception):
    """Why the quickstart cannot run; printed as one line."""


def _load_state(path: Path, synapse_config: Path | None = None) -> dict[str, Any]:
    """The quickstart's lasting choices (ports, passwords, secrets), made once and kept in `path`.
    `synapse_config` (default: next to it) is where an older quickstart's Synapse secret may be."""
    from hookshot_py.devenv.synapse import free_port

    synapse_config = synapse_config or path.parent / "synapse" / "homeserver.yaml"

    state: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    fresh = {
        "synapse_port": free_port,
        "appservice_port": free_port,
        "listener_port": free_port,
        "demo_password": lambda: secrets.token_urlsafe(12),
        "provisioning_secret": lambda: secrets.token_urlsafe(24),
        # Synapse's registration_shared_secret, kept so that a Synapse and its data outlive a run.
        "synapse_secret": lambda: _existing_synapse_secret(synapse_config) or secrets.token_hex(24),
    }
    missing = {key: make() for key, make in fresh.items() if key not in state}
    if missing:
        state.update(missing)
        _save_state(path, state)
    return state


def _existing_synapse_secret(config: Path) -> str | None:
    """The secret of a Synapse set up by an older quickstart, which did not record it."""
    import yaml

    try:
        secret = (yaml.safe_load(config.read_text()) or {}).get("registration_shared_secret")
    except (OSError, yaml.YAMLError):
        return None
    return secret if isinstance(secret, str) and secret else None


def _save_state(path: Path, state: dict[str, Any]) -> None:
    from hookshot_py.secretfiles import write_private

    write_private(path, json.dumps(state, indent=2))  # the demo password and the secrets


def _claim(data: Path) -> Path:
    """Refuse to run twice on one directory at a time; a dead owner's claim is taken over."""
    import psutil

    pid_path = data / "quickstart.pid"
    try:
        pid = int(pid_path.read_text().strip())
        if pid != os.getpid() and "hookshot_py.devenv.quickstart" in " ".join(psutil.Process(pid).cmdline()):
            raise QuickstartError(f"another quickstart (pid {pid}) is running on {data}: stop it first (Ctrl-C)")
    except (FileNotFoundError, ValueError, psutil.Error):
        pass
    pid_path.write_text(f"{os.getpid()}\n")
    return pid_path


def _write_files(data: Path, state: dict[str, Any]) -> tuple[Path, Path]:
    import yaml

    from hookshot_py.config.registration import ENCRYPTION_FLAGS
    from hookshot_py.devenv.synapse import make_registration
    from hookshot_py.secretfiles import write_private

    registration_path = data / "registration.yaml"
    if not registration_path.exists():
        url = f"http://127.0.0.1:{state['appservice_port']}"
        reg = make_registration(url, SERVER_NAME, user_prefixes=("_webhooks_",))
        write_private(registration_path, yaml.safe_dump(reg, sort_keys=False))
    else:  # one written before encryption was on: add its opt-ins (Synapse reads them at its start)
        reg = yaml.safe_load(registration_path.read_text())
        if any(reg.get(k) is not True for k in ENCRYPTION_FLAGS):
            write_private(registration_path, yaml.safe_dump({**reg, **ENCRYPTION_FLAGS}, sort_keys=False))
    listener = state["listener_port"]
    config = {
        "bridge": {
            "domain": SERVER_NAME,
            "url": f"http://127.0.0.1:{state['synapse_port']}",
            "port": state["appservice_port"],
            "bindAddress": "127.0.0.1",
        },
        "passFile": "passkey.pem",
        "logging": {"level": "info"},
        "listeners": [
            {"port": listener, "bindAddress": "127.0.0.1", "resources": ["webhooks", "provisioning", "metrics"]}
        ],
        "permissions": [{"actor": SERVER_NAME, "services": [{"service": "*", "level": "admin"}]}],
        "bot": {"displayname": "Hookshot"},
        "generic": {
            "enabled": True, "urlPrefix": f"http://127.0.0.1:{listener}/webhook/", "userIdPrefix": "_webhooks_",
        },  # fmt: skip
        "provisioning": {"secret": state["provisioning_secret"]},
        "metrics": {"enabled": True},
        "database": {"dataDirectory": "hookshot-data"},
        "encryption": {"enabled": True},  # Element encrypts new private rooms
    }
    config_path = data / "config.yaml"
    write_private(
        config_path,
        "# Written by the quickstart on every run; copy config.yaml.sample for a real deployment.\n"
        + yaml.safe_dump(config, sort_keys=False),
    )
    return config_path, registration_path


async def _demo_user(synapse: SynapseServer, password: str) -> MatrixTestClient:
    import aiohttp

    from hookshot_py.devenv.matrix_client import MatrixHTTPError, MatrixTestClient

    try:
        return await synapse.register_user(DEMO_USER, password)
    except MatrixHTTPError as e:
        if e.errcode != "M_USER_IN_USE":
            raise
    async with aiohttp.ClientSession() as session:
        who = {"type": "m.id.user", "user": DEMO_USER}
        body = {"type": "m.login.password", "identifier": who, "password": password}
        async with session.post(f"{synapse.base_url}/_matrix/client/v3/login", json=body) as resp:
            data = await resp.json()
            if resp.status != 200:
                raise MatrixHTTPError(resp.status, data, "POST", "/login")
    return MatrixTestClient(synapse.base_url, data["user_id"], data["access_token"], data.get("device_id"), password)


async def _demo_room(bridge: Bridge, user: MatrixTestClient, state: dict[str, Any], state_path: Path) -> str:
    bot = bridge.services.gateway.bot_mxid if bridge.services else ""
    room_id = state.get("room_id")
    if room_id and room_id in await user.joined_rooms():
        return room_id
    room_id = await user.create_room(invite=[bot], name="Hookshot demo")
    await user.wait_for_message(
        room_id,
        lambda e: e.get("type") == "m.room.member" and e.get("state_key") == bot
        and e.get("content", {}).get("membership") == "join",
        timeout=30,
    )
    await user.set_power_levels(room_id, {bot: 50})
    state["room_id"] = room_id
    _save_state(state_path, state)
    return room_id


async def _start(
    synapse: SynapseServer, bridge: Bridge, clients: list[MatrixTestClient], state: dict[str, Any], data: Path
) -> None:
    from hookshot_py.generic.connection import EVENT_TYPE

    log.info("Starting Synapse on %s …", synapse.base_url)
    await synapse.start()
    await bridge.start()
    assert bridge.services is not None
    user = await _demo_user(synapse, state["demo_password"])
    clients.append(user)
    room_id = await _demo_room(bridge, user, state, data / "state.json")
    manager = bridge.services.manager
    conn = manager.find(room_id, EVENT_TYPE, HOOK_NAME)
    if conn is None:
        conn, outcome = await manager.create(room_id, EVENT_TYPE, {"name": HOOK_NAME}, user_id=user.user_id)
        url = outcome.secrets["url"]
    else:
        url = manager.details(conn, include_secrets=True)["secrets"]["url"]
    base = f"http://127.0.0.1:{state['listener_port']}"
    auth = f"Authorization: Bearer {state['provisioning_secret']}"
    print(
        f"""
────────────────────────────────────────────────────────────────────────────
 hookshot_py is running.

 Homeserver     {synapse.base_url}   (server name "{SERVER_NAME}")
 Demo login     user "{DEMO_USER}" ({user.user_id}), password "{state['demo_password']}"
 Demo room      {room_id}  ("Hookshot demo"; the bot is in it)
 Webhook URL    {url}

 Try it:
   curl -X POST -H 'Content-Type: application/json' -d '{{"text": "Hello **Matrix**"}}' {url}

 Provisioning   curl -H '{auth}' '{base}/v1/{room_id}/connections?userId={user.user_id}'
 Metrics        {base}/metrics
 Data           {data}   (config.yaml, registration.yaml, Synapse, Postgres)

 Log in with any Matrix client at {synapse.base_url} to watch the room. Ctrl-C stops everything.
────────────────────────────────────────────────────────────────────────────
""",
        flush=True,
    )


async def main(data: Path, state: dict[str, Any], config_path: Path, registration_path: Path) -> int:
    from hookshot_py.app import Bridge
    from hookshot_py.config import load_config, load_registration
    from hookshot_py.db.embedded import EmbeddedPostgres
    from hookshot_py.devenv.synapse import SynapseError, SynapseServer
    from hookshot_py.lifecycle import Deadline, run_until_signal
    from hookshot_py.log_setup import setup_logging

    config = load_config(config_path)
    setup_logging(config.logging)
    synapse = SynapseServer(
        data / "synapse", SERVER_NAME, [registration_path], port=state["synapse_port"],
        registration_shared_secret=state["synapse_secret"],
    )  # fmt: skip
    bridge = Bridge(config, load_registration(registration_path))
    clients: list[MatrixTestClient] = []

    async def stop() -> None:
        log.info("Stopping …")
        deadline = Deadline(20)
        for client in clients:
            await deadline.run("the demo client", client.close(), cap=2)
        await bridge.stop()
        if bridge.embedded is None and config.database.url is None:
            # Interrupted before the bridge adopted the Postgres a crashed run left behind.
            leftover = EmbeddedPostgres(config.database.data_directory / "postgres")
            await deadline.run("the embedded Postgres", asyncio.to_thread(leftover.stop_leftover))
        await deadline.run("Synapse", synapse.stop(grace=5))
        log.info("Stopped")

    try:
        await run_until_signal(lambda: _start(synapse, bridge, clients, state, data), stop)
    except SynapseError as e:
        log.error("Synapse could not start: %s", e)
        return 1
    return 0


def run(argv: list[str]) -> int:
    data = (Path(argv[0]) if argv else Path.cwd() / "quickstart-data").resolve()
    claim: Path | None = None
    try:
        data.mkdir(parents=True, exist_ok=True)
        claim = _claim(data)
        state = _load_state(data / "state.json")
        config_path, registration_path = _write_files(data, state)
        return asyncio.run(main(data, state, config_path, registration_path))
    except QuickstartError as e:
        print(f"quickstart: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # before the signal handlers were in place
        return 130
    finally:
        if claim is not None:
            claim.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
