"""The bridge process: one event loop, the appservice listener plus the configured listeners."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from hookshot_py import __version__
from hookshot_py.config import Config, Registration
from hookshot_py.core import Core, assemble, listener_app
from hookshot_py.db.database import Database
from hookshot_py.db.embedded import EmbeddedPostgres
from hookshot_py.integration import Integration
from hookshot_py.listeners.http import ListenerRunner, add_health_routes
from hookshot_py.matrix.appservice import HookshotAppService
from hookshot_py.matrix.events import join_permission_rooms
from hookshot_py.matrix.gateway import MatrixGateway
from hookshot_py.metrics import Metrics
from hookshot_py.services import Services, build_services
from hookshot_py.tokens import SecretBox

log = logging.getLogger(__name__)


class NotStarted(RuntimeError):
    """The bridge's parts exist only between `start()` and `stop()`."""


@dataclass
class Runtime:
    """Everything a started bridge runs, built together in `Bridge.start`."""

    db: Database
    appservice: HookshotAppService
    core: Core
    runners: list[web.AppRunner] = field(default_factory=list)

    @property
    def services(self) -> Services:
        return self.core.services


class Bridge:
    def __init__(self, config: Config, registration: Registration) -> None:
        self.config = config
        self.registration = registration
        self.metrics = Metrics()
        self.embedded: EmbeddedPostgres | None = None
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
            dsn = await asyncio.to_thread(self.embedded.start)
        db = Database(dsn)
        await db.start()
        try:
            self._runtime = await self._assemble(db)
        except BaseException:
            await db.stop()
            raise
        rt = self._runtime
        add_health_routes(rt.appservice.app, self._readiness)
        await rt.appservice.start(cfg.bridge.bind_address, cfg.bridge.port)
        log.info("Appservice listening on %s:%d", cfg.bridge.bind_address, cfg.bridge.port)

        loaded = await rt.services.manager.load()
        await rt.services.dms.load()
        log.info("Loaded %d connection(s) from the database", loaded)
        await self._start_listeners(rt)
        await self._wait_for_homeserver(rt.appservice)
        await rt.services.outbox.start()
        for integration in rt.core.integrations:
            await integration.start()
        self.ready = True
        rt.appservice.ready = True
        self._spawn(self._after_start(rt.services), "after-start")
        log.info("Bridge ready")

    async def _assemble(self, db: Database) -> Runtime:
        """Build every part of the bridge, wired together, before anything listens."""
        reg = self.registration
        appservice = HookshotAppService(
            db=db,
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
        services = build_services(self.config, db, MatrixGateway(appservice), self.metrics, box)
        core = assemble(services, is_bridge_user=reg.is_exclusive_user, spawn=self._spawn)
        appservice.on_event = core.router.on_event
        return Runtime(db, appservice, core)

    async def stop(self) -> None:
        self.ready = False
        rt, self._runtime = self._runtime, None
        if rt is not None:
            for runner in rt.runners:
                await runner.cleanup()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if rt is not None:
            for integration in rt.core.integrations:
                try:
                    await integration.stop()
                except Exception:
                    log.exception("Stopping %s failed", integration.name)
            await rt.services.close()
            await rt.appservice.stop()
            await rt.db.stop()
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop)
        log.info("Bridge stopped")

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _wait_for_homeserver(self, appservice: HookshotAppService) -> None:
        delay = 1.0
        while True:
            try:
                await appservice.intent.whoami()
                break
            except Exception as e:
                log.warning(
                    "Homeserver at %s not reachable yet (%s); retrying in %.0fs", self.config.bridge.url, e, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30)
        try:
            # A successful ping also makes Synapse resend, at once, the transactions it could not
            # deliver while we were down (instead of waiting out its backoff).
            await appservice.ping_self()
        except Exception as e:
            log.warning(
                "The homeserver cannot reach this bridge at the registration's url (%s): %s. "
                "Check `url` in the registration file.", self.registration.url, e,
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
        depth = self._runtime.services.outbox.depth if self._runtime else 0
        return self.ready, {"outboxDepth": depth}

    # -- listeners ---------------------------------------------------------------------------------

    async def _start_listeners(self, rt: Runtime) -> None:
        for listener in self.config.listeners:
            runner = ListenerRunner(listener_app(rt.core, listener.resources, self._readiness))
            await runner.setup()
            await web.TCPSite(runner, listener.bind_address, listener.port).start()
            rt.runners.append(runner)
            log.info("Listener %s:%d serving %s", listener.bind_address, listener.port, ", ".join(listener.resources))
