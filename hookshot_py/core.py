"""The bridge's parts wired together over a Matrix gateway: the integrations, their connection
types and commands, the command dispatcher, the event router and the HTTP listener apps.

`Bridge` (app.py) builds this on the real gateway and adds what a process needs (the database,
the appservice listener, sockets, startup); tests build it on an in-memory gateway
(tests/fakes/matrix.py). Nothing here listens or starts anything.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiohttp import web

from hookshot_py.commands.dispatcher import CommandDispatcher
from hookshot_py.commands.registry import CommandRegistry
from hookshot_py.commands.runs import CommandRuns
from hookshot_py.integration import Integration
from hookshot_py.integrations import create_all
from hookshot_py.listeners.http import ReadyCheck, add_health_routes, causal_middleware, error_middleware, timed
from hookshot_py.matrix.events import EventRouter, Spawn
from hookshot_py.provisioning.api import ProvisioningApi
from hookshot_py.services import Services

# Webhook bodies may be large (generic.payloadSizeLimit is checked per route); this is the ceiling.
MAX_REQUEST_BYTES = 64 * 1024**2


@dataclass
class Core:
    services: Services
    integrations: list[Integration]
    dispatcher: CommandDispatcher
    router: EventRouter


def assemble(services: Services, *, is_bridge_user: Callable[[str], bool], spawn: Spawn) -> Core:
    """Create the enabled integrations and wire their connection types and commands into the
    manager, the dispatcher and the router. `is_bridge_user` tells the bridge's own users (the
    registration's exclusive namespace); `spawn` runs background work (a command, an invite)."""
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
        metrics=services.metrics,
        room_commands=room_commands,
        dm_commands=dm_commands,
        is_bridge_user=is_bridge_user,
        runs=CommandRuns(services.db, services.cluster.process_id),
    )
    router = EventRouter(
        gateway=services.gateway,
        manager=services.manager,
        dms=services.dms,
        outbox=services.outbox,
        permissions=services.permissions,
        dispatcher=dispatcher,
        metrics=services.metrics,
        room_members=services.room_members,
        is_bridge_user=is_bridge_user,
        spawn=spawn,
        cluster=services.cluster,
    )
    return Core(services, integrations, dispatcher, router)


def listener_app(core: Core, resources: Sequence[str], readiness: ReadyCheck) -> web.Application:
    """The aiohttp app of one configured listener, serving some of `webhooks`, `provisioning`,
    `metrics` (and always `/live`, `/ready`)."""
    metrics = core.services.metrics
    provisioning = core.services.config.provisioning

    def observe(request: web.Request, status: int, seconds: float) -> None:
        route = request.match_info.route.resource
        path = route.canonical if route is not None else "unmatched"
        if path.startswith("/webhook") or path == "/{hook_id}":
            metrics.webhook_requests.labels(path=path, method=request.method, status=str(status)).inc()
            metrics.webhook_latency.labels(path=path).observe(seconds)

    app = web.Application(
        middlewares=[timed(observe), error_middleware, causal_middleware(core.services.outbox)],
        client_max_size=MAX_REQUEST_BYTES,
    )
    add_health_routes(app, readiness)
    if "metrics" in resources:
        async def render(_: web.Request) -> web.Response:
            return web.Response(body=metrics.render(), content_type="text/plain", charset="utf-8")

        app.router.add_get("/metrics", render)
    if "provisioning" in resources and provisioning is not None:
        ProvisioningApi(core.services, provisioning.secret).add_routes(app, core.integrations)
    if "webhooks" in resources:
        for integration in core.integrations:
            integration.add_webhook_routes(app)
    return app
