"""Webhooks the bridge registered on a forge: one row per (service, instance, project).

Shared by the GitHub and GitFlic packages: the secret is encrypted at rest, the rest is plain.
Each service keeps its own view (record type, in-memory index) on top of these rows.

Like generic hook ids, the rows are backed up (encrypted) in the bot's account data, so a wiped
database gets its forge secrets back at the next start instead of refusing every delivery.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from hookshot_py.db.database import Database
from hookshot_py.matrix.gateway import MatrixGateway
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


BACKUP_TYPE = "io.github.hookshot_py.forge_webhooks"


class ForgeWebhookTable:
    def __init__(
        self, db: Database, box: SecretBox, service: str, gateway: MatrixGateway | None = None
    ) -> None:
        self.db = db
        self.box = box
        self.service = service
        self.gateway = gateway
        self._backup_lock = asyncio.Lock()

    @property
    def _backup_type(self) -> str:
        return f"{BACKUP_TYPE}.{self.service}"

    async def _backup(self, instance: str, project: str, hook: StoredWebhook | None) -> None:
        """Mirror one row into the bot's account data; the database stays the primary copy."""
        if self.gateway is None:
            return
        key = f"{instance}|{project}"
        try:
            async with self._backup_lock:
                doc = dict(await self.gateway.account_data(self._backup_type) or {})
                if hook is None:
                    if doc.pop(key, None) is None:
                        return
                else:
                    blob = self.box.encrypt(json.dumps(asdict(hook)).encode())
                    doc[key] = base64.b64encode(blob).decode()
                await self.gateway.set_account_data(self._backup_type, doc)
        except Exception as e:
            log.warning("Could not back up the %s webhook of %s to account data: %s", self.service, project, e)

    async def restore_if_empty(self) -> int:
        """After a wiped database, bring the rows back from the account-data backup."""
        if self.gateway is None:
            return 0
        if await self.db.fetchval("SELECT 1 FROM forge_webhooks WHERE service = $1 LIMIT 1", self.service):
            return 0
        try:
            doc = await self.gateway.account_data(self._backup_type) or {}
        except Exception as e:
            log.warning("Could not read the %s webhook backup: %s", self.service, e)
            return 0
        restored = 0
        for key, value in doc.items():
            try:
                fields = json.loads(self.box.decrypt(base64.b64decode(value)))
                fields["events"] = tuple(fields.get("events") or ())
                await self._save_row(StoredWebhook(**fields))
                restored += 1
            except Exception as e:
                log.error("Cannot restore the %s webhook %s from its backup: %s", self.service, key, e)
        if restored:
            log.info("Restored %d %s webhook(s) from the account-data backup", restored, self.service)
        return restored

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
        await self._save_row(hook)
        await self._backup(hook.instance, hook.project, hook)

    async def _save_row(self, hook: StoredWebhook) -> None:
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
        hook = await self.get(instance, project)
        if hook is not None:
            await self._backup(instance, project, hook)

    async def delete(self, instance: str, project: str) -> None:
        await self.db.execute(
            "DELETE FROM forge_webhooks WHERE service = $1 AND instance = $2 AND project = $3",
            self.service, instance, project,
        )
        await self._backup(instance, project, None)
