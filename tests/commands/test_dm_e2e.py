"""The DM with the bot: welcome on invite, `help`, and unknown commands."""

from __future__ import annotations

from support.fixtures import BOT
from support.helpers import is_notice_with


async def test_dm_welcome_help_and_unknown_command(bridge, make_user):
    alice = await make_user("alice")
    dm = await alice.create_room(invite=[BOT], is_direct=True, preset="trusted_private_chat")
    await alice.wait_for_message(dm, is_notice_with("Type `help`"))
    await alice.send_text(dm, "help")
    await alice.wait_for_message(dm, is_notice_with("Commands in this chat"))
    await alice.send_text(dm, "frobnicate")
    await alice.wait_for_message(dm, is_notice_with("Unknown command `frobnicate`"))
    # someone else's message in the DM is not a command (only the DM's owner drives it)
    assert bridge.bridge.services.dms.user_of(dm) == alice.user_id
