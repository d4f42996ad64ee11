"""A verified GitHub delivery, read in a CPU-pool worker: what the webhook route needs from it.

A delivery may be 25 MiB. Parsing that on the event loop stalled it for seconds (0.5 s per
25 MiB of strings, over a second for small objects, before anything was formatted), so the route
only verifies the signature over the raw bytes and hands them to `digest_delivery`, in a worker:
it parses (depth limited), finds the repository, picks the candidate connections that belong to
it, and builds their messages (`build_event`, markdown not yet rendered). What comes back is
small: names, the commits a push listener needs, the drafts. The event loop never holds the
payload.

The candidates are the connections of the repository names the route found in the bytes
(`forges.inbound.string_values`), so a route can pick them without parsing; the worker keeps those
whose repository is the one the body names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hookshot_py.errors import ApiError
from hookshot_py.forges.inbound import form_payload, parse_json_object
from hookshot_py.forges.payload import push_summary
from hookshot_py.github.format import Draft, PayloadError, build_event, candidate_hooks
from hookshot_py.github.state import RepoConfig

__all__ = ["Candidate", "Digest", "digest_delivery"]


@dataclass(frozen=True)
class Candidate:
    """A connection that may receive the delivery."""

    room_id: str
    config: RepoConfig


@dataclass(frozen=True)
class Digest:
    """What the route needs from a delivery (see the module docstring)."""

    error: str | None = None  # the body is not a delivery (answered 400 before anything else)
    full_name: str | None = None  # `repository.full_name`
    action: str | None = None
    push: dict[str, Any] | None = None  # for push listeners: the commits' ids, GitHub's shape
    hooks: tuple[str, ...] | None = None  # `candidate_hooks`; None: not an event we post
    payload_error: str | None = None  # the payload lacks what its message needs (400)
    drafts: tuple[tuple[int, Draft], ...] = ()  # (index in the candidates, message)
    diff_url: str | None = None  # an opened PR's `diff_url`


def digest_delivery(
    event: str, body: bytes, *, form: bool, candidates: Sequence[Candidate], domain: str
) -> Digest:
    """Read a verified delivery (`form`: JSON in a `payload=` form field) for `candidates`.
    Runs in a CPU-pool worker: everything it takes and returns pickles."""
    try:
        payload = parse_json_object(form_payload(body) if form else body)
    except ApiError as e:
        return Digest(error=e.error)
    action = payload.get("action") if isinstance(payload.get("action"), str) else None
    repository = payload.get("repository")
    full_name = repository.get("full_name") if isinstance(repository, dict) else None
    if not isinstance(full_name, str) or not full_name:
        return Digest(action=action)
    push = push_summary(payload) if event == "push" else None
    try:
        hooks = candidate_hooks(event, payload)
        if hooks is None:
            return Digest(full_name=full_name, action=action, push=push)
        mine = [i for i, c in enumerate(candidates) if c.config.full_name.lower() == full_name.lower()]
        drafts = [(i, build_event(event, payload, config=candidates[i].config, domain=domain)) for i in mine]
    except PayloadError as e:
        return Digest(full_name=full_name, action=action, push=push, payload_error=f"Malformed {event} payload: {e}")
    pr = payload.get("pull_request")
    diff_url = pr.get("diff_url") if event == "pull_request" and action == "opened" and isinstance(pr, dict) else None
    return Digest(
        full_name=full_name,
        action=action,
        push=push,
        hooks=hooks,
        drafts=tuple((i, draft) for i, draft in drafts if draft is not None),
        diff_url=diff_url if isinstance(diff_url, str) else None,
    )
