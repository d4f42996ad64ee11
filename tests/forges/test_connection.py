"""ForgeConnectionType without the manager: the index by project, pending connections, the union
handed to the policy, and the last connection deleting the hook."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from hookshot_py.connections.base import Connection
from hookshot_py.errors import ApiError, ValidationIssue
from hookshot_py.forges.connection import ForgeConnectionType

from .conftest import FakeHooks, make_policy

EVENT_TYPE = "org.example.fake.project"
ALICE = "@alice:x"


class FakeType(ForgeConnectionType[dict[str, Any], str]):
    type_name = "FakeProject"
    event_type = EVENT_TYPE
    service = "fake"

    def validate(
        self, state: dict[str, Any], *, existing: Connection | None, is_new: bool
    ) -> tuple[dict[str, Any], list[ValidationIssue]]:
        return state, []

    def state_key(self, state: dict[str, Any]) -> str:
        return str(state["project"])

    def parse(self, state: dict[str, Any]) -> dict[str, Any]:
        return state

    def ref(self, conn: Connection) -> str:
        return str(self.config_of(conn)["project"])

    def hook_events(self, conn: Connection) -> Iterable[str]:
        return self.config_of(conn)["events"]  # type: ignore[no-any-return]


def conn(room: str, project: str, *events: str) -> Connection:
    return Connection(room, EVENT_TYPE, project, {"project": project, "events": list(events)})


async def test_the_index_the_pending_and_the_union(db, box, forge, clock) -> None:  # type: ignore[no-untyped-def]
    hooks = FakeHooks(forge)
    hooks.tokens.add(ALICE)
    forge.admins.add(ALICE)
    ctype = FakeType(make_policy(db, box, hooks, clock))
    await ctype.start([conn("!a", "Acme/W", "push")])
    key = ctype.key_of(conn("!x", "acme/w"))
    assert [c.room_id for c in ctype.project_connections(key)] == ["!a"], "names fold case"

    # a room being connected: pending (its events count) until it is loaded
    b = conn("!b", "acme/w", "issues")
    await ctype.prepare(b, existing=None, user_id=ALICE)
    assert ctype.project_pending(key) == [b]
    [hook] = forge.hooks.values()
    assert hook.events == ("issues", "push")
    await ctype.on_loaded(b)
    assert ctype.project_pending(key) == [] and len(ctype.project_connections(key)) == 2

    # an edit that leaves the union alone calls nothing
    calls = len(forge.calls)
    await ctype.prepare(conn("!b", "acme/w", "issues", "push"), existing=b, user_id=ALICE)
    assert len(forge.calls) == calls

    # removal: the other room's events remain, then the last room deletes the hook
    await ctype.on_unloaded(b)
    assert await ctype.on_removed(b, user_id=ALICE) == []
    assert hook.events == ("push",)
    a = ctype.project_connections(key)[0]
    await ctype.on_unloaded(a)
    assert await ctype.on_removed(a, user_id=ALICE) == []
    assert forge.hooks == {} and ctype.project_connections(key) == []
    await ctype.stop()


async def test_a_refused_prepare_leaves_nothing_pending(db, box, forge, clock) -> None:  # type: ignore[no-untyped-def]
    hooks = FakeHooks(forge, bridge_token=True)
    hooks.refuse_new_on_error = True  # type: ignore[misc]
    ctype = FakeType(make_policy(db, box, hooks, clock))
    c = conn("!a", "acme/w", "push")
    with pytest.raises(ApiError):
        await ctype.prepare(c, existing=None, user_id=None)
    assert ctype.project_pending(ctype.key_of(c)) == []


async def test_removing_a_connection_to_an_instance_no_longer_configured_leaves_its_hook(  # type: ignore[no-untyped-def]
    db, box, forge, clock
) -> None:
    class Unconfigured(FakeHooks):
        def configured(self, instance: str) -> bool:
            return False

    hooks = Unconfigured(forge)
    hooks.tokens.add(ALICE)
    forge.admins.add(ALICE)
    ctype = FakeType(make_policy(db, box, hooks, clock))
    c = conn("!a", "acme/w", "push")
    await ctype.prepare(c, existing=None, user_id=ALICE)
    await ctype.on_loaded(c)
    await ctype.on_unloaded(c)
    assert await ctype.on_removed(c, user_id=ALICE) == [
        "The Fake instance '' is no longer configured: its webhook was left alone."
    ]
    assert len(forge.hooks) == 1 and ctype.hooks.row("acme/w") is not None
    await ctype.stop()
