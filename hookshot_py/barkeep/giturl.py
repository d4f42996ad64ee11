"""Which `gitUrl`s the bridge may ask Barkeep to clone (`POST /api/add_repo`, with the admin key).

Barkeep runs `git clone <url>` on its server, so a room member's URL is a request made from inside
Barkeep's network (server-side request forgery by proxy): `file:///etc/passwd` would clone a
local repository, `http://169.254.169.254/...` would reach the cloud metadata service, and
git's remote helpers (`ext::sh -c ...`) run commands. So a URL is accepted only if

- its transport is one Barkeep clones from a remote: `http`, `https`, `git`, `ssh` (with the
  `git+ssh`/`ssh+git` spellings) or scp-like `[user@]host:path`; never `file://`, a local path
  or a `<helper>::` address;
- its host is a DNS name or an address, not something git or ssh would read as an option
  (`-oProxyCommand=...`), and carries no credentials (the URL is kept in the room's state);
- its host passes the outbound-URL guard (`net/guard.py`): no loopback, private, link-local
  (metadata) or other reserved address, no name that is local by definition (`localhost`,
  `gitserver`, `*.internal`), unless `outboundUrls` allows it; and, just before the bridge asks
  Barkeep to clone it, no address the name resolves to (from the bridge) is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from hookshot_py.net.guard import UrlPolicy, local_name_reason, parse_ip, resolved_refusal

__all__ = ["GIT_SCHEMES", "GitUrl", "GitUrlError", "check_git_url", "check_resolved"]

GIT_SCHEMES = frozenset({"http", "https", "git", "ssh", "git+ssh", "ssh+git"})
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# git's `<transport>::<address>`: a remote helper, which may run anything (`ext::sh -c ...`).
_REMOTE_HELPER = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*::")
# `[user@]host:path` (git's scp-like syntax); host may be a bracketed IPv6 address.
_SCP = re.compile(r"^(?:(?P<user>[^@/:\[\]]+)@)?(?P<host>\[[^\]/]+\]|[^@/:\[\]]+):(?P<path>.*)$")
_LABEL = r"[A-Za-z0-9_][A-Za-z0-9_-]{0,62}"
_HOST_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?$")
_CLONE_HINT = "an http(s), git or ssh URL Barkeep can clone"


class GitUrlError(ValueError):
    """`message` says why the URL is refused, for a validation error at `/gitUrl`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class GitUrl:
    scheme: str  # lower-case; "ssh" for the scp-like form
    host: str  # as written, brackets of an IPv6 address removed
    text: str  # the URL as given


def parse_git_url(text: str) -> GitUrl:
    """The transport and host of a clone URL; `GitUrlError` for a local path, another transport
    or a host that is not a host."""
    if _REMOTE_HELPER.match(text):
        raise GitUrlError(f"must be {_CLONE_HINT}, not a git remote helper address")
    if match := _SCHEME.match(text):
        scheme = match.group(1).lower()
        if scheme not in GIT_SCHEMES:
            raise GitUrlError(f"must be {_CLONE_HINT}, not a {scheme}:// URL")
        try:
            parts = urlsplit(text)
            host = parts.hostname or ""
            user, password = parts.username, parts.password
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError as e:
            raise GitUrlError(f"is not a valid URL ({e})") from None
        if scheme in ("http", "https") and (user is not None or password is not None):
            raise GitUrlError("must not carry credentials: the URL is kept in the room's state")
        if password is not None:
            raise GitUrlError("must not carry a password: the URL is kept in the room's state")
    elif match := _SCP.match(text):
        scheme, host, user = "ssh", match.group("host").strip("[]"), match.group("user")
    else:
        raise GitUrlError(f"must be {_CLONE_HINT}, not a local path")
    if user is not None and user.startswith("-"):
        raise GitUrlError("must not have a user name starting with '-'")
    if not host:
        raise GitUrlError("has no host")
    if parse_ip(host) is None and not _HOST_NAME.match(host):
        raise GitUrlError(f"has a host that is not a host name or an address: {host!r}")
    return GitUrl(scheme, host, text)


def check_git_url(text: str, policy: UrlPolicy) -> GitUrl:
    """Everything that can be judged from the URL alone (see the module docstring)."""
    url = parse_git_url(text)
    if policy.host_allowed(url.host):
        return url
    ip = parse_ip(url.host)
    if ip is not None:
        if (why := policy.address_refusal(ip)) is not None:
            raise GitUrlError(f"must not point at {url.host}, {why}")
    elif (why := local_name_reason(url.host)) is not None:
        raise GitUrlError(f"must not point at the local network: {why}")
    return url


async def check_resolved(url: GitUrl, policy: UrlPolicy) -> None:
    """`GitUrlError` if the URL's host resolves, from the bridge, to an address it may not reach."""
    if (why := await resolved_refusal(policy, url.host)) is not None:
        raise GitUrlError(f"must not point at the local network: {why}")
