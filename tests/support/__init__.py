"""Test support: fixtures for a real Synapse and the bridge on it, and for the core on the in-memory homeserver."""

from hookshot_py.devenv.matrix_client import MatrixHTTPError, MatrixTestClient
from hookshot_py.devenv.synapse import SynapseError, SynapseServer, free_port, make_registration, start_synapse

__all__ = [
    "MatrixHTTPError",
    "MatrixTestClient",
    "SynapseError",
    "SynapseServer",
    "free_port",
    "make_registration",
    "start_synapse",
]
