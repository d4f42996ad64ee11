"""Encrypted rooms end to end: real Synapse (appservice E2EE options on), real Postgres, and a real
encrypting user (matrix-nio + vodozemac) in the room; the bridge encrypts with mautrix + libolm."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest_asyncio
from support.e2ee import E2EEUser
from support.fixtures import BOT, room_with_bot
from support.helpers import eventually, http, is_notice_with

from hookshot_py.devenv.matrix_client import MatrixTestClient
from hookshot_py.generic.connection import EVENT_TYPE
from hookshot_py.matrix.crypto import CRYPTO_SCHEMA
from hookshot_py.matrix.encrypted_rooms import UNSUPPORTED_NOTICE

ENCRYPTED = {"encryption": {"enabled": True}}

MakeE2EE = Callable[[str], Awaitable[E2EEUser]]


@pytest_asyncio.fixture(loop_scope="session")
async def e2ee_user(make_user, tmp_path: Path) -> AsyncIterator[MakeE2EE]:
    users: list[E2EEUser] = []

    async def factory(name: str) -> E2EEUser:
        plain = await make_user(name)
        user = await E2EEUser(plain, tmp_path / f"nio-{plain.user_id[1:].split(':')[0]}").start()
        users.append(user)
        return user

    try:
        yield factory
    finally:
        for user in users:
            await user.close()


async def _encrypted_room_with_bot(user: E2EEUser) -> str:
    room = await user.create_encrypted_room([BOT])
    await user.wait_joined(room, BOT)
    await user.plain.set_power_levels(room, {BOT: 50})
    return room


async def _stored(user: E2EEUser, room: str, event_id: str) -> dict:
    """The event as the homeserver stores it (what anyone without keys sees)."""
    for event in await user.plain.messages(room, limit=500):
        if event.get("event_id") == event_id:
            return event
    raise AssertionError(f"{event_id} not in {room}")


async def test_command_in_encrypted_room_is_decrypted_and_answered_encrypted(bridge_factory, e2ee_user):
    await bridge_factory(overrides=ENCRYPTED)
    alice = await e2ee_user("alice")
    room = await _encrypted_room_with_bot(alice)

    sent = await alice.send_text(room, "!hookshot help")
    reply = await alice.wait_for_text(room, "Hookshot commands", sender=BOT)

    assert (await _stored(alice, room, sent))["type"] == "m.room.encrypted"
    stored = await _stored(alice, room, reply.event_id)
    assert stored["type"] == "m.room.encrypted", stored
    assert "body" not in stored["content"] and stored["content"]["algorithm"] == "m.megolm.v1.aes-sha2"


async def test_webhook_message_is_posted_encrypted_by_its_ghost_and_read_by_the_user(bridge_factory, e2ee_user):
    await bridge_factory(overrides=ENCRYPTED)
    alice = await e2ee_user("alice")
    room = await _encrypted_room_with_bot(alice)

    await alice.send_text(room, "!hookshot webhook ci-builds")
    await alice.wait_for_text(room, "Room configured to bridge webhook **ci-builds**", sender=BOT)
    dm, url = await alice.dm_webhook_url("ci-builds")  # the DM the bot opens is encrypted too
    dm_event = next(e for e in alice.decrypted(dm) if "ci-builds" in str(getattr(e, "body", "")))
    assert (await _stored(alice, dm, dm_event.event_id))["type"] == "m.room.encrypted"

    assert (await http("POST", url, json={"text": "Build **passed**"}))[0] == 202
    msg = await alice.wait_for_text(room, "Build **passed**", sender="@_webhooks_ci-builds:hookshot.test")
    assert msg.source["content"]["uk.half-shot.hookshot.webhook_data"] == {"text": "Build **passed**"}
    stored = await _stored(alice, room, msg.event_id)
    assert stored["type"] == "m.room.encrypted" and "Build" not in str(stored["content"])


async def test_a_member_who_joins_later_reads_the_messages_posted_after(bridge_factory, e2ee_user):
    harness = await bridge_factory(overrides=ENCRYPTED)
    alice = await e2ee_user("alice")
    room = await _encrypted_room_with_bot(alice)
    manager = harness.bridge.services.manager
    _, outcome = await manager.create(room, EVENT_TYPE, {"name": "late"}, user_id=alice.user_id)
    url = outcome.secrets["url"]
    assert (await http("POST", url, json={"text": "before bob"}))[0] == 202
    await alice.wait_for_text(room, "before bob")

    bob = await e2ee_user("bob")
    await alice.plain.invite(room, bob.user_id)
    await bob.join(room)
    await alice.wait_joined(room, bob.user_id)
    assert (await http("POST", url, json={"text": "after bob"}))[0] == 202

    await bob.wait_for_text(room, "after bob", sender="@_webhooks_late:hookshot.test")
    await alice.wait_for_text(room, "after bob")
    # And bob's own encrypted command reaches the bridge.
    await bob.send_text(room, "!hookshot help")
    await bob.wait_for_text(room, "Hookshot commands", sender=BOT)


async def test_a_members_new_device_reads_the_messages_posted_after_it_appeared(bridge_factory, e2ee_user, tmp_path):
    harness = await bridge_factory(overrides=ENCRYPTED)
    alice = await e2ee_user("alice")
    room = await _encrypted_room_with_bot(alice)
    manager = harness.bridge.services.manager
    _, outcome = await manager.create(room, EVENT_TYPE, {"name": "devices"}, user_id=alice.user_id)
    url = outcome.secrets["url"]
    assert (await http("POST", url, json={"text": "to the first device"}))[0] == 202
    await alice.wait_for_text(room, "to the first device")

    # Alice logs in on a second device (its keys are uploaded by start()).
    login = await alice.plain.request("POST", "/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": alice.user_id},
        "password": alice.plain.password,
    })  # fmt: skip
    second_plain = MatrixTestClient(
        alice.plain.base_url, alice.user_id, login["access_token"], device_id=login["device_id"]
    )
    second = await E2EEUser(second_plain, tmp_path / "nio-alice-second").start()
    try:
        crypto = harness.bridge.runtime.crypto

        async def bridge_knows_it() -> bool:
            # The device list change reached the bridge, which dropped the room's Megolm session.
            known = login["device_id"] in (await crypto.store.get_devices(alice.user_id) or {})
            return known and await crypto.store.get_outbound_group_session(room) is None

        await eventually(bridge_knows_it, timeout=30)
        assert (await http("POST", url, json={"text": "to both devices"}))[0] == 202
        await second.wait_for_text(room, "to both devices", sender="@_webhooks_devices:hookshot.test")
        await alice.wait_for_text(room, "to both devices")
    finally:
        await second.close()
        await second_plain.close()


async def test_an_undecryptable_command_gets_a_reply_and_runs_when_its_key_arrives_late(bridge_factory, e2ee_user):
    harness = await bridge_factory(overrides=ENCRYPTED)
    alice = await e2ee_user("alice")
    room = await _encrypted_room_with_bot(alice)
    bot_device_id = harness.bridge.runtime.crypto.device_id
    await alice.wait_device(BOT, bot_device_id)
    bot_device = alice.nio.device_store[BOT][bot_device_id]
    alice.nio.blacklist_device(bot_device)  # her client withholds her room key from the bridge

    sent = await alice.send_text(room, "!hookshot help")
    reply = await alice.wait_for_text(room, "I could not decrypt your message", sender=BOT, timeout=60)
    assert reply.source["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == sent

    # The key arrives late (as a client answering the bridge's key request would send it): the command runs.
    raw = await _stored(alice, room, sent)
    olm = alice.nio.olm
    group_session = olm.inbound_group_store.get(room, raw["content"]["sender_key"], raw["content"]["session_id"])
    olm_session = olm.session_store.get(bot_device.curve25519)
    assert group_session is not None and olm_session is not None
    await alice.nio.to_device(olm._encrypt_forwarding_key(room, group_session, olm_session, bot_device))
    await alice.wait_for_text(room, "Hookshot commands", sender=BOT)


async def test_restart_and_sigkill_with_messages_queued_keep_encryption_working(bridge_factory, e2ee_user, synapse):
    harness = await bridge_factory(overrides=ENCRYPTED, start=False)
    await harness.spawn()
    alice = await e2ee_user("alice")
    room = await _encrypted_room_with_bot(alice)
    await alice.send_text(room, "!hookshot webhook durable")
    await alice.wait_for_text(room, "Room configured to bridge webhook", sender=BOT)
    _, url = await alice.dm_webhook_url("durable")
    assert (await http("POST", url, json={"text": "first 0"}))[0] == 202
    await alice.wait_for_text(room, "first 0")
    [device] = await _devices(harness.dsn)

    # A clean restart: same device, same Megolm session state; both directions still work.
    assert await harness.terminate() == 0
    await harness.spawn()
    # Synapse may still count the bridge as down for a moment, and drops the to-device events
    # (room keys) it sends meanwhile (a Synapse limit, see the README): wait until it delivers
    # to the bridge again, as seen in a plain room, before the next encrypted command.
    plain = await room_with_bot(alice.plain, name="plain room")
    await alice.plain.send_text(plain, "!hookshot help")
    await alice.plain.wait_for_message(plain, is_notice_with("Hookshot commands"), 60)
    await alice.send_text(room, "!hookshot help")
    await alice.wait_for_text(room, "Hookshot commands", sender=BOT)

    # Homeserver down: webhooks are queued (plaintext rows); then the bridge dies hard.
    n = 20
    await synapse.kill()
    for i in range(n):
        assert (await http("POST", url, json={"text": f"queued {i:02d}"})) == (202, {"ok": True})
    harness.kill()
    await synapse.start()
    await harness.spawn()

    bodies = await alice.wait_for_bodies(room, "queued ", n)
    assert bodies == [f"queued {i:02d}" for i in range(n)], harness.log_tail()
    assert not alice.undecryptable(room), "some messages could not be decrypted"
    # Each was sent once, encrypted, although the rows were plaintext when the bridge died.
    stored = [
        e for e in await alice.plain.messages(room, limit=500)
        if e.get("sender") == "@_webhooks_durable:hookshot.test" and e["type"] != "m.room.member"
    ]
    assert len(stored) == n + 1 and all(e["type"] == "m.room.encrypted" for e in stored)
    # Commands still decrypt after the SIGKILL.
    await alice.send_text(room, "!hookshot webhook list")
    await alice.wait_for_text(room, "durable", sender=BOT)
    # One device all along: the restarts found their crypto state.
    assert (harness.workdir / "bridge.log").read_text().count("Created the bot's encryption device") == 1
    assert await _devices(harness.dsn) == [device]
    await harness.terminate()


async def _homeserver_delivers_live(harness, user: E2EEUser, room: str) -> None:
    """Two room events in a row reach the in-process bridge: Synapse's backlog for it is flushed."""
    seen: set[str] = set()
    appservice = harness.bridge.runtime.appservice
    inner = appservice.on_event

    async def spy(event: dict) -> None:
        seen.add(event.get("event_id", ""))
        await inner(event)

    appservice.on_event = spy
    try:
        for i in range(2):
            event_id = await user.plain.send_state(room, "m.room.topic", "", {"topic": f"probe {i}"})

            async def delivered(event_id: str = event_id) -> bool:
                return event_id in seen

            await eventually(delivered, timeout=30)
    finally:
        appservice.on_event = inner


