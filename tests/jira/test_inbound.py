"""`POST /jira/webhook`: verified before anything is answered, routed by instance and project,
filtered by each room's events, deduplicated by JIRA's delivery id, rendered off the loop.

The route runs in a small app here (a recording outbox that deduplicates like the real one's
unique index); tests/jira/test_e2e.py sends deliveries through a whole bridge into Synapse."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient

from fakes.jira import sign
from hookshot_py.connections.base import Connection
from hookshot_py.cpu_pool import CpuPool
from hookshot_py.db.database import Database
from hookshot_py.jira.connection import JiraProjectType
from hookshot_py.jira.inbound import MAX_BODY_BYTES, JiraWebhookRoute, dedupe_key
from hookshot_py.jira.models import EVENT_TYPE
from hookshot_py.listeners.http import error_middleware
from hookshot_py.matrix.outbox import OutgoingEvent

from .conftest import WEBHOOK_SECRET, Told, cloud_config, fixture, make_accounts

# CONTRACTS.md, JIRA Cloud: the signature vector.
VECTOR_BODY = b'{"timestamp":1740820500123,"webhookEvent":"jira:issue_created","issue":{"id":"10042","key":"WID-42"}}'
VECTOR_SIG = "sha256=4e89d5e58c49465df54bbc1cd10cea7baca68f96e6255a2f89492fb3e56c7328"


@dataclass
class RecordingOutbox:
    events: list[OutgoingEvent] = field(default_factory=list)
    _keys: set[tuple[str, str]] = field(default_factory=set)

    async def enqueue(self, events: list[OutgoingEvent]) -> list[int]:
        ids = []
        for event in events:
            if event.dedupe_key is not None:
                if (event.room_id, event.dedupe_key) in self._keys:
                    continue
                self._keys.add((event.room_id, event.dedupe_key))
            self.events.append(event)
            ids.append(len(self.events))
        return ids

    def rooms(self) -> list[str]:
        return sorted(e.room_id for e in self.events)


@dataclass
class Harness:
    client: TestClient
    outbox: RecordingOutbox
    projects: JiraProjectType

    async def post(self, data: dict[str, Any] | bytes, *, identifier: str | None = "d-1",
                   signature: str | None = None, query: str = "") -> tuple[int, Any]:
        body = data if isinstance(data, bytes) else json.dumps(data).encode()
        headers = {"Content-Type": "application/json"}
        if identifier is not None:
            headers["X-Atlassian-Webhook-Identifier"] = identifier
        if signature != "":
            headers["X-Hub-Signature"] = signature or sign(WEBHOOK_SECRET, body)
        async with self.client.post(f"/jira/webhook{query}", data=body, headers=headers) as resp:
            return resp.status, await resp.json()


ROOMS = {
    "!created": ("https://acme.atlassian.net/projects/PLAY", ["issue_created"], None),
    "!updates": ("https://acme.atlassian.net/projects/PLAY", ["issue_updated", "comment_created"], None),
    "!versions": ("https://acme.atlassian.net/projects/PLAY", ["version_released"], "10000"),
    "!other-host": ("https://other.atlassian.net/projects/PLAY", ["issue_created"], None),
    "!web": ("https://acme.atlassian.net/projects/WEB", ["issue_created"], None),
    "!hookshot-made": ("https://acme.atlassian.net/rest/api/2/project/PLAY", ["version_created"], None),
}


@pytest_asyncio.fixture
async def harness(aiohttp_client: Any, db: Database, told: Told) -> AsyncIterator[Harness]:
    config = cloud_config("https://auth.example")
    async with aiohttp.ClientSession() as session:
        projects = JiraProjectType(config, make_accounts(config, db, session, told))
        conns = []
        for room, (url, events, project_id) in ROOMS.items():
            state: dict[str, Any] = {"url": url, "events": events, **({"id": project_id} if project_id else {})}
            normalized, issues = projects.validate(state, existing=None, is_new=False)
            assert not issues
            conns.append(Connection(room, EVENT_TYPE, url, normalized))
        await projects.start(conns)
        outbox = RecordingOutbox()
        cpu = CpuPool(workers=1, heavy_workers=1)
        app = web.Application(middlewares=[error_middleware])
        JiraWebhookRoute(WEBHOOK_SECRET, projects, outbox, cpu).add_routes(app)  # type: ignore[arg-type]
        try:
            yield Harness(await aiohttp_client(app), outbox, projects)
        finally:
            await cpu.close()


async def test_the_contracts_vector_is_verified_before_the_body_is_read(harness: Harness) -> None:
    status, body = await harness.post(VECTOR_BODY, signature=VECTOR_SIG)
    # Verified; then parsed: the vector's issue lacks what routing needs.
    assert status == 400 and body["errcode"] == "HS_BAD_VALUE" and "issue.fields" in body["error"]
    status, body = await harness.post(VECTOR_BODY + b" ", signature=VECTOR_SIG)
    assert status == 401 and body["errcode"] == "HS_BAD_TOKEN"
    status, _ = await harness.post(VECTOR_BODY, signature=VECTOR_SIG.replace("sha256=", "sha1="))
    assert status == 401


async def test_refusals_post_nothing_and_come_before_parsing(harness: Harness) -> None:
    good = fixture("issue_created")
    assert (await harness.post(good, signature=""))[0] == 401  # neither signature nor ?secret=
    assert (await harness.post(good, signature="sha256=" + "0" * 64))[0] == 401
    assert (await harness.post(good, signature=sign("another-secret", json.dumps(good).encode())))[0] == 401
    assert (await harness.post(b"{not json", signature="sha256=" + "0" * 64))[0] == 401
    assert (await harness.post(good, signature="", query="?secret=wrong"))[0] == 401
    assert (await harness.post(good, signature="", query="?secret="))[0] == 401
    assert harness.outbox.events == []
    status, body = await harness.post(b"x" * (MAX_BODY_BYTES + 1), signature="sha256=" + "0" * 64)
    assert status == 413 and body["errcode"] == "HS_TOO_LARGE"


async def test_query_secret_as_hookshot_accepts_it(harness: Harness) -> None:
    status, body = await harness.post(fixture("issue_created"), signature="", query=f"?secret={WEBHOOK_SECRET}")
    assert status == 200 and body == {"ok": True, "handled": True, "posted": 1, "duplicate": False}
    assert harness.outbox.rooms() == ["!created"]


async def test_routing_by_instance_project_and_each_rooms_events(harness: Harness) -> None:
    assert (await harness.post(fixture("issue_created"), identifier="a"))[1]["posted"] == 1
    assert harness.outbox.rooms() == ["!created"]
    [event] = harness.outbox.events
    content = event.content
    assert content["body"].startswith("Alice Liddell created a new JIRA issue [PLAY-42]")
    assert content["formatted_body"].startswith("Alice Liddell created a new JIRA issue <a href=")
    assert "&lt;b&gt;" in content["formatted_body"] and "<em>" not in content["formatted_body"]
    assert event.dedupe_key == "jira:a"

    await harness.post(fixture("issue_updated"), identifier="b")
    await harness.post(fixture("comment_created"), identifier="c")
    assert harness.outbox.rooms() == ["!created", "!updates", "!updates"]

    status, body = await harness.post(fixture("version_released"), identifier="d")
    assert (status, body["posted"]) == (200, 1)
    assert harness.outbox.events[-1].room_id == "!versions"
    assert "Version **released** for project [PLAY](https://acme.atlassian.net/projects/PLAY)" in (
        harness.outbox.events[-1].content["body"]
    )


async def test_a_connection_without_id_gets_versions_once_an_issue_told_the_id(harness: Harness) -> None:
    created = fixture("version_released")
    created["webhookEvent"] = "jira:version_created"
    # hookshot's state (its url is a REST URL, no `id`): nothing yet knows PLAY is 10000 ...
    harness.projects._learned.clear()
    assert (await harness.post(created, identifier="v1"))[1]["posted"] == 0
    # ... until an issue delivery names both.
    await harness.post(fixture("issue_created"), identifier="i1")
    assert (await harness.post(created, identifier="v2"))[1]["posted"] == 1
    assert harness.outbox.events[-1].room_id == "!hookshot-made"


async def test_a_retried_delivery_is_acknowledged_and_posted_once(harness: Harness) -> None:
    payload = fixture("issue_updated")
    first = await harness.post(payload, identifier="5f2b7c1e-retry")
    again = await harness.post(payload, identifier="5f2b7c1e-retry")
    assert first == (200, {"ok": True, "handled": True, "posted": 1, "duplicate": False})
    assert again == (200, {"ok": True, "handled": True, "posted": 0, "duplicate": True})
    other = await harness.post(payload, identifier="another-delivery")
    assert other[1]["posted"] == 1
    # Without an identifier, the body's hash: the same body is the same delivery.
    assert dedupe_key(None, b"{}") == dedupe_key(None, b"{}") != dedupe_key(None, b"{ }")
    assert dedupe_key("bad id with spaces", b"{}").startswith("jira:sha256:")


async def test_events_the_bridge_does_not_post_and_malformed_ones(harness: Harness) -> None:
    deleted = {**fixture("issue_created"), "webhookEvent": "jira:issue_deleted"}
    assert await harness.post(deleted) == (200, {"ok": True, "handled": False})
    status, body = await harness.post({"timestamp": 1})
    assert (status, body["error"]) == (400, "Missing webhookEvent in body")
    status, body = await harness.post(b"[1, 2]")
    assert status == 400 and body["errcode"] == "HS_BAD_VALUE"
    nested = b'{"a":' * 100 + b"1" + b"}" * 100
    assert (await harness.post(nested))[0] == 400
    broken = fixture("issue_created")
    broken["issue"]["fields"]["project"]["key"] = 7
    status, body = await harness.post(broken)
    assert status == 400 and "issue.fields.project.key" in body["error"]
    assert harness.outbox.events == []
