"""Reading a verified GitHub delivery in a worker: what comes back to the event loop is small,
and says what the route needs (the repository, the rooms' drafts, the commits, the diff URL)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

from hookshot_py.github.digest import Candidate, digest_delivery
from hookshot_py.github.format import format_event
from hookshot_py.github.state import ALLOWED_EVENTS, RepoConfig

FIXTURES = Path(__file__).parent / "fixtures"
ALL = RepoConfig.from_state({"org": "octo-org", "repo": "hello-world", "enableHooks": list(ALLOWED_EVENTS)})
DIFF_ROOM = RepoConfig.from_state(
    {"org": "Octo-Org", "repo": "Hello-World", "enableHooks": list(ALLOWED_EVENTS), "prDiff": {"enabled": True}}
)
OTHER = RepoConfig.from_state({"org": "octo-org", "repo": "other", "enableHooks": list(ALLOWED_EVENTS)})


def body(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def digest(event: str, raw: bytes, *candidates: Candidate, form: bool = False) -> Any:
    result = digest_delivery(event, raw, form=form, candidates=list(candidates), domain="example.org")
    return pickle.loads(pickle.dumps(result))  # what the worker sends back must pickle


def test_drafts_for_the_candidates_of_the_repository_only() -> None:
    d = digest("issues", body("issues.opened"), Candidate("!a", ALL), Candidate("!other", OTHER), Candidate("!b", DIFF_ROOM))
    assert (d.error, d.full_name, d.action, d.payload_error) == (None, "octo-org/hello-world", "opened", None)
    assert [index for index, _ in d.drafts] == [0, 2]  # names compare case-insensitively
    expected = format_event("issues", json.loads(body("issues.opened")), config=ALL, domain="example.org")
    assert d.drafts[0][1].render() == expected


def test_push_keeps_its_scalars_and_the_commit_ids() -> None:
    d = digest("push", body("push"), Candidate("!a", ALL))
    payload = json.loads(body("push"))
    assert d.push == {
        **{k: v for k, v in payload.items() if not isinstance(v, dict | list)},
        "commits": [{"id": c["id"]} for c in payload["commits"]],
        "head_commit": {"id": payload["head_commit"]["id"]},
    }
    assert d.push["after"] == payload["after"] and "repository" not in d.push


def test_an_opened_pr_names_its_diff_the_route_fetches_for_prdiff_rooms() -> None:
    d = digest("pull_request", body("pull_request.opened"), Candidate("!b", DIFF_ROOM))
    assert d.diff_url == json.loads(body("pull_request.opened"))["pull_request"]["diff_url"]
    assert "``` diff" not in d.drafts[0][1].render().body  # the diff is added by the route


def test_refusals_come_back_as_text() -> None:
    assert digest("issues", b"{nope").error.startswith("The delivery's body is not valid JSON")
    assert digest("issues", b"[" * 100 + b"]" * 100).error == "The delivery's body is nested deeper than 64 levels."
    assert digest("issues", b"[]").error == "The delivery's body must be a JSON object."
    assert digest("issues", b"payload=%7B%7D", form=True).error is None
    no_repo = digest("issues", b'{"action": "opened"}')
    assert (no_repo.error, no_repo.full_name, no_repo.action) == (None, None, "opened")
    broken = json.loads(body("issues.opened"))
    del broken["issue"]["title"]
    d = digest("issues", json.dumps(broken).encode(), Candidate("!a", ALL))
    assert d.payload_error is not None and d.payload_error.startswith("Malformed issues payload: issue.title")
    ignored = digest("issues", body("issues.unlabeled"), Candidate("!a", ALL))
    assert (ignored.hooks, ignored.drafts) == (None, ())
