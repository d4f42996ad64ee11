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
from hookshot_py.connections.mirror import CHANNEL as MIRROR_CHANNEL
from hookshot_py.connections.mirror import ConnectionMirror
from hookshot_py.cpu_pool import CpuPool
from hookshot_py.db.cluster import Cluster
from hookshot_py.db.database import Database
from hookshot_py.db.leases import Leases
from hookshot_py.matrix.dm import CHANNEL as DM_CHANNEL
from hookshot_py.matrix.dm import DirectMessages
from hookshot_py.matrix.gateway import MatrixGateway
from hookshot_py.matrix.outbox import Outbox, Sealer, SenderSettings
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
    # This process among the others on the database (LISTEN/NOTIFY, locks) and its leases.
    cluster: Cluster
    leases: Leases
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
        await self.gateway.close()
        await self.http.close()
        await self.cpu.close()


def build_services(
    config: Config,
    db: Database,
    gateway: MatrixGateway,
    metrics: Metrics,
    secrets: SecretBox,
    sealer: Sealer | None = None,
    cluster: Cluster | None = None,
) -> Services:
    """`sealer` encrypts what the outbox sends to encrypted rooms (None: encryption disabled).
    `cluster`: this process among the others on the database, started by the caller (None: the
    outbox makes one and starts it with itself, as tests do)."""
    profiles = Profiles(db, gateway)
    settings = SenderSettings(window=config.outbox.room_window, max_sending=config.outbox.max_sending)
    leases = Leases(db, cluster, metrics) if cluster is not None else None
    outbox = Outbox(db, gateway, profiles, metrics, cluster=cluster, leases=leases, settings=settings, sealer=sealer)
    cluster, leases = outbox.cluster, outbox.leases
    room_members: dict[str, set[str]] = {}
    permissions = Permissions(
        [(r.actor, [(s.service, s.level) for s in r.services]) for r in config.permissions],
        room_members=lambda room: room_members.get(room, set()),
    )
    origin = cluster.process_id
    manager = ConnectionManager(
        ConnectionMirror(db, origin), RoomAccess(gateway, permissions), gateway, outbox, metrics
    )
    # With encryption on, the DMs the bot opens are encrypted: they carry webhook URLs and tokens.
    dms = DirectMessages(db, gateway, origin, encrypted=sealer is not None)
    # Changes other bridge processes make reach this one within a notification's time.
    cluster.subscribe(MIRROR_CHANNEL, manager.changed_elsewhere)
    cluster.subscribe(DM_CHANNEL, dms.changed_elsewhere)
    cluster.on_reconnect(manager.reload_all)
    cluster.on_reconnect(dms.load)
    return Services(
        config=config,
        db=db,
        gateway=gateway,
        outbox=outbox,
        profiles=profiles,
        manager=manager,
        permissions=permissions,
        dms=dms,
        metrics=metrics,
        http=aiohttp.ClientSession(headers={"User-Agent": f"hookshot_py/{__version__}"}),
        url_policy=UrlPolicy.create(config.outbound_urls.allowed_hosts, config.outbound_urls.allowed_ip_ranges),
        tokens=TokenStore(db, secrets),
        secrets=secrets,
        cluster=cluster,
        leases=leases,
        room_members=room_members,
    )
