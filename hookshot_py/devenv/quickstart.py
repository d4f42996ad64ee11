"""`./scripts/quickstart.sh`: a local Synapse, the bridge on its embedded Postgres, a demo room.

Everything lives in ./quickstart-data (kept between runs: same user, room and webhook URL).
Ctrl-C stops the bridge, Synapse and the embedded Postgres.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from hookshot_py.app import Bridge
from hookshot_py.config import load_config, load_registration
from hookshot_py.devenv.matrix_client import MatrixHTTPError, MatrixTestClient
from hookshot_py.devenv.synapse import SynapseServer, free_port, make_registration
from hookshot_py.generic.connection import EVENT_TYPE
from hookshot_py.log_setup import setup_logging
from hookshot_py.secretfiles import write_private

log = logging.getLogger("quickstart")

SERVER_NAME = "localhost"
DEMO_USER = "demo"
HOOK_NAME = "demo"


def _load_state(path: Path) -> dict[str, Any]:
    if path.exists():
        return json.loads(path.read_text())
    state = {
        "synapse_port": free_port(),
        "appservice_port": free_port(),
        "listener_port": free_port(),
        "demo_password": secrets.token_urlsafe(12),
        "provisioning_secret": secrets.token_urlsafe(24),
    }
    write_private(path, json.dumps(state, indent=2))  # the demo password and the provisioning secret
    return state


def _write_files(data: Path, state: dict[str, Any]) -> tuple[Path, Path]:
    registration_path = data / "registration.yaml"
    if not registration_path.exists():
        reg = make_registration(f"http://127.0.0.1:{state['appservice_port']}", SERVER_NAME, user_prefixes=("_webhooks_",))
        write_private(registration_path, yaml.safe_dump(reg, sort_keys=False))
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
        "listeners": [{"port": listener, "bindAddress": "127.0.0.1", "resources": ["webhooks", "provisioning", "metrics"]}],
        "permissions": [{"actor": SERVER_NAME, "services": [{"service": "*", "level": "admin"}]}],
        "bot": {"displayname": "Hookshot"},
        "generic": {"enabled": True, "urlPrefix": f"http://127.0.0.1:{listener}/webhook/", "userIdPrefix": "_webhooks_"},
        "provisioning": {"secret": state["provisioning_secret"]},
        "metrics": {"enabled": True},
        "database": {"dataDirectory": "hookshot-data"},
    }
    config_path = data / "config.yaml"
    write_private(
        config_path,
        "# Written by the quickstart on every run; copy config.yaml.sample for a real deployment.\n"
        + yaml.safe_dump(config, sort_keys=False),
    )
    return config_path, registration_path


async def _demo_user(synapse: SynapseServer, password: str) -> MatrixTestClient:
    try:
        return await synapse.register_user(DEMO_USER, password)
    except MatrixHTTPError as e:
        if e.errcode != "M_USER_IN_USE":
            raise
    async with aiohttp.ClientSession() as session:
        body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": DEMO_USER}, "password": password}
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
    write_private(state_path, json.dumps(state, indent=2))
    return room_id


async def main(data: Path) -> int:
    data.mkdir(parents=True, exist_ok=True)
    state_path = data / "state.json"
    state = _load_state(state_path)
    config_path, registration_path = _write_files(data, state)
    config = load_config(config_path)
    setup_logging(config.logging)

    synapse = SynapseServer(data / "synapse", SERVER_NAME, [registration_path], port=state["synapse_port"])
    log.info("Starting Synapse on %s …", synapse.base_url)
    await synapse.start()
    bridge = Bridge(config, load_registration(registration_path))
    user: MatrixTestClient | None = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await bridge.start()
        assert bridge.services is not None
        user = await _demo_user(synapse, state["demo_password"])
        room_id = await _demo_room(bridge, user, state, state_path)
        manager = bridge.services.manager
        conn = manager.find(room_id, EVENT_TYPE, HOOK_NAME)
        if conn is None:
            conn, outcome = await manager.create(room_id, EVENT_TYPE, {"name": HOOK_NAME}, user_id=user.user_id)
            url = outcome.secrets["url"]
        else:
            url = manager.details(conn, include_secrets=True)["secrets"]["url"]
        base = f"http://127.0.0.1:{state['listener_port']}"
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

 Provisioning   curl -H 'Authorization: Bearer {state['provisioning_secret']}' '{base}/v1/{room_id}/connections?userId={user.user_id}'
 Metrics        {base}/metrics
 Data           {data}   (config.yaml, registration.yaml, Synapse, Postgres)

 Log in with any Matrix client at {synapse.base_url} to watch the room. Ctrl-C stops everything.
────────────────────────────────────────────────────────────────────────────
""",
            flush=True,
        )
        await stop.wait()
    finally:
        log.info("Stopping …")
        if user is not None:
            await user.close()
        await bridge.stop()
        await synapse.stop()
    return 0


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd() / "quickstart-data"
    sys.exit(asyncio.run(main(target.resolve())))
