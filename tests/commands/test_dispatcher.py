"""The command dispatcher, fed by the event router from the in-memory homeserver: scopes
(`!hookshot`, DMs, connection prefixes), arity, "did you mean", permissions, help, reactions,
errors, and the messages it must not answer. Assertions are on what the homeserver received."""

from __future__ import annotations

import pytest

from hookshot_py.commands.context import CommandContext, CommandError
from hookshot_py.commands.registry import command, commands_of
from hookshot_py.errors import ApiError, ErrCode
from hookshot_py.generic.connection import EVENT_TYPE as HOOK
from support.core import SERVER_NAME
from support.widget import EVENT_TYPE as WIDGET
from support.widget import WidgetType

ALICE = f"@alice:{SERVER_NAME}"  # admin of everything
BOB = f"@bob:{SERVER_NAME}"  # `commands` for widgets only
GHOST = f"@_webhooks_ci:{SERVER_NAME}"  # one of the bridge's own users
PERMISSIONS = [
    {"actor": ALICE, "services": [{"service": "*", "level": "admin"}]},
    {"actor": BOB, "services": [{"service": "widget", "level": "commands"}]},
]


class RoomExtras:
    """Extra `!hookshot` commands, to see the dispatcher's error paths in the room scope."""

    @command("fail politely", "", "Refuses with a CommandError.", permission=("generic", "commands"))
    async def refuse(self, ctx: CommandContext, args: list[str]) -> None:
        raise CommandError("this was refused")

    @command("fail api", "", "Refuses with an ApiError.", permission=("generic", "commands"))
    async def api(self, ctx: CommandContext, args: list[str]) -> None:
        raise ApiError(ErrCode.NOT_FOUND, "no such thing")

    @command("fail badly", "", "Has a bug.", permission=("generic", "commands"))
    async def crash(self, ctx: CommandContext, args: list[str]) -> None:
        raise KeyError("internal detail")


class DmCommands:
    @command("whoami", "", "Say who you are.", max_args=0)
    async def whoami(self, ctx: CommandContext, args: list[str]) -> None:
        await ctx.reply(f"you are {ctx.sender}, in a DM: {ctx.is_dm}")


@pytest.fixture
async def core(core_factory):
    core = await core_factory({"permissions": PERMISSIONS}, types=[WidgetType()])
    core.core.dispatcher.room_commands.extend(commands_of(RoomExtras()))
    core.core.dispatcher.dm_commands.extend(commands_of(DmCommands()))
    return core


@pytest.fixture
def room(core):
    room = core.room_with_bot(ALICE)
    core.hs.invite(room, ALICE, BOB)
    core.hs.join(room, BOB)
    core.hs.pushed.clear()
    return room


async def _say(core, room: str, sender: str, body: str, **kw) -> dict:  # type: ignore[no-untyped-def]
    """Send a message as `sender` and let the bridge answer; returns the message event."""
    event = core.hs.send_text(room, sender, body, **kw)
    await core.settle()
    return event


def _replies(core, room: str) -> list[str]:
    return core.hs.bodies(room)


# -- the !hookshot scope ----------------------------------------------------------------------------


async def test_a_command_runs_replies_in_thread_and_reacts(core, room):
    event = await _say(core, room, ALICE, "!hookshot webhook list")
    [reply] = core.hs.sent_in(room)
    assert reply["sender"] == core.gateway.bot_mxid
    assert reply["content"]["msgtype"] == "m.notice"
    assert reply["content"]["body"] == "There are no webhooks in this room. Create one with `!hookshot webhook <name>`."
    assert "<code>!hookshot webhook &lt;name&gt;</code>" in reply["content"]["formatted_body"]
    assert reply["content"]["m.relates_to"] == {"m.in_reply_to": {"event_id": event["event_id"]}}
    assert core.hs.reactions(room, event["event_id"]) == ["✅"]


async def test_the_prefix_and_command_words_are_case_insensitive(core, room):
    await _say(core, room, ALICE, "!HookShot WEBHOOK List")
    assert _replies(core, room) == ["There are no webhooks in this room. Create one with `!hookshot webhook <name>`."]


