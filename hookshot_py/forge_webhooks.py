"""Webhooks the bridge registered on a forge: one row per (service, instance, project).

Shared by the GitHub and GitFlic packages: the secret is encrypted at rest, the rest is plain.
Each service keeps its own view (record type, in-memory index) on top of these rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from hookshot_py.db.database import Database
from hookshot_py.tokens import SecretBox

log = logging.getLogger(__name__)

_COLUMNS = "instance, project, hook_id, secret_ciphertext, events, url, data"


@dataclass(frozen=True)
class StoredWebhook:
    instance: str
    project: str
    secret: str
    url: str
    events: tuple[str, ...] = ()
    hook_id: str | None = None  # the forge's id, while the bridge manages the hook
    data: dict[str, Any] = field(default_factory=dict)  # service-specific extras


class ForgeWebhookTable:
    def __init__(self, db: Database, box: SecretBox, service: str) -> None:
        self.db = db
        self.box = box
        self.service = service

    def _from_row(self, row: Any) -> StoredWebhook | None:
        try:
            secret = self.box.decrypt(bytes(row["secret_ciphertext"])).decode()
        except Exception:
            # Another passFile: the secret is lost, and with it the way to verify deliveries.
            log.error(
                "The %s webhook secret of %s cannot be decrypted (was passFile changed?)",
                self.service, row["project"],
            )
            return None
        events = row["events"] if isinstance(row["events"], list) else []
        return StoredWebhook(
            instance=row["instance"],
            project=row["project"],
            secret=secret,
            url=row["url"],
            events=tuple(e for e in events if isinstance(e, str)),
            hook_id=row["hook_id"],
            data=row["data"] if isinstance(row["data"], dict) else {},
        )

    async def all(self) -> list[StoredWebhook]:
        rows = await self.db.fetch(f"SELECT {_COLUMNS} FROM forge_webhooks WHERE service = $1", self.service)
        return [hook for hook in map(self._from_row, rows) if hook is not None]

    async def get(self, instance: str, project: str) -> StoredWebhook | None:
        row = await self.db.fetchrow(
            f"SELECT {_COLUMNS} FROM forge_webhooks WHERE service = $1 AND instance = $2 AND project = $3",
            self.service, instance, project,
        )
        return None if row is None else self._from_row(row)

    async def save(self, hook: StoredWebhook) -> None:
        await self.db.execute(
            """
            INSERT INTO forge_webhooks (service, instance, project, hook_id, secret_ciphertext, events, url, data)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            ON CONFLICT (service, instance, project) DO UPDATE SET
                hook_id = EXCLUDED.hook_id, secret_ciphertext = EXCLUDED.secret_ciphertext,
                events = EXCLUDED.events, url = EXCLUDED.url, data = EXCLUDED.data, updated_at = now()
            """,
            self.service, hook.instance, hook.project, hook.hook_id,
            self.box.encrypt(hook.secret.encode()), list(hook.events), hook.url, hook.data,
        )

    async def merge_data(self, instance: str, project: str, data: dict[str, Any]) -> None:
        await self.db.execute(
            "UPDATE forge_webhooks SET data = data || $4::jsonb, updated_at = now() "
            "WHERE service = $1 AND instance = $2 AND project = $3",
            self.service, instance, project, data,
        )

    async def delete(self, instance: str, project: str) -> None:
        await self.db.execute(
            "DELETE FROM forge_webhooks WHERE service = $1 AND instance = $2 AND project = $3",
            self.service, instance, project,
        )
