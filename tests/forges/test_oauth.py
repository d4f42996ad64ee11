"""One-time OAuth states in Postgres: used once, by the service they were made for, in time."""

from __future__ import annotations

from hookshot_py.db.database import Database
from hookshot_py.forges.oauth import OAuthStates, callback_page


async def test_a_state_works_once_for_its_service_within_its_lifetime(db: Database) -> None:
    jira, github = OAuthStates(db, "jira"), OAuthStates(db, "github")
    state = await jira.issue("@alice:example.org")
    assert len(state) >= 32 and state != await jira.issue("@alice:example.org")
    assert await github.consume(state) is None  # another service's state
    assert await jira.consume(state) == "@alice:example.org"
    assert await jira.consume(state) is None  # replayed
    assert await jira.consume("forged") is None

    old = await jira.issue("@bob:example.org")
    await db.execute("UPDATE oauth_states SET created_at = now() - interval '31 minutes' WHERE state = $1", old)
    assert await jira.consume(old) is None  # expired
    await jira.issue("@carol:example.org")  # issuing drops the expired ones
    assert await db.fetchval("SELECT count(*) FROM oauth_states WHERE state = $1", old) == 0


def test_the_callback_page_escapes_what_it_shows() -> None:
    page = callback_page("Login <failed>", "Atlassian said: <script>", 400)
    assert page.status == 400 and page.content_type == "text/html"
    assert page.text is not None and "<script>" not in page.text and "&lt;script&gt;" in page.text