def _room_command(core, *words: str):  # type: ignore[no-untyped-def]
    found = core.core.dispatcher.room_commands.match(list(words))
    assert found is not None and found[0].words == words
    return found[0]


async def test_wrong_arity_shows_the_usage(core, room):
    create, listing = _room_command(core, "webhook"), _room_command(core, "webhook", "list")
    assert (create.min_args, create.max_args, listing.max_args) == (1, 2, 0)
    await _say(core, room, ALICE, "!hookshot webhook")
    await _say(core, room, ALICE, "!hookshot webhook one 30d three")
    await _say(core, room, ALICE, "!hookshot webhook list now")
    usage = f"Usage: `!hookshot {create.usage_line()}`. {create.help}"
    assert usage.startswith("Usage: `!hookshot webhook <name>")
    assert _replies(core, room) == [usage, usage, "Usage: `!hookshot webhook list`. List the webhooks of this room."]
    assert core.hs.sent_in(room, "m.reaction") == [] and core.gateway.called("put_state") == []


async def test_unknown_commands_get_a_suggestion_when_one_is_close(core, room):
    await _say(core, room, ALICE, "!hookshot webhok ci")
    await _say(core, room, ALICE, "!hookshot zzzz")
    assert _replies(core, room) == [
        "Unknown command `webhok`. Did you mean `!hookshot webhook`? Try `!hookshot help`.",
        "Unknown command `zzzz`. Try `!hookshot help`.",
    ]


async def test_a_command_needs_its_permission(core, room):
    await _say(core, room, BOB, "!hookshot webhook bobs-hook")
    assert _replies(core, room) == [
        "You do not have permission to use this command "
        "(it needs the `commands` permission for `generic` on this bridge)."
    ]
    assert core.manager.connections(room) == []


async def test_refusals_and_bugs_are_told_apart(core, room):
    polite = await _say(core, room, ALICE, "!hookshot fail politely")
    api = await _say(core, room, ALICE, "!hookshot fail api")
    bug = await _say(core, room, ALICE, "!hookshot fail badly")
    assert _replies(core, room) == [
        "Failed to handle command: this was refused",
        "Failed to handle command: no such thing",
        "Failed to handle command: an internal error occurred (it has been logged).",
    ]
    for event in (polite, api, bug):
        assert core.hs.reactions(room, event["event_id"]) == ["⛔"]
    metrics = core.services.metrics.render().decode()
    assert 'hookshot_commands_total{outcome="refused"} 2.0' in metrics
    assert 'hookshot_commands_total{outcome="error"} 1.0' in metrics


async def test_an_unclosed_quote_is_a_parse_error(core, room):
    await _say(core, room, ALICE, '!hookshot webhook "half')
    assert _replies(core, room) == ["Could not parse the command: a quote is not closed."]


async def test_help_lists_what_the_user_may_use_with_the_rooms_connection_commands(core, room):
    await core.manager.create(room, WIDGET, {"name": "gizmo"}, user_id=ALICE)
    await _say(core, room, ALICE, "!hookshot help")
    await _say(core, room, BOB, "!hookshot")
    alices, bobs = _replies(core, room)
    assert alices.startswith("**Hookshot commands**\n\n")
    lines = alices.splitlines()[2:]
    create = _room_command(core, "webhook")
    assert f"- `!hookshot {create.usage_line()}` — {create.help}" in lines
    assert "- `!hookshot webhook list` — List the webhooks of this room." in lines
    assert "- `!wd ping` — Answer pong. (gizmo)" in lines
    assert "- `!wd admin only` — Needs the admin permission. (gizmo)" in lines
    assert lines[-1] == "- `!hookshot help` — Show the commands you can use here."
    # Bob may use the widget's commands (but not its admin one) and none of the webhook commands.
    assert "webhook" not in bobs and "admin only" not in bobs and "- `!wd ping` — Answer pong. (gizmo)" in bobs


