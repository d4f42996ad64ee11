"""The crypto module's parts that need no homeserver: the device's lock, the spool, the rooms it tracks."""

from __future__ import annotations

import asyncio

import asyncpg
from support.bridge import create_database

from hookshot_py.db.database import Database
from hookshot_py.matrix import crypto_spool
from hookshot_py.matrix.crypto import _Rooms, try_crypto_lock, wait_crypto_lock
from hookshot_py.matrix.crypto_spool import CryptoSpool


async def test_one_process_holds_the_device_and_a_waiting_one_gets_it_when_the_first_lets_go(pg_admin_dsn):
    dsn = await create_database(pg_admin_dsn)
    first = await try_crypto_lock(dsn)
    assert first is not None
    assert await try_crypto_lock(dsn) is None
    waiting = asyncio.create_task(wait_crypto_lock(dsn))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await first.close()  # a clean stop, or the process dying, releases it
    second = await asyncio.wait_for(waiting, 10)
    assert await try_crypto_lock(dsn) is None
    await second.close()


async def test_the_spool_keeps_items_in_order_until_they_are_done_and_notifies(pg_admin_dsn, caplog, monkeypatch):
    dsn = await create_database(pg_admin_dsn)
    db = Database(dsn)
    await db.start()
    listener = await asyncpg.connect(dsn)
    heard: list[str] = []
    await listener.add_listener("hookshot_crypto_spool", lambda *args: heard.append(args[2]))
    try:
        spool = CryptoSpool(db)
        await spool.put("extras", {"to_device": [{"type": "m.room_key"}]})
        await spool.put("event", {"event_id": "$1", "type": "m.room.encrypted"})
        await spool.put("state", {"type": "m.room.member", "state_key": "@a:x"})
        items = await spool.take(2)
        assert [(i.kind, i.body) for i in items] == [
            ("extras", {"to_device": [{"type": "m.room_key"}]}),
            ("event", {"event_id": "$1", "type": "m.room.encrypted"}),
        ]
        await spool.done([i.id for i in items])
        assert [i.kind for i in await spool.take()] == ["state"]
        assert not [r for r in caplog.records if r.name == crypto_spool.__name__]  # nothing dropped
        for _ in range(50):
            if len(heard) == 3:
                break
            await asyncio.sleep(0.05)
        assert len(heard) == 3

        # Full: the newest item is refused and said so; nothing is notified for it.
        monkeypatch.setattr(crypto_spool, "MAX_ITEMS", 1)
        await spool.put("extras", {"to_device": []})
        await spool.put("event", {"event_id": "$2"})
        assert [i.kind for i in await spool.take()] == ["state", "extras"]
        assert "spool is full" in caplog.text and "dropping a event item" in caplog.text
    finally:
        await listener.close()
        await db.stop()


async def test_rooms_know_encryption_and_members_without_the_bridges_own_users():
    fetched: list[str] = []

    async def encryption(room_id: str) -> dict | None:
        fetched.append(room_id)
        return {"algorithm": "m.megolm.v1.aes-sha2", "rotation_period_msgs": 10} if room_id == "!enc" else None

    async def members(room_id: str) -> set[str]:
        return {"@alice:x", "@hookshot:x", "@_webhooks_ci:x"}

    rooms = _Rooms(encryption, members, lambda u: u == "@hookshot:x" or u.startswith("@_webhooks_"))
    assert await rooms.is_encrypted("!enc") and not await rooms.is_encrypted("!plain")
    assert (await rooms.get_encryption_info("!enc")).rotation_period_msgs == 10
    assert fetched == ["!enc", "!plain"]  # cached, both ways
    assert await rooms.room_members("!enc") == {"@alice:x"}
    assert await rooms.find_shared_rooms("@alice:x") == ["!enc"]
    assert await rooms.find_shared_rooms("@bob:x") == []


async def test_a_room_the_bot_cannot_read_yet_is_not_remembered_as_unencrypted():
    from mautrix.errors import MForbidden

    joined = False

    async def encryption(room_id: str) -> dict | None:
        if not joined:  # a room key can come with the invite, before the bot joined
            raise MForbidden(403, "not in room")
        return {"algorithm": "m.megolm.v1.aes-sha2"}

    async def members(room_id: str) -> set[str]:
        return set()

    rooms = _Rooms(encryption, members, lambda u: False)
    assert await rooms.get_encryption_info("!r") is None
    joined = True
    assert await rooms.is_encrypted("!r")
