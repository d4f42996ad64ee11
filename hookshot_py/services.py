"""The bridge's shared parts, built once by `build_services` and handed to listeners and
service packages. Every field is set: nothing here is optional or filled in later."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from hookshot_py import __version__
from hookshot_py.config import Config
from hookshot_py.connections.access import RoomAccess
from hookshot_py.connections.manager import ConnectionManager
from hookshot_py.connections.mirror import ConnectionMirror
from hookshot_py.cpu_pool import CpuPool
from hookshot_py.db.database import Database
from hookshot_py.matrix.dm import DirectMessages
from hookshot_py.matrix.gateway import MatrixGateway
from hookshot_py.matrix.outbox import Outbox, Sealer
from hookshot_py.matrix.profiles import Profiles
from hookshot_py.metrics import Metrics
from hookshot_py.net.guard import UrlPolicy
from hookshot_py.permissions import Permissions
from hookshot_py.tokens import SecretBox, TokenStore

log = logging.getLogger(__name__)

# (room_id, repository name as the forge spells it, the push delivery's summary: its top-level
# scalars and commit ids, see `forges.payload.push_summary`)
PushListener = Callable[[str, str, dict[str, Any]], Awaitable[object]]


@dataclass
class Services:
    config: Config
    db: Database
    gateway: MatrixGateway
    outbox: Outbox
    profiles: Profiles
    manager: ConnectionManager
    permissions: Permissions
    dms: DirectMessages
    metrics: Metrics
    # For configured servers (forge APIs): URLs from strangers go through `url_policy`'s guard.
    http: aiohttp.ClientSession
    # What URLs the bridge did not configure itself may reach (`outboundUrls`; net/guard.py).
    url_policy: UrlPolicy
    tokens: TokenStore
    secrets: SecretBox
    # Members of the rooms named as permission actors, kept current from membership events.
    room_members: dict[str, set[str]] = field(default_factory=dict)
    push_listeners: list[PushListener] = field(default_factory=list)
    # CPU work on what strangers send (markdown, HTML), off the event loop with a deadline.
    cpu: CpuPool = field(default_factory=CpuPool)

    async def push_seen(self, room_id: str, repo: str, payload: dict[str, Any]) -> None:
        """A forge connection in `room_id` received a push: tell the services that care (Barkeep
        watches the pushed commits). Listeners' failures are logged, never raised."""
        for listener in self.push_listeners:
            try:
                await listener(room_id, repo, payload)
            except Exception:
                log.exception("A push listener failed for %s in %s", repo, room_id)

    async def close(self) -> None:
        await self.outbox.stop()
        await self.http.close()
        await self.cpu.close()


def build_services(
    config: Config,
    db: Database,
    gateway: MatrixGateway,
    metrics: Metrics,
    secrets: SecretBox,
    sealer: Sealer | None = None,
) -> Services:
    """`sealer` encrypts what the outbox sends to encrypted rooms (None: encryption disabled)."""
    profiles = Profiles(db, gateway)
    outbox = Outbox(db, gateway, profiles, metrics, sealer=sealer)
    room_members: dict[str, set[str]] = {}
    permissions = Permissions(
        [(r.actor, [(s.service, s.level) for s in r.services]) for r in config.permissions],
        room_members=lambda room: room_members.get(room, set()),
    )
    manager = ConnectionManager(ConnectionMirror(db), RoomAccess(gateway, permissions), gateway, outbox, metrics)
    return Services(
        config=config,
        db=db,
        gateway=gateway,
        outbox=outbox,
        profiles=profiles,
        manager=manager,
        permissions=permissions,
        dms=DirectMessages(db, gateway),
        metrics=metrics,
        http=aiohttp.ClientSession(headers={"User-Agent": f"hookshot_py/{__version__}"}),
        url_policy=UrlPolicy.create(config.outbound_urls.allowed_hosts, config.outbound_urls.allowed_ip_ranges),
        tokens=TokenStore(db, secrets),
        secrets=secrets,
        room_members=room_members,
    )
