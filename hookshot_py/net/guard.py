"""The one guard for outbound URLs the bridge did not configure itself.

Feed URLs come from room users; links in forge payloads (diffs), Barkeep git URLs, outbound hooks
and avatars come from strangers too. Fetching them must not turn the bridge into a proxy into the
network it runs in (server-side request forgery). The rules:

- only ``http`` and ``https``;
- no loopback, private (RFC 1918, IPv6 ULA), link-local (cloud metadata at 169.254.169.254 and
  ``fd00:ec2::254`` included), carrier-grade NAT, multicast, unspecified, documentation or other
  reserved addresses, in IPv4 or IPv6; IPv6 forms that embed an IPv4 address (IPv4-mapped,
  NAT64, 6to4) are judged by that IPv4 address;
- judged on the addresses the connection is actually made to: after DNS resolution, inside the
  connector, for the first request and for every redirect. The connector connects only to the
  addresses it checked, so a name that resolves to a public address for a check and to a private one
  for the connection (DNS rebinding) gets nowhere;
- unless the admin allows a host name (``outboundUrls.allowedHosts``, exact or ``*.example.org``)
  or an address range (``outboundUrls.allowedIpRanges``), for intranets and tests.

Use :func:`guarded_session` for a ``ClientSession`` whose every connection is checked (redirects
included), and :meth:`UrlPolicy.check_url` to refuse a bad URL early with a clear reason (when a
user adds it). A refused connection raises :class:`BlockedUrl` (an ``aiohttp.ClientError``).

A URL the bridge hands to another server to fetch (Barkeep clones a `gitUrl`) cannot be judged at
connection time: :func:`local_name_reason` refuses names that are local by definition and
:func:`resolved_refusal` judges the addresses a name resolves to from here.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import aiohttp
from yarl import URL

if TYPE_CHECKING:
    from aiohttp.abc import ResolveResult
    from aiohttp.tracing import Trace

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_SCHEMES = frozenset({"http", "https"})

# Address ranges no URL from a stranger may reach, with the reason shown when one is refused.
_V4_BLOCKED: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "an unspecified address"),
    ("10.0.0.0/8", "a private address"),
    ("100.64.0.0/10", "a carrier-grade NAT address"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.0.0/16", "a link-local (cloud metadata) address"),
    ("172.16.0.0/12", "a private address"),
    ("192.0.0.0/24", "a reserved address"),
    ("192.0.2.0/24", "a documentation address"),
    ("192.88.99.0/24", "a reserved address"),
    ("192.168.0.0/16", "a private address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("198.51.100.0/24", "a documentation address"),
    ("203.0.113.0/24", "a documentation address"),
    ("224.0.0.0/4", "a multicast address"),
    ("240.0.0.0/4", "a reserved address"),
)
_V6_BLOCKED: tuple[tuple[str, str], ...] = (
    ("::/128", "an unspecified address"),
    ("::1/128", "a loopback address"),
    ("::/96", "a reserved address"),  # IPv4-compatible (deprecated)
    ("64:ff9b:1::/48", "a reserved address"),  # local-use NAT64
    ("100::/64", "a reserved address"),  # discard
    ("2001::/32", "a reserved address"),  # Teredo
    ("2001:db8::/32", "a documentation address"),
    ("fc00::/7", "a private address"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address"),
    ("ff00::/8", "a multicast address"),
)
_BLOCKED: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(net), why) for net, why in _V4_BLOCKED + _V6_BLOCKED
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class BlockedUrl(aiohttp.ClientError):
    """The URL, or every address its host resolves to, is not one the bridge may fetch."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


