"""A GitFlic delivery whose secret checked out, read in a CPU-pool worker.

A delivery may be 5 MiB; parsing it on the event loop, and hashing its canonical JSON for the
dedupe key, stalled the loop for a quarter of a second and more. So the route checks the secret
from the headers, and hands the raw bytes to `digest_delivery` in a worker: it parses (depth
limited), names the project, computes the dedupe key and the commits push listeners need, and
builds the message for each connection that may receive it (`delivery_job`, markdown not yet
rendered). What comes back is small; the event loop never holds the payload.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hookshot_py.forges.payload import push_summary
from hookshot_py.gitflic.delivery import DeliveryError, dedupe_key, parse_delivery
from hookshot_py.gitflic.format import delivery_job
from hookshot_py.markdown import MarkdownJob

__all__ = ["Digest", "Target", "digest_delivery"]


@dataclass(frozen=True)
class Target:
    """A connection that may receive the delivery: its instance's web address and its project."""

    instance_url: str
    project: str


@dataclass(frozen=True)
class Digest:
    error: str | None = None  # the body is not a delivery that can be routed (400)
    action: str = ""
    project_key: str | None = None
    project_id: str | None = None
    dedupe_key: str | None = None
    push: dict[str, Any] | None = None
    jobs: tuple[MarkdownJob, ...] = ()  # one per target, in order


def digest_delivery(body: bytes, targets: Sequence[Target]) -> Digest:
    """Runs in a CPU-pool worker: everything it takes and returns pickles."""
    try:
        delivery = parse_delivery(body)
    except DeliveryError as e:
        return Digest(error=str(e))
    return Digest(
        action=delivery.action,
        project_key=delivery.project_key,
        project_id=delivery.project_id,
        dedupe_key=dedupe_key(delivery),
        push=push_summary(delivery.raw),
        jobs=tuple(delivery_job(delivery, instance_url=t.instance_url, project=t.project) for t in targets),
    )
