"""The outbound hook connection type: hookshot's state rules, the URL guard at creation (clear
refusals, after DNS), the token (stored encrypted, hookshot's copy written and adopted), and
queueing the room's events."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from hookshot_py.connections.base import Connection
from hookshot_py.db.database import Database
from hookshot_py.errors import ApiError
from hookshot_py.net.guard import UrlPolicy
from hookshot_py.outbound.connection import EVENT_TYPE, OutboundHookType
from hookshot_py.outbound.queue import OutboundQueue
from hookshot_py.outbound.tokens import HookshotTokenCodec, account_data_type
from hookshot_py.tokens import SecretBox

ROOM = "!room:hookshot.test"


class AccountData:
    """The bot's global account data (what the gateway reads and writes)."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}

    async def account_data(self, data_type: str) -> dict[str, Any] | None:
        return self.data.get(data_type)

    async def set_account_data(self, data_type: str, content: dict[str, Any]) -> None:
        self.data[data_type] = content


@pytest.fixture(scope="module")
def codec(tmp_path_factory: pytest.TempPathFactory) -> HookshotTokenCodec:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path: Path = tmp_path_factory.mktemp("key") / "passkey.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))  # fmt: skip
    return HookshotTokenCodec.from_pass_file(path)


def make_type(codec: HookshotTokenCodec, policy: UrlPolicy | None = None, db: Database | None = None,
              account: AccountData | None = None, wakes: list[int] | None = None) -> OutboundHookType:  # fmt: skip
    queue = OutboundQueue(db, SecretBox(os.urandom(32)), "p1")  # type: ignore[arg-type]
    return OutboundHookType(queue, codec, account or AccountData(), policy or UrlPolicy.create(),  # type: ignore[arg-type]
                            lambda: (wakes if wakes is not None else []).append(1))  # fmt: skip


def issues(ctype: OutboundHookType, state: dict[str, Any], *, is_new: bool = True) -> list[str]:
    return [f"{i.path}: {i.message}" for i in ctype.validate(state, existing=None, is_new=is_new)[1]]


def test_state_rules_are_hookshots(codec: HookshotTokenCodec) -> None:
    ctype = make_type(codec)
    state, found = ctype.validate({"name": "ci-hook", "url": "https://example.org/in", "priority": 3},
                                  existing=None, is_new=True)  # fmt: skip
    assert (state, found) == ({"name": "ci-hook", "url": "https://example.org/in", "method": "PUT"}, [])
    assert ctype.validate({"name": "ci", "url": "http://example.org", "method": "POST"}, existing=None,
                          is_new=False)[0]["method"] == "POST"  # fmt: skip
    assert issues(ctype, {"name": "ab", "url": "https://example.org"}) == [
        "/name: A webhook name must be between 3-64 characters."
    ]
    assert issues(ctype, {"name": "ab", "url": "https://example.org"}, is_new=False) == []  # found in a room
    assert issues(ctype, {"url": "https://example.org"}) == ["/name: A webhook name must be a string."]
    assert issues(ctype, {"name": "abc", "url": 5}) == ["/url: Outbound URL must be a string"]
    assert issues(ctype, {"name": "abc", "url": "ftp://example.org/x"}) == [
        "/url: Outbound URL protocol must be http or https"
    ]
    assert issues(ctype, {"name": "abc", "url": "https://example.org", "method": "GET"}) == [
        "/method: Outbound Method must be one of PUT,POST"
    ]


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::1]/", "loopback"),
        ("http://[::ffff:192.168.0.1]/", "private"),
        ("https://user:pw@example.org/", "credentials"),
    ],
)
def test_internal_addresses_are_refused_in_any_state(codec: HookshotTokenCodec, url: str, why: str) -> None:
    ctype = make_type(codec)
    for is_new in (True, False):
        [problem] = issues(ctype, {"name": "abc", "url": url}, is_new=is_new)
        assert problem.startswith("/url: Outbound URL is not allowed:") and why in problem


def test_config_can_allow_an_internal_range(codec: HookshotTokenCodec) -> None:
    ctype = make_type(codec, UrlPolicy.create(allowed_ranges=["10.0.0.0/8"], allowed_hosts=["*.corp.example"]))
    assert issues(ctype, {"name": "abc", "url": "http://10.1.2.3/hook"}) == []
    assert issues(ctype, {"name": "abc", "url": "http://192.168.1.1/hook"}) != []


