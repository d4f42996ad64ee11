"""GitHub's REST answers the bridge reads, declared (see `hookshot_py/forges/models.py`).

Only the keys the bridge uses are declared; GitHub's many others are ignored. `Page` is one
page of a listing, as the provisioning API hands it on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar

import msgspec

from hookshot_py.forges.models import Model

__all__ = ["Account", "Hook", "HookConfig", "Installation", "Issue", "OAuthToken", "Org", "Page", "Repo", "User"]

T = TypeVar("T")


class User(Model, frozen=True):
    what = "user"
    login: str
    id: int
    name: str | None = None


class Org(Model, frozen=True):
    what = "organisation"
    login: str
    id: int
    avatar_url: str | None = None


class Account(Model, frozen=True):
    """The owner of a repository or an installation: a user or an organisation."""

    what = "account"
    login: str
    type: str = "User"
    avatar_url: str | None = None


class Repo(Model, frozen=True):
    what = "repository"
    id: int
    name: str
    full_name: str
    html_url: str
    account: Account = msgspec.field(name="owner")
    private: bool = False
    default_branch: str | None = None
    description: str | None = None
    #: The caller's rights (`admin`, `push`, `pull`...), when GitHub includes them.
    permissions: dict[str, bool] = {}

    @property
    def owner(self) -> str:
        return self.account.login

    @property
    def owner_avatar_url(self) -> str | None:
        return self.account.avatar_url


class HookConfig(Model, frozen=True):
    url: str = ""
    content_type: str | None = None
    insecure_ssl: str | int | None = None
    #: GitHub never returns the secret; it shows `********` when one is set.
    secret: str | None = None


class Hook(Model, frozen=True):
    what = "hook"
    id: int
    events: tuple[str, ...] = ()
    active: bool = False
    config: HookConfig = HookConfig()

    @property
    def url(self) -> str:
        return self.config.url

    @property
    def content_type(self) -> str | None:
        return self.config.content_type

    @property
    def insecure_ssl(self) -> str | None:
        return None if self.config.insecure_ssl is None else str(self.config.insecure_ssl)

    @property
    def has_secret(self) -> bool:
        return bool(self.config.secret)


class Issue(Model, frozen=True):
    what = "issue"
    id: int
    number: int
    title: str
    html_url: str
    state: str = "open"


class Installation(Model, frozen=True):
    what = "installation"
    id: int
    account: Account
    repository_selection: str | None = None

    @property
    def account_login(self) -> str:
        return self.account.login

    @property
    def account_type(self) -> str:
        return self.account.type


class OAuthToken(Model, frozen=True):
    """The answer of the OAuth code exchange (`expires_in` and `refresh_*` for App user tokens)."""

    what = "token"
    access_token: Annotated[str, msgspec.Meta(min_length=1)]
    token_type: str = "bearer"
    scope: str = ""
    expires_in: int | None = None
    refresh_token: str | None = None
    refresh_token_expires_in: int | None = None


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing. `total_count` is set where GitHub reports it."""

    items: list[T]
    page: int
    per_page: int
    has_next: bool
    total_count: int | None = None
