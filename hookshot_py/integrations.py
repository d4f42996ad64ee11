"""The service packages the bridge knows, and the config section that enables each.

A package is imported only when its service is enabled: a forge's package (client, models,
formatting) costs memory in every process that imports it (~4 MiB for them all), and a bridge
with only generic webhooks needs none of them. A disabled service's connections are still
recognised and answered (connections/known.py, which imports none of them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module

from hookshot_py.config import Config
from hookshot_py.integration import Integration
from hookshot_py.services import Services


@dataclass(frozen=True)
class Package:
    integration: str  # "module:Class", built as Class(services, section)
    section: Callable[[Config], object | None]  # the section enabling the service, or None

    def load(self) -> type[Integration]:
        module, _, name = self.integration.partition(":")
        cls = getattr(import_module(module), name)
        if not (isinstance(cls, type) and issubclass(cls, Integration)):
            raise TypeError(f"{self.integration} is not an Integration")
        return cls


# Order matters only for routes: generic's legacy catch-all `/{hookId}` must come last.
PACKAGES: tuple[Package, ...] = (
    Package("hookshot_py.github.integration:GitHubIntegration", lambda c: c.github),
    Package("hookshot_py.gitlab.integration:GitLabIntegration", lambda c: c.gitlab),
    Package("hookshot_py.gitflic.integration:GitFlicIntegration", lambda c: c.gitflic),
    Package("hookshot_py.barkeep.integration:BarkeepIntegration", lambda c: c.barkeep),
    Package("hookshot_py.jira.integration:JiraIntegration", lambda c: c.jira),
    Package("hookshot_py.feeds.integration:FeedsIntegration",
            lambda c: c.feeds if c.feeds and c.feeds.enabled else None),
    Package("hookshot_py.outbound.integration:OutboundIntegration",
            lambda c: c.generic if c.generic and c.generic.outbound else None),
    Package("hookshot_py.generic.integration:GenericIntegration",
            lambda c: c.generic if c.generic and c.generic.enabled else None),
)  # fmt: skip


def create_all(services: Services) -> list[Integration]:
    """The enabled services' integrations; the others' packages are not imported."""
    integrations = []
    for package in PACKAGES:
        section = package.section(services.config)
        if section is not None:
            integrations.append(package.load()(services, section))  # type: ignore[call-arg]
    return integrations
