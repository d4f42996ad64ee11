"""A real end-to-end-encrypting Matrix user for tests: matrix-nio with vodozemac.

Deliberately another implementation than the bridge's (mautrix + libolm): a message only passes
if two independent Olm/Megolm stacks agree. nio keeps its keys in SQLite under `store_dir`.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from nio import AsyncClient, AsyncClientConfig, MegolmEvent, RoomMessage, SyncResponse

from hookshot_py.devenv.matrix_client import MatrixTestClient

MEGOLM = {"algorithm": "m.megolm.v1.aes-sha2"}
# Enough timeline per sync that a burst of messages between two syncs is never cut ("limited").
_SYNC_FILTER = {"room": {"timeline": {"limit": 1000}}}


class E2EEUser:
    """One user with one encrypting device, logged in with the access token of `plain` (the
    plain test client of the same user, for everything that needs no crypto)."""

    def __init__(self, plain: MatrixTestClient, store_dir: Path) -> None:
        self.plain = plain
        self.user_id = plain.user_id
        store_dir.mkdir(parents=True, exist_ok=True)
        self.nio = AsyncClient(
            plain.base_url, plain.user_id, device_id=plain.device_id, store_path=str(store_dir),
            config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True),
        )  # fmt: skip
        assert plain.device_id is not None
        self.nio.restore_login(plain.user_id, plain.device_id, plain.access_token)
        self.timeline: dict[str, list[Any]] = {}

    async def start(self) -> E2EEUser:
        await self.nio.keys_upload()
        await self.sync()
        return self

    async def close(self) -> None:
        await self.nio.close()

    async def sync(self, timeout_ms: int = 0) -> None:
        resp = await self.nio.sync(
            timeout=timeout_ms, sync_filter=_SYNC_FILTER, full_state=self.nio.next_batch is None
        )
        if not isinstance(resp, SyncResponse):
            raise AssertionError(f"sync failed: {resp}")
        for room_id, room in resp.rooms.join.items():
            self.timeline.setdefault(room_id, []).extend(room.timeline.events)
        if self.nio.should_upload_keys:
            await self.nio.keys_upload()
        if self.nio.should_query_keys:
            await self.nio.keys_query()
        if self.nio.should_claim_keys:
            await self.nio.keys_claim(self.nio.get_users_for_key_claiming())

    async def create_encrypted_room(self, invite: list[str], name: str = "encrypted room") -> str:
        resp = await self.nio.room_create(
            name=name, invite=invite, initial_state=[{"type": "m.room.encryption", "state_key": "", "content": MEGOLM}]
        )
        room_id = getattr(resp, "room_id", None)
        assert room_id, resp
        return str(room_id)

    async def join(self, room_id: str) -> None:
        await self.nio.join(room_id)
        await self.sync()

    async def wait_joined(self, room_id: str, user_id: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            await self.sync(timeout_ms=300)
            room = self.nio.rooms.get(room_id)
            if room is not None and user_id in room.users and user_id not in room.invited_users:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{user_id} did not join {room_id} within {timeout}s")

    async def wait_device(self, user_id: str, device_id: str, timeout: float = 20.0) -> None:
        """Sync until our client knows `device_id` of `user_id` (device list changes come by sync)."""
        deadline = time.monotonic() + timeout
        while device_id not in {d.id for d in self.nio.device_store.active_user_devices(user_id)}:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.user_id} did not learn {user_id}'s device {device_id} in {timeout}s")
            await self.sync(timeout_ms=500)

    async def send_text(self, room_id: str, body: str) -> str:
        """Send an encrypted m.text (sharing our Megolm session with every device in the room)."""
        await self.sync()
        resp = await self.nio.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": body}, ignore_unverified_devices=True
        )
        event_id = getattr(resp, "event_id", None)
        assert event_id, resp
        return str(event_id)

    async def dm_webhook_url(self, name: str, timeout: float = 30.0) -> tuple[str, str]:
        """Accept the bot's (encrypted) DM and return (its room, the webhook URL sent for `name`)."""
        from support.helpers import URL_RE

        dm = await self.plain.wait_for_invite(timeout)
        await self.join(dm)
        event = await self.wait_for_text(dm, f"**{name}**", timeout=timeout)
        match = URL_RE.search(str(event.body))
        assert match, event
        return dm, match.group(1)

    def decrypted(self, room_id: str) -> list[RoomMessage]:
        return [e for e in self.timeline.get(room_id, []) if isinstance(e, RoomMessage)]

    def undecryptable(self, room_id: str) -> list[MegolmEvent]:
        return [e for e in self.timeline.get(room_id, []) if isinstance(e, MegolmEvent)]

    async def wait_for_text(self, room_id: str, needle: str, sender: str | None = None, timeout: float = 30.0) -> Any:
        """The first decrypted message whose body contains `needle` (from `sender`, if given)."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.decrypted(room_id):
                if needle in str(getattr(event, "body", "")) and (sender is None or event.sender == sender):
                    return event
            if time.monotonic() > deadline:
                seen = [f"{e.sender}: {getattr(e, 'body', '')!r}" for e in self.decrypted(room_id)]
                raise AssertionError(
                    f"no decrypted message with {needle!r} in {room_id} within {timeout}s; decrypted: {seen}; "
                    f"undecryptable: {len(self.undecryptable(room_id))}"
                )
            await self.sync(timeout_ms=500)
            await asyncio.sleep(0)

    async def wait_for_bodies(self, room_id: str, prefix: str, n: int, timeout: float = 90.0) -> list[str]:
        """Bodies of the decrypted messages starting with `prefix`, once there are `n` (or on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            bodies = [str(e.body) for e in self.decrypted(room_id) if str(getattr(e, "body", "")).startswith(prefix)]
            if len(bodies) >= n or time.monotonic() > deadline:
                return bodies
            await self.sync(timeout_ms=500)