async def _outbox_idle(dsn: str) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        return not await conn.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL")
    finally:
        await conn.close()


async def _devices(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return [r["device_id"] for r in await conn.fetch(f"SELECT device_id FROM {CRYPTO_SCHEMA}.crypto_account")]
    finally:
        await conn.close()


async def test_lost_crypto_state_is_detected_explained_and_recovered(bridge_factory, e2ee_user, caplog):
    harness = await bridge_factory(overrides=ENCRYPTED)
    alice = await e2ee_user("alice")
    room = await _encrypted_room_with_bot(alice)
    old_device = harness.bridge.runtime.crypto.device_id
    await harness.stop()
    conn = await asyncpg.connect(harness.dsn)
    try:
        await conn.execute(f"DROP SCHEMA {CRYPTO_SCHEMA} CASCADE")
    finally:
        await conn.close()

    caplog.clear()
    await harness.start()
    new_device = harness.bridge.runtime.crypto.device_id
    assert new_device != old_device
    lost = [r.getMessage() for r in caplog.records if "Crypto state lost" in r.getMessage()]
    assert lost and old_device in lost[0], [r.getMessage() for r in caplog.records]
    await alice.wait_device(BOT, new_device)  # her client learns the new device as any client would
    # Synapse drops to-device events (her new room key) while it still counts the restarted bridge as
    # down (README, "Encrypted rooms"): wait until it delivers live again, as it soon does.
    await _homeserver_delivers_live(harness, alice, room)
    # The new device works: alice's client learns it and the bot reads her commands again.
    await alice.send_text(room, "!hookshot help")
    await alice.wait_for_text(room, "Hookshot commands", sender=BOT)


async def test_encryption_disabled_tells_an_encrypted_room_once_in_clear(bridge_factory, e2ee_user, caplog):
    caplog.set_level(logging.DEBUG, logger="hookshot_py.matrix.encrypted_rooms")
    harness = await bridge_factory()
    alice = await e2ee_user("alice")
    room = await _encrypted_room_with_bot(alice)

    notice = await alice.plain.wait_for_message(room, is_notice_with("encryption is not enabled on this bridge"))
    assert notice["type"] == "m.room.message" and notice["sender"] == BOT  # in clear
    assert notice["content"]["body"] == UNSUPPORTED_NOTICE
    sent = [await alice.send_text(room, "!hookshot help"), await alice.send_text(room, "!hookshot help")]

    async def both_seen() -> bool:  # the bridge handled both encrypted commands
        seen = " ".join(r.getMessage() for r in caplog.records if "encryption is disabled" in r.getMessage())
        return all(event_id in seen for event_id in sent)

    await eventually(both_seen)
    await eventually(lambda: _outbox_idle(harness.dsn))
    events = await alice.plain.messages(room)
    assert sum(1 for e in events if e.get("content", {}).get("body") == UNSUPPORTED_NOTICE) == 1
    assert not any("Hookshot commands" in str(e.get("content")) for e in events)
