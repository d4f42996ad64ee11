"""A transformation function set by editing room state, on the in-memory homeserver: a script
that does not compile is told once, not once per bridge process."""

from __future__ import annotations

import asyncio

from hookshot_py.generic.connection import EVENT_TYPE
from support.core import SERVER_NAME, start_core

ALICE = f"@alice:{SERVER_NAME}"
SCRIPTS = {"generic": {"allowJsTransformationFunctions": True}}


async def _notices(core, room: str, count: int) -> list[str]:  # type: ignore[no-untyped-def]
    """The room's notices once `count` are there (scripts are compiled in a worker, off the
    router's path), and a moment more to see whether another follows."""
    for _ in range(100):
        await core.settle()
        if len(core.hs.bodies(room)) >= count:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    await core.settle()
    return core.hs.bodies(room)


async def test_a_broken_script_set_by_hand_is_told_once_by_all_processes(core_factory, pg_admin_dsn):
    a = await core_factory(SCRIPTS)
    b = await start_core(pg_admin_dsn, SCRIPTS, dsn=a.db.dsn, hs=a.hs, secret_key=a.secret_key)
    try:
        room = a.room_with_bot(ALICE)
        a.hs.send_state(room, ALICE, EVENT_TYPE, "hand", {"name": "hand", "transformationFunction": "let = ;"})
        await a.settle()
        await b.manager.reload_room(room)  # what B does when A's mirror write notifies it
        [notice] = await _notices(a, room, 1)
        assert notice.startswith("Could not compile the transformation function of webhook **hand**")

        # A new broken script is a new notice.
        a.hs.send_state(room, ALICE, EVENT_TYPE, "hand", {"name": "hand", "transformationFunction": "result = ("})
        await a.settle()
        await b.manager.reload_room(room)
        assert len(await _notices(a, room, 2)) == 2
    finally:
        await b.stop()
