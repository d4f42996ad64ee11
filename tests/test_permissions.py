from hookshot_py.permissions import Permissions


def make(rules, members=None):
    members = members or {}
    return Permissions(rules, room_members=lambda room: members.get(room, set()))


def test_levels_are_ordered_and_rules_only_grant():
    p = make([("example.org", [("generic", "manageConnections")])])
    assert p.check("@a:example.org", "generic", "commands")
    assert p.check("@a:example.org", "generic", "manageConnections")
    assert not p.check("@a:example.org", "generic", "admin")
    assert not p.check("@a:other.org", "generic", "commands")
    assert not p.check("@a:example.org", "github", "commands")


def test_actor_kinds_user_star_and_room_members():
    p = make(
        [
            ("@boss:x.org", [("*", "admin")]),
            ("*", [("generic", "commands")]),
            ("!team", [("github", "login")]),
        ],
        members={"!team": {"@dev:y.org"}},
    )
    assert p.check("@boss:x.org", "github", "admin")
    assert p.check("@anyone:z.org", "generic", "commands")
    assert not p.check("@anyone:z.org", "generic", "login")
    assert p.check("@dev:y.org", "github", "login")
    assert not p.check("@other:y.org", "github", "login")
    assert p.room_actors == ["!team"]


def test_webhooks_is_an_alias_of_generic_and_check_any():
    p = make([("x.org", [("webhooks", "manageConnections")])])
    assert p.check("@a:x.org", "generic", "manageConnections")
    assert p.check_any("@a:x.org", "login")
    assert not p.check_any("@a:y.org", "commands")
