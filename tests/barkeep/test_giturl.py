"""Which clone URLs the bridge hands to Barkeep: remote transports only, public hosts only."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from hookshot_py.barkeep.giturl import GitUrl, GitUrlError, check_git_url, check_resolved, parse_git_url
from hookshot_py.net.guard import UrlPolicy


@pytest.mark.parametrize(
    ("url", "scheme", "host"),
    [
        ("https://github.com/acme/widgets.git", "https", "github.com"),
        ("http://git.example.org:8080/widgets", "http", "git.example.org"),
        ("git://git.kernel.org/pub/scm/git/git.git", "git", "git.kernel.org"),
        ("ssh://git@github.com/acme/widgets.git", "ssh", "github.com"),
        ("git+ssh://git@gitlab.com:22/acme/widgets.git", "git+ssh", "gitlab.com"),
        ("git@github.com:acme/widgets.git", "ssh", "github.com"),
        ("github.com:acme/widgets.git", "ssh", "github.com"),
        ("deploy@[2606:4700::1111]:widgets.git", "ssh", "2606:4700::1111"),
        ("https://8.8.8.8/widgets.git", "https", "8.8.8.8"),
    ],
)
def test_remote_urls_pass(url: str, scheme: str, host: str) -> None:
    assert check_git_url(url, UrlPolicy()) == GitUrl(scheme, host, url)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "not a file:// URL"),
        ("FILE:///srv/git/secret.git", "not a file:// URL"),
        ("ftp://example.org/widgets.git", "not a ftp:// URL"),
        ("/srv/git/widgets.git", "not a local path"),
        ("../widgets", "not a local path"),
        ("widgets", "not a local path"),
        ("ext::sh -c touch% /tmp/pwned", "remote helper"),
        ("fd::17/widgets", "remote helper"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254, a link-local (cloud metadata) address"),
        ("https://127.0.0.1/widgets.git", "loopback"),
        ("git://10.1.2.3/widgets.git", "private"),
        ("ssh://[::1]/widgets.git", "loopback"),
        ("git@[fd00:ec2::254]:widgets.git", "private"),
        ("root@192.168.1.1:widgets.git", "private"),
        ("https://localhost/widgets.git", "local name"),
        ("git@gitserver:widgets.git", "without a domain"),
        ("https://git.corp.internal/widgets.git", "local name"),
        ("https://user:token@github.com/acme/widgets.git", "credentials"),
        ("ssh://git:hunter2@github.com/acme/widgets.git", "password"),
        ("ssh://-oProxyCommand=touch%20x/widgets", "not a host name"),
        ("-oProxyCommand=x@host.example:widgets", "starting with '-'"),
        ("ssh://-oProxyCommand=x@host.example/widgets", "starting with '-'"),
        ("https://exa mple.org/widgets", "not a host name"),
        ("https:///widgets", "has no host"),
        ("https://example.org:notaport/widgets", "not a valid URL"),
    ],
)
def test_refused_urls_say_why(url: str, reason: str) -> None:
    with pytest.raises(GitUrlError) as info:
        check_git_url(url, UrlPolicy())
    assert reason in info.value.message


def test_the_admin_may_allow_an_intranet_git_server() -> None:
    policy = UrlPolicy.create(["gitserver", "*.corp.internal"], ["10.1.0.0/16"])
    check_git_url("git@gitserver:widgets.git", policy)
    check_git_url("https://git.corp.internal/widgets.git", policy)
    check_git_url("git://10.1.2.3/widgets.git", policy)
    with pytest.raises(GitUrlError):
        check_git_url("git://10.2.0.1/widgets.git", policy)


async def test_a_name_resolving_to_an_internal_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    async def getaddrinfo(host: str, *_: Any, **__: Any) -> list[Any]:
        table = {"rebind.example": "169.254.169.254", "public.example": "93.184.215.14"}
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (table[host], 0))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    with pytest.raises(GitUrlError) as info:
        await check_resolved(parse_git_url("https://rebind.example/widgets.git"), UrlPolicy())
    assert info.value.message == (
        "must not point at the local network: rebind.example resolves to 169.254.169.254, "
        "a link-local (cloud metadata) address"
    )
    await check_resolved(parse_git_url("git@public.example:widgets.git"), UrlPolicy())
    await check_resolved(parse_git_url("https://rebind.example/widgets.git"), UrlPolicy.create(["rebind.example"]))
