"""A service's package is imported only when the config enables it (each costs memory in every
bridge process), and `cryptography` not at all for a bridge with only generic webhooks.

Each case builds the bridge's parts (`build_services`, `assemble`, the listener app) in a new
interpreter, so what other tests imported does not count; nothing there touches the network or
the database."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SERVICE_PACKAGES = ("github", "gitlab", "gitflic", "barkeep", "jira", "feeds", "outbound")

SCRIPT = """
import asyncio, json, os, sys
sys.path.insert(0, "tests")
import hookshot_py.app
from fakes.matrix import FakeHomeserver, FakeMatrixGateway
from support.core import BOT, SERVER_NAME, core_config
from hookshot_py.config import parse_registration
from hookshot_py.core import assemble, listener_app
from hookshot_py.db.database import Database
from hookshot_py.devenv.synapse import make_registration
from hookshot_py.metrics import Metrics
from hookshot_py.services import build_services
from hookshot_py.tokens import SecretBox

async def main():
    registration = parse_registration(make_registration("http://127.0.0.1:1", SERVER_NAME))
    gateway = FakeMatrixGateway(FakeHomeserver(SERVER_NAME, BOT, registration.is_exclusive_user))
    services = build_services(core_config(json.loads(sys.argv[1])), Database("postgresql://unused/unused"),
                              gateway, Metrics(), SecretBox(os.urandom(32)))
    core = assemble(services, is_bridge_user=registration.is_exclusive_user, spawn=lambda coro, name: None)
    listener_app(core, ["webhooks", "provisioning", "metrics"], lambda: (True, {}))
    await services.close()
    print(json.dumps({"integrations": [i.name for i in core.integrations], "modules": sorted(sys.modules)}))

asyncio.run(main())
"""

ALL_ENABLED = {
    "generic": {"outbound": True},
    "github": {
        "apiUrl": "http://127.0.0.1:9",
        "oauthUrl": "https://github.com",
        "webhook": {"secret": "g" * 32, "publicUrl": "https://hooks.core.test/"},
        "oauth": {"client_id": "c", "client_secret": "s", "redirect_uri": "https://hooks.core.test/github/oauth"},
    },
    "gitlab": {
        "instances": {"gitlab": {"url": "https://gitlab.example.org"}},
        "webhook": {"secret": "l" * 32, "publicUrl": "https://hooks.core.test"},
    },
    "gitflic": {
        "instances": {"gitflic": {"url": "https://gitflic.ru", "apiUrl": "http://127.0.0.1:9"}},
        "token": "t",
        "webhook": {"publicUrl": "https://hooks.core.test"},
    },
    "barkeep": {"instances": {"main": {"url": "http://127.0.0.1:9"}}},
    "jira": {"webhook": {"secret": "j" * 32}, "url": "https://jira.example.org"},
    "feeds": {"enabled": True},
}


def build(overrides: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(overrides)], cwd=REPO, check=True, capture_output=True, text=True
    )
    result: dict[str, Any] = json.loads(out.stdout.splitlines()[-1])
    return result


def loaded(modules: list[str], package: str) -> bool:
    return any(m == package or m.startswith(package + ".") for m in modules)


def test_with_only_generic_webhooks_no_other_service_package_nor_cryptography_is_imported() -> None:
    result = build({})
    assert result["integrations"] == ["generic"]
    assert [p for p in SERVICE_PACKAGES if loaded(result["modules"], f"hookshot_py.{p}")] == []
    assert not loaded(result["modules"], "cryptography")
    assert loaded(result["modules"], "hookshot_py.generic")


def test_enabled_services_load_as_before_in_route_order() -> None:
    result = build(ALL_ENABLED)
    assert result["integrations"] == [
        "github", "gitlab", "gitflic", "barkeep", "jira", "feeds", "genericOutbound", "generic"
    ]  # fmt: skip
    assert [p for p in SERVICE_PACKAGES if not loaded(result["modules"], f"hookshot_py.{p}.integration")] == []


def test_one_enabled_service_loads_only_its_package() -> None:
    result = build({"jira": ALL_ENABLED["jira"]})
    assert result["integrations"] == ["jira", "generic"]
    assert [p for p in SERVICE_PACKAGES if loaded(result["modules"], f"hookshot_py.{p}")] == ["jira"]
