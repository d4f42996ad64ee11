"""A real Synapse homeserver run as a subprocess for integration tests.

Synapse lives in its own virtualenv (``.venv-synapse``, see ``scripts/bootstrap.sh``) so its pinned
dependencies never meet hookshot_py's. Each :class:`SynapseServer` owns a directory holding its config,
SQLite database, media store, signing key and logs; :meth:`SynapseServer.restart` reuses all of it,
so users and rooms survive, and the port stays the same so a bridge's homeserver URL stays valid.
A Synapse left running by a process that died (SIGKILL) is found through its pid file and stopped
by the next :meth:`SynapseServer.start` on the same directory.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import hmac
import logging
import os
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import yaml

from hookshot_py.config.registration import ENCRYPTION_FLAGS
from hookshot_py.secretfiles import write_private

from .matrix_client import MatrixHTTPError, MatrixTestClient

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
SYNAPSE_PYTHON_ENV = "HOOKSHOT_SYNAPSE_PYTHON"

# Every rate limiter Synapse 1.163 reads (synapse/config/ratelimiting.py), raised so that tests
# which create many users, rooms and messages quickly are never throttled.
_UNLIMITED = {"per_second": 10_000, "burst_count": 100_000}
RATE_LIMITS: dict[str, Any] = {
    "rc_message": _UNLIMITED,
    "rc_registration": _UNLIMITED,
    "rc_registration_token_validity": _UNLIMITED,
    "rc_login": {"address": _UNLIMITED, "account": _UNLIMITED, "failed_attempts": _UNLIMITED},
    "rc_admin_redaction": _UNLIMITED,
    "rc_joins": {"local": _UNLIMITED, "remote": _UNLIMITED},
    "rc_joins_per_room": _UNLIMITED,
    "rc_key_requests": _UNLIMITED,
    "rc_3pid_validation": _UNLIMITED,
    "rc_invites": {"per_room": _UNLIMITED, "per_user": _UNLIMITED, "per_issuer": _UNLIMITED},
    "rc_third_party_invite": _UNLIMITED,
    "rc_media_create": _UNLIMITED,
    "rc_presence": {"per_user": _UNLIMITED},
    "rc_delayed_event_mgmt": _UNLIMITED,
    "rc_room_creation": _UNLIMITED,
    "rc_reports": _UNLIMITED,
    "rc_user_directory": _UNLIMITED,
    "rc_profile": _UNLIMITED,
}


class SynapseError(RuntimeError):
    """Synapse could not be prepared, started or stopped; the message carries its log tail."""


def synapse_python() -> Path:
    """The interpreter of Synapse's venv: ``$HOOKSHOT_SYNAPSE_PYTHON`` or ``<repo>/.venv-synapse``."""
    override = os.environ.get(SYNAPSE_PYTHON_ENV)
    return Path(override) if override else REPO_ROOT / ".venv-synapse" / "bin" / "python"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"({path} does not exist)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:]) or f"({path} is empty)"


def _log_config(log_file: Path, level: str) -> dict[str, Any]:
    return {
        "version": 1,
        "formatters": {
            "precise": {
                "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s"
            }
        },
        "filters": {"context": {"()": "synapse.logging.context.LoggingContextFilter", "request": ""}},
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "formatter": "precise",
                "filename": str(log_file),
                "filters": ["context"],
                "encoding": "utf8",
            }
        },
        "root": {"level": level, "handlers": ["file"]},
        "disable_existing_loggers": False,
    }


