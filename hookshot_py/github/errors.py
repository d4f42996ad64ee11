"""`GitHubError`: a failed GitHub call, with a sentence fit for a room reply."""

from __future__ import annotations

from typing import Any

__all__ = ["GitHubError"]

#: Status used when GitHub never answered (network error, timeout, unparsable body).
NO_RESPONSE = 0


class GitHubError(Exception):
    """GitHub refused a request, or could not be reached (`status` 0).

    `repo` is the `owner/repo` the call was about, when there is one, so `describe()` can say
    which repository the user lacks access to; `needs_admin` marks calls that need admin
    rights (repo hooks), where GitHub answers 404 rather than 403 to non-admins. `errors` holds
    the `errors` list of a 422.
    """

    def __init__(
        self,
        status: int,
        message: str,
        docs_url: str | None = None,
        *,
        repo: str | None = None,
        needs_admin: bool = False,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(f"GitHub error {status}: {message}")
        self.status = status
        self.message = message
        self.docs_url = docs_url
        self.repo = repo
        self.needs_admin = needs_admin
        self.errors = errors or []

    def _validation_details(self) -> str:
        details = []
        for error in self.errors:
            if not isinstance(error, dict):
                continue
            text = error.get("message") or " ".join(
                str(error[k]) for k in ("resource", "field", "code") if error.get(k)
            )
            if text:
                details.append(str(text))
        return f" ({'; '.join(details)})" if details else ""

    def describe(self) -> str:
        """A reply for the room: what went wrong and what the user can do about it."""
        if self.status == NO_RESPONSE:
            return f"Could not reach GitHub: {self.message}"
        if self.status == 401:
            return (
                "GitHub rejected your token (it is invalid, expired or revoked). "
                "Log in to GitHub again."
            )
        if self.status in (403, 404) and self.repo is not None:
            if self.needs_admin:
                return (
                    f"No admin access to {self.repo}: check that the repository exists and "
                    "that your GitHub account can administer it."
                )
            return (
                f"Cannot access {self.repo}: it does not exist or your GitHub account "
                "may not use it this way."
            )
        if self.status == 403:
            return f"GitHub refused the request: {self.message}"
        if self.status == 404:
            return f"Not found on GitHub: {self.message}"
        if self.status == 422:
            details = self._validation_details()
            return f"GitHub could not accept the request: {self.message}{details}"
        return f"GitHub answered {self.status}: {self.message}"
