"""The bridge's record of each GitFlic project webhook, in `forge_webhooks` (migration 0002).

One row per (instance, project) shared by every room connected to the project: the secret
GitFlic sends back with each delivery (encrypted at rest), the union of the rooms' events, and
the hook's id on GitFlic when the bridge registered it itself (None when it had no token and the
hook was entered by hand). The rows are also kept in memory: every delivery needs them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from typing import Any

from hookshot_py.db.database import Database
from hookshot_py.forge_webhooks import ForgeWebhookTable, StoredWebhook
from hookshot_py.matrix.gateway import MatrixGateway
from hookshot_py.tokens import SecretBox

SERVICE = "gitflic"


def new_secret() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class HookRecord:
    instance: str
    project: str  # `project_key()`: "owner/project", lower-cased
    secret: str
    events: tuple[str, ...]
    url: str  # where the hook delivers; "" when no publicUrl was configured
    hook_id: str | None = None  # set while the bridge manages the hook on GitFlic
    project_id: str | None = None  # GitFlic's id; TEST_WEBHOOK deliveries name only this

    @property
    def managed(self) -> bool:
        return self.hook_id is not None

    def data(self) -> dict[str, Any]:
        return {"projectId": self.project_id} if self.project_id else {}


class HookStore:
    def __init__(self, db: Database, box: SecretBox, gateway: MatrixGateway | None = None) -> None:
        self.table = ForgeWebhookTable(db, box, SERVICE, gateway)
        self._records: dict[tuple[str, str], HookRecord] = {}

    async def load(self) -> None:
        await self.table.restore_if_empty()
        records: dict[tuple[str, str], HookRecord] = {}
        for row in await self.table.all():
            project_id = row.data.get("projectId")
            records[(row.instance, row.project)] = HookRecord(
                instance=row.instance,
                project=row.project,
                secret=row.secret,
                events=row.events,
                url=row.url,
                hook_id=row.hook_id,
                project_id=project_id if isinstance(project_id, str) else None,
            )
        self._records = records

    def get(self, instance: str, project: str) -> HookRecord | None:
        return self._records.get((instance, project))

    def by_project(self, project: str) -> list[HookRecord]:
        return [r for r in self._records.values() if r.project == project]

    def by_project_id(self, project_id: str) -> list[HookRecord]:
        return [r for r in self._records.values() if r.project_id == project_id]

    def without_project_id(self) -> list[HookRecord]:
        return [r for r in self._records.values() if r.project_id is None]

    async def save(self, record: HookRecord) -> None:
        await self.table.save(
            StoredWebhook(
                instance=record.instance,
                project=record.project,
                secret=record.secret,
                url=record.url,
                events=record.events,
                hook_id=record.hook_id,
                data=record.data(),
            )
        )
        self._records[(record.instance, record.project)] = record

    async def learn_project_id(self, record: HookRecord, project_id: str) -> HookRecord:
        """Remember the GitFlic id of a project seen in a verified delivery."""
        updated = replace(record, project_id=project_id)
        await self.table.merge_data(record.instance, record.project, {"projectId": project_id})
        self._records[(record.instance, record.project)] = updated
        return updated

    async def delete(self, instance: str, project: str) -> None:
        await self.table.delete(instance, project)
        self._records.pop((instance, project), None)
