"""The Barkeep repository connection type: state validation, names, and API errors."""

from __future__ import annotations

from typing import Any

import pytest

from hookshot_py.barkeep.accounts import BarkeepAccounts
from hookshot_py.barkeep.connection import (
    EVENT_TYPE,
    BarkeepRepoType,
    api_error,
    events_of,
    repo_name_of_url,
    repo_problem,
)
from hookshot_py.barkeep.errors import BarkeepError
from hookshot_py.config import BarkeepConfig, BarkeepInstance
from hookshot_py.connections.base import Connection
from hookshot_py.errors import ErrCode


def ctype(*names: str) -> BarkeepRepoType:
    config = BarkeepConfig(instances={n: BarkeepInstance(url=f"https://{n}.example.org") for n in names or ("main",)})
    return BarkeepRepoType(BarkeepAccounts(config, None, None), None, None)  # type: ignore[arg-type]


def issues_of(t: BarkeepRepoType, state: dict[str, Any], **kw: Any) -> dict[str, str]:
    kw.setdefault("existing", None)
    kw.setdefault("is_new", True)
    _, issues = t.validate(state, **kw)
    return {i.path: i.message for i in issues}


def test_defaults_and_state_key() -> None:
    t = ctype("main", "second")
    state, issues = t.validate({"instance": "second", "repo": "widgets"}, existing=None, is_new=True)
    assert issues == []
    assert state == {"instance": "second", "repo": "widgets", "events": ["approvals", "comments"], "commandPrefix": "!barkeep"}
    assert t.state_key(state) == "second/widgets"
    assert (t.type_name, t.event_type, t.service) == ("BarkeepRepo", EVENT_TYPE, "barkeep")


def test_the_only_instance_is_the_default() -> None:
    state, issues = ctype("solo").validate({"repo": "widgets"}, existing=None, is_new=True)
    assert issues == [] and state["instance"] == "solo"
    assert issues_of(ctype("a", "b"), {"repo": "widgets"}) == {"/instance": "must be a configured Barkeep instance: a, b"}


def test_precise_issues_for_bad_state() -> None:
    found = issues_of(
        ctype(),
        {"instance": "nope", "repo": "a/b", "events": ["approvals", "pushes"], "commandPrefix": "!bk x", "colour": 1},
    )
    assert found == {
        "/colour": "unknown field; expected one of instance, repo, events, commandPrefix, gitUrl",
        "/instance": "must be a configured Barkeep instance: main",
        "/repo": "must be a Barkeep repository name (a directory name: no '/', no surrounding spaces)",
        "/events/1": "unknown event 'pushes'; expected one of approvals, comments",
        "/commandPrefix": "must be a word of 2 to 24 characters without spaces",
    }
    assert issues_of(ctype(), {"instance": "main"}) == {"/repo": "is required"}
    assert issues_of(ctype(), {"instance": "main", "repo": "w", "events": "approvals"}) == {
        "/events": "must be a list of: approvals, comments"
    }


def test_events_are_normalised_and_state_from_the_room_is_read_leniently() -> None:
    t = ctype()
    state, issues = t.validate({"instance": "main", "repo": "w", "events": ["comments", "approvals", "comments"]}, existing=None, is_new=True)
    assert issues == [] and state["events"] == ["approvals", "comments"]
    state, issues = t.validate({"instance": "main", "repo": "w", "events": ["comments", "future"], "extra": 1}, existing=None, is_new=False)
    assert issues == [] and state["events"] == ["comments"]
    state, issues = t.validate({"instance": "main", "repo": "w", "events": None}, existing=None, is_new=False)
    assert issues == [] and state["events"] == ["approvals", "comments"]


def test_git_url_must_name_the_same_repository() -> None:
    t = ctype()
    state, issues = t.validate({"instance": "main", "repo": "widgets", "gitUrl": "https://github.com/acme/widgets.git"}, existing=None, is_new=True)
    assert issues == [] and state["gitUrl"] == "https://github.com/acme/widgets.git"
    assert issues_of(t, {"instance": "main", "repo": "widgets", "gitUrl": "git@github.com:acme/gadgets.git"}) == {
        "/gitUrl": "Barkeep names a repository cloned from this URL 'gadgets', not 'widgets': make `repo` match the URL's last part"
    }
    assert issues_of(t, {"instance": "main", "repo": "widgets", "gitUrl": "has spaces/widgets"}) == {
        "/gitUrl": "must be a git URL without spaces"
    }


