"""The bridge process: one event loop, the appservice listener plus the configured listeners."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from hookshot_py import __version__
from hookshot_py.config import Config, Registration
from hookshot_py.config.check import encryption_error
from hookshot_py.core import Core, assemble, listener_app
from hookshot_py.db.cluster import APPLICATION_PREFIX, Cluster, ClusterError, new_process_id
from hookshot_py.db.database import Database
from hookshot_py.db.embedded import EmbeddedPostgres
from hookshot_py.integration import Integration
from hookshot_py.lifecycle import STOP_DEADLINE, Deadline
from hookshot_py.listeners.http import ListenerRunner, add_health_routes
from hookshot_py.matrix.appservice import HookshotAppService
from hookshot_py.matrix.encrypted_rooms import EncryptedRooms
from hookshot_py.matrix.events import join_permission_rooms
from hookshot_py.matrix.gateway import MatrixGateway
from hookshot_py.matrix.homeserver import HomeserverCheck, HomeserverState, HomeserverStatus, Setup
from hookshot_py.metrics import Metrics
from hookshot_py.services import Services, build_services
from hookshot_py.tokens import SecretBox

if TYPE_CHECKING:
    from hookshot_py.matrix.crypto import RoomCrypto

log = logging.getLogger(__name__)


class NotStarted(RuntimeError):
    """The bridge's parts exist only between `start()` and `stop()`."""


@dataclass
class Runtime:
    """Everything a started bridge runs, built together in `Bridge.start`."""

    db: Database
    cluster: Cluster
    appservice: HookshotAppService
    core: Core
    encrypted: EncryptedRooms
    crypto: RoomCrypto | None = None  # with encryption enabled
    runners: list[web.AppRunner] = field(default_factory=list)

    @property
    def services(self) -> Services:
        return self.core.services