# -- connection prefixes ------------------------------------------------------------------------------------


async def test_a_connections_prefix_runs_its_commands_with_the_connection(core, room):
    await core.manager.create(room, WIDGET, {"name": "gizmo"}, user_id=ALICE)
    await core.manager.create(room, WIDGET, {"name": "other", "commandPrefix": "!w2"}, user_id=ALICE)
    ping = await _say(core, room, BOB, "!wd ping")
    await _say(core, room, BOB, "!w2 PING")
    await _say(core, room, BOB, "!wd say don't  panic")  # an apostrophe: split on spaces, text kept as typed
    await _say(core, room, BOB, "!wdping")  # not the prefix
    assert _replies(core, room) == ["pong from gizmo", "pong from other", "said: don't  panic (2 words)"]
    assert core.hs.reactions(room, ping["event_id"]) == ["✅"]


async def test_connection_commands_need_the_services_commands_permission(core_factory):
    core = await core_factory(
        {
            "permissions": [
                {"actor": ALICE, "services": [{"service": "*", "level": "admin"}]},
                {"actor": BOB, "services": [{"service": "generic", "level": "admin"}]},
            ]
        },
        types=[WidgetType()],
    )
    room = core.room_with_bot(ALICE)
    core.hs.invite(room, ALICE, BOB)
    core.hs.join(room, BOB)
    await core.manager.create(room, WIDGET, {"name": "gizmo"}, user_id=ALICE)
    await _say(core, room, BOB, "!wd ping")
    await _say(core, room, ALICE, "!wd admin only")
    assert _replies(core, room) == [
        "You do not have permission to use this command "
        "(it needs the `commands` permission for `widget` on this bridge).",
        "admin stuff done",
    ]


async def test_a_command_level_permission_overrides_the_connections(core, room):
    await core.manager.create(room, WIDGET, {"name": "gizmo"}, user_id=ALICE)
    await _say(core, room, BOB, "!wd admin only")
    assert _replies(core, room) == [
        "You do not have permission to use this command (it needs the `admin` permission for `widget` on this bridge)."
    ]


async def test_connection_help_errors_and_suggestions(core, room):
    await core.manager.create(room, WIDGET, {"name": "gizmo"}, user_id=ALICE)
    await _say(core, room, BOB, "!wd")
    await _say(core, room, BOB, "!wd pnig")
    await _say(core, room, BOB, "!wd say")
    await _say(core, room, BOB, "!wd refuse")
    bug = await _say(core, room, BOB, "!wd crash")
    help_text, unknown, usage, refused, crashed = _replies(core, room)
    assert help_text.startswith("**Widget commands for widget gizmo**\n\n- `!wd crash` — A bug.")
    assert help_text.endswith("- `!wd help` — Show the commands you can use here.") and "admin only" not in help_text
    assert unknown == "Unknown command `pnig`. Did you mean `!wd ping`? Try `!wd help`."
    assert usage == "Usage: `!wd say <text>`. Repeat the text as typed."
    assert refused == "Failed to handle command: refused on purpose"
    assert crashed == "Failed to handle command: an internal error occurred (it has been logged)."
    assert "secret" not in crashed and core.hs.reactions(room, bug["event_id"]) == ["⛔"]


async def test_a_removed_connection_no_longer_answers(core, room):
    conn, _ = await core.manager.create(room, WIDGET, {"name": "gizmo"}, user_id=ALICE)
    await core.manager.remove(room, conn.id, user_id=ALICE)
    await _say(core, room, ALICE, "!wd ping")
    assert _replies(core, room) == []


# -- messages that are not for the dispatcher --------------------------------------------------------------


async def test_old_messages_are_not_run(core, room):
    await _say(core, room, ALICE, "!hookshot webhook stale-hook", age_ms=6 * 60 * 1000)
    assert _replies(core, room) == [] and core.manager.connections(room) == []
    # A command sent a little while ago (the bridge was restarting) still runs.
    await _say(core, room, ALICE, "!hookshot webhook recent-hook", age_ms=4 * 60 * 1000)
    assert core.manager.find(room, HOOK, "recent-hook") is not None


