"""Outbound webhooks and unsupported connections through the bridge's core on the in-memory
homeserver (tests/fakes/matrix.py): the command, the token's way (the DM only), event routing
(other users' non-state events only), media, the delivery log route, and rooms with connections
the bridge does not serve. No Synapse: these run in about a second."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fakes.receiver import Receiver, verify
from support.bridge import PROVISIONING_SECRET
from support.core import BOT, SERVER_NAME
from support.helpers import eventually

from hookshot_py.connections.base import connection_id
from hookshot_py.core import listener_app
from hookshot_py.errors import ApiError
from hookshot_py.outbound.connection import EVENT_TYPE
from hookshot_py.outbound.request import SIGNATURE_HEADER
from hookshot_py.outbound.tokens import HookshotTokenCodec, account_data_type

ALICE = f"@alice:{SERVER_NAME}"
GHOST = f"@_webhooks_ci:{SERVER_NAME}"
AUTH = {"Authorization": f"Bearer {PROVISIONING_SECRET}"}
GITLAB_LEGACY = "uk.half-shot.matrix-github.gitlab.repository"


@pytest.fixture(scope="module")
def pass_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path_factory.mktemp("pass") / "passkey.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))  # fmt: skip
    return path


@pytest.fixture
async def receiver(aiohttp_server: Any) -> tuple[Receiver, str]:
    rec = Receiver()
    server = await aiohttp_server(rec.app(), host="127.0.0.1")
    return rec, f"http://127.0.0.1:{server.port}/in"


def outbound_config(pass_file: Path) -> dict[str, Any]:
    return {
        "generic": {"outbound": True, "outboundDelivery": {"timeoutSeconds": 5}},
        "outboundUrls": {"allowedIpRanges": ["127.0.0.1/32"]},
        "passFile": str(pass_file),
    }


async def test_command_token_routing_media_and_log(core_factory, pass_file, receiver) -> None:  # type: ignore[no-untyped-def]
    rec, url = receiver
    core = await core_factory(outbound_config(pass_file))
    room = core.room_with_bot(ALICE)
    core.hs.send_text(room, ALICE, f"!hookshot outbound-hook relay {url}")
    await core.settle()
    assert "Room configured to bridge outbound webhook **relay**." in core.hs.bodies(room)[-1]
    dm = await core.services.dms.room_for(ALICE)
    [dm_text] = [b for b in core.hs.bodies(dm) if "relay" in b]
    token = dm_text.split("secret token `")[1].split("`")[0]
    assert token.startswith("hs-ob-")
    # the token is in the DM only: not in the room's messages nor its state
    assert token not in str(core.hs.sent_in(room)) and token not in str(core.hs.room(room).state)
    assert core.hs.room(room).content(EVENT_TYPE, "relay") == {"name": "relay", "url": url, "method": "PUT"}
    # hookshot's encrypted copy, readable with the passFile (a room moved back to hookshot keeps it)
    copy = core.hs.account_data[(BOT, account_data_type(room, "relay"))]
    assert HookshotTokenCodec.from_pass_file(pass_file).decrypt(copy) == token

    # other users' non-state events go out; state events and the bridge's own users' do not
    core.hs.invite(room, BOT, GHOST)
    core.hs.join(room, GHOST)
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(1000)
    mxc = core.hs.upload(png, "image/png")
    first = core.hs.send_text(room, ALICE, "hello")
    core.hs.send_text(room, GHOST, "from a webhook")
    core.hs.send_text(room, BOT, "from the bot")
    core.hs.send_state(room, ALICE, "m.room.topic", "", {"topic": "state is not sent"})
    image = core.hs.send_message(room, ALICE, {"msgtype": "m.image", "body": "a.png", "url": mxc})
    reaction = core.hs.send_message(
        room, ALICE, {"m.relates_to": {"rel_type": "m.annotation", "event_id": first["event_id"], "key": "👍"}},
        event_type="m.reaction",
    )  # fmt: skip
    await core.settle()
    got = await rec.wait_for(3)
    assert [r.headers["X-Matrix-Hookshot-EventId"] for r in got] == [
        first["event_id"], image["event_id"], reaction["event_id"]
    ]  # fmt: skip
    assert all(verify(token, r.body, r.headers[SIGNATURE_HEADER]) for r in got)
    assert got[1].parts["media"] == ("a.png", "image/png", png)
    conn_id = connection_id(room, EVENT_TYPE, "relay")
    assert await core.db.fetchval("SELECT count(*) FROM outbound_deliveries WHERE connection_id = $1", conn_id) == 3

    # the delivery log route, on the provisioning listener
    app = listener_app(core.core, ["provisioning"], lambda: (True, {}))
    async with TestClient(TestServer(app)) as client:

        async def log(**query: str) -> tuple[int, Any]:
            resp = await client.get(f"/v1/{room}/connections/{conn_id}/deliveries",
                                    params={"userId": ALICE, **query}, headers=AUTH)  # fmt: skip
            return resp.status, await resp.json()

        async def all_delivered() -> bool:
            return (await log())[1]["counts"]["delivered"] == 3

        await eventually(all_delivered)
        status, body = await log(limit="2")
        assert status == 200 and [d["eventId"] for d in body["deliveries"]] == [
            reaction["event_id"], image["event_id"]
        ]  # fmt: skip
        assert body["next"] == body["deliveries"][-1]["id"]
        for bad in ({"limit": "0"}, {"limit": "x"}, {"status": "lost"}, {"before": "-1"}):
            status, err = await log(**bad)
            assert status == 400 and err["errcode"] == "HS_BAD_VALUE", (bad, err)

    # removed over the command: the hook, its queue and log go
    core.hs.send_text(room, ALICE, "!hookshot outbound-hook remove relay")
    await core.settle()
    assert core.hs.room(room).content(EVENT_TYPE, "relay") == {"disabled": True}
    assert await core.db.fetchval("SELECT count(*) FROM outbound_hooks") == 0


async def test_a_url_to_an_internal_address_is_refused_by_the_command(core_factory, pass_file) -> None:  # type: ignore[no-untyped-def]
    core = await core_factory({"generic": {"outbound": True}, "passFile": str(pass_file)})
    room = core.room_with_bot(ALICE)
    refused = (("http://169.254.169.254/latest/", "link-local"), ("http://localhost:8080/", "localhost resolves"))
    for url, why in refused:
        core.hs.send_text(room, ALICE, f"!hookshot outbound-hook meta {url}")
        await core.settle()
        assert "Outbound URL is not allowed" in core.hs.bodies(room)[-1] and why in core.hs.bodies(room)[-1]
    assert core.hs.room(room).content(EVENT_TYPE, "meta") is None


async def test_unsupported_state_is_reported_once_across_restarts(core_factory) -> None:  # type: ignore[no-untyped-def]
    core = await core_factory()
    room = core.room_with_bot(ALICE)
    core.hs.send_state(room, ALICE, GITLAB_LEGACY, "org/repo", {"instance": "gl", "path": "org/repo"})
    core.hs.send_state(room, ALICE, EVENT_TYPE, "relay", {"name": "relay", "url": "https://example.org/"})
    await core.settle()
    notices = [b for b in core.hs.bodies(room) if "does not serve" in b]
    assert len(notices) == 2
    assert "enable `gitlab` in the config" in notices[0] and "enable `generic.outbound: true`" in notices[1]
    gl_id = connection_id(room, "uk.half-shot.matrix-hookshot.gitlab.repository", "org/repo")
    with pytest.raises(ApiError) as info:
        core.manager.get(room, gl_id)
    assert info.value.errcode.value == "HS_UNSUPPORTED_OPERATION"
    # a restart: known from the database at once; reading the room again tells no one twice
    again = await core_factory.restart(core)
    assert {c.kind.type_name for c in again.manager.unsupported.in_room(room)} == {"GitLabRepo", "OutboundWebhook"}
    await again.manager.reconcile()
    await again.settle()
    assert len([b for b in again.hs.bodies(room) if "does not serve" in b]) == 2
    # removed by hand: no longer listed
    core.hs.send_state(room, ALICE, GITLAB_LEGACY, "org/repo", {})
    await again.settle()
    assert {c.kind.type_name for c in again.manager.unsupported.in_room(room)} == {"OutboundWebhook"}
    # the service switched on: the same state is a real connection, and no longer listed
    again.overrides = {"generic": {"outbound": True}}
    served = await core_factory.restart(again)
    assert served.manager.unsupported.in_room(room) == []
    await served.manager.reconcile()
    await served.settle()
    assert served.manager.find(room, EVENT_TYPE, "relay") is not None
    assert served.manager.unsupported.in_room(room) == []