async def test_creation_resolves_the_host_and_refuses_internal_ones(codec: HookshotTokenCodec, db: Database) -> None:
    ctype = make_type(codec, db=db)
    for url, why in (
        ("http://localhost:9/hook", "localhost resolves to"),
        ("http://no-such-host.invalid/hook", "could not be resolved"),
    ):
        conn = Connection(ROOM, EVENT_TYPE, "abc", {"name": "abc", "url": url, "method": "PUT"})
        with pytest.raises(ApiError) as info:
            await ctype.prepare(conn, existing=None, user_id="@alice:hookshot.test")
        assert info.value.errcode.value == "HS_BAD_VALUE" and why in info.value.error, info.value.error
        assert info.value.extra["validationErrors"][0]["path"] == "/url"
    # allowed by config: accepted
    allowed = make_type(codec, UrlPolicy.create(allowed_hosts=["localhost"]), db=db)
    conn = Connection(ROOM, EVENT_TYPE, "abc", {"name": "abc", "url": "http://localhost:9/hook", "method": "PUT"})
    outcome = await allowed.prepare(conn, existing=None, user_id="@alice:hookshot.test")
    assert outcome.secrets["token"].startswith("hs-ob-")


async def test_token_is_stored_encrypted_and_copied_for_hookshot(codec: HookshotTokenCodec, db: Database) -> None:
    account, wakes = AccountData(), []
    ctype = make_type(codec, UrlPolicy.create(allowed_hosts=["localhost"]), db, account, wakes)
    conn = Connection(ROOM, EVENT_TYPE, "ci-hook", {"name": "ci-hook", "url": "http://localhost:9/", "method": "PUT"})
    token = (await ctype.prepare(conn, existing=None, user_id="@alice:hookshot.test")).secrets["token"]
    await ctype.on_loaded(conn)
    assert ctype.secrets(conn) == {"token": token}
    blob = await db.fetchval("SELECT token FROM outbound_hooks WHERE connection_id = $1", conn.id)
    assert token.encode() not in bytes(blob)
    assert codec.decrypt(account.data[account_data_type(ROOM, "ci-hook")]) == token
    # a new process reads it from the database
    other = make_type(codec, db=db, account=account)
    other.queue.box = ctype.queue.box
    await other.start([conn])
    assert other.secrets(conn) == {"token": token}
    # room events are queued (once) and the sender woken
    event = {"type": "m.room.message", "event_id": "$1", "room_id": ROOM, "sender": "@bob:x", "content": {}}
    await ctype.on_room_event(conn, event)
    await ctype.on_room_event(conn, event)
    assert wakes == [1]
    assert await db.fetchval("SELECT count(*) FROM outbound_deliveries") == 1
    # removed: the token, queue and log go; hookshot's copy is marked deleted
    assert await ctype.on_removed(conn, user_id=None) == []
    assert await db.fetchval("SELECT count(*) FROM outbound_hooks") == 0
    assert await db.fetchval("SELECT count(*) FROM outbound_deliveries") == 0
    assert account.data[account_data_type(ROOM, "ci-hook")] == {"deleted": True}


async def test_a_hook_made_by_hookshot_keeps_its_token(codec: HookshotTokenCodec, db: Database) -> None:
    account = AccountData()
    account.data[account_data_type(ROOM, "legacy")] = codec.encrypt("hs-ob-from-hookshot")
    ctype = make_type(codec, db=db, account=account)
    conn = Connection(ROOM, EVENT_TYPE, "legacy", {"name": "legacy", "url": "https://example.org/", "method": "PUT"})
    await ctype.start([conn])
    assert ctype.secrets(conn) == {"token": "hs-ob-from-hookshot"}
    # without any copy, a fresh token is made (and shown to editors over the API)
    lost = Connection(ROOM, EVENT_TYPE, "lost", {"name": "lost", "url": "https://example.org/", "method": "POST"})
    await ctype.on_loaded(lost)
    assert (ctype.secrets(lost) or {})["token"].startswith("hs-ob-")
    # a state edit changes where deliveries go
    moved = Connection(ROOM, EVENT_TYPE, "legacy", {"name": "legacy", "url": "https://example.net/", "method": "POST"})
    await ctype.on_loaded(moved)
    row = await db.fetchrow("SELECT url, method FROM outbound_hooks WHERE connection_id = $1", conn.id)
    assert (row["url"], row["method"]) == ("https://example.net/", "POST")
    assert ctype.secrets(moved) == {"token": "hs-ob-from-hookshot"}
