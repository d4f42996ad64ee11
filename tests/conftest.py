"""Shared fixtures. Fixture code lives in tests/support; this file only exposes it."""

# Loaded once here, the migrations of the many test databases run in this process rather than
# in a child process each (what a bridge process does, to keep alembic out of its memory).
import alembic.command  # noqa: F401

from support.fixtures import (  # noqa: F401
    bridge,
    bridge_as_port,
    bridge_factory,
    core,
    core_factory,
    db,
    make_user,
    misrouted_registration_path,
    pg_admin_dsn,
    registration,
    registration_path,
    synapse,
)


# Whole files that run the bridge, its command line (a fresh interpreter per test) or its image
# build as real processes, though without Synapse: they belong with the end-to-end tests, not the
# fast unit run.
PROCESS_TESTS = ("tests/deploy/", "tests/test_lifecycle.py", "tests/test_cli.py")


def pytest_collection_modifyitems(config, items):  # type: ignore[no-untyped-def]
    """Tests that need the real Synapse (directly or through the bridge), or run the bridge as a
    process, are marked `e2e`, so `-m "not e2e"` runs the fast unit tests alone."""
    import pytest

    for item in items:
        path = str(item.path.relative_to(config.rootpath))
        if "synapse" in getattr(item, "fixturenames", ()) or path.startswith(PROCESS_TESTS):
            item.add_marker(pytest.mark.e2e)
