"""./scripts/quickstart.sh survives its own crash, and Ctrl-C stops it at any moment.

One data directory, four runs. The first is SIGKILLed once it runs: its Synapse and Postgres live on
as orphans. The second must start anyway (Synapse replaced, Postgres adopted), deliver a webhook,
and is SIGKILLed too. The third gets Ctrl-C during start-up: it stops, and stops the orphans. The
fourth starts, delivers, and stops on Ctrl-C, leaving nothing behind.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import aiohttp
import psutil
import pytest
from support.helpers import is_notice_with

from hookshot_py.devenv.matrix_client import MatrixTestClient

REPO = Path(__file__).resolve().parents[2]
BANNER = "hookshot_py is running."


class Run:
    """One `scripts/quickstart.sh DATA` in its own process group, as a terminal would run it."""

    def __init__(self, data: Path, name: str) -> None:
        self.log = data.parent / f"{name}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                ["bash", str(REPO / "scripts/quickstart.sh"), str(data)], cwd=REPO, stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def wait_for(self, text: str, timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            assert self.proc.poll() is None, f"the quickstart exited with {self.proc.returncode}:\n{self.output()}"
            assert time.monotonic() < deadline, f"no {text!r} after {timeout}s:\n{self.output()}"
            await asyncio.sleep(0.1)
        return self.output()

    def ctrl_c(self) -> float:
        """SIGINT to the process group (what Ctrl-C in a terminal does); the seconds until it exits."""
        began = time.monotonic()
        os.killpg(self.proc.pid, signal.SIGINT)
        self.proc.wait(timeout=60)
        return time.monotonic() - began

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # the Python process alone: what a crash or the OOM killer does
            self.proc.wait()


def processes_using(data: Path) -> list[str]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(data) in cmdline:
            found.append(f"{proc.info['pid']}: {cmdline}")
    return found


def assert_clean_exit(run: Run, data: Path, seconds: float) -> None:
    out = run.output()
    assert run.proc.returncode == 0, out
    assert "Traceback" not in out, out
    assert seconds < 20, f"stopping took {seconds:.1f}s"
    assert processes_using(data) == [], out


async def deliver_a_webhook(run: Run) -> None:
    """Wait for the banner, POST to its webhook URL, see the message in the demo room."""
    out = await run.wait_for(BANNER)
    url = re.search(r"Webhook URL\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    login = re.search(r'Demo login\s+user "demo" \((\S+)\), password "([^"]+)"', out)
    room = re.search(r"Demo room\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    homeserver = re.search(r"Homeserver\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    assert login is not None
    text = f"from the {run.log.stem} run"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json={"text": f"{text} **after a crash**"}) as resp:
            assert resp.status == 202, await resp.text()
        body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "demo"}, "password": login[2]}
        async with session.post(f"{homeserver}/_matrix/client/v3/login", json=body) as resp:
            assert resp.status == 200, await resp.text()
            token = (await resp.json())["access_token"]
    demo = MatrixTestClient(homeserver, login[1], token)
    try:
        notice = await demo.wait_for_message(room, is_notice_with(text))
        assert "<strong>after a crash</strong>" in notice["content"]["formatted_body"]
    finally:
        await demo.close()


def postgres_pid(data: Path) -> int:
    return int((data / "hookshot-data/postgres/postmaster.pid").read_text().split()[0])


async def test_quickstart_recovers_after_sigkill_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    data = tmp_path / "quickstart-data"
    runs: list[Run] = []
    try:
        runs.append(first := Run(data, "first"))
        await first.wait_for(BANNER, timeout=300)
        first.kill()
        orphans = processes_using(data)
        assert any("synapse.app.homeserver" in p for p in orphans), orphans
        orphan_postgres = postgres_pid(data)

        runs.append(second := Run(data, "second"))
        await deliver_a_webhook(second)
        assert "an earlier run left behind" in second.output()  # its Synapse, replaced
        assert f"Embedded Postgres ready (pid {orphan_postgres})" in second.output()  # adopted
        second.kill()

        runs.append(third := Run(data, "third"))
        await third.wait_for("Starting Synapse")
        assert_clean_exit(third, data, third.ctrl_c())

        runs.append(fourth := Run(data, "fourth"))
        await deliver_a_webhook(fourth)
        assert_clean_exit(fourth, data, fourth.ctrl_c())
    finally:
        for run in runs:
            run.kill()
        for leftover in processes_using(data):  # never leave a test's servers behind
            try:
                psutil.Process(int(leftover.split(":")[0])).kill()
            except psutil.Error:
                pass


pytestmark = pytest.mark.e2e
