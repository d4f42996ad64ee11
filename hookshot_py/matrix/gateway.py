"""The bridge's hands on the homeserver for everything except messages (the outbox sends those).

Thin over mautrix's IntentAPI; raw state content is returned as plain dicts so connection types
never depend on mautrix's event classes. This is the typing boundary: the rest of the bridge
passes plain `str` ids, converted here to mautrix's `RoomID`/`UserID`/`ContentURI`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
from typing import Any
from urllib.parse import quote

import aiohttp
from mautrix.api import Method, Path
from mautrix.appservice import AppService, IntentAPI
from mautrix.errors import MatrixRequestError, MNotFound
from mautrix.types import ContentURI, RoomCreatePreset, RoomID, UserID

from hookshot_py.matrix.power import RoomPower
from hookshot_py.matrix.send_client import SendClient, SendNotSent, SendUnknown

log = logging.getLogger(__name__)

MEGOLM = "m.megolm.v1.aes-sha2"


class SendError(Exception):
    """A failed send. `retry_after_ms` is set for 429; `permanent` means retrying cannot help."""

    def __init__(
        self, message: str, *, status: int = 0, errcode: str | None = None,
        retry_after_ms: int | None = None, permanent: bool = False, definite: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.errcode = errcode
        self.retry_after_ms = retry_after_ms
        self.permanent = permanent
        # Whether the homeserver surely did not store the event. Without an answer (status 0,
        # unless `definite`) or after a server error, it may have: the outbox checks first.
        self.definite = definite or 400 <= status < 500

    @property
    def maybe_stored(self) -> bool:
        return not self.definite


class MediaError(Exception):
    """A download from the media repository failed; `permanent` means retrying cannot help."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


_MXC = re.compile(r"^mxc://([A-Za-z0-9.\-:\[\]]+)/([A-Za-z0-9_\-]+)$")


