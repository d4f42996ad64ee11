"""The crypto module's parts that need no homeserver: the one-process lock and the rooms it tracks."""

from __future__ import annotations

import pytest

from hookshot_py.matrix.crypto import CryptoInUse, _Rooms, hold_crypto_lock
from support.bridge import create_database


async def test_a_second_process_cannot_take_the_crypto_state_until_the_first_lets_go(pg_admin_dsn):
    dsn = await create_database(pg_admin_dsn)
    first = await hold_crypto_lock(dsn)
    with pytest.raises(CryptoInUse, match="another bridge process"):
        await hold_crypto_lock(dsn)
    await first.close()  # a clean stop, or the process dying, releases it
    second = await hold_crypto_lock(dsn)
    await second.close()


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
