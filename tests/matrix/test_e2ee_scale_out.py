"""Encrypted rooms with two bridge processes on one Postgres, behind a load balancer.

One process holds the bot's Olm device; the other hands it, through the spool in Postgres, the
encrypted commands, room keys and membership changes it receives, and leaves encrypted rooms to
it in the outbox. The test first sends every homeserver transaction to the process *without* the
device (the harshest case), then alternates, then SIGKILLs the holder: the survivor loads the
same device from Postgres and carries on. A real encrypting client reads everything."""

from __future__ import annotations

from pathlib import Path

import asyncpg
from support.bridge import BridgeHarness, create_database, process_harnesses
from support.fixtures import BOT
from support.helpers import eventually, http

from hookshot_py.devenv.balancer import Balancer
from hookshot_py.matrix.crypto import CRYPTO_LOCK_ID

from .test_e2ee import ENCRYPTED, _devices, _encrypted_room_with_bot, _stored, e2ee_user  # noqa: F401

HOLDER_READY = "End-to-end encryption ready"
FOLLOWING = "Another bridge process holds the bot's encryption device"
TAKEN_OVER = "takes the bot's encryption device over"


def _log(h: BridgeHarness) -> str:
    path = h.workdir / "bridge.log"
    return path.read_text(errors="replace") if path.exists() else ""


async def test_two_encrypting_processes_share_one_device_and_the_survivor_takes_it_over(
    synapse, registration_path: Path, bridge_as_port: int, pg_admin_dsn: str, tmp_path: Path, e2ee_user  # noqa: F811
):
    dsn = await create_database(pg_admin_dsn)
    harnesses = process_harnesses(synapse, registration_path, tmp_path, dsn, ENCRYPTED)
    a, b = harnesses
    a_url, b_url = (f"http://127.0.0.1:{h.as_port}" for h in harnesses)
    balancer = Balancer(bridge_as_port, [a_url, b_url])
    await balancer.start()
    try:
        await a.spawn()
        assert HOLDER_READY in _log(a)
        await b.spawn()  # a second encrypting process starts (it used to be refused)
        assert FOLLOWING in _log(b) and HOLDER_READY not in _log(b)

        # Phase 1: every transaction goes to B, which has no device. A decrypts and answers.
        balancer.backends = [b_url]
        alice = await e2ee_user("alice")
        room = await _encrypted_room_with_bot(alice)
        sent = await alice.send_text(room, "!hookshot webhook relay")
        reply = await alice.wait_for_text(room, "Room configured to bridge webhook **relay**", sender=BOT, timeout=60)
        assert (await _stored(alice, room, sent))["type"] == "m.room.encrypted"
        assert (await _stored(alice, room, reply.event_id))["type"] == "m.room.encrypted"
        _, url = await alice.dm_webhook_url("relay")
        path = "/webhook/" + url.rsplit("/", 1)[1]
        ghost = "@_webhooks_relay:hookshot.test"

        # A webhook accepted by B is delivered, encrypted, by A.
        assert (await http("POST", b.base_url + path, json={"text": "via B 0"}))[0] == 202
        msg = await alice.wait_for_text(room, "via B 0", sender=ghost)
        stored = await _stored(alice, room, msg.event_id)
        assert stored["type"] == "m.room.encrypted" and "via B" not in str(stored["content"])

        # Bob joins; B sees his membership and hands it to A, which shares the next key with him.
        bob = await e2ee_user("bob")
        await alice.plain.invite(room, bob.user_id)
        await bob.join(room)
        await alice.wait_joined(room, bob.user_id)
        assert (await http("POST", b.base_url + path, json={"text": "for bob 0"}))[0] == 202
        await bob.wait_for_text(room, "for bob 0", sender=ghost, timeout=60)

        # Phase 2: transactions alternate; webhooks to either process keep their order.
        balancer.backends = [a_url, b_url]
        for i in range(8):
            h = harnesses[i % 2]
            assert (await http("POST", h.base_url + path, json={"text": f"alt {i:02d}"}))[0] == 202
        assert await alice.wait_for_bodies(room, "alt ", 8) == [f"alt {i:02d}" for i in range(8)]
        await bob.send_text(room, "!hookshot help")
        await bob.wait_for_text(room, "Hookshot commands", sender=BOT, timeout=60)
        [device] = await _devices(dsn)

        # Phase 3: A dies. B takes the same device over from Postgres and carries on.
        a.kill()
        balancer.backends = [b_url]

        async def taken_over() -> bool:
            return TAKEN_OVER in _log(b) and _log(b).count(HOLDER_READY) == 1

        await eventually(taken_over, timeout=30)
        for i in range(5):
            assert (await http("POST", b.base_url + path, json={"text": f"after {i:02d}"}))[0] == 202
        assert await alice.wait_for_bodies(room, "after ", 5) == [f"after {i:02d}" for i in range(5)], b.log_tail()
        # Bob reads everything posted after he joined (what came before was not shared with him).
        assert await bob.wait_for_bodies(room, "alt ", 8) == [f"alt {i:02d}" for i in range(8)]
        assert await bob.wait_for_bodies(room, "after ", 5) == [f"after {i:02d}" for i in range(5)]
        await alice.send_text(room, "!hookshot webhook list")
        await alice.wait_for_text(room, "relay", sender=BOT, timeout=60)

        # B loses the lock's connection (Postgres restarted, say): it stops using the device, takes
        # the lock again and reloads the device from Postgres.
        await _cut_lock_connection(dsn)

        async def reloaded() -> bool:
            return "Lost the encryption device's lock" in _log(b) and _log(b).count(HOLDER_READY) == 2

        await eventually(reloaded, timeout=30)
        assert (await http("POST", b.base_url + path, json={"text": "reloaded 0"}))[0] == 202
        await alice.wait_for_text(room, "reloaded 0", sender=ghost, timeout=60)
        assert not alice.undecryptable(room)
        assert await _devices(dsn) == [device]
        # One device all along: B loaded A's (a fresh database may make A replace an earlier test's).
        assert (_log(a) + _log(b)).count("Created the bot's encryption device") == 1
        assert "Crypto state lost" not in _log(b)
        await b.terminate()
    finally:
        for h in harnesses:
            if h.process is not None:
                h.kill()
        await balancer.stop()


async def _cut_lock_connection(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        pids = await conn.fetch(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
            "AND classid = ($1::bigint >> 32)::oid AND objid = ($1::bigint & 4294967295)::oid",
            CRYPTO_LOCK_ID,
        )
        assert len(pids) == 1, pids
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pids[0]["pid"])
    finally:
        await conn.close()