async def test_bots_notices_and_other_messages_are_not_answered(core, room):
    core.hs.invite(room, ALICE, GHOST)
    core.hs.join(room, GHOST)
    await _say(core, room, GHOST, "!hookshot help")
    await _say(core, room, core.gateway.bot_mxid, "!hookshot help")
    await _say(core, room, ALICE, "!hookshot help", msgtype="m.notice")
    core.hs.send_message(room, ALICE, {"msgtype": "m.image", "body": "!hookshot help", "url": "mxc://x/y"})
    core.hs.send_message(room, ALICE, {"msgtype": "m.text"})
    await _say(core, room, ALICE, "just chatting about !hookshot help")
    await _say(core, room, ALICE, "!hookshothelp")
    assert _replies(core, room) == []


# -- direct messages ---------------------------------------------------------------------------------------


@pytest.fixture
async def dm(core):
    """Alice's DM with the bot, as the bot makes it when it has a secret to tell her."""
    room = await core.services.dms.room_for(ALICE)
    core.hs.join(room, ALICE)
    core.hs.invite(room, core.gateway.bot_mxid, BOB)
    core.hs.join(room, BOB)
    core.hs.pushed.clear()
    return room


async def test_dm_commands_need_no_prefix_and_only_the_owner_is_answered(core, dm):
    await _say(core, dm, ALICE, "whoami")
    await _say(core, dm, ALICE, "!hookshot whoami")
    await _say(core, dm, BOB, "whoami")
    assert _replies(core, dm) == [f"you are {ALICE}, in a DM: True"] * 2


async def test_dm_help_and_unknown_commands(core, dm):
    await _say(core, dm, ALICE, "help")
    await _say(core, dm, ALICE, "webhook list")
    await _say(core, dm, ALICE, "whoam")
    help_text, unknown_room_command, suggestion = _replies(core, dm)
    assert help_text == (
        "**Commands in this chat** (no prefix needed)\n\n- `whoami` — Say who you are.\n"
        "- `help` — Show the commands you can use here.\n\nIn a room, invite me and type `!hookshot help`."
    )
    assert unknown_room_command == "Unknown command `webhook`. Try `help`."
    assert suggestion == "Unknown command `whoam`. Did you mean `whoami`? Try `help`."


async def test_a_webhook_url_goes_to_the_users_dm_never_the_room(core, room):
    await _say(core, room, ALICE, "!hookshot webhook ci-hook")
    conn = core.manager.find(room, HOOK, "ci-hook")
    url = core.manager.type_of(conn).secrets(conn)["url"]
    [reply] = _replies(core, room)
    assert reply.startswith("Room configured to bridge webhook **ci-hook**") and url not in reply
    dm = await core.services.dms.room_for(ALICE)
    assert dm != room and core.hs.room(dm).membership(ALICE) == "invite"
    [secret] = _replies(core, dm)
    assert url in secret and "**ci-hook**" in secret
    # The second webhook reuses the DM.
    await _say(core, room, ALICE, "!hookshot webhook cd-hook")
    assert len(_replies(core, dm)) == 2 and len(core.gateway.called("create_dm")) == 1


async def test_a_rate_limited_reply_is_sent_once_the_homeserver_allows(core, room):
    core.hs.fail("send_event", status=429, errcode="M_LIMIT_EXCEEDED", retry_after_ms=50, room_id=room, times=2)
    event = await _say(core, room, ALICE, "!hookshot webhook list")
    assert _replies(core, room) == ["There are no webhooks in this room. Create one with `!hookshot webhook <name>`."]
    assert core.hs.reactions(room, event["event_id"]) == ["✅"]
    # Three attempts at the reply, the retries under the same transaction id.
    sends = [args for args in core.gateway.called("send_event") if args[2] == "m.room.message"]
    assert len(sends) == 3 and len({args[4] for args in sends}) == 1