@dataclass
class SynapseServer:
    """One Synapse process with its own data directory, listening on ``127.0.0.1:port``.

    The appservice registration files must exist before :meth:`start`, since Synapse reads them only
    at startup; the appservice itself may come up later.
    """

    workdir: Path
    server_name: str = "hookshot.test"
    appservice_registration_paths: list[Path] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    python: Path = field(default_factory=synapse_python)
    startup_timeout: float = 60.0
    log_level: str = "WARNING"
    registration_shared_secret: str = field(default_factory=lambda: secrets.token_hex(24))
    #: Seconds the last successful :meth:`start` took, keys generation excluded.
    last_startup_seconds: float | None = field(default=None, init=False)
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "homeserver.yaml"

    @property
    def log_path(self) -> Path:
        """Synapse's own log (WARNING and above unless ``log_level`` says otherwise)."""
        return self.workdir / "homeserver.log"

    @property
    def output_path(self) -> Path:
        """Synapse's stdout/stderr: what it prints before its logging is set up (config errors)."""
        return self.workdir / "homeserver.out"

    @property
    def pid_path(self) -> Path:
        """The pid of the Synapse we started (Synapse writes none unless it daemonizes)."""
        return self.workdir / "synapse.pid"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def config(self) -> dict[str, Any]:
        """The homeserver.yaml contents: client listener only, SQLite, no federation, no throttling."""
        return {
            "server_name": self.server_name,
            "public_baseurl": f"{self.base_url}/",
            "pid_file": str(self.workdir / "homeserver.pid"),
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["client"], "compress": False}],
                }
            ],
            "database": {"name": "sqlite3", "args": {"database": str(self.workdir / "homeserver.db")}},
            "log_config": str(self.workdir / "log.config"),
            "media_store_path": str(self.workdir / "media_store"),
            "signing_key_path": str(self.workdir / f"{self.server_name}.signing.key"),
            "registration_shared_secret": self.registration_shared_secret,
            "macaroon_secret_key": hashlib.sha256(f"macaroon:{self.registration_shared_secret}".encode()).hexdigest(),
            "form_secret": hashlib.sha256(f"form:{self.registration_shared_secret}".encode()).hexdigest(),
            "bcrypt_rounds": 4,  # password hashing dominates registration time at the default 12
            "report_stats": False,
            "enable_metrics": False,
            "suppress_key_server_warning": True,
            "trusted_key_servers": [],
            "app_service_config_files": [str(p) for p in self.appservice_registration_paths],
            # Appservice end-to-end encryption: to-device events (MSC2409), device list changes and
            # one-time-key counts (MSC3202) in transactions. Bridges opt in by their registration.
            "experimental_features": {
                "msc2409_to_device_messages_enabled": True,
                "msc3202_transaction_extensions": True,
            },
            **RATE_LIMITS,
        }

    def write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for path in self.appservice_registration_paths:
            if not path.is_file():
                raise SynapseError(f"appservice registration {path} does not exist; write it before starting Synapse")
        # It holds the registration shared secret: whoever reads it can create admin users.
        write_private(self.config_path, yaml.safe_dump(self.config(), sort_keys=False))
        (self.workdir / "log.config").write_text(
            yaml.safe_dump(_log_config(self.log_path, self.log_level), sort_keys=False)
        )

    async def _generate_keys(self) -> None:
        proc = await asyncio.create_subprocess_exec(
            str(self.python), "-m", "synapse.app.homeserver", "-c", str(self.config_path), "--generate-keys",
            cwd=self.workdir, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await proc.communicate()
        if proc.returncode != 0:
            raise SynapseError(
                f"synapse --generate-keys exited with {proc.returncode}:\n{output.decode(errors='replace')}"
            )

    async def start(self) -> None:
        """Write the config (and keys, once), launch Synapse and wait until the client API answers."""
        if self.running:
            raise SynapseError(f"Synapse is already running on {self.base_url}")
        if not self.python.exists():
            raise SynapseError(
                f"no Synapse interpreter at {self.python}: "
                f"run scripts/bootstrap.sh --synapse or set ${SYNAPSE_PYTHON_ENV}"
            )
        self.write_config()
        await asyncio.to_thread(self._stop_orphan)
        if not Path(self.config()["signing_key_path"]).exists():
            await self._generate_keys()
        began = time.monotonic()
        with self.output_path.open("ab") as output:
            self._process = subprocess.Popen(
                [str(self.python), "-m", "synapse.app.homeserver", "-c", str(self.config_path)],
                cwd=self.workdir, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # a ^C aimed at pytest must not kill Synapse before teardown runs
            )  # fmt: skip
        _live_processes.add(self._process)
        self.pid_path.write_text(f"{self._process.pid}\n")
        try:
            await self._wait_until_ready()
        except BaseException:
            self.kill_now()
            self._forget()
            raise
        self.last_startup_seconds = time.monotonic() - began

    async def _wait_until_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        url = f"{self.base_url}/_matrix/client/versions"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while True:
                code = self._process.poll()
                if code is not None:
                    raise SynapseError(f"Synapse exited with {code} during startup\n{self.diagnostics()}")
                try:
                    async with session.get(url) as resp:
                        if resp.status == 200:
                            return
                except (TimeoutError, aiohttp.ClientError):
                    pass
                if time.monotonic() > deadline:
                    raise SynapseError(
                        f"Synapse did not answer {url} within {self.startup_timeout:.0f}s\n{self.diagnostics()}"
                    )
                await asyncio.sleep(0.1)

    def diagnostics(self) -> str:
        """The tails of Synapse's output and log, for error messages."""
        return (
            f"--- {self.output_path} ---\n{_tail(self.output_path)}\n"
            f"--- {self.log_path} ---\n{_tail(self.log_path)}"
        )

    async def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if Synapse is still alive after ``grace`` seconds."""
        proc = self._process
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + grace
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        if proc.poll() is None:
            self.kill_now()
        self._forget()

    async def kill(self) -> None:
        """SIGKILL Synapse, as a crash would: for homeserver-outage tests."""
        self.kill_now()
        self._forget()

    def kill_now(self) -> None:
        """Synchronous SIGKILL + reap; safe to call from atexit or when Synapse already died."""
        proc = self._process
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    def _forget(self) -> None:
        if self._process is not None:
            _live_processes.discard(self._process)
            self.pid_path.unlink(missing_ok=True)
        self._process = None

    def _stop_orphan(self, grace: float = 10.0) -> None:
        """Stop a Synapse of this directory whose owner died without stopping it. Blocking."""
        try:
            pid = int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return
        try:
            proc = psutil.Process(pid)
            ours = str(self.config_path) in proc.cmdline()
        except psutil.Error:
            ours = False  # gone, or the pid now belongs to a process we may not inspect
        if ours:
            log.info("Stopping the Synapse (pid %d) an earlier run left behind in %s", pid, self.workdir)
            try:
                proc.terminate()
                proc.wait(grace)
            except psutil.TimeoutExpired:
                proc.kill()
                proc.wait(grace)
            except psutil.NoSuchProcess:
                pass
        self.pid_path.unlink(missing_ok=True)

    async def restart(self) -> None:
        """Stop and start again with the same config, data and port."""
        await self.stop()
        await self.start()

    async def register_user(self, localpart: str, password: str | None = None, admin: bool = False) -> MatrixTestClient:
        """Register through the shared-secret admin API and return a logged-in client.

        The caller owns the returned client and must ``await client.close()``.
        """
        password = password or secrets.token_urlsafe(16)
        url = f"{self.base_url}/_synapse/admin/v1/register"
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as resp:
                body = await resp.json(content_type=None)
                if resp.status != 200:
                    raise MatrixHTTPError(resp.status, body, "GET", url)
                nonce = body["nonce"]
            mac = hmac.new(self.registration_shared_secret.encode(), digestmod=hashlib.sha1)
            mac.update(b"\x00".join([nonce.encode(), localpart.encode(), password.encode(),
                                     b"admin" if admin else b"notadmin"]))  # fmt: skip
            payload = {
                "nonce": nonce,
                "username": localpart,
                "password": password,
                "admin": admin,
                "mac": mac.hexdigest(),
            }
            async with session.post(url, json=payload) as resp:
                body = await resp.json(content_type=None)
                if resp.status != 200:
                    raise MatrixHTTPError(resp.status, body, "POST", url)
        return MatrixTestClient(
            self.base_url, body["user_id"], body["access_token"], device_id=body.get("device_id"), password=password
        )


async def start_synapse(
    workdir: Path, registration_paths: list[Path], server_name: str = "hookshot.test"
) -> SynapseServer:
    """Start a Synapse in ``workdir`` that loads the given appservice registrations."""
    server = SynapseServer(workdir, server_name, list(registration_paths))
    await server.start()
    return server


def make_registration(
    bridge_url: str,
    server_name: str = "hookshot.test",
    sender_localpart: str = "hookshot",
    user_prefixes: tuple[str, ...] = ("_webhooks_", "_github_"),
    encryption: bool = True,
) -> dict[str, Any]:
    """An appservice registration like hookshot's: the bot plus exclusive puppet-user namespaces.

    ``encryption`` adds the opt-ins a bridge with ``encryption.enabled`` needs (to-device events, device
    lists, devices it creates itself); a bridge without encryption ignores what they bring.
    """
    domain = server_name.replace(".", r"\.")
    users = [{"exclusive": True, "regex": f"@{sender_localpart}:{domain}"}]
    users += [{"exclusive": True, "regex": f"@{prefix}.*:{domain}"} for prefix in user_prefixes]
    return {
        "id": "hookshot",
        "as_token": secrets.token_hex(32),
        "hs_token": secrets.token_hex(32),
        "url": bridge_url,
        "sender_localpart": sender_localpart,
        "rate_limited": False,
        "namespaces": {"users": users, "rooms": [], "aliases": []},
        **(ENCRYPTION_FLAGS if encryption else {}),
    }


# Synapse processes still alive; killed at interpreter exit so a crashed test run leaves none behind.
_live_processes: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_live_processes):
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
