"""Test support: fixtures around hookshot_py.devenv (real Synapse) and the bridge."""

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
