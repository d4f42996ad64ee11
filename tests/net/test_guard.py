"""The outbound-URL guard: which addresses are refused, and that the refusal happens at connection
time (after resolution, on every redirect), so neither a redirect nor DNS rebinding gets past it.

Every server here listens on 127.0.0.1 only. Refused targets are other loopback addresses
(127.0.0.2, ::1): were the guard broken, the test would see a connection error instead of
BlockedUrl, and no packet would leave the machine."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from hookshot_py.net.guard import (
    BlockedUrl,
    UrlPolicy,
    blocked_reason,
    guarded_session,
    local_name_reason,
    resolved_refusal,
)

LOOPBACK_ONLY = UrlPolicy.create(allowed_ranges=["127.0.0.1/32"])


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
        "169.254.169.254", "100.64.0.1", "100.100.100.200", "0.0.0.0", "224.0.0.1", "239.255.255.250",
        "255.255.255.255", "240.0.0.1", "192.0.2.1", "198.18.0.1",
        "::1", "::", "fe80::1", "fe80::1%eth0", "fc00::1", "fd00:ec2::254", "ff02::1",
        "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:10.0.0.1", "64:ff9b::a9fe:a9fe",
        "2002:7f00:1::", "2001:db8::1", "::127.0.0.1",
    ],
)  # fmt: skip
def test_internal_addresses_are_refused(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "::ffff:8.8.8.8",
                "64:ff9b::808:808", "2002:808:808::"],
)  # fmt: skip
def test_public_addresses_pass(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is None


def test_reasons_name_the_kind_of_address() -> None:
    assert blocked_reason(ipaddress.ip_address("169.254.169.254")) == "a link-local (cloud metadata) address"
    assert blocked_reason(ipaddress.ip_address("::ffff:127.0.0.1")) == "a loopback address"


@pytest.mark.parametrize(
    "url,reason",
    [
        ("file:///etc/passwd", "only http and https"),
        ("ftp://example.org/feed", "only http and https"),
        ("javascript:alert(1)", "only http and https"),
        ("gopher://example.org:70/", "only http and https"),
        ("http:///feed", "no host"),
        ("http://user:pw@example.org/", "credentials"),
        ("http://127.0.0.1/", "loopback"),
        ("http://[::1]:8080/", "loopback"),
        ("http://[::ffff:169.254.169.254]/latest/meta-data/", "link-local"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://10.0.0.5/admin", "private"),
    ],
)
def test_check_url_refuses(url: str, reason: str) -> None:
    with pytest.raises(BlockedUrl) as info:
        UrlPolicy().check_url(url)
    assert reason in info.value.reason


def test_check_url_passes_names_and_public_addresses() -> None:
    policy = UrlPolicy()
    assert str(policy.check_url("https://example.org/feed.xml")) == "https://example.org/feed.xml"
    policy.check_url("http://8.8.8.8/")
    policy.check_url("HTTPS://Example.ORG/")


def test_config_allows_hosts_and_ranges() -> None:
    policy = UrlPolicy.create(["intranet.example.org", "*.corp.example"], ["10.1.0.0/16", "fd00::/8"])
    policy.check_url("http://intranet.example.org/")
    assert policy.host_allowed("INTRANET.example.org.")
    assert policy.host_allowed("wiki.corp.example") and not policy.host_allowed("corp.example.evil")
    policy.check_url("http://10.1.2.3/")
    policy.check_url("http://[fd00::5]/")
    with pytest.raises(BlockedUrl):
        policy.check_url("http://10.2.0.1/")
    assert policy.filter_addresses("intranet.example.org", ["10.9.9.9"]) == (["10.9.9.9"], None)
    kept, why = policy.filter_addresses("public.example", ["8.8.8.8", "127.0.0.1"])
    assert kept == ["8.8.8.8"] and why is not None and "loopback" in why


def test_bad_range_in_config_is_an_error() -> None:
    with pytest.raises(ValueError):
        UrlPolicy.create(allowed_ranges=["not-a-range"])


# -- at connection time ------------------------------------------------------------------------------


class FakeDNS(AbstractResolver):
    """Resolves names from a table; a list of answers is served one per lookup (DNS rebinding)."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        answers = self.table[host]
        address = answers.pop(0) if len(answers) > 1 else answers[0]
        return [{"hostname": host, "host": address, "port": port, "family": socket.AF_INET, "proto": 0, "flags": 0}]

    async def close(self) -> None:
        pass


@pytest.fixture
async def server(aiohttp_server: Any) -> Any:
    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="hello")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/redirect", redirect)
    return await aiohttp_server(app, host="127.0.0.1")


async def fetch(policy: UrlPolicy, url: str, **kwargs: Any) -> str:
    async with guarded_session(policy, **kwargs) as session:
        async with session.get(url) as resp:
            return await resp.text()


async def test_loopback_is_refused_by_default(server: Any) -> None:
    with pytest.raises(BlockedUrl) as info:
        await fetch(UrlPolicy(), f"http://127.0.0.1:{server.port}/ok")
    assert "loopback" in info.value.reason


async def test_allowed_range_lets_a_request_through(server: Any) -> None:
    assert await fetch(LOOPBACK_ONLY, f"http://127.0.0.1:{server.port}/ok") == "hello"


