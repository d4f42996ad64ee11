"""Shared fixtures. Fixture code lives in tests/support; this file only exposes it."""

from support.fixtures import (  # noqa: F401
    bridge,
    bridge_as_port,
    bridge_factory,
    make_user,
    pg_admin_dsn,
    registration,
    registration_path,
    synapse,
)
