"""The service packages the bridge knows. Each `create` returns None when its service is disabled."""

from __future__ import annotations

from collections.abc import Callable

from hookshot_py.barkeep.integration import create as barkeep
from hookshot_py.feeds.integration import create as feeds
from hookshot_py.generic.integration import create as generic
from hookshot_py.gitflic.integration import create as gitflic
from hookshot_py.github.integration import create as github
from hookshot_py.gitlab.integration import create as gitlab
from hookshot_py.integration import Integration
from hookshot_py.jira.integration import create as jira
from hookshot_py.outbound.integration import create as outbound
from hookshot_py.services import Services

Factory = Callable[[Services], Integration | None]

# Order matters only for routes: generic's legacy catch-all `/{hookId}` must come last.
FACTORIES: list[Factory] = [
    github,
    gitlab,
    gitflic,
    barkeep,
    jira,
    feeds,
    outbound,
    generic,
]


def create_all(services: Services) -> list[Integration]:
    return [i for i in (f(services) for f in FACTORIES) if i is not None]