class Bridge:
    def __init__(self, config: Config, registration: Registration, registration_path: Path | None = None) -> None:
        self.config = config
        self.registration = registration
        self.registration_path = registration_path  # named in start-up errors
        self.metrics = Metrics()
        self.embedded: EmbeddedPostgres | None = None
        self.homeserver: HomeserverCheck | None = None
        self.ready = False
        self._runtime: Runtime | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise NotStarted("the bridge is not running")
        return self._runtime

    @property
    def services(self) -> Services:
        return self.runtime.services

    @property
    def integrations(self) -> list[Integration]:
        return self.runtime.core.integrations

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.config
        log.info("Starting hookshot_py %s for %s", __version__, cfg.bridge.domain)
        dsn = cfg.database.url
        if dsn is None:
            self.embedded = EmbeddedPostgres(cfg.database.data_directory / "postgres")
            dsn = await self.embedded.start_async()
        db = Database(dsn)
        cluster = Cluster(dsn, new_process_id())
        try:
            await db.start(application_name=APPLICATION_PREFIX + cluster.process_id)
            # Alone on the embedded Postgres; beside other processes on a shared one.
            await cluster.start(exclusive=self.embedded is not None)
            self._runtime = await self._assemble(db, cluster)
        except ClusterError:
            self.embedded = None  # it belongs to the process already running on it: leave it be
            await db.stop()
            raise
        except BaseException:
            await cluster.stop()
            await db.stop()
            raise
        rt = self._runtime
        add_health_routes(rt.appservice.app, self._readiness)
        await rt.appservice.start(cfg.bridge.bind_address, cfg.bridge.port)
        log.info("Appservice listening on %s:%d", cfg.bridge.bind_address, cfg.bridge.port)

        loaded = await rt.services.manager.load()
        await rt.services.dms.load()
        log.info("Loaded %d connection(s) from the database", loaded)
        self.homeserver = HomeserverCheck(rt.appservice, self._homeserver_setup())
        await self._start_listeners(rt)
        await self.homeserver.wait_for_token()
        if rt.crypto is not None:  # before the ping: Synapse then resends what it held back
            await rt.crypto.start(
                on_late_decrypt=rt.core.router.on_event,
                on_encrypted=rt.encrypted.on_encrypted,
                on_leading=rt.services.outbox.resync,
            )
        if not await self.homeserver.ping():
            self._spawn(self.homeserver.ping_until_ok(), "homeserver-ping")
        await rt.services.outbox.start()
        for integration in rt.core.integrations:
            await integration.start()
        rt.core.dispatcher.start(rt.services.leases)
        gc.freeze()  # what start-up loaded (connections, caches) lives as long as the process
        self.ready = True
        rt.appservice.ready = True
        self._spawn(self._after_start(rt.services), "after-start")
        log.info("Bridge ready")

    async def _assemble(self, db: Database, cluster: Cluster) -> Runtime:
        """Build every part of the bridge, wired together, before anything listens."""
        reg = self.registration
        appservice = HookshotAppService(
            db=db,
            process_id=cluster.process_id,
            server=self.config.bridge.url,
            domain=self.config.bridge.domain,
            as_token=reg.as_token,
            hs_token=reg.hs_token,
            bot_localpart=reg.sender_localpart,
            id=reg.id,
            log="hookshot_py.mautrix",
            default_ua=f"hookshot_py/{__version__}",
        )
        box = await asyncio.to_thread(SecretBox.from_pass_file, self.config.pass_file)
        crypto = self._make_crypto(appservice, db, cluster, box)
        services = build_services(
            self.config, db, MatrixGateway(appservice), self.metrics, box, sealer=crypto, cluster=cluster
        )
        core = assemble(services, is_bridge_user=reg.is_exclusive_user, spawn=self._spawn)
        # Encrypted events are decrypted (or answered) before the router sees them.
        encrypted = EncryptedRooms(
            crypto, services.gateway, services.outbox, reg.is_exclusive_user, core.router.on_event, self._spawn
        )
        appservice.on_event = encrypted.on_event
        appservice.is_own_user = reg.is_exclusive_user
        appservice.crypto = crypto
        appservice.cpu = services.cpu
        return Runtime(db, cluster, appservice, core, encrypted, crypto)

    def _make_crypto(
        self, appservice: HookshotAppService, db: Database, cluster: Cluster, box: SecretBox
    ) -> RoomCrypto | None:
        """The bot's encryption device, when `encryption.enabled` (README, "Encrypted rooms")."""
        if self.config.encryption is None or not self.config.encryption.enabled:
            return None
        error = encryption_error(self.config, self.registration)
        if error is not None:
            raise error
        from hookshot_py.matrix.crypto import RoomCrypto  # mautrix's crypto: only when enabled
        from hookshot_py.matrix.crypto_spool import CryptoSpool

        return RoomCrypto(
            homeserver=self.config.bridge.url,
            bot_mxid=appservice.bot_mxid,
            as_token=self.registration.as_token,
            dsn=db.dsn,
            pickle_key=box.derive("e2ee pickle key"),
            bot=lambda: appservice.intent,  # exists once the appservice started
            is_bridge_user=self.registration.is_exclusive_user,
            spool=CryptoSpool(db),
            cluster=cluster,
        )

    async def stop(self) -> None:
        """Stop everything, within `lifecycle.STOP_DEADLINE` whatever start() got to: each step
        has a share of the time; the embedded Postgres is stopped last, in every case."""
        self.ready = False
        deadline = Deadline(STOP_DEADLINE - 3)  # what is left is for the embedded Postgres
        rt, self._runtime = self._runtime, None
        try:
            if rt is not None:
                for runner in rt.runners:
                    await deadline.run("a listener", runner.cleanup(), cap=3)
            for task in list(self._tasks):
                task.cancel()
            await deadline.run("background tasks", asyncio.gather(*self._tasks, return_exceptions=True), cap=2)
            if rt is not None:
                for integration in rt.core.integrations:
                    await deadline.run(f"the {integration.name} integration", integration.stop(), cap=2)
                await deadline.run("command redo", rt.core.dispatcher.stop(), cap=1)
                await deadline.run("the outbox", rt.services.close(), cap=2)
                if rt.crypto is not None:
                    await deadline.run("encryption", rt.crypto.stop(), cap=2)
                await deadline.run("the appservice listener", rt.appservice.stop(), cap=2)
                await deadline.run("the cluster connection", rt.cluster.stop(), cap=1)
                await deadline.run("the database pool", rt.db.stop(), cap=3)
        finally:
            if self.embedded is not None:
                await self.embedded.stop_async()
        log.info("Bridge stopped")

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _homeserver_setup(self) -> Setup:
        bridge = self.config.bridge
        return Setup(
            homeserver_url=bridge.url,
            registration_url=self.registration.url,
            registration_file=str(self.registration_path or "the registration file"),
            bind=f"{bridge.bind_address}:{bridge.port}",
        )

    async def _after_start(self, s: Services) -> None:
        """Slow start-up work that must not delay readiness."""
        try:
            await s.gateway.ensure_registered()
            await self._apply_bot_profile(s)
        except Exception as e:
            log.warning("Could not set the bot's profile: %s", e)
        await join_permission_rooms(s.gateway, list(s.permissions.room_actors), s.room_members)
        await s.manager.reconcile()

    async def _apply_bot_profile(self, s: Services) -> None:
        bot = self.config.bot
        if bot.displayname is None and bot.avatar is None:
            return
        displayname, avatar_url = await s.gateway.profile(s.gateway.bot_mxid)
        name = bot.displayname if bot.displayname != displayname else None
        avatar = bot.avatar if bot.avatar != avatar_url else None
        if name is not None or avatar is not None:
            await s.gateway.set_profile(s.gateway.bot_mxid, name, avatar)

    def _readiness(self) -> tuple[bool, dict[str, object]]:
        """Ready once started and the homeserver and the bridge reach each other; the body says
        what is wrong with the homeserver otherwise."""
        depth = self._runtime.services.outbox.depth if self._runtime else 0
        homeserver = self.homeserver.state if self.homeserver else HomeserverState(HomeserverStatus.CHECKING)
        ready = self.ready and homeserver.status is HomeserverStatus.OK
        return ready, {"outboxDepth": depth, "homeserver": homeserver.to_json()}

    # -- listeners ---------------------------------------------------------------------------------

    async def _start_listeners(self, rt: Runtime) -> None:
        for listener in self.config.listeners:
            runner = ListenerRunner(listener_app(rt.core, listener.resources, self._readiness))
            await runner.setup()
            await web.TCPSite(runner, listener.bind_address, listener.port).start()
            rt.runners.append(runner)
            log.info("Listener %s:%d serving %s", listener.bind_address, listener.port, ", ".join(listener.resources))
