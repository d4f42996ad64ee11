"""No silent rooms: connection state this bridge does not serve is recognised (hookshot's types and
their legacy aliases), explained, listed, and reported in the room once, durably."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from hookshot_py.connections.base import connection_id
from hookshot_py.connections.known import KNOWN_TYPES, known_type, unsupported_reason
from hookshot_py.connections.unsupported import UnsupportedConnections
from hookshot_py.db.database import Database
from hookshot_py.matrix.outbox import Outbox
from hookshot_py.metrics import Metrics

ROOM, OTHER = "!room:hookshot.test", "!other"
GENERIC = "uk.half-shot.matrix-hookshot.generic.hook"


def make(db: Database) -> UnsupportedConnections:
    outbox = Outbox(db, SimpleNamespace(bot_mxid="@hookshot:hookshot.test"), None, Metrics())  # type: ignore[arg-type]
    return UnsupportedConnections(db, outbox)


def state(event_type: str, key: str, content: dict[str, Any], room: str = ROOM) -> dict[str, Any]:
    return {"type": event_type, "state_key": key, "content": content, "room_id": room, "sender": "@a:x"}


async def notices(db: Database, room: str = ROOM) -> list[str]:
    rows = await db.fetch("SELECT content FROM outbox WHERE room_id = $1 ORDER BY id", room)
    return [r["content"]["body"] for r in rows]


def test_every_hookshot_type_and_alias_is_known() -> None:
    for event_type, type_name in (
        ("uk.half-shot.matrix-hookshot.gitlab.repository", "GitLabRepo"),
        ("uk.half-shot.matrix-github.gitlab.repository", "GitLabRepo"),
        ("uk.half-shot.matrix-github.jira.project", "JiraProject"),
        ("uk.half-shot.matrix-github.bridge", "GithubIssue"),
        ("uk.half-shot.matrix-github.discussion", "GithubDiscussion"),
        ("uk.half-shot.matrix-figma.file", "FigmaFile"),
        ("uk.half-shot.matrix-challenger.activity", "ChallengeHound"),
        ("org.matrix.matrix-hookshot.openproject.project", "OpenProject"),
        ("uk.half-shot.matrix-hookshot.outbound-hook", "OutboundWebhook"),
    ):
        kind = known_type(event_type)
        assert kind is not None and kind.type_name == type_name, event_type
    assert known_type("m.room.topic") is None
    assert len({k.event_type for k in KNOWN_TYPES}) == len(KNOWN_TYPES)


def test_reasons_say_what_to_do() -> None:
    def reason(event_type: str) -> str:
        kind = known_type(event_type)
        assert kind is not None
        return unsupported_reason(kind)

    assert reason("uk.half-shot.matrix-hookshot.gitlab.repository") == (
        "The GitLab service is not enabled on this bridge: enable `gitlab` in the config."
    )
    assert reason("uk.half-shot.matrix-hookshot.outbound-hook") == (
        "The outbound webhooks service is not enabled on this bridge: enable `generic.outbound: true` in the config."
    )
    figma = reason("uk.half-shot.matrix-hookshot.figma.file")
    assert figma == "Figma file connections are not supported by hookshot_py."
    assert reason("uk.half-shot.matrix-hookshot.github.issue") == (
        "GitHub issue room connections are not supported by hookshot_py."
    )


async def test_reported_once_listed_and_forgotten_when_gone(db: Database) -> None:
    unsupported = make(db)
    room_state = [
        state("uk.half-shot.matrix-github.gitlab.repository", "org/repo", {"instance": "gl", "path": "org/repo"}),
        state("uk.half-shot.matrix-hookshot.figma.file", "abc", {"fileId": "abc"}),
        state("uk.half-shot.matrix-hookshot.jira.project", "https://j/projects/X", {}),  # removed: {}
        state("uk.half-shot.matrix-hookshot.feed", "https://f", {"disabled": True}),
        state(GENERIC, "served", {"name": "served"}),  # served here
        state("m.room.name", "", {"name": "room"}),
    ]
    await unsupported.sync_room(ROOM, room_state, served={GENERIC})
    [notice] = await notices(db)
    assert "does not serve" in notice
    assert "- GitLab project `org/repo`: The GitLab service is not enabled on this bridge" in notice
    assert "- Figma file `abc`: Figma file connections are not supported by hookshot_py." in notice
    listed = sorted((c.kind.type_name, c.state_key) for c in unsupported.in_room(ROOM))
    assert listed == [("FigmaFile", "abc"), ("GitLabRepo", "org/repo")]
    gitlab_id = connection_id(ROOM, "uk.half-shot.matrix-hookshot.gitlab.repository", "org/repo")
    conn = unsupported.get(ROOM, gitlab_id)
    assert conn is not None
    assert conn.details("@hookshot:hookshot.test") == {
        "type": "GitLabRepo",
        "eventType": "uk.half-shot.matrix-hookshot.gitlab.repository",
        "id": gitlab_id,
        "service": "gitlab",
        "botUserId": "@hookshot:hookshot.test",
        "config": {"instance": "gl", "path": "org/repo"},
        "unsupported": {"reason": "The GitLab service is not enabled on this bridge: enable `gitlab` in the config."},
    }

    # a restart: known at once from the database, and read again from the room: no second notice
    again = make(db)
    await again.load(served={GENERIC}, mirrored=[])
    assert len(again.all()) == 2
    await again.sync_room(ROOM, room_state, served={GENERIC})
    assert len(await notices(db)) == 1

    # one more arrives: told about it alone; one is removed: forgotten
    openproject = "org.matrix.matrix-hookshot.openproject.project"
    await again.apply(state(openproject, "https://op/projects/1", {"url": "https://op/projects/1"}), served={GENERIC})
    bodies = await notices(db)
    assert len(bodies) == 2 and "OpenProject project `https://op/projects/1`" in bodies[1] and "Figma" not in bodies[1]
    await again.apply(state("uk.half-shot.matrix-hookshot.figma.file", "abc", {}), served={GENERIC})
    assert sorted(c.kind.type_name for c in again.in_room(ROOM)) == ["GitLabRepo", "OpenProject"]
    await again.sync_room(ROOM, [], served={GENERIC})
    assert again.in_room(ROOM) == [] and await db.fetchval("SELECT count(*) FROM unsupported_connections") == 0


async def test_mirrored_rows_of_a_disabled_service_are_listed_at_start(db: Database) -> None:
    unsupported = make(db)
    await unsupported.load(
        served={GENERIC},
        mirrored=[(OTHER, "uk.half-shot.matrix-hookshot.github.repository", "o/r", {"org": "o", "repo": "r"}),
                  (OTHER, GENERIC, "served", {"name": "served"})],
    )  # fmt: skip
    [conn] = unsupported.all()
    assert (conn.room_id, conn.kind.service, conn.reason) == (
        OTHER, "github", "The GitHub service is not enabled on this bridge: enable `github` in the config."
    )
