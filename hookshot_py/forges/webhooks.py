"""The webhooks the bridge keeps on forges: one row per (service, instance, project) in
`forge_webhooks`, shared by every room connected to the project.

A row holds the secret deliveries are checked against (encrypted at rest), the URL the hook
delivers to, the forge's id of the hook while the bridge manages it, the events the hook
delivers (`events`) and the events the rooms want (`wanted`), who registered it, and the retry
state of a change the forge refused (`needs_sync`, `sync_attempts`, `next_sync_at`): the queue
of `forges.sync.HookSync`.

Rows are cached in memory (every delivery needs a secret) and backed up, encrypted, in the bot's
account data, so that a wiped database gets its forge secrets back at the next start instead of
refusing every delivery. The database stays the primary copy.

With several bridge processes (docs/scale-out.md), every write is announced on `CHANNEL` and the
other processes re-read that row, so a hook registered through one process is verified by all;
a change to a project's hook is made under a lock shared by the processes (`exclusive`), on the
row as Postgres has it, so two processes never give one hook two secrets.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from hookshot_py.db.cluster import Cluster
from hookshot_py.db.database import Database
from hookshot_py.matrix.gateway import MatrixGateway
from hookshot_py.tokens import SecretBox

__all__ = ["BACKUP_TYPE", "HookKey", "HookRow", "WebhookStore"]

log = logging.getLogger(__name__)

BACKUP_TYPE = "io.github.hookshot_py.forge_webhooks"
CHANNEL = "hookshot_forge_webhooks"  # payload: origin TAB service TAB instance TAB project
LOCK_WAIT_S = 0.05
LOCK_TIMEOUT_S = 120.0  # longer than any forge call made under the lock
_COLUMNS = (
    "instance, project, name, hook_id, secret_ciphertext, events, wanted, url, data, registered_by, "
    "needs_sync, sync_attempts, next_sync_at, last_error"
)


class HookKey(NamedTuple):
    """A project on a forge instance; `project` is the forge's case-folded identity of it."""

    instance: str
    project: str


@dataclass(frozen=True)
class HookRow:
    instance: str
    project: str  # the key: as `ForgeHooks.key` folds it (e.g. lower-cased "owner/repo")
    secret: str
    url: str  # where the hook delivers; "" while no public URL is configured
    events: tuple[str, ...] = ()  # what the hook delivers (or was to be entered by hand)
    hook_id: str | None = None  # the forge's id, while the bridge manages the hook
    data: dict[str, Any] = field(default_factory=dict)  # forge-specific extras
    name: str = ""  # the project as the forge spells it, for API calls ("" → `project`)
    wanted: tuple[str, ...] | None = None  # the union of the rooms' events (None: = events)
    registered_by: str | None = None  # whose token created the hook; used again to change it
    needs_sync: bool = False
    sync_attempts: int = 0
    next_sync_at: float | None = None  # Unix time
    last_error: str | None = None

    @property
    def key(self) -> HookKey:
        return HookKey(self.instance, self.project)

    @property
    def managed(self) -> bool:
        return self.hook_id is not None

    @property
    def desired(self) -> tuple[str, ...]:
        return self.events if self.wanted is None else self.wanted

    def replace(self, **changes: Any) -> HookRow:
        return dataclasses.replace(self, **changes)