def blocked_reason(ip: IPAddress) -> str | None:
    """Why no stranger's URL may reach `ip`, or None when it is a public address."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return blocked_reason(embedded)
    for net, why in _BLOCKED:
        if ip.version == net.version and ip in net:
            return why
    return None


def parse_ip(text: str) -> IPAddress | None:
    """An address as the resolver or a URL spells it (`[::1]`, `fe80::1%eth0`), or None."""
    text = text.strip("[]")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class UrlPolicy:
    """What outbound URLs may reach. The default (nothing allowed) admits public addresses only."""

    allowed_hosts: frozenset[str] = frozenset()  # lower-case names; "*.example.org" covers subdomains
    allowed_networks: tuple[IPNetwork, ...] = field(default=())

    @classmethod
    def create(cls, allowed_hosts: Iterable[str] = (), allowed_ranges: Iterable[str] = ()) -> UrlPolicy:
        """From config strings; raises ValueError for a range that is not an address or CIDR."""
        return cls(
            frozenset(h.strip().lower().rstrip(".") for h in allowed_hosts if h.strip()),
            tuple(ipaddress.ip_network(r.strip(), strict=False) for r in allowed_ranges),
        )

    def allowing(self, *hosts: str) -> UrlPolicy:
        """This policy, with `hosts` allowed too (a service's own configured host: the admin
        chose it, so it may be on an intranet)."""
        extra = {h.strip().lower().rstrip(".") for h in hosts if h.strip()}
        return replace(self, allowed_hosts=self.allowed_hosts | extra)

    def host_allowed(self, host: str) -> bool:
        """The admin allowed this host name (its addresses are then not checked)."""
        host = host.lower().rstrip(".")
        if host in self.allowed_hosts:
            return True
        return any(
            pattern.startswith("*.") and host.endswith(pattern[1:]) for pattern in self.allowed_hosts
        )

    def address_refusal(self, ip: IPAddress) -> str | None:
        """Why `ip` may not be reached, or None when it may."""
        if any(ip.version == net.version and ip in net for net in self.allowed_networks):
            return None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            mapped = ip.ipv4_mapped
            if any(net.version == 4 and mapped in net for net in self.allowed_networks):
                return None
        return blocked_reason(ip)

    def check_url(self, url: str | URL) -> URL:
        """Refuse, before any request, what can be refused from the URL alone: another scheme, no
        host, credentials in the URL, or a literal address that is not allowed. Names are checked
        again at connection time, after resolution (see :class:`GuardedConnector`)."""
        text = str(url)
        try:
            parsed = url if isinstance(url, URL) else URL(url)
        except (ValueError, TypeError) as e:
            raise BlockedUrl(text, f"not a valid URL ({e})") from e
        if parsed.scheme.lower() not in ALLOWED_SCHEMES:
            raise BlockedUrl(text, "only http and https URLs can be fetched")
        host = parsed.raw_host
        if not host:
            raise BlockedUrl(text, "the URL has no host")
        if parsed.raw_user is not None or parsed.raw_password is not None:
            raise BlockedUrl(text, "URLs with credentials are not accepted")
        if self.host_allowed(host):
            return parsed
        ip = parse_ip(host)
        if ip is not None and (why := self.address_refusal(ip)) is not None:
            raise BlockedUrl(text, f"{host} is {why}")
        return parsed

    def filter_addresses(self, host: str, addresses: Sequence[str]) -> tuple[list[str], str | None]:
        """The addresses of `host` that may be reached, and the reason the first refused one was."""
        if self.host_allowed(host):
            return list(addresses), None
        kept: list[str] = []
        reason: str | None = None
        for text in addresses:
            ip = parse_ip(text)
            why = "an address that could not be understood" if ip is None else self.address_refusal(ip)
            if why is None:
                kept.append(text)
            elif reason is None:
                reason = f"{host} resolves to {text}, {why}" if parse_ip(host) is None else f"{host} is {why}"
        return kept, reason


# Names no public server has: RFC 6761 (localhost), RFC 6762 (.local, mDNS), RFC 8375
# (.home.arpa) and ICANN's private-use .internal.
_LOCAL_SUFFIXES = (".localhost", ".local", ".home.arpa", ".internal")
RESOLVE_TIMEOUT_S = 5.0


def local_name_reason(host: str) -> str | None:
    """Why `host` (a name, not an address) can only mean a machine of the local network, or None:
    `localhost`, a single label (`gitserver`, found through the local search domain) or a
    reserved local suffix."""
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(_LOCAL_SUFFIXES):
        return f"{host} is a local name"
    if "." not in name:
        return f"{host} is a name without a domain, which only the local network can resolve"
    return None


async def resolved_refusal(policy: UrlPolicy, host: str, *, timeout: float = RESOLVE_TIMEOUT_S) -> str | None:
    """For a host another server will connect to: why an address it resolves to from here may
    not be reached (any one refused refuses the host: the other server may pick it), or None.

    A name that does not resolve here passes: the other server may see other names, and
    refusing it would refuse every URL on a bridge without DNS. Names local by definition are
    refused beforehand by :func:`local_name_reason`.
    """
    if policy.host_allowed(host):
        return None
    if (ip := parse_ip(host)) is not None:
        why = policy.address_refusal(ip)
        return None if why is None else f"{host} is {why}"
    try:
        async with asyncio.timeout(timeout):
            infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError, UnicodeError):
        return None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    kept, reason = policy.filter_addresses(host, addresses)
    return reason if len(kept) < len(addresses) else None


async def check_url_resolved(policy: UrlPolicy, url: str | URL) -> URL:
    """:meth:`UrlPolicy.check_url`, then the host's addresses as DNS gives them now: refuse a
    URL whose host resolves only to addresses the policy refuses (or to none), with the reason.
    For a clear refusal when a user sets a URL; every connection is still checked again."""
    parsed = policy.check_url(url)
    host = parsed.raw_host or ""
    if policy.host_allowed(host) or parse_ip(host) is not None:
        return parsed
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as e:
        raise BlockedUrl(str(url), f"{host} could not be resolved ({e.strerror or e})") from e
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    kept, reason = policy.filter_addresses(host, addresses)
    if not kept:
        raise BlockedUrl(str(url), reason or f"{host} did not resolve to any address")
    return parsed


class GuardedConnector(aiohttp.TCPConnector):
    """A TCP connector that connects only to addresses the policy admits.

    The check runs on the very addresses the connection is then made to (aiohttp connects to the
    list `_resolve_host` returns), for names and literal addresses alike, on every new connection:
    the first request and each redirect. (`_resolve_host` is aiohttp's own resolution step; the
    unit tests pin its behaviour, so an aiohttp upgrade that changed it would fail them.)
    """

    def __init__(self, policy: UrlPolicy, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.policy = policy

    async def _resolve_host(
        self, host: str, port: int, traces: Sequence[Trace] | None = None
    ) -> list[ResolveResult]:
        results = await super()._resolve_host(host, port, traces=traces)
        kept, reason = self.policy.filter_addresses(host, [r["host"] for r in results])
        if not kept:
            raise BlockedUrl(f"{host}:{port}", reason or f"{host} did not resolve to any address")
        allowed = set(kept)
        return [r for r in results if r["host"] in allowed]


def guarded_session(
    policy: UrlPolicy,
    *,
    timeout: aiohttp.ClientTimeout | None = None,
    headers: dict[str, str] | None = None,
    limit: int = 100,
    limit_per_host: int = 4,
    auto_decompress: bool = True,
    **connector_kwargs: Any,
) -> aiohttp.ClientSession:
    """A client session whose every connection goes through :class:`GuardedConnector`.

    Environment proxies are ignored (`trust_env=False`): a proxy would connect for us, past the
    check. Redirects are followed by aiohttp (http and https only), each through the guard.
    """
    connector = GuardedConnector(policy, limit=limit, limit_per_host=limit_per_host, **connector_kwargs)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout or aiohttp.ClientTimeout(total=30),
        headers=headers,
        trust_env=False,
        auto_decompress=auto_decompress,
    )
