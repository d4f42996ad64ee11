"""Shared fixtures. Fixture code lives in tests/support; this file only exposes it."""

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


def pytest_collection_modifyitems(config, items):  # type: ignore[no-untyped-def]
    """Tests that need the real Synapse (directly or through the bridge) are marked `e2e`, so
    `-m "not e2e"` runs the fast unit tests alone."""
    import pytest

    for item in items:
        if "synapse" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.e2e)