def _time(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(e for e in value if isinstance(e, str)) if isinstance(value, list) else ()


class WebhookStore:
    """One service's rows (`service` = "github", "gitflic"...), cached after `load()`."""

    def __init__(self, db: Database, box: SecretBox, service: str, gateway: MatrixGateway | None = None) -> None:
        self.db = db
        self.box = box
        self.service = service
        self.gateway = gateway
        self._rows: dict[HookKey, HookRow] = {}
        self._backup_lock = asyncio.Lock()
        self._cluster: Cluster | None = None
        self._refreshes: set[asyncio.Task[None]] = set()

    # -- the other processes -----------------------------------------------------------------------

    def attach(self, cluster: Cluster) -> None:
        """Follow what the other processes on the database write (and re-read everything after
        the link to Postgres was lost, as notifications may have been missed)."""
        self._cluster = cluster
        cluster.subscribe(CHANNEL, self._changed_elsewhere)
        cluster.on_reconnect(self._reload)

    def _changed_elsewhere(self, payload: str) -> None:
        origin, service, instance, project = (payload.split("\t") + ["", "", "", ""])[:4]
        if self._cluster is None or origin == self._cluster.process_id or service != self.service:
            return
        task = asyncio.create_task(self._refresh_logged(HookKey(instance, project)))
        self._refreshes.add(task)
        task.add_done_callback(self._refreshes.discard)

    async def _refresh_logged(self, key: HookKey) -> None:
        try:
            await self.refresh(key)
        except Exception as e:
            log.warning("Could not re-read the %s webhook of %s: %s", self.service, key.project, e)

    async def _reload(self) -> None:
        records = await self.db.fetch(f"SELECT {_COLUMNS} FROM forge_webhooks WHERE service = $1", self.service)
        self._rows = {row.key: row for row in map(self._from_record, records) if row is not None}

    async def refresh(self, key: HookKey) -> HookRow | None:
        """The row as Postgres has it now, into the cache."""
        record = await self.db.fetchrow(
            f"SELECT {_COLUMNS} FROM forge_webhooks WHERE service = $1 AND instance = $2 AND project = $3",
            self.service, key.instance, key.project,
        )
        row = None if record is None else self._from_record(record)
        if row is None:
            self._rows.pop(key, None)
        else:
            self._rows[key] = row
        return row

    @asynccontextmanager
    async def exclusive(self, key: HookKey) -> AsyncIterator[None]:
        """Hold the project's hook against the other processes, with its row read fresh. Without
        a link to the other processes (one process, or the link is down) the row is used as is."""
        cluster = self._cluster
        name = f"forge-hook\t{self.service}\t{key.instance}\t{key.project}"
        held = False
        if cluster is not None and cluster.connected:
            try:
                for _ in range(int(LOCK_TIMEOUT_S / LOCK_WAIT_S)):
                    if held := await cluster.try_lock(name):
                        break
                    await asyncio.sleep(LOCK_WAIT_S)
                else:
                    log.warning("The %s webhook of %s stayed locked by another process for %.0f s: going on",
                                self.service, key.project, LOCK_TIMEOUT_S)
            except ConnectionError:
                held = False
            await self.refresh(key)
        try:
            yield
        finally:
            if held and cluster is not None:
                await cluster.unlock(name)

    # -- reading -----------------------------------------------------------------------------------

    async def load(self) -> list[HookRow]:
        """Restore a wiped table from the backup, then read every row into the cache."""
        await self.restore_if_empty()
        records = await self.db.fetch(f"SELECT {_COLUMNS} FROM forge_webhooks WHERE service = $1", self.service)
        self._rows = {row.key: row for row in map(self._from_record, records) if row is not None}
        return list(self._rows.values())

    def get(self, key: HookKey) -> HookRow | None:
        return self._rows.get(key)

    def rows(self) -> list[HookRow]:
        return list(self._rows.values())

    def by_hook_id(self, hook_id: str) -> HookRow | None:
        return next((r for r in self._rows.values() if r.hook_id == hook_id), None)

    async def claim_due(self, now: float, limit: int = 50) -> list[HookRow]:
        """Rows whose hook must be brought in line now, most overdue first.

        The one place that picks work for `HookSync`. Several processes may pick the same row:
        the work itself runs under `exclusive`, on the row read again, so the second finds it
        done.
        """
        records = await self.db.fetch(
            f"SELECT {_COLUMNS} FROM forge_webhooks WHERE service = $1 AND needs_sync "
            "AND (next_sync_at IS NULL OR next_sync_at <= $2) ORDER BY next_sync_at NULLS FIRST LIMIT $3",
            self.service, _time(now), limit,
        )
        return [row for row in map(self._from_record, records) if row is not None]

    async def next_due(self) -> float | None:
        """When the earliest pending sync is due (Unix time), if any."""
        value = await self.db.fetchval(
            "SELECT min(coalesce(next_sync_at, 'epoch')) FROM forge_webhooks WHERE service = $1 AND needs_sync",
            self.service,
        )
        return value.timestamp() if isinstance(value, datetime) else None

    def _from_record(self, record: Any) -> HookRow | None:
        try:
            secret = self.box.decrypt(bytes(record["secret_ciphertext"])).decode()
        except Exception:
            # Another passFile: the secret is lost, and with it the way to verify deliveries.
            log.error(
                "The %s webhook secret of %s cannot be decrypted (was passFile changed?)",
                self.service, record["project"],
            )
            return None
        next_at = record["next_sync_at"]
        return HookRow(
            instance=record["instance"],
            project=record["project"],
            secret=secret,
            url=record["url"],
            events=_strings(record["events"]),
            hook_id=record["hook_id"],
            data=record["data"] if isinstance(record["data"], dict) else {},
            name=record["name"] or "",
            wanted=None if record["wanted"] is None else _strings(record["wanted"]),
            registered_by=record["registered_by"],
            needs_sync=record["needs_sync"],
            sync_attempts=record["sync_attempts"],
            next_sync_at=next_at.timestamp() if isinstance(next_at, datetime) else None,
            last_error=record["last_error"],
        )

    # -- writing -----------------------------------------------------------------------------------

    async def save(self, row: HookRow) -> None:
        await self._save_row(row)
        self._rows[row.key] = row
        await self._announce(row.key)
        await self._backup(row.key, row)

    async def _announce(self, key: HookKey) -> None:
        if self._cluster is None:
            return
        payload = "\t".join((self._cluster.process_id, self.service, key.instance, key.project))
        try:
            await self.db.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
        except Exception as e:  # the others re-read everything when their link comes back
            log.warning("Could not tell the other processes about the %s webhook of %s: %s",
                        self.service, key.project, e)

    async def _save_row(self, row: HookRow) -> None:
        await self.db.execute(
            """
            INSERT INTO forge_webhooks (service, instance, project, name, hook_id, secret_ciphertext, events,
                                        wanted, url, data, registered_by, needs_sync, sync_attempts,
                                        next_sync_at, last_error)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
            ON CONFLICT (service, instance, project) DO UPDATE SET
                name = EXCLUDED.name, hook_id = EXCLUDED.hook_id, secret_ciphertext = EXCLUDED.secret_ciphertext,
                events = EXCLUDED.events, wanted = EXCLUDED.wanted, url = EXCLUDED.url, data = EXCLUDED.data,
                registered_by = EXCLUDED.registered_by, needs_sync = EXCLUDED.needs_sync,
                sync_attempts = EXCLUDED.sync_attempts, next_sync_at = EXCLUDED.next_sync_at,
                last_error = EXCLUDED.last_error, updated_at = now()
            """,
            self.service, row.instance, row.project, row.name or None, row.hook_id,
            self.box.encrypt(row.secret.encode()), list(row.events),
            None if row.wanted is None else list(row.wanted), row.url, row.data, row.registered_by,
            row.needs_sync, row.sync_attempts, _time(row.next_sync_at), row.last_error,
        )

    async def delete(self, key: HookKey) -> None:
        await self.db.execute(
            "DELETE FROM forge_webhooks WHERE service = $1 AND instance = $2 AND project = $3",
            self.service, key.instance, key.project,
        )
        self._rows.pop(key, None)
        await self._announce(key)
        await self._backup(key, None)

    # -- the account-data backup -------------------------------------------------------------------

    @property
    def _backup_type(self) -> str:
        return f"{BACKUP_TYPE}.{self.service}"

    async def _backup(self, key: HookKey, row: HookRow | None) -> None:
        """Mirror one row into the bot's account data; the database stays the primary copy."""
        if self.gateway is None:
            return
        name = f"{key.instance}|{key.project}"
        try:
            async with self._backup_lock:
                doc = dict(await self.gateway.account_data(self._backup_type) or {})
                if row is None:
                    if doc.pop(name, None) is None:
                        return
                else:
                    blob = self.box.encrypt(json.dumps(asdict(row)).encode())
                    doc[name] = base64.b64encode(blob).decode()
                await self.gateway.set_account_data(self._backup_type, doc)
        except Exception as e:
            log.warning("Could not back up the %s webhook of %s to account data: %s", self.service, key.project, e)

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
        for name, value in doc.items():
            try:
                await self._save_row(_row_from_backup(json.loads(self.box.decrypt(base64.b64decode(value)))))
                restored += 1
            except Exception as e:
                log.error("Cannot restore the %s webhook %s from its backup: %s", self.service, name, e)
        if restored:
            log.info("Restored %d %s webhook(s) from the account-data backup", restored, self.service)
        return restored


def _row_from_backup(fields: dict[str, Any]) -> HookRow:
    """A backed-up row, also from before the sync columns (`registeredBy` was kept in `data`)."""
    known = {f.name for f in dataclasses.fields(HookRow)}
    values = {k: v for k, v in fields.items() if k in known}
    data = dict(values.get("data") or {})
    if "registeredBy" in data:
        values.setdefault("registered_by", data.pop("registeredBy"))
    values["data"] = data
    values["events"] = tuple(values.get("events") or ())
    if values.get("wanted") is not None:
        values["wanted"] = tuple(values["wanted"])
    return HookRow(**values)
