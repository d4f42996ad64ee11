"""The provisioning API (every route) through aiohttp's test client: the listener app the bridge
serves, over services built on the in-memory homeserver. No Synapse: these run in milliseconds."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient, TestServer

from hookshot_py.core import listener_app
from hookshot_py.generic.connection import EVENT_TYPE as HOOK
from support.bridge import PROVISIONING_SECRET
from support.core import BOT, SERVER_NAME, URL_PREFIX, CoreHarness
from support.widget import EVENT_TYPE as WIDGET
from support.widget import WidgetType

AUTH = {"Authorization": f"Bearer {PROVISIONING_SECRET}"}
ALICE = f"@alice:{SERVER_NAME}"  # creates the rooms: all-powerful (room version 12)
BOB = f"@bob:{SERVER_NAME}"  # joined, power level 0
CAROL = f"@carol:{SERVER_NAME}"  # joined, moderator, but only the `commands` permission on the bridge
PERMISSIONS = [
    {"actor": ALICE, "services": [{"service": "*", "level": "admin"}]},
    {"actor": BOB, "services": [{"service": "*", "level": "manageConnections"}]},
    {"actor": CAROL, "services": [{"service": "*", "level": "commands"}]},
]


@dataclass
class Api:
    core: CoreHarness
    client: TestClient  # type: ignore[type-arg]
    room: str

    async def call(
        self,
        method: str,
        path: str,
        *,
        user: str | None = ALICE,
        json: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = AUTH,
    ) -> tuple[int, Any]:
        params = {"userId": user} if user is not None else {}
        resp = await self.client.request(method, "/v1" + path, params=params, json=json, data=data, headers=headers)
        body = await resp.json(content_type=None) if resp.content_type == "application/json" else await resp.text()
        return resp.status, body


@pytest.fixture
async def api(core_factory) -> AsyncIterator[Api]:
    core = await core_factory({"permissions": PERMISSIONS}, types=[WidgetType()])
    room = core.room_with_bot(ALICE)
    for user in (BOB, CAROL):
        core.hs.invite(room, ALICE, user)
        core.hs.join(room, user)
    core.hs.set_power_levels(room, ALICE, {CAROL: 50})
    app = listener_app(core.core, ["provisioning"], lambda: (True, {}))
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Api(core, client, room)
    finally:
        await client.close()


def _hook_id(room: str, name: str) -> str:
    return hashlib.md5(f"{room}/{HOOK}/{name}".encode()).hexdigest()


# -- public routes and auth ---------------------------------------------------------------------------


async def test_health_and_openapi_need_no_token(api):
    assert await api.call("GET", "/health", user=None, headers=None) == (200, {})
    status, doc = await api.call("GET", "/openapi.json", user=None, headers=None)
    assert status == 200 and doc["openapi"].startswith("3.") and "/v1/{roomId}/connections" in doc["paths"]


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {"Authorization": "Bearer wrong"},
        {"Authorization": PROVISIONING_SECRET},
        {"Authorization": "Basic x"},
        {"Authorization": "Bearer"},
    ],
)
async def test_every_other_route_needs_the_bearer_secret(api, headers):
    for method, path in [
        ("GET", "/connectiontypes"),
        ("GET", f"/{api.room}/connections"),
        ("PUT", f"/{api.room}/connections/{HOOK}"),
        ("DELETE", f"/{api.room}/connections/x"),
        ("GET", "/no/such/route"),
    ]:
        status, body = await api.call(method, path, headers=headers)
        assert (status, body["errcode"]) == (401, "HS_BAD_TOKEN"), (method, path)
    assert api.core.gateway.calls == []


async def test_the_scheme_is_case_insensitive(api):
    status, _ = await api.call("GET", "/connectiontypes", headers={"Authorization": f"bearer {PROVISIONING_SECRET}"})
    assert status == 200


async def test_connection_types_lists_the_enabled_types(api):
    status, body = await api.call("GET", "/connectiontypes", user=None)
    assert status == 200
    assert body == {
        "Webhook": {"type": "Webhook", "eventType": HOOK, "service": "webhook", "botUserId": BOT},
        "Widget": {"type": "Widget", "eventType": WIDGET, "service": "widget", "botUserId": BOT},
    }


# -- ids ----------------------------------------------------------------------------------------------


async def test_user_id_is_required_and_checked(api):
    for user in (None, "", "alice", "@alice", "@al ice:server", "!room:server"):
        status, body = await api.call("GET", f"/{api.room}/connections", user=user)
        assert (status, body["errcode"]) == (400, "HS_BAD_VALUE") and "userId" in body["error"], user


@pytest.mark.parametrize("room_id", ["not-a-room", "#alias:server", "!with space", "!" + "x" * 300, "!a\nb"])
async def test_room_id_is_checked(api, room_id):
    status, body = await api.call("GET", f"/{quote(room_id, safe='')}/connections")
    assert (status, body["errcode"]) == (400, "HS_BAD_VALUE") and "roomId" in body["error"]


async def test_both_room_id_forms_are_accepted(api):
    old = api.core.room_with_bot(ALICE, version="10")
    assert ":" in old and ":" not in api.room
    for room in (api.room, old):
        assert await api.call("GET", f"/{room}/connections") == (200, [])


# -- reading ------------------------------------------------------------------------------------------


async def test_reading_needs_the_user_and_the_bot_in_the_room(api):
    status, body = await api.call("GET", f"/{api.room}/connections", user=f"@dave:{SERVER_NAME}")
    assert (status, body["errcode"]) == (403, "HS_NOT_IN_ROOM")
    lonely = api.core.hs.create_room(ALICE)
    status, body = await api.call("GET", f"/{lonely}/connections")
    assert (status, body["errcode"]) == (403, "HS_NOT_IN_ROOM") and "Invite the bot" in body["error"]
    status, body = await api.call("GET", f"/!unknown:{SERVER_NAME}/connections")
    assert (status, body["errcode"]) == (404, "HS_NOTFOUND")
    # Invited: the bot joins when asked.
    invited = api.core.hs.create_room(ALICE, invite=[BOT])
    assert await api.call("GET", f"/{invited}/connections") == (200, [])
    assert api.core.hs.room(invited).membership(BOT) == "join"


async def test_secrets_are_shown_only_to_users_who_may_edit(api):
    status, created = await api.call("PUT", f"/{api.room}/connections/{HOOK}", json={"name": "secretive"})
    assert status == 200
    conn_id = created["id"]
    url = created["secrets"]["url"]
    for user, sees in [(ALICE, True), (BOB, False), (CAROL, False)]:
        status, listed = await api.call("GET", f"/{api.room}/connections", user=user)
        assert status == 200 and [c["id"] for c in listed] == [conn_id]
        assert (listed[0].get("secrets", {}).get("url") == url) is sees, user
        status, one = await api.call("GET", f"/{api.room}/connections/{conn_id}", user=user)
        assert status == 200 and one["config"] == {"name": "secretive"}
        assert ("secrets" in one) is sees, user
    # The secret never reaches the room state.
    assert api.core.hs.room(api.room).content(HOOK, "secretive") == {"name": "secretive"}


async def test_an_unknown_connection_is_404(api):
    status, body = await api.call("GET", f"/{api.room}/connections/{'0' * 32}")
    assert (status, body["errcode"]) == (404, "HS_NOTFOUND")


# -- writing ------------------------------------------------------------------------------------------


async def test_create_answers_the_connection_with_its_secret(api):
    status, body = await api.call("PUT", f"/{api.room}/connections/{HOOK}", json={"name": "rest-hook"})
    assert status == 200
    assert body["id"] == _hook_id(api.room, "rest-hook")
    assert {k: body[k] for k in ("type", "eventType", "service", "botUserId", "config")} == {
        "type": "Webhook",
        "eventType": HOOK,
        "service": "webhook",
        "botUserId": BOT,
        "config": {"name": "rest-hook"},
    }
    assert body["secrets"]["url"] == URL_PREFIX + body["secrets"]["hookId"]
    event = api.core.hs.room(api.room).state[(HOOK, "rest-hook")]
    assert event["sender"] == BOT and event["content"] == {"name": "rest-hook"}
    # Seen by the commands at once: it is the same manager.
    assert api.core.manager.find(api.room, HOOK, "rest-hook") is not None


async def test_create_passes_the_types_warnings_on(api):
    status, body = await api.call("PUT", f"/{api.room}/connections/{WIDGET}", json={"name": "warned", "warn": True})
    assert status == 200 and body["warning"] == {"header": "Warning", "message": "widgets are experimental"}
    assert body["secrets"] == {"token": "secret-of-warned"}


async def test_create_refusals(api):
    path = f"/{api.room}/connections/{HOOK}"
    status, body = await api.call("PUT", f"/{api.room}/connections/org.example.unknown", json={})
    assert (status, body["errcode"]) == (404, "HS_NOTFOUND")
    status, body = await api.call("PUT", path, json={"name": "x", "waitForComplete": "yes"})
    assert (status, body["errcode"]) == (400, "HS_BAD_VALUE")
    assert {e["path"] for e in body["validationErrors"]} == {"/name", "/waitForComplete"}
    assert all(set(e) == {"path", "message"} for e in body["validationErrors"])
    status, body = await api.call("PUT", path, json=["not", "an", "object"])
    assert (status, body["errcode"]) == (400, "HS_BAD_VALUE")
    status, body = await api.call("PUT", path, data=b"{broken", headers={**AUTH, "Content-Type": "application/json"})
    assert (status, body["errcode"]) == (400, "HS_BAD_VALUE") and "JSON" in body["error"]
    status, body = await api.call("PUT", path, data=b"\xff\xfe")
    assert (status, body["errcode"]) == (400, "HS_BAD_VALUE")
    status, body = await api.call("PUT", path, data=b"")
    assert (status, body["errcode"]) == (400, "HS_BAD_VALUE")
    status, body = await api.call("PUT", path, data=b"{" + b" " * 70_000 + b"}")
    assert (status, body["errcode"]) == (413, "HS_TOO_LARGE")
    assert api.core.gateway.called("put_state") == []

    assert (await api.call("PUT", path, json={"name": "dup"}))[0] == 200
    status, body = await api.call("PUT", path, json={"name": "dup"})
    assert (status, body["errcode"]) == (409, "HS_CONFLICTING_CONNECTION")
    assert body["existingConnection"]["config"] == {"name": "dup"} and "secrets" not in body["existingConnection"]


async def test_writes_need_the_permission_and_the_power(api):
    path = f"/{api.room}/connections/{HOOK}"
    status, body = await api.call("PUT", path, user=BOB, json={"name": "bobs"})
    assert (status, body["errcode"]) == (403, "HS_FORBIDDEN_USER") and "needs at least 50" in body["error"]
    status, body = await api.call("PUT", path, user=CAROL, json={"name": "carols"})
    assert (status, body["errcode"]) == (403, "HS_FORBIDDEN_USER") and "manageConnections" in body["error"]
    weak = api.core.room_with_bot(ALICE, bot_level=None)
    status, body = await api.call("PUT", f"/{weak}/connections/{HOOK}", json={"name": "weak"})
    assert (status, body["errcode"]) == (403, "HS_FORBIDDEN_BOT") and "needs at least 50" in body["error"]
    api.core.hs.fail("put_state", status=403, errcode="M_FORBIDDEN", error="refused by the homeserver")
    status, body = await api.call("PUT", path, json={"name": "refused"})
    assert (status, body["errcode"]) == (403, "HS_FORBIDDEN_BOT") and "refused by the homeserver" in body["error"]
    assert api.core.manager.connections(api.room) == []


async def test_patch_merges_and_revalidates(api):
    _, created = await api.call("PUT", f"/{api.room}/connections/{HOOK}", json={"name": "patchy"})
    path = f"/{api.room}/connections/{created['id']}"
    status, body = await api.call("PATCH", path, json={"waitForComplete": True})
    assert status == 200 and body["config"] == {"name": "patchy", "waitForComplete": True}
    assert body["secrets"]["url"] == created["secrets"]["url"]
    assert api.core.hs.room(api.room).content(HOOK, "patchy") == {"name": "patchy", "waitForComplete": True}

    status, body = await api.call("PATCH", path, json={"waitForComplete": "no"})
    assert (status, body["errcode"]) == (400, "HS_BAD_VALUE") and body["validationErrors"][0][
        "path"
    ] == "/waitForComplete"
    status, body = await api.call("PATCH", path, json={"name": "renamed"})
    assert (status, body["errcode"]) == (400, "HS_BAD_VALUE") and "identity" in body["error"]
    status, body = await api.call("PATCH", path, data=b"[1]")
    assert (status, body["errcode"]) == (400, "HS_BAD_VALUE")
    status, body = await api.call("PATCH", path, user=BOB, json={"waitForComplete": False})
    assert (status, body["errcode"]) == (403, "HS_FORBIDDEN_USER")
    status, body = await api.call("PATCH", path, user=f"@dave:{SERVER_NAME}", json={})
    assert (status, body["errcode"]) == (403, "HS_NOT_IN_ROOM")
    status, body = await api.call("PATCH", f"/{api.room}/connections/{'0' * 32}", json={})
    assert (status, body["errcode"]) == (404, "HS_NOTFOUND")
    assert api.core.hs.room(api.room).content(HOOK, "patchy") == {"name": "patchy", "waitForComplete": True}


async def test_delete_disables_the_connection(api):
    _, created = await api.call("PUT", f"/{api.room}/connections/{HOOK}", json={"name": "doomed"})
    path = f"/{api.room}/connections/{created['id']}"
    status, body = await api.call("DELETE", path, user=BOB)
    assert (status, body["errcode"]) == (403, "HS_FORBIDDEN_USER")
    status, body = await api.call("DELETE", path, user=f"@dave:{SERVER_NAME}")
    assert (status, body["errcode"]) == (403, "HS_NOT_IN_ROOM")
    assert await api.call("DELETE", path) == (200, {"ok": True})
    assert api.core.hs.room(api.room).content(HOOK, "doomed") == {"disabled": True}
    assert (await api.call("GET", path))[0] == 404
    status, body = await api.call("DELETE", path)
    assert (status, body["errcode"]) == (404, "HS_NOTFOUND")


# -- routing ------------------------------------------------------------------------------------------


async def test_other_methods_and_paths(api):
    status, body = await api.call("POST", f"/{api.room}/connections", json={})
    assert (status, body["errcode"]) == (405, "HS_METHOD_NOT_ALLOWED")
    status, body = await api.call("DELETE", "/connectiontypes")
    assert (status, body["errcode"]) == (405, "HS_METHOD_NOT_ALLOWED")
    status, body = await api.call("GET", "/nothing/here/at/all")
    assert (status, body["errcode"]) == (404, "HS_NOTFOUND")


@pytest.mark.parametrize("path", ["/github/oauth", "/github/account", "/jira/oauth", "/jira/instances/x/projects"])
async def test_services_not_enabled_say_so(api, path):
    status, body = await api.call("GET", path)
    assert (status, body["errcode"]) == (404, "HS_DISABLED_FEATURE")


async def test_requests_are_counted(api):
    await api.call("GET", "/connectiontypes")
    await api.call("GET", "/connectiontypes", headers=None)
    metrics = api.core.services.metrics.render().decode()
    assert 'hookshot_provisioning_http_request_total{method="GET",status="200"} 1.0' in metrics
