"""Causal order of outbox rows: which earlier rows a new row must be posted after.

The promise (README, "Delivery order"): a message whose request started after an earlier one was
answered is posted after it, in the same room; messages whose requests overlapped in time have no
order between them and may be in flight together.

A `Mark` is taken when a request starts (a webhook, a provisioning call, an event from the
homeserver): the highest outbox id this process had committed at that moment, leaving out the
rows of requests not answered yet (a webhook with `waitForComplete` is answered only once its
message is sent: the rows of such requests count from their answer, not their commit, or every
request overlapping them would queue behind them). Every row the request queues must follow the
room's pending rows that this process committed up to the mark,
plus every pending row other processes had committed when the row is inserted (those cannot be
known at the request's start without a query; counting them is stricter, never looser). Within
one request, each queued row also raises the mark, so a handler's successive messages keep their
order. The mark lives in a context variable: handlers need not pass it along, and tasks a request
spawns (a command's replies) inherit it.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass
class Mark:
    """Own rows with an id up to `value` were committed before the request began (or by the
    request itself, earlier)."""

    value: int
    # Its rows count for later requests only once `Outbox.answered` closes it (before the answer
    # leaves); until then they are committed but not yet known outside.
    open: bool = False

    def raise_to(self, value: int) -> None:
        if value > self.value:
            self.value = value


_current: ContextVar[Mark | None] = ContextVar("hookshot_py_causal_mark", default=None)


def begin(value: int, *, open: bool = False) -> Mark:
    """Start a request in the current context (an aiohttp handler's task, an event's handling)."""
    mark = Mark(value, open)
    _current.set(mark)
    return mark


def current() -> Mark | None:
    return _current.get()