class MatrixGateway:
    """Its public methods are the bridge's whole interface to the homeserver (mautrix's intents
    stay inside), so the in-memory fake in tests/fakes/matrix.py can stand in for it; a test
    checks that both have the same methods and signatures."""

    def __init__(self, appservice: AppService) -> None:
        self.appservice = appservice

    @property
    def bot_mxid(self) -> str:
        return self.appservice.bot_mxid

    @property
    def _bot(self) -> IntentAPI:
        return self.appservice.intent

    def _intent(self, user_id: str | None = None) -> IntentAPI:
        if user_id is None or user_id == self.bot_mxid:
            return self._bot
        return self._bot.user(UserID(user_id))

    # -- rooms and membership -------------------------------------------------------------

    async def ensure_joined(self, room_id: str, user_id: str | None = None, *, recheck: bool = False) -> None:
        """Join (the bot inviting a ghost first when needed). `recheck` skips the membership cache."""
        await self._intent(user_id).ensure_joined(RoomID(room_id), ignore_cache=recheck)

    async def join(self, room_id: str) -> None:
        await self._bot.join_room(RoomID(room_id), max_retries=0)
        await self._bot.state_store.joined(RoomID(room_id), self._bot.mxid)

    async def leave(self, room_id: str, reason: str | None = None, *, user_id: str | None = None) -> None:
        await self._intent(user_id).leave_room(RoomID(room_id), reason=reason)

    async def joined_rooms(self) -> list[str]:
        return list(await self._bot.get_joined_rooms())

    async def joined_members(self, room_id: str) -> set[str]:
        resp = await self._bot.api.request(Method.GET, Path.v3.rooms[room_id].joined_members)
        return set((resp.get("joined") or {}).keys())

    async def membership(self, room_id: str, user_id: str) -> str | None:
        content = await self.state(room_id, "m.room.member", user_id)
        return content.get("membership") if content else None

    async def create_dm(self, user_id: str, name: str | None = None, *, encrypted: bool = False) -> str:
        """A direct-message room with `user_id` (invited), encrypted from its first event if asked:
        messages queued for it before the user joins are shared with their devices as invited."""
        encryption = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}}
        room_id = await self._bot.create_room(
            preset=RoomCreatePreset.TRUSTED_PRIVATE,
            invitees=[UserID(user_id)],
            is_direct=True,
            name=name,
            initial_state=[encryption] if encrypted else [],
        )
        await self._bot.state_store.joined(room_id, self._bot.mxid)
        return room_id

    # -- state ----------------------------------------------------------------------------

    async def state_event(self, room_id: str, event_type: str, state_key: str = "") -> dict[str, Any] | None:
        """The whole state event (with sender), or None."""
        try:
            return await self._bot.api.request(
                Method.GET,
                Path.v3.rooms[room_id].state[event_type][state_key],
                query_params={"format": "event"},
            )
        except MNotFound:
            return None

    async def state(self, room_id: str, event_type: str, state_key: str = "") -> dict[str, Any] | None:
        """The content of a state event, or None when there is none."""
        try:
            return await self._bot.api.request(
                Method.GET, Path.v3.rooms[room_id].state[event_type][state_key]
            )
        except MNotFound:
            return None

    async def room_state(self, room_id: str) -> list[dict[str, Any]]:
        events = await self._bot.api.request(Method.GET, Path.v3.rooms[room_id].state)
        return events if isinstance(events, list) else []

    async def put_state(
        self, room_id: str, event_type: str, state_key: str, content: dict[str, Any]
    ) -> str:
        resp = await self._bot.api.request(
            Method.PUT, Path.v3.rooms[room_id].state[event_type][state_key], content
        )
        return resp["event_id"]

    async def power(self, room_id: str) -> RoomPower:
        power_levels = await self.state(room_id, "m.room.power_levels")
        create = await self.state_event(room_id, "m.room.create")
        if create is not None and "content" not in create:
            # A server that ignores ?format=event answers the bare content.
            create = {"content": create}
        return RoomPower.from_state(power_levels, create)

    # -- account data (the bot's, per room) -----------------------------------------------

    async def room_account_data(self, room_id: str, data_type: str) -> dict[str, Any] | None:
        try:
            return await self._bot.get_account_data(data_type, room_id=RoomID(room_id))
        except MNotFound:
            return None

    async def set_room_account_data(self, room_id: str, data_type: str, content: dict[str, Any]) -> None:
        await self._bot.set_account_data(data_type, content, room_id=RoomID(room_id))

    async def account_data(self, data_type: str) -> dict[str, Any] | None:
        """The bot's global account data of this type (private to the bot), or None."""
        try:
            return await self._bot.get_account_data(data_type)
        except MNotFound:
            return None

    async def set_account_data(self, data_type: str, content: dict[str, Any]) -> None:
        await self._bot.set_account_data(data_type, content)

    # -- profiles ---------------------------------------------------------------------------

    async def ensure_registered(self, user_id: str | None = None) -> None:
        """Register the bot or a ghost with the homeserver (a no-op once done)."""
        await self._intent(user_id).ensure_registered()

    async def profile(self, user_id: str) -> tuple[str | None, str | None]:
        """The user's (displayname, avatar_url); (None, None) when it has no profile."""
        try:
            profile = await self._intent(user_id).get_profile(UserID(user_id))
        except MatrixRequestError as e:
            if e.http_status == 404:
                return (None, None)
            raise
        return (profile.displayname, profile.avatar_url)

    async def set_profile(self, user_id: str, displayname: str | None, avatar_url: str | None) -> None:
        intent = self._intent(user_id)
        await intent.ensure_registered()
        if displayname is not None:
            await intent.set_displayname(displayname)
        if avatar_url is not None:
            await intent.set_avatar_url(ContentURI(avatar_url))

    # -- media ----------------------------------------------------------------------------------

    async def download_media(self, mxc: str, *, max_bytes: int, timeout: float) -> tuple[bytes, str | None]:
        """The file behind `mxc` and its content type, as the bot, over the authenticated media
        API (Matrix 1.11; the unauthenticated one for older servers). Reads at most `max_bytes`."""
        match = _MXC.match(mxc)
        if match is None:
            raise MediaError(f"{mxc!r} is not an mxc:// URI", permanent=True)
        server, media_id = (quote(part, safe="") for part in match.groups())
        api = self._bot.api
        paths = (
            f"/_matrix/client/v1/media/download/{server}/{media_id}",
            f"/_matrix/media/v3/download/{server}/{media_id}",
        )
        try:
            async with asyncio.timeout(timeout):
                for i, path in enumerate(paths):
                    url = api.base_url.with_path(path, encoded=True)
                    headers = {"Authorization": f"Bearer {self.appservice.as_token}"} if i == 0 else {}
                    async with api.session.get(url, headers=headers, params={"allow_redirect": "true"}) as resp:
                        if resp.status == 404 and i == 0 and await _unrecognized(resp):
                            continue  # a server without authenticated media
                        if resp.status != 200:
                            raise MediaError(f"the media repository answered {resp.status} for {mxc}",
                                             permanent=resp.status in (400, 403, 404))
                        if (resp.content_length or 0) > max_bytes:
                            raise MediaError(f"{mxc} is larger than {max_bytes} bytes", permanent=True)
                        body = bytearray()
                        async for chunk in resp.content.iter_chunked(65536):
                            body += chunk
                            if len(body) > max_bytes:
                                raise MediaError(f"{mxc} is larger than {max_bytes} bytes", permanent=True)
                        return bytes(body), resp.content_type if "Content-Type" in resp.headers else None
        except TimeoutError as e:
            raise MediaError(f"downloading {mxc} took longer than {timeout:.0f} s", permanent=False) from e
        except aiohttp.ClientError as e:
            raise MediaError(f"downloading {mxc} failed: {type(e).__name__}: {e}", permanent=False) from e
        raise MediaError(f"the media repository does not know {mxc}", permanent=True)

    # -- sending (only the outbox calls this) -------------------------------------------------

    async def send_event(
        self, room_id: str, sender: str, event_type: str, content: dict[str, Any] | bytes, txn_id: str,
        *, timeout: float = 60.0,
    ) -> str:
        """PUT /send with a caller-chosen txn id: a resend after a crash is idempotent (as long as
        the homeserver remembers the id; the outbox checks its marker when it may not). `content`
        may be JSON already encoded.

        Over `SendClient` rather than mautrix: it is the bridge's hot path, and mautrix drops
        429's `retry_after_ms`, which we honour.
        """
        path = (
            f"{self._room_path(room_id)}/send/{quote(event_type, safe='')}/{quote(txn_id, safe='')}"
            f"{self._as_user(sender)}"
        )
        body = content if isinstance(content, bytes) else json.dumps(content, ensure_ascii=False).encode()
        try:
            answer = await self._send_client.put(path, body, timeout=timeout)
        except SendNotSent as e:
            raise SendError(str(e), definite=True) from e
        except SendUnknown as e:
            raise SendError(str(e)) from e
        try:
            data = json.loads(answer.body) if answer.body else {}
        except ValueError:
            data = {}
        if answer.status == 200 and isinstance(data, dict) and isinstance(data.get("event_id"), str):
            return data["event_id"]
        data = data if isinstance(data, dict) else {}
        errcode = data.get("errcode")
        message = f"{answer.status} {errcode or ''} {data.get('error', '')}".strip()
        if answer.status == 429:
            retry = data.get("retry_after_ms")
            if not isinstance(retry, int):
                header = answer.retry_after or ""
                retry = int(header) * 1000 if header.isdigit() else None
            raise SendError(message, status=429, errcode=errcode, retry_after_ms=retry)
        permanent = 400 <= answer.status < 500 and errcode != "M_FORBIDDEN"
        raise SendError(message, status=answer.status, errcode=errcode, permanent=permanent)

    async def find_markers(
        self, room_id: str, key: str, wanted: set[str], oldest_ts: float, *, max_pages: int = 20
    ) -> dict[str, str]:
        """Which of `wanted` appear as `content[key]` among the room's recent events (newest
        first, back to `oldest_ts` epoch seconds or `max_pages` pages): marker → event id."""
        found: dict[str, str] = {}
        token: str | None = None
        path = Path.v3.rooms[room_id].messages
        for _ in range(max_pages):
            query = {"dir": "b", "limit": "100"}
            if token:
                query["from"] = token
            page = await self._bot.api.request(Method.GET, path, query_params=query)
            chunk = page.get("chunk") or []
            for event in chunk:
                marker = (event.get("content") or {}).get(key)
                if marker in wanted and marker not in found:
                    found[marker] = event.get("event_id", "")
            token = page.get("end")
            if len(found) == len(wanted) or not chunk or not token:
                break
            if min(e.get("origin_server_ts", 0) for e in chunk) / 1000 < oldest_ts:
                break
        return found

    async def close(self) -> None:
        """Close the connections of the send client (at stop)."""
        if "_send_client" in self.__dict__:
            await self._send_client.close()

    @functools.cached_property
    def _send_client(self) -> SendClient:
        return SendClient(str(self._bot.api.base_url), self.appservice.as_token)

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - one gateway per bridge, bounded
    def _room_path(self, room_id: str) -> str:
        return f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}"

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - one gateway per bridge, bounded
    def _as_user(self, sender: str) -> str:
        return f"?user_id={quote(sender, safe='')}" if sender != self.bot_mxid else ""

async def _unrecognized(resp: aiohttp.ClientResponse) -> bool:
    try:
        body = await resp.json(content_type=None)
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("errcode") == "M_UNRECOGNIZED"