def test_instance_cannot_change_on_update() -> None:
    t = ctype("main", "second")
    existing = Connection("!r", EVENT_TYPE, "main/w", {"instance": "main", "repo": "w"})
    assert issues_of(t, {"instance": "second", "repo": "w"}, existing=existing) == {
        "/instance": "cannot be changed; remove the connection and create a new one"
    }


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://github.com/acme/widgets.git", "widgets"),
        ("https://github.com/acme/widgets", "widgets"),
        ("https://github.com/acme/widgets/", "widgets"),
        ("git@github.com:acme/my.lib.git", "my.lib"),
        ("/srv/git/.hidden", ".hidden"),
        ("git@host:solo.git", "git@host:solo"),  # File.basename splits on "/" only
    ],
)
def test_repo_name_of_url_is_rubys_basename(url: str, name: str) -> None:
    assert repo_name_of_url(url) == name


def test_repo_problem() -> None:
    assert repo_problem("widgets") is None and repo_problem("my.lib") is None
    for bad in ("", ".", "..", "a/b", " w", "w\n", "x" * 256, 3):
        assert repo_problem(bad) is not None


def test_events_of_reads_any_stored_state() -> None:
    assert events_of(Connection("!r", EVENT_TYPE, "k", {"events": ["comments", 3]})) == ["comments"]
    assert events_of(Connection("!r", EVENT_TYPE, "k", {})) == ["approvals", "comments"]


@pytest.mark.parametrize(
    ("kind", "status", "code", "http"),
    [
        ("bad_request", 400, ErrCode.BAD_VALUE, 400),
        ("not_found", 404, ErrCode.NOT_FOUND, 404),
        ("admin_only", 403, ErrCode.FORBIDDEN_BOT, 403),
        ("clock_skew", 400, ErrCode.FORBIDDEN_BOT, 403),
        ("unavailable", 0, ErrCode.UNKNOWN, 502),
    ],
)
def test_api_errors_from_barkeep_errors(kind: Any, status: int, code: ErrCode, http: int) -> None:
    err = api_error(BarkeepError(status, "Admin only." if kind == "admin_only" else "boom", kind, instance="bk"))
    assert err.errcode == code and err.status == http
    assert err.error == BarkeepError(status, "Admin only." if kind == "admin_only" else "boom", kind, instance="bk").describe()


def test_git_urls_barkeep_must_not_clone_are_refused() -> None:
    t = ctype()
    for url, message in [
        ("file:///etc/passwd", "must be an http(s), git or ssh URL Barkeep can clone, not a file:// URL"),
        ("http://169.254.169.254/latest/passwd", "must not point at 169.254.169.254, a link-local (cloud metadata) address"),
        ("/srv/git/passwd", "must be an http(s), git or ssh URL Barkeep can clone, not a local path"),
    ]:
        assert issues_of(t, {"instance": "main", "repo": "passwd", "gitUrl": url}) == {"/gitUrl": message}
    # State written by hand into the room is never sent to Barkeep: read as it is.
    state, issues = t.validate({"instance": "main", "repo": "w", "gitUrl": "file:///w"}, existing=None, is_new=False)
    assert issues == [] and state["gitUrl"] == "file:///w"


async def test_a_git_url_resolving_to_an_internal_address_is_not_sent_to_barkeep(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    import socket

    from hookshot_py.errors import ApiError

    async def getaddrinfo(host: str, *_: Any, **__: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 0))]

    class Admin:
        calls: list[str] = []

        async def add_repo(self, url: str) -> dict[str, Any]:
            self.calls.append(url)
            return {}

    t = ctype()
    admin = Admin()
    monkeypatch.setattr(t.accounts, "admin_client", lambda instance: admin)
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    state = {"instance": "main", "repo": "w", "gitUrl": "https://looks-public.example/w.git"}
    normalized, issues = t.validate(state, existing=None, is_new=True)
    assert issues == []
    with pytest.raises(ApiError) as info:
        await t.prepare(Connection("!r", EVENT_TYPE, "main/w", normalized), existing=None, user_id="@a:x")
    assert info.value.extra["validationErrors"] == [
        {"path": "/gitUrl", "message": "must not point at the local network: looks-public.example resolves to 127.0.0.1, a loopback address"}
    ]
    assert admin.calls == []
