"""The feeds section (hookshot's keys plus ours) and the outbound-URL guard's section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hookshot_py.config import ConfigError, parse_config


def config_with(**sections: Any) -> dict[str, Any]:
    return {
        "bridge": {"domain": "example.com", "url": "http://localhost:8008", "port": 9993},
        "listeners": [{"port": 9000, "resources": ["metrics"]}],
        **sections,
    }


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, Path("/srv"))
    return str(info.value)


def test_hookshot_feeds_section_loads_with_hookshot_defaults() -> None:
    config = parse_config(config_with(feeds={"enabled": True}), Path("/srv"))
    feeds = config.feeds
    assert feeds is not None and feeds.enabled
    assert (feeds.poll_interval_seconds, feeds.poll_timeout_seconds, feeds.poll_concurrency) == (600, 30, 4)
    assert feeds.min_interval == 600 and feeds.max_items_per_poll == 10 and feeds.max_feed_size == 10 * 1024**2
    assert not any(w.startswith("feeds") for w in config.warnings)


def test_feeds_alone_is_a_service_and_needs_no_webhooks_listener() -> None:
    parse_config(config_with(feeds={"enabled": True, "pollIntervalSeconds": 300}), Path("/srv"))


def test_our_feed_keys() -> None:
    config = parse_config(
        config_with(feeds={"enabled": True, "minPollIntervalSeconds": 60, "maxItemsPerPoll": 3, "maxFeedSize": "2mb"}),
        Path("/srv"),
    )
    feeds = config.feeds
    assert feeds is not None
    assert (feeds.min_interval, feeds.max_items_per_poll, feeds.max_feed_size) == (60, 3, 2 * 1024**2)


def test_minimum_above_the_default_interval_is_an_error() -> None:
    data = config_with(feeds={"enabled": True, "pollIntervalSeconds": 60, "minPollIntervalSeconds": 600})
    assert error_of(data) == "feeds.minPollIntervalSeconds: must not be larger than pollIntervalSeconds"


def test_outbound_urls_section() -> None:
    data = config_with(
        feeds={"enabled": True},
        outboundUrls={"allowedHosts": ["intranet.example.org"], "allowedIpRanges": ["10.0.0.0/8", "::1"]},
    )
    config = parse_config(data, Path("/srv"))
    assert config.outbound_urls.allowed_hosts == ["intranet.example.org"]
    assert config.outbound_urls.allowed_ip_ranges == ["10.0.0.0/8", "::1"]


def test_outbound_urls_default_allows_nothing_more() -> None:
    config = parse_config(config_with(feeds={"enabled": True}), Path("/srv"))
    assert config.outbound_urls.allowed_hosts == [] and config.outbound_urls.allowed_ip_ranges == []


def test_bad_range_names_its_index() -> None:
    data = config_with(feeds={"enabled": True}, outboundUrls={"allowedIpRanges": ["10.0.0.0/8", "intranet"]})
    assert error_of(data) == (
        'outboundUrls.allowedIpRanges[1]: expected an address or CIDR range like 10.0.0.0/8, got "intranet"'
    )
