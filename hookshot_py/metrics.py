"""Prometheus metrics. One registry per bridge instance, so tests can run several bridges."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        r = self.registry
        self.webhook_requests = Counter(
            "hookshot_webhooks_http_request",
            "Inbound webhook HTTP requests",
            ["path", "method", "status"],
            registry=r,
        )
        self.webhook_latency = Histogram(
            "hookshot_webhooks_http_request_seconds",
            "Time to answer an inbound webhook",
            ["path"],
            registry=r,
        )
        self.provisioning_requests = Counter(
            "hookshot_provisioning_http_request",
            "Provisioning API requests",
            ["method", "status"],
            registry=r,
        )
        self.outbox_depth = Gauge(
            "hookshot_outbox_depth", "Messages accepted but not yet delivered to Matrix", registry=r
        )
        self.outbox_sent = Counter(
            "hookshot_outbox_sent", "Messages delivered to Matrix", registry=r
        )
        self.outbox_send_failures = Counter(
            "hookshot_outbox_send_failures",
            "Failed send attempts (transient ones are retried, permanent ones are given up)",
            ["kind"],
            registry=r,
        )
        self.outbox_commits = Counter(
            "hookshot_outbox_commits", "Transactions queuing messages (concurrent requests share one)", registry=r
        )
        self.outbox_commit_seconds = Counter(
            "hookshot_outbox_commit_seconds", "Time spent in those transactions", registry=r
        )
        self.outbox_queued = Counter("hookshot_outbox_queued", "Messages queued", registry=r)
        self.outbox_rooms = Gauge(
            "hookshot_outbox_rooms", "Rooms this process is delivering now (it holds their lock)", registry=r
        )
        self.outbox_in_flight = Gauge(
            "hookshot_outbox_in_flight", "Messages this process is sending to the homeserver now", registry=r
        )
        self.leases_held = Gauge(
            "hookshot_leases_held", "Background jobs this process runs now (1 while it holds the lease)",
            ["name"], registry=r,
        )
        self.connections = Gauge(
            "hookshot_connections", "Connections by type", ["type"], registry=r
        )
        self.appservice_events = Counter(
            "matrix_appservice_events", "Events received from the homeserver", registry=r
        )
        self.commands = Counter(
            "hookshot_commands", "Bot commands handled", ["outcome"], registry=r
        )
        self.outbound_attempts = Counter(
            "hookshot_outbound_attempts",
            "Outbound webhook delivery attempts, by outcome (delivered, retry, failed)",
            ["outcome"],
            registry=r,
        )
        self.outbound_given_up = Counter(
            "hookshot_outbound_given_up", "Events outbound webhooks gave up delivering", registry=r
        )
        # hookshot's feed metrics (all processes' feeds: the state is shared in Postgres).
        self.feeds_count = Gauge("hookshot_feeds_count", "Feeds polled", registry=r)
        self.feeds_fetch_ms = Gauge("hookshot_feeds_fetch_ms", "Time the last feed poll took", registry=r)
        self.feeds_failing = Gauge(
            "hookshot_feeds_failing", "Feeds failing, by reason", ["reason"], registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
