from hookshot_py.commands.registry import Command, CommandRegistry


async def _noop(ctx, args):
    return None


def test_longest_match_wins_case_insensitively():
    reg = CommandRegistry()
    reg.add(Command(("webhook",), _noop, "<name>", "create"))
    reg.add(Command(("webhook", "list"), _noop, "", "list"))
    cmd, rest = reg.match(["WebHook", "List"])
    assert cmd.name == "webhook list" and rest == []
    cmd, rest = reg.match(["webhook", "MyHook"])
    assert cmd.name == "webhook" and rest == ["MyHook"]
    assert reg.match(["nothing"]) is None


def test_suggest_close_names():
    reg = CommandRegistry()
    reg.add(Command(("webhook",), _noop, "<name>", "create"))
    assert reg.suggest("webhok") == ["webhook"]
