"""The bridge process: one event loop, the appservice listener plus the configured listeners."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from hookshot_py import __version__
from hookshot_py.commands.dispatcher import CommandDispatcher
from hookshot_py.commands.registry import CommandRegistry
from hookshot_py.config import Config, ListenerConfig, Registration
from hookshot_py.db.database import Database
from hookshot_py.db.embedded import EmbeddedPostgres
from hookshot_py.integration import Integration
from hookshot_py.integrations import create_all
from hookshot_py.listeners.http import ListenerRunner, add_health_routes, error_middleware, timed
from hookshot_py.matrix.appservice import HookshotAppService
from hookshot_py.matrix.events import EventRouter, join_permission_rooms
from hookshot_py.matrix.gateway import MatrixGateway
from hookshot_py.metrics import Metrics
from hookshot_py.provisioning.api import ProvisioningApi
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
    services: Services
    integrations: list[Integration]
    dispatcher: CommandDispatcher
    router: EventRouter
    runners: list[web.AppRunner] = field(default_factory=list)


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
        return self.runtime.integrations

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
        for integration in rt.integrations:
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
        integrations = create_all(services)
        room_commands, dm_commands = CommandRegistry(), CommandRegistry()
        for integration in integrations:
            for ctype in integration.connection_types():
                services.manager.add_type(ctype)
            room_commands.extend(integration.room_commands())
            dm_commands.extend(integration.dm_commands())
        dispatcher = CommandDispatcher(
            manager=services.manager,
            dms=services.dms,
            outbox=services.outbox,
            permissions=services.permissions,
            metrics=self.metrics,
            room_commands=room_commands,
            dm_commands=dm_commands,
            is_bridge_user=reg.is_exclusive_user,
        )
        router = EventRouter(
            gateway=services.gateway,
            manager=services.manager,
            dms=services.dms,
            outbox=services.outbox,
            permissions=services.permissions,
            dispatcher=dispatcher,
            metrics=self.metrics,
            room_members=services.room_members,
            is_bridge_user=reg.is_exclusive_user,
            spawn=self._spawn,
        )
        appservice.on_event = router.on_event
        return Runtime(db, appservice, services, integrations, dispatcher, router)

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
            for integration in rt.integrations:
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
            await s.gateway.bot.ensure_registered()
            await self._apply_bot_profile(s)
        except Exception as e:
            log.warning("Could not set the bot's profile: %s", e)
        await join_permission_rooms(s.gateway, list(s.permissions.room_actors), s.room_members)
        await s.manager.reconcile()

    async def _apply_bot_profile(self, s: Services) -> None:
        bot = self.config.bot
        if bot.displayname is None and bot.avatar is None:
            return
        profile = await s.gateway.bot.get_profile(s.gateway.bot.mxid)
        name = bot.displayname if bot.displayname != profile.displayname else None
        avatar = bot.avatar if bot.avatar != profile.avatar_url else None
        if name is not None or avatar is not None:
            await s.gateway.set_profile(s.gateway.bot_mxid, name, avatar)

    def _readiness(self) -> tuple[bool, dict[str, object]]:
        depth = self._runtime.services.outbox.depth if self._runtime else 0
        return self.ready, {"outboxDepth": depth}

    # -- listeners ---------------------------------------------------------------------------------

    async def _start_listeners(self, rt: Runtime) -> None:
        for listener in self.config.listeners:
            runner = ListenerRunner(self._listener_app(rt, listener))
            await runner.setup()
            await web.TCPSite(runner, listener.bind_address, listener.port).start()
            rt.runners.append(runner)
            log.info("Listener %s:%d serving %s", listener.bind_address, listener.port, ", ".join(listener.resources))

    def _listener_app(self, rt: Runtime, listener: ListenerConfig) -> web.Application:
        def observe(request: web.Request, status: int, seconds: float) -> None:
            route = request.match_info.route.resource
            path = route.canonical if route is not None else "unmatched"
            if path.startswith("/webhook") or path == "/{hook_id}":
                self.metrics.webhook_requests.labels(path=path, method=request.method, status=str(status)).inc()
                self.metrics.webhook_latency.labels(path=path).observe(seconds)

        resources = listener.resources
        app = web.Application(middlewares=[timed(observe), error_middleware], client_max_size=64 * 1024**2)
        add_health_routes(app, self._readiness)
        if "metrics" in resources:
            async def metrics(_: web.Request) -> web.Response:
                return web.Response(body=self.metrics.render(), content_type="text/plain", charset="utf-8")

            app.router.add_get("/metrics", metrics)
        if "provisioning" in resources and self.config.provisioning is not None:
            ProvisioningApi(rt.services, self.config.provisioning.secret).add_routes(app, rt.integrations)
        if "webhooks" in resources:
            for integration in rt.integrations:
                integration.add_webhook_routes(app)
        return app
