"""Events from the homeserver, routed: memberships (invites, joins, kicks), connection state
events (to the ConnectionManager), messages (to the command dispatcher), and every non-state
event from someone other than the bridge's users (to the ConnectionManager, for the room's
outbound webhooks)."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from mautrix.errors import MatrixRequestError

from hookshot_py.commands.dispatcher import CommandDispatcher
from hookshot_py.connections.manager import ConnectionManager
from hookshot_py.db.cluster import Cluster
from hookshot_py.matrix.dm import DirectMessages
from hookshot_py.matrix.gateway import MatrixGateway
from hookshot_py.matrix.outbox import Outbox, OutgoingEvent
from hookshot_py.metrics import Metrics
from hookshot_py.permissions import Permissions

log = logging.getLogger(__name__)

MEMBER = "m.room.member"
# Members of permission rooms, seen by whichever process got the event: {"o", "r", "u", "m"}.
MEMBERS_CHANNEL = "hookshot_members"
WELCOME = "Hello! I'm the hookshot bridge bot. Type `help` to see what I can do for you here."

Spawn = Callable[[Awaitable[Any], str], None]


class EventRouter:
    def __init__(
        self,
        *,
        gateway: MatrixGateway,
        manager: ConnectionManager,
        dms: DirectMessages,
        outbox: Outbox,
        permissions: Permissions,
        dispatcher: CommandDispatcher,
        metrics: Metrics,
        room_members: dict[str, set[str]],
        is_bridge_user: Callable[[str], bool],
        spawn: Spawn,
        cluster: Cluster | None = None,
    ) -> None:
        self.gateway = gateway
        self.manager = manager
        self.dms = dms
        self.outbox = outbox
        self.permissions = permissions
        self.dispatcher = dispatcher
        self.metrics = metrics
        self.room_members = room_members
        self.is_bridge_user = is_bridge_user
        self.spawn = spawn
        self.cluster = cluster
        if cluster is not None:
            cluster.subscribe(MEMBERS_CHANNEL, self._member_elsewhere)

    async def on_event(self, event: dict[str, Any]) -> None:
        # Each event is a request of its own for the outbox's causal order: what it queues
        # (command replies included) follows what was committed before it arrived.
        self.outbox.begin_request()
        self.metrics.appservice_events.inc()
        etype = event.get("type")
        if etype == MEMBER and isinstance(event.get("state_key"), str):
            await self._on_member(event)
        elif isinstance(etype, str) and self.manager.follows_state(etype) and "state_key" in event:
            await self.manager.apply_state_event(event)
        elif "state_key" not in event:
            sender = event.get("sender")
            own = not isinstance(sender, str) or self.is_bridge_user(sender) or sender == self.gateway.bot_mxid
            if not own:
                await self.manager.room_event(event)
            if etype == "m.room.message" and not own:
                # Commands may take a while (forge API calls): don't hold up the transaction. The
                # bridge's own messages (echoed back by the homeserver) are no commands.
                self.spawn(self.dispatcher.handle_message(event), "command")

    async def _on_member(self, event: dict[str, Any]) -> None:
        room_id, target, sender = event["room_id"], event["state_key"], event.get("sender", "")
        membership = (event.get("content") or {}).get("membership")
        if room_id in self.room_members:
            self._apply_member(room_id, target, membership)
            if self.cluster is not None:
                payload = {"o": self.cluster.process_id, "r": room_id, "u": target, "m": membership}
                await self.cluster.notify(MEMBERS_CHANNEL, json.dumps(payload))
        if target == self.gateway.bot_mxid:
            if membership == "invite":
                self.spawn(self._on_bot_invited(event), "invite")
            elif membership == "join":
                self.manager.access.mark_joined(room_id, True)
            elif membership in ("leave", "ban"):
                log.info("Bot left %s (%s by %s)", room_id, membership, sender)
                await self.manager.forget_room(room_id)
                await self.dms.forget_room(room_id)
        elif membership == "invite" and self.is_bridge_user(target) and not self.is_bridge_user(sender):
            # Ghosts only join rooms the bridge puts them in.
            self.spawn(self._reject(room_id, target), "reject-invite")
        elif membership in ("leave", "ban") and self.dms.user_of(room_id) == target:
            await self.dms.forget_room(room_id)
            self.spawn(self.gateway.leave(room_id, "The DM was closed"), "leave-dm")

    def _apply_member(self, room_id: str, user_id: str, membership: Any) -> None:
        members = self.room_members.get(room_id)
        if members is not None:
            (members.add if membership == "join" else members.discard)(user_id)

    def _member_elsewhere(self, payload: str) -> None:
        data = json.loads(payload)
        if self.cluster is not None and data.get("o") != self.cluster.process_id:
            self._apply_member(data["r"], data["u"], data.get("m"))

    async def _reject(self, room_id: str, user_id: str) -> None:
        try:
            await self.gateway.leave(room_id, "This user cannot be invited.", user_id=user_id)
        except MatrixRequestError as e:
            log.debug("Rejecting invite of %s to %s failed: %s", user_id, room_id, e)

    async def _on_bot_invited(self, event: dict[str, Any]) -> None:
        room_id, inviter = event["room_id"], event.get("sender", "")
        if not self.permissions.check_any(inviter, "commands"):
            log.info("Rejecting invite to %s from %s: no permission on this bridge", room_id, inviter)
            try:
                await self.gateway.leave(room_id, "You are not allowed to use this bridge.")
            except MatrixRequestError as e:
                log.warning("Could not reject invite to %s: %s", room_id, e)
            return
        try:
            await self.gateway.join(room_id)
        except MatrixRequestError as e:
            log.warning("Could not join %s after an invite from %s: %s", room_id, inviter, e)
            return
        self.manager.access.mark_joined(room_id, True)
        log.info("Joined %s, invited by %s", room_id, inviter)
        if (event.get("content") or {}).get("is_direct"):
            await self.dms.record(inviter, room_id)
            await self.outbox.enqueue([OutgoingEvent(room_id, {"msgtype": "m.notice", "body": WELCOME})])
        else:
            await self.manager.reconcile_room(room_id)


async def join_permission_rooms(gateway: MatrixGateway, room_ids: list[str], room_members: dict[str, set[str]]) -> None:
    """Rooms named as permission actors: the bot joins them to know their members."""
    for room_id in room_ids:
        try:
            await gateway.join(room_id)
            room_members[room_id] = await gateway.joined_members(room_id)
        except Exception as e:
            log.warning("Could not join permission room %s: %s", room_id, e)