async def test_redirect_to_another_loopback_address_is_refused(server: Any) -> None:
    target = f"http://127.0.0.2:{server.port}/ok"
    with pytest.raises(BlockedUrl) as info:
        await fetch(LOOPBACK_ONLY, f"http://127.0.0.1:{server.port}/redirect?to={target}")
    assert "127.0.0.2" in str(info.value)


async def test_redirect_to_ipv6_loopback_is_refused(server: Any) -> None:
    with pytest.raises(BlockedUrl):
        await fetch(LOOPBACK_ONLY, f"http://127.0.0.1:{server.port}/redirect?to=http://[::1]:{server.port}/ok")


async def test_redirect_to_a_name_resolving_to_a_refused_address(server: Any) -> None:
    dns = FakeDNS({"feeds.example": ["127.0.0.1"], "sneaky.example": ["127.0.0.9"]})
    start = f"http://feeds.example:{server.port}/redirect?to=http://sneaky.example:{server.port}/ok"
    with pytest.raises(BlockedUrl) as info:
        await fetch(LOOPBACK_ONLY, start, resolver=dns)
    assert "sneaky.example resolves to 127.0.0.9" in str(info.value)
    assert dns.lookups == ["feeds.example", "sneaky.example"]


async def test_redirect_to_another_scheme_is_not_followed(server: Any) -> None:
    with pytest.raises(aiohttp.ClientError):
        await fetch(LOOPBACK_ONLY, f"http://127.0.0.1:{server.port}/redirect?to=file:///etc/passwd")


async def test_name_resolving_to_loopback_is_refused(server: Any) -> None:
    dns = FakeDNS({"looks-public.example": ["127.0.0.1"]})
    with pytest.raises(BlockedUrl):
        await fetch(UrlPolicy(), f"http://looks-public.example:{server.port}/ok", resolver=dns)


async def test_allowed_host_may_resolve_to_a_private_address(server: Any) -> None:
    dns = FakeDNS({"intranet.example": ["127.0.0.1"]})
    policy = UrlPolicy.create(allowed_hosts=["intranet.example"])
    assert await fetch(policy, f"http://intranet.example:{server.port}/ok", resolver=dns) == "hello"


async def test_dns_rebinding_between_check_and_connection_gets_nowhere(server: Any) -> None:
    """The early check sees a name; every connection is judged on what the name resolves to then."""
    dns = FakeDNS({"rebind.example": ["127.0.0.1", "127.0.0.7"]})
    url = f"http://rebind.example:{server.port}/ok"
    LOOPBACK_ONLY.check_url(url)  # a name: nothing to refuse yet
    async with guarded_session(LOOPBACK_ONLY, resolver=dns, use_dns_cache=False, force_close=True) as session:
        async with session.get(url) as resp:
            assert await resp.text() == "hello"
        with pytest.raises(BlockedUrl):
            await session.get(url)


async def test_legacy_numeric_hosts_are_judged_by_their_address(server: Any) -> None:
    # 2130706433 is 127.0.0.1 to the system resolver.
    with pytest.raises(aiohttp.ClientError):
        await fetch(UrlPolicy(), f"http://2130706433:{server.port}/ok")


# -- for URLs another server fetches (Barkeep's clone URLs) ----------------------------------------


def test_allowing_adds_hosts_to_a_policy() -> None:
    policy = UrlPolicy.create(["a.example"]).allowing("GHE.Corp.Example.", "")
    assert policy.host_allowed("a.example") and policy.host_allowed("ghe.corp.example")
    assert not UrlPolicy().host_allowed("ghe.corp.example")


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST.", "api.localhost", "gitserver", "printer.local", "nas.home.arpa", "git.internal"]
)
def test_names_local_by_definition(host: str) -> None:
    assert local_name_reason(host) is not None


@pytest.mark.parametrize("host", ["github.com", "git.example.org", "example.org."])
def test_public_looking_names_are_not_local(host: str) -> None:
    assert local_name_reason(host) is None


async def test_resolved_refusal_judges_what_a_name_resolves_to_here() -> None:
    # `localhost` resolves from /etc/hosts, with or without DNS.
    why = await resolved_refusal(UrlPolicy(), "localhost")
    assert why is not None and "localhost resolves to" in why and "loopback" in why
    assert await resolved_refusal(UrlPolicy(), "169.254.169.254") == "169.254.169.254 is a link-local (cloud metadata) address"
    assert await resolved_refusal(UrlPolicy(), "8.8.8.8") is None
    assert await resolved_refusal(UrlPolicy.create(allowed_hosts=["localhost"]), "localhost") is None
    assert await resolved_refusal(LOOPBACK_ONLY, "127.0.0.1") is None
    # A name that does not resolve here is not judged: the other server may see other names.
    assert await resolved_refusal(UrlPolicy(), "no-such-host.invalid") is None


async def test_resolved_refusal_refuses_a_name_with_any_refused_address(monkeypatch: pytest.MonkeyPatch) -> None:
    async def getaddrinfo(host: str, *_: Any, **__: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 0)) for a in ("8.8.8.8", "10.0.0.7")]

    import asyncio

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    assert await resolved_refusal(UrlPolicy(), "mixed.example") == "mixed.example resolves to 10.0.0.7, a private address"
