"""The background worker delivering outbound hooks' queues (one per bridge process).

It claims hooks with due events (`OutboundQueue.claim`: several processes share the work, each
hook is delivered by one at a time) and drains each claimed hook in order: the oldest pending
event is tried until it is delivered or given up, then the next. A transient failure (no answer,
a 5xx, 408, 425 or 429) puts the hook back with a delay (exponential backoff with jitter, or the
receiver's `Retry-After`), keeping later events waiting behind it: order per hook is kept. An
event is given up after `maxAttempts` attempts or once it is older than `maxAge` (config
`generic.outboundDelivery`), or at once when retrying cannot help (another 4xx, a URL the guard
refuses); the room is told once per run of failures, and the delivery log says why.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from typing import Any

from hookshot_py.config import OutboundDeliveryConfig
from hookshot_py.markdown import render_markdown
from hookshot_py.matrix.outbox import Outbox, OutgoingEvent
from hookshot_py.metrics import Metrics
from hookshot_py.outbound.queue import Delivery, HookTarget, LostLease, OutboundQueue
from hookshot_py.outbound.request import OutboundClient, Result

log = logging.getLogger(__name__)

KEEP_DAYS = 7  # finished deliveries stay in the log this long
PRUNE_EVERY_S = 3600.0


class OutboundSender:
    def __init__(
        self,
        queue: OutboundQueue,
        client: OutboundClient,
        outbox: Outbox,
        metrics: Metrics,
        config: OutboundDeliveryConfig,
        *,
        parallel: int = 16,
        lease_s: float = 120.0,
        poll_s: float = 5.0,
        base_backoff_s: float = 1.0,
        max_backoff_s: float = 600.0,
    ) -> None:
        self.queue = queue
        self.client = client
        self.outbox = outbox
        self.metrics = metrics
        self.config = config
        self.parallel = parallel
        self.lease_s = max(lease_s, config.timeout_seconds * 3)  # an attempt (media + request) fits
        self.poll_s = poll_s
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self._draining: dict[str, asyncio.Task[None]] = {}
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        self._last_prune = 0.0
        self._stopping = False

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="outbound-sender")

    async def stop(self) -> None:
        self._stopping = True
        for timer in self._timers:
            timer.cancel()
        tasks = [*self._draining.values(), *([self._task] if self._task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        self._draining.clear()
        try:
            await self.queue.release_all()  # another process may carry on at once
        except Exception as e:
            log.warning("Could not give back outbound hook leases (they run out by themselves): %s", e)

    def wake(self) -> None:
        """New events were queued, or a retry is due: claim now rather than at the next poll."""
        self._wakeup.set()

    def backoff(self, attempts: int) -> float:
        base = min(self.max_backoff_s, self.base_backoff_s * 2 ** max(0, attempts - 1))
        return base * random.uniform(0.8, 1.2)

    # -- the loop -----------------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            self._wakeup.clear()
            try:
                for conn_id in await self.queue.claim(self.parallel - len(self._draining), self.lease_s):
                    task = asyncio.create_task(self._drain(conn_id), name=f"outbound:{conn_id}")
                    self._draining[conn_id] = task
                    task.add_done_callback(functools.partial(self._drained, conn_id))
                if time.monotonic() - self._last_prune > PRUNE_EVERY_S:
                    self._last_prune = time.monotonic()
                    log.debug("Outbound deliveries pruned: %s", await self.queue.prune(KEEP_DAYS))
            except Exception:
                log.exception("Claiming outbound hooks failed; trying again in %.0f s", self.poll_s)
            # Not asyncio.wait_for: on Python 3.11 it can swallow a cancellation that comes as
            # the event is set, and this loop would outlive stop().
            try:
                async with asyncio.timeout(self.poll_s):
                    await self._wakeup.wait()
            except TimeoutError:
                pass

    def _drained(self, conn_id: str, _: object = None) -> None:
        self._draining.pop(conn_id, None)
        self.wake()  # a slot is free, and events may have arrived while the hook was ours

    def _wake_in(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._timers.discard(handle)
            self.wake()

        handle = loop.call_later(delay, fire)
        self._timers.add(handle)

    async def _drain(self, conn_id: str) -> None:
        try:
            while True:
                target = await self.queue.renew(conn_id, self.lease_s)
                delivery = await self.queue.head(conn_id)
                if delivery is None:
                    await self.queue.release(conn_id)
                    return
                if delivery.age_s >= self.config.max_age / 1000:  # waited out a long outage
                    await self._give_up(target, delivery, delivery.attempts, None, self._too_old())
                    continue
                result = await self.client.attempt(target, delivery)
                self.metrics.outbound_attempts.labels(outcome=result.outcome).inc()
                delay = await self._settle(target, delivery, result)
                if delay is not None:
                    await self.queue.release(conn_id, retry_in=delay)
                    self._wake_in(delay)
                    return
        except LostLease:
            log.warning("Lost the lease of outbound hook %s to another process; leaving it to them", conn_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("Delivering outbound hook %s failed; trying again later", conn_id)
            try:
                await self.queue.release(conn_id, retry_in=self.poll_s)
            except Exception as e:
                log.warning("Could not give back the lease of %s (it runs out by itself): %s", conn_id, e)

    async def _settle(self, target: HookTarget, delivery: Delivery, result: Result) -> float | None:
        """Record the attempt; returns the delay before the next one when the event waits."""
        attempts = delivery.attempts + 1
        if result.outcome == "delivered":
            await self.queue.record(delivery, status="delivered", attempts=attempts,
                                    response_status=result.response_status, error=result.error)
            log.info("Outbound hook %s in %s: delivered %s (attempt %d)",
                     target.name, target.room_id, delivery.event_id, attempts)
            return None
        if result.outcome == "retry":
            delay = result.retry_after if result.retry_after is not None else self.backoff(attempts)
            max_age_s = self.config.max_age / 1000
            if attempts < self.config.max_attempts and delivery.age_s + delay <= max_age_s:
                await self.queue.record(delivery, status="pending", attempts=attempts,
                                        response_status=result.response_status, error=result.error)
                log.warning("Outbound hook %s in %s: attempt %d for %s failed, retrying in %.1f s: %s",
                            target.name, target.room_id, attempts, delivery.event_id, delay, result.error)
                return delay
            why = (f"gave up after {attempts} attempt(s)" if attempts >= self.config.max_attempts
                   else self._too_old())
            error = f"{why}; last error: {result.error}"
        else:
            error = result.error or "refused"
        await self._give_up(target, delivery, attempts, result.response_status, error)
        return None

    def _too_old(self) -> str:
        ms = self.config.max_age
        within = (f"{ms / 3_600_000:g} h" if ms >= 3_600_000 else f"{ms / 60_000:g} min" if ms >= 60_000
                  else f"{ms / 1000:g} s")  # fmt: skip
        return f"gave up: not delivered within {within}"

    async def _give_up(
        self, target: HookTarget, delivery: Delivery, attempts: int, response_status: int | None, error: str
    ) -> None:
        self.metrics.outbound_given_up.inc()
        notify = await self.queue.record(delivery, status="failed", attempts=attempts,
                                         response_status=response_status, error=error)
        log.error("Outbound hook %s in %s: could not deliver %s: %s", target.name, target.room_id,
                  delivery.event_id, error)
        if notify:
            await self.outbox.enqueue([_failure_notice(target, delivery, error)])


def _failure_notice(target: HookTarget, delivery: Delivery, error: str) -> OutgoingEvent:
    text = (
        f"⚠️ The outbound webhook **{target.name}** could not deliver an event ({delivery.event_id}) to its URL: "
        f"{error}. Later events are still sent; its delivery log has the details. "
        "This is said once until a delivery succeeds again."
    )
    content: dict[str, Any] = {"msgtype": "m.notice", "body": text, "format": "org.matrix.custom.html",
                               "formatted_body": render_markdown(text)}
    return OutgoingEvent(target.room_id, content)
