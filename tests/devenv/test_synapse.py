"""Smoke tests of the harness itself: a real Synapse, real clients, real rooms."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from support.fixtures import SERVER_NAME, MakeUser
from hookshot_py.devenv.matrix_client import MatrixHTTPError, MatrixTestClient
from hookshot_py.devenv.synapse import SynapseError, SynapseServer


def _is_text(body: str):
    def predicate(event: dict[str, Any]) -> bool:
        return event["type"] == "m.room.message" and event["content"].get("body") == body

    return predicate


async def test_two_users_talk_in_a_room(make_user: MakeUser) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    assert alice.user_id.endswith(f":{SERVER_NAME}") and alice.user_id != bob.user_id

    room_id = await alice.create_room(invite=[bob.user_id], name="smoke")
    # Room version 12: an opaque id without a ":server" part.
    assert room_id.startswith("!") and ":" not in room_id
    assert await bob.join(room_id) == room_id
    assert room_id in await bob.joined_rooms()

    event_id = await bob.send_text(room_id, "hello alice")
    seen = await alice.wait_for_message(room_id, _is_text("hello alice"))
    assert seen["event_id"] == event_id and seen["sender"] == bob.user_id
    timeline = await alice.messages(room_id)
    assert timeline[0]["type"] == "m.room.create"  # oldest first
    assert timeline[-1]["event_id"] == event_id

    await bob.leave(room_id)
    assert room_id not in await bob.joined_rooms()


async def test_state_events_round_trip(make_user: MakeUser) -> None:
    alice = await make_user("alice")
    room_id = await alice.create_room()
    content = {"hookId": "abc", "name": "ci"}

    await alice.send_state(room_id, "uk.half-shot.matrix-hookshot.generic.hook", "ci", content)

    assert await alice.get_state(room_id, "uk.half-shot.matrix-hookshot.generic.hook", "ci") == content
    assert await alice.get_state(room_id, "uk.half-shot.matrix-hookshot.generic.hook", "other") is None
    state = await alice.get_room_state(room_id)
    assert any(e["type"] == "uk.half-shot.matrix-hookshot.generic.hook" and e["content"] == content for e in state)


async def test_set_power_levels_merges_into_current_levels(make_user: MakeUser) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    room_id = await alice.create_room(invite=[bob.user_id])
    before = await alice.get_state(room_id, "m.room.power_levels")
    assert before is not None

    await alice.set_power_levels(room_id, {bob.user_id: 50}, events={"m.room.topic": 75}, state_default=60)

    after = await alice.get_state(room_id, "m.room.power_levels")
    assert after is not None
    assert after["users"] == {**before.get("users", {}), bob.user_id: 50}
    assert after["events"] == {**before["events"], "m.room.topic": 75}
    assert after["state_default"] == 60
    assert after["ban"] == before["ban"]


async def test_wait_for_message_timeout_reports_what_it_saw(make_user: MakeUser) -> None:
    alice = await make_user("alice")
    room_id = await alice.create_room()
    await alice.send_text(room_id, "something else")

    with pytest.raises(AssertionError) as excinfo:
        await alice.wait_for_message(room_id, _is_text("never sent"), timeout=0.5)

    assert "something else" in str(excinfo.value) and room_id in str(excinfo.value)


async def test_wait_for_invite_returns_each_invite_once(make_user: MakeUser) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    first = await alice.create_room(invite=[bob.user_id], is_direct=True)

    assert await bob.wait_for_invite(timeout=10) == first
    second = await alice.create_room(invite=[bob.user_id], is_direct=True)
    assert await bob.wait_for_invite(timeout=10) == second
    with pytest.raises(AssertionError, match="no invite"):
        await bob.wait_for_invite(timeout=0.5)


async def test_http_errors_carry_status_and_errcode(make_user: MakeUser) -> None:
    alice = await make_user("alice")
    with pytest.raises(MatrixHTTPError) as excinfo:
        await alice.send_text("!doesnotexist", "hi")
    assert excinfo.value.status == 403 and excinfo.value.errcode == "M_FORBIDDEN"


async def test_appservice_registration_is_loaded(synapse: SynapseServer, registration: dict[str, Any]) -> None:
    """Synapse accepts the registration's as_token as the bridge bot, and refuses a made-up token."""
    bot = MatrixTestClient(synapse.base_url, f"@hookshot:{SERVER_NAME}", registration["as_token"])
    stranger = MatrixTestClient(synapse.base_url, f"@hookshot:{SERVER_NAME}", "not-a-token")
    try:
        assert (await bot.request("GET", "/account/whoami"))["user_id"] == f"@hookshot:{SERVER_NAME}"
        with pytest.raises(MatrixHTTPError) as excinfo:
            await stranger.request("GET", "/account/whoami")
        assert excinfo.value.status == 401
    finally:
        await bot.close()
        await stranger.close()


@pytest.mark.e2e  # starts its own Synapse
async def test_restart_and_kill_keep_users_rooms_and_port(tmp_path: Path) -> None:
    server = SynapseServer(tmp_path / "hs", "restart.test")
    await server.start()
    try:
        port = server.port
        alice = await server.register_user("alice", admin=True)
        room_id = await alice.create_room(name="persistent")
        await alice.send_text(room_id, "before restart")

        await server.restart()
        assert server.port == port and server.running
        # The old access token still works: the user, its device and the room survived.
        assert room_id in await alice.joined_rooms()
        await alice.wait_for_message(room_id, _is_text("before restart"), timeout=5)

        await server.kill()
        assert not server.running
        with pytest.raises(aiohttp.ClientConnectionError):
            await alice.joined_rooms()
        await server.start()
        await alice.wait_for_message(room_id, _is_text("before restart"), timeout=5)
        await alice.close()
    finally:
        await server.stop()
    assert not server.running


async def test_start_refuses_a_missing_registration(tmp_path: Path) -> None:
    server = SynapseServer(tmp_path / "hs", appservice_registration_paths=[tmp_path / "missing.yaml"])
    with pytest.raises(SynapseError, match="missing.yaml does not exist"):
        await server.start()
    assert not server.running


@pytest.mark.e2e  # starts its own Synapse
async def test_startup_failure_shows_the_log_tail(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = SynapseServer(tmp_path / "hs", port=taken.getsockname()[1])
        with pytest.raises(SynapseError, match="exited with") as excinfo:
            await server.start()
    assert "homeserver.log" in str(excinfo.value) or "homeserver.out" in str(excinfo.value)
    assert not server.running
