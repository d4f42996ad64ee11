"""Files holding secrets are written 0600, and readable ones are reported with the chmod that fixes them."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from hookshot_py.config import load_config
from hookshot_py.devenv import quickstart
from hookshot_py.devenv.synapse import SynapseServer
from hookshot_py.secretfiles import exposure, write_private
from hookshot_py.tokens import SecretBox


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The most permissive umask: what a file ends up with is then what the code asked for."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_write_private_creates_and_replaces_files_owner_only(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "registration.yaml"
    write_private(path, "as_token: x\n")
    assert mode(path) == 0o600 and path.read_text() == "as_token: x\n"

    path.write_text("old")
    os.chmod(path, 0o644)
    write_private(path, b"new")
    assert mode(path) == 0o600 and path.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["registration.yaml"]  # no temporary file left


def test_write_private_leaves_nothing_behind_when_it_fails(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError):
        write_private(tmp_path, "x")  # the target is a directory: os.replace fails
    assert list(tmp_path.iterdir()) == []


def test_exposure_names_who_can_read_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "my config.yaml"
    path.write_text("x")
    os.chmod(path, 0o600)
    assert exposure(path, "secrets") is None
    os.chmod(path, 0o620)  # group-writable but not readable: nothing is disclosed
    assert exposure(path, "secrets") is None
    os.chmod(path, 0o644)
    assert exposure(path, "secrets") == (
        f"{path} holds secrets but its group and other users can read it (mode 0644); "
        f"restrict it with: chmod 600 '{path}'"
    )
    assert exposure(tmp_path / "missing.yaml", "secrets") is None


def test_generated_pass_file_is_owner_only(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "keys" / "passkey.pem"
    SecretBox.from_pass_file(path)
    assert mode(path) == 0o600


def test_quickstart_files_are_owner_only(tmp_path: Path, open_umask: None) -> None:
    state_path = tmp_path / "state.json"
    state = quickstart._load_state(state_path)
    assert mode(state_path) == 0o600
    assert json.loads(state_path.read_text())["provisioning_secret"] == state["provisioning_secret"]
    config_path, registration_path = quickstart._write_files(tmp_path, state)
    assert mode(config_path) == 0o600 and mode(registration_path) == 0o600
    assert yaml.safe_load(config_path.read_text())["provisioning"]["secret"] == state["provisioning_secret"]
    assert load_config(config_path).provisioning is not None  # its secret is strong enough


def test_synapse_config_with_its_shared_secret_is_owner_only(tmp_path: Path, open_umask: None) -> None:
    server = SynapseServer(tmp_path)
    server.write_config()
    assert mode(server.config_path) == 0o600
    assert server.registration_shared_secret in server.config_path.read_text()
