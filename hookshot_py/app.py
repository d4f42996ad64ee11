"""The bridge process: one event loop, the appservice listener plus the configured listeners."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
from aiohttp import web
from mautrix.errors import MatrixRequestError

from hookshot_py import __version__
from hookshot_py.commands import builtin
from hookshot_py.commands.dispatcher import CommandDispatcher
from hookshot_py.config import Config, Registration
from hookshot_py.connections.manager import ConnectionManager
from hookshot_py.db.database import Database
from hookshot_py.db.embedded import EmbeddedPostgres
from hookshot_py.integration import Integration
from hookshot_py.integrations import create_all
from hookshot_py.listeners.http import add_health_routes, error_middleware, timed
from hookshot_py.matrix.appservice import HookshotAppService
from hookshot_py.matrix.dm import DirectMessages
from hookshot_py.matrix.gateway import MatrixGateway
from hookshot_py.matrix.outbox import Outbox, OutgoingEvent
from hookshot_py.matrix.profiles import Profiles
from hookshot_py.metrics import Metrics
from hookshot_py.permissions import Permissions
from hookshot_py.provisioning.api import ProvisioningApi
from hookshot_py.services import Services
from hookshot_py.tokens import SecretBox, TokenStore

log = logging.getLogger(__name__)

MEMBER = "m.room.member"


class Bridge:
    def __init__(self, config: Config, registration: Registration) -> None:
        self.config = config
        self.registration = registration
        self.metrics = Metrics()
        self.embedded: EmbeddedPostgres | None = None
        self.db: Database | None = None
        self.services: Services | None = None
        self.appservice: HookshotAppService | None = None
        self._runners: list[web.AppRunner] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._room_members: dict[str, set[str]] = {}
        self.ready = False
        self.integrations: list[Integration] = []

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.config
        log.info("Starting hookshot_py %s for %s", __version__, cfg.bridge.domain)
        dsn = cfg.database.url
        if dsn is None:
            self.embedded = EmbeddedPostgres(cfg.database.data_directory / "postgres")
            dsn = await asyncio.to_thread(self.embedded.start)
        self.db = Database(dsn)
        await self.db.start()

        reg = self.registration
        self.appservice = HookshotAppService(
            db=self.db,
            on_event=self._on_event,
            server=cfg.bridge.url,
            domain=cfg.bridge.domain,
            as_token=reg.as_token,
            hs_token=reg.hs_token,
            bot_localpart=reg.sender_localpart,
            id=reg.id,
            log="hookshot_py.mautrix",
            default_ua=f"hookshot_py/{__version__}",
        )
        add_health_routes(self.appservice.app, self._readiness)
        await self.appservice.start(cfg.bridge.bind_address, cfg.bridge.port)
        log.info("Appservice listening on %s:%d", cfg.bridge.bind_address, cfg.bridge.port)

        gateway = MatrixGateway(self.appservice)
        profiles = Profiles(self.db, gateway)
        outbox = Outbox(self.db, gateway, profiles, self.metrics)
        permissions = Permissions(
            [(r.actor, [(s.service, s.level) for s in r.services]) for r in cfg.permissions],
            room_members=lambda room: self._room_members.get(room, set()),
        )
        manager = ConnectionManager(self.db, gateway, outbox, permissions, [], self.metrics)
        box = await asyncio.to_thread(SecretBox.from_pass_file, cfg.pass_file)
        self.services = s = Services(
            config=cfg,
            db=self.db,
            gateway=gateway,
            outbox=outbox,
            profiles=profiles,
            manager=manager,
            permissions=permissions,
            dms=DirectMessages(self.db, gateway),
            metrics=self.metrics,
            http=aiohttp.ClientSession(headers={"User-Agent": f"hookshot_py/{__version__}"}),
            tokens=TokenStore(self.db, box),
            secrets=box,
        )
        builtin.register(s)
        self.integrations = create_all(s)
        for integration in self.integrations:
            for ctype in integration.connection_types():
                manager.add_type(ctype)
            integration.register_commands()
        self.dispatcher = CommandDispatcher(s, self._is_bridge_user)

        loaded = await manager.load()
        await s.dms.load()
        log.info("Loaded %d connection(s) from the database", loaded)
        await self._start_listeners()
        await self._wait_for_homeserver()
        await outbox.start()
        for integration in self.integrations:
            await integration.start()
        self.ready = True
        self.appservice.ready = True
        self._spawn(self._after_start(), "after-start")
        log.info("Bridge ready")

    async def stop(self) -> None:
        self.ready = False
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for integration in self.integrations:
            try:
                await integration.stop()
            except Exception:
                log.exception("Stopping %s failed", integration.name)
        if self.services is not None:
            await self.services.outbox.stop()
            await self.services.http.close()
        if self.appservice is not None:
            await self.appservice.stop()
        if self.db is not None:
            await self.db.stop()
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop)
        log.info("Bridge stopped")

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _wait_for_homeserver(self) -> None:
        assert self.appservice is not None
        delay = 1.0
        while True:
            try:
                await self.appservice.intent.whoami()
                break
            except Exception as e:
                log.warning("Homeserver at %s not reachable yet (%s); retrying in %.0fs", self.config.bridge.url, e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30)
        try:
            # A successful ping also makes Synapse resend, at once, the transactions it could not
            # deliver while we were down (instead of waiting out its backoff).
            await self.appservice.ping_self()
        except Exception as e:
            log.warning(
                "The homeserver cannot reach this bridge at the registration's url (%s): %s. "
                "Check `url` in the registration file.", self.registration.url, e,
            )

    async def _after_start(self) -> None:
        """Slow start-up work that must not delay readiness."""
        s = self.services
        assert s is not None
        try:
            await s.gateway.bot.ensure_registered()
            await self._apply_bot_profile()
        except Exception as e:
            log.warning("Could not set the bot's profile: %s", e)
        for room_id in s.permissions.room_actors:
            try:
                await s.gateway.join(room_id)
                self._room_members[room_id] = await s.gateway.joined_members(room_id)
            except Exception as e:
                log.warning("Could not join permission room %s: %s", room_id, e)
        await s.manager.reconcile()

    async def _apply_bot_profile(self) -> None:
        s = self.services
        assert s is not None
        bot = self.config.bot
        if bot.displayname is None and bot.avatar is None:
            return
        profile = await s.gateway.bot.get_profile(s.gateway.bot_mxid)
        name = bot.displayname if bot.displayname != profile.displayname else None
        avatar = bot.avatar if bot.avatar != profile.avatar_url else None
        if name is not None or avatar is not None:
            await s.gateway.set_profile(s.gateway.bot_mxid, name, avatar)

    def _readiness(self) -> tuple[bool, dict[str, object]]:
        depth = self.services.outbox.depth if self.services else 0
        return self.ready, {"outboxDepth": depth}

    # -- listeners ---------------------------------------------------------------------------------

    async def _start_listeners(self) -> None:
        for listener in self.config.listeners:
            app = self._listener_app(listener.resources)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, listener.bind_address, listener.port).start()
            self._runners.append(runner)
            log.info("Listener %s:%d serving %s", listener.bind_address, listener.port, ", ".join(listener.resources))

    def _listener_app(self, resources: list[str]) -> web.Application:
        def observe(request: web.Request, status: int, seconds: float) -> None:
            route = request.match_info.route.resource
            path = route.canonical if route is not None else "unmatched"
            if path.startswith("/webhook") or path == "/{hook_id}":
                self.metrics.webhook_requests.labels(path=path, method=request.method, status=str(status)).inc()
                self.metrics.webhook_latency.labels(path=path).observe(seconds)

        app = web.Application(middlewares=[timed(observe), error_middleware], client_max_size=64 * 1024**2)
        add_health_routes(app, self._readiness)
        if "metrics" in resources:
            async def metrics(_: web.Request) -> web.Response:
                return web.Response(body=self.metrics.render(), content_type="text/plain", charset="utf-8")

            app.router.add_get("/metrics", metrics)
        if "provisioning" in resources and self.config.provisioning is not None:
            assert self.services is not None
            ProvisioningApi(self.services, self.config.provisioning.secret).add_routes(app, self.integrations)
        if "webhooks" in resources:
            for integration in self.integrations:
                integration.add_webhook_routes(app)
        return app

    # -- events from the homeserver ---------------------------------------------------------------

    def _is_bridge_user(self, user_id: str) -> bool:
        assert self.registration is not None
        return self.registration.is_exclusive_user(user_id)

    async def _on_event(self, event: dict[str, Any]) -> None:
        s = self.services
        if s is None:
            raise RuntimeError("bridge not started")
        self.metrics.appservice_events.inc()
        etype = event.get("type")
        if etype == MEMBER and isinstance(event.get("state_key"), str):
            await self._on_member(event)
        elif isinstance(etype, str) and s.manager.type_for(etype) is not None and "state_key" in event:
            await s.manager.apply_state_event(event)
        elif etype == "m.room.message":
            # Commands may take a while (forge API calls): don't hold up the transaction.
            self._spawn(self.dispatcher.handle_message(event), "command")

    async def _on_member(self, event: dict[str, Any]) -> None:
        s = self.services
        assert s is not None
        room_id, target, sender = event["room_id"], event["state_key"], event.get("sender", "")
        membership = (event.get("content") or {}).get("membership")
        if room_id in self._room_members:
            members = self._room_members[room_id]
            (members.add if membership == "join" else members.discard)(target)
        bot = s.gateway.bot_mxid
        if target == bot:
            if membership == "invite":
                self._spawn(self._on_bot_invited(event), "invite")
            elif membership == "join":
                s.manager.mark_joined(room_id, True)
            elif membership in ("leave", "ban"):
                log.info("Bot left %s (%s by %s)", room_id, membership, sender)
                await s.manager.forget_room(room_id)
                await s.dms.forget_room(room_id)
        elif membership == "invite" and self._is_bridge_user(target) and not self._is_bridge_user(sender):
            # Ghosts only join rooms the bridge puts them in.
            self._spawn(self._reject(room_id, target), "reject-invite")
        elif membership in ("leave", "ban") and s.dms.user_of(room_id) == target:
            await s.dms.forget_room(room_id)
            self._spawn(s.gateway.leave(room_id, "The DM was closed"), "leave-dm")

    async def _reject(self, room_id: str, user_id: str) -> None:
        assert self.services is not None
        try:
            await self.services.gateway.intent(user_id).leave_room(room_id, reason="This user cannot be invited.")
        except MatrixRequestError as e:
            log.debug("Rejecting invite of %s to %s failed: %s", user_id, room_id, e)

    async def _on_bot_invited(self, event: dict[str, Any]) -> None:
        s = self.services
        assert s is not None
        room_id, inviter = event["room_id"], event.get("sender", "")
        if not s.permissions.check_any(inviter, "commands"):
            log.info("Rejecting invite to %s from %s: no permission on this bridge", room_id, inviter)
            try:
                await s.gateway.leave(room_id, "You are not allowed to use this bridge.")
            except MatrixRequestError as e:
                log.warning("Could not reject invite to %s: %s", room_id, e)
            return
        try:
            await s.gateway.join(room_id)
        except MatrixRequestError as e:
            log.warning("Could not join %s after an invite from %s: %s", room_id, inviter, e)
            return
        s.manager.mark_joined(room_id, True)
        log.info("Joined %s, invited by %s", room_id, inviter)
        if (event.get("content") or {}).get("is_direct"):
            await s.dms.record(inviter, room_id)
            hello = "Hello! I'm the hookshot bridge bot. Type `help` to see what I can do for you here."
            await s.outbox.enqueue([OutgoingEvent(room_id, {"msgtype": "m.notice", "body": hello})])
        else:
            await s.manager.reconcile_room(room_id)

