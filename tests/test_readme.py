"""Every command in README.md is run here, as a reader would run it, so the README cannot drift.

The README's shell blocks and its table of room commands are parsed; each command must have a
handler below (a new or changed command fails `test_every_readme_command_has_a_handler` until one
is written). The deployment block runs in a copy of this checkout: `./scripts/bootstrap.sh`,
`install -m 600 config.yaml.sample config.yaml`, the edits the comment names, `generate-registration`,
a Synapse started with that registration (the "restart the homeserver" step), `check-config`,
`hookshot-py run`, then the room commands, the webhook `curl` and the provisioning `curl` lines
against that bridge, then `migrate`.

Not run here, and why:
- `./scripts/quickstart.sh` runs until Ctrl-C: tests/devenv/test_quickstart.py runs it, SIGKILLs it
  and runs it again.
- `./scripts/test.sh` is this test suite.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from support.bridge import create_database
from support.helpers import dm_webhook_url, is_notice_with

from hookshot_py.devenv.matrix_client import MatrixTestClient
from hookshot_py.devenv.synapse import SynapseServer, free_port

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
SERVER_NAME = "readme.test"
HOOK_NAME = "readme-hook"

NOT_RUN = {
    "./scripts/quickstart.sh": "runs until Ctrl-C; tests/devenv/test_quickstart.py runs it, SIGKILLs it, runs it again",
    "./scripts/test.sh": "it is this test suite",
    './scripts/test.sh -m "not e2e"': "it is this test suite (its unit part)",
    "./scripts/test.sh -m e2e": "it is this test suite (its end-to-end part)",
}


@dataclass
class Command:
    section: str
    text: str  # the command, continuation lines joined, without its trailing comment
    comment: str


def _split_comment(line: str) -> tuple[str, str]:
    """`cmd   # comment` → (cmd, comment): the first `#` outside quotes that follows a blank."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].strip(), line[i + 1 :].strip()
    return line.strip(), ""


def readme_commands() -> list[Command]:
    """The commands of the README's ```sh blocks and of its room-command tables, in order."""
    commands: list[Command] = []
    section = ""
    in_block = False
    pending = ""
    for line in README.read_text().splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        if line.startswith("```"):
            in_block = line.strip() == "```sh"
            continue
        if in_block:
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            text, comment = _split_comment(pending + line)
            pending = ""
            if text:
                commands.append(Command(section, " ".join(text.split()), comment))
        elif section == "Using it in a room" and (m := re.match(r"\| `(!hookshot [^`]+)` \|", line)):
            commands.append(Command(section, m.group(1), ""))
    return commands


# -- the bridge the README's reader deploys -------------------------------------------------------------


@dataclass
class Reader:
    """What the reader has at hand while following the README."""

    checkout: Path
    tmp: Path
    admin_dsn: str
    vars: dict[str, str] = field(default_factory=dict)
    synapse: SynapseServer | None = None
    bridge: subprocess.Popen[bytes] | None = None
    user: MatrixTestClient | None = None
    room: str = ""
    ports: dict[str, int] = field(default_factory=dict)
    provisioning_secret: str = field(default_factory=lambda: secrets.token_hex(32))
    hook_url: str = ""
    webhook_done: bool = False
    connection: dict[str, Any] = field(default_factory=dict)

    def sh(self, text: str, *, timeout: float = 300) -> str:
        """Run one README line with bash in the checkout; curl fails on HTTP errors."""
        script = 'curl() { command curl -sS --fail-with-body "$@"; }\n' + text
        out = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], cwd=self.checkout, capture_output=True, text=True,
            timeout=timeout, env={**os.environ, **self.vars},
        )  # fmt: skip
        assert out.returncode == 0, f"README command failed ({out.returncode}): {text}\n{out.stdout}\n{out.stderr}"
        return out.stdout

    def sh_json(self, text: str) -> Any:
        out = self.sh(text)
        try:
            return json.loads(out)
        except ValueError:
            raise AssertionError(f"{text} printed no JSON: {out!r}") from None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['webhooks']}"


Handler = Callable[[Reader, Command], Awaitable[None]]


def _copy_checkout(dest: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO, capture_output=True,
        check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, files):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


async def bootstrap(r: Reader, cmd: Command) -> None:
    r.sh(cmd.text, timeout=900)
    assert (r.checkout / ".venv/bin/hookshot-py").exists()
    assert not (r.checkout / ".venv-synapse").exists(), "a deployment must not install Synapse"


async def copy_sample(r: Reader, cmd: Command) -> None:
    r.sh(cmd.text)
    assert (r.checkout / "config.yaml").stat().st_mode & 0o777 == 0o600
    # "edit: bridge.domain, bridge.url, generic.urlPrefix...": what this machine needs.
    assert "edit:" in cmd.comment and "bridge.domain" in cmd.comment
    config = yaml.safe_load((r.checkout / "config.yaml").read_text())
    r.synapse = SynapseServer(r.tmp / "synapse", SERVER_NAME, [r.checkout / "registration.yaml"])
    r.ports = {"appservice": free_port(), "webhooks": free_port(), "provisioning": free_port()}
    config["bridge"].update(domain=SERVER_NAME, url=r.synapse.base_url, port=r.ports["appservice"])
    webhooks, admin = config["listeners"]
    assert webhooks["resources"] == ["webhooks"] and "provisioning" in admin["resources"]
    assert admin["port"] == 9001  # the README's API= line says so; checked there too
    webhooks.update(port=r.ports["webhooks"], bindAddress="127.0.0.1")
    admin.update(port=r.ports["provisioning"])
    config["generic"]["urlPrefix"] = f"{r.base_url}/webhook/"
    config["permissions"][0]["actor"] = SERVER_NAME
    config["provisioning"]["secret"] = r.provisioning_secret
    config["database"] = {"url": await create_database(r.admin_dsn)}
    (r.checkout / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


async def generate_registration(r: Reader, cmd: Command) -> None:
    out = r.sh(cmd.text)
    assert "app_service_config_files" in out
    registration = yaml.safe_load((r.checkout / "registration.yaml").read_text())
    assert registration["url"] == f"http://127.0.0.1:{r.ports['appservice']}"
    # The next README line: add registration.yaml to the homeserver's app_service_config_files and
    # restart it. Here the homeserver is a fresh Synapse that lists it.
    assert r.synapse is not None
    await r.synapse.start()


async def run_bridge(r: Reader, cmd: Command) -> None:
    log = (r.tmp / "bridge.log").open("ab")
    r.bridge = subprocess.Popen(  # noqa: ASYNC220 (the bridge runs alongside; nothing to await)
        ["bash", "-c", f"exec {cmd.text}"], cwd=r.checkout, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    # "GET /ready (503 until the bridge is ready; the body shows the outbox depth)"
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
            assert r.bridge.poll() is None, f"the bridge exited:\n{_tail(r.tmp / 'bridge.log')}"
            try:
                async with session.get(f"{r.base_url}/ready") as resp:
                    body = await resp.json()
                    if resp.status == 200:
                        assert body["ready"] is True and "outboxDepth" in body
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"the bridge is not ready:\n{_tail(r.tmp / 'bridge.log')}")
    assert r.synapse is not None
    r.user = await r.synapse.register_user("alice", secrets.token_urlsafe(12))
    bot = f"@hookshot:{SERVER_NAME}"
    r.room = await r.user.create_room(invite=[bot], name="readme")
    await r.user.wait_for_message(
        r.room,
        lambda e: e.get("type") == "m.room.member" and e.get("state_key") == bot
        and e.get("content", {}).get("membership") == "join",
    )  # fmt: skip
    await r.user.set_power_levels(r.room, {bot: 50})


async def check_config(r: Reader, cmd: Command) -> None:
    out = r.sh(cmd.text)
    assert "config.yaml and registration.yaml are valid." in out, out


async def migrate(r: Reader, cmd: Command) -> None:
    assert "up to date" in r.sh(cmd.text)


# The README's room commands, its placeholders filled in.
ROOM_COMMANDS = {
    "!hookshot help": "!hookshot help",
    "!hookshot webhook <name> [duration]": f"!hookshot webhook {HOOK_NAME} 7d",
    "!hookshot webhook list": "!hookshot webhook list",
    "!hookshot webhook remove <name>": f"!hookshot webhook remove {HOOK_NAME}",
}


async def room_command(r: Reader, cmd: Command) -> None:
    assert r.user is not None
    text = ROOM_COMMANDS[cmd.text]
    if cmd.text == "!hookshot webhook remove <name>":
        # The "Generic webhooks" block needs the URL while the webhook exists: run it first.
        await webhook_post(r, _generic_curl())
    await r.user.send_text(r.room, text)
    if cmd.text == "!hookshot help":
        await r.user.wait_for_message(r.room, is_notice_with("!hookshot webhook remove <name>"))
    elif cmd.text == "!hookshot webhook <name> [duration]":
        r.hook_url = await dm_webhook_url(r.user, HOOK_NAME)
    elif cmd.text == "!hookshot webhook list":
        await r.user.wait_for_message(r.room, is_notice_with(f"- {HOOK_NAME}"))
    else:
        await r.user.wait_for_message(r.room, is_notice_with(f"Removed webhook **{HOOK_NAME}**"))
        async with aiohttp.ClientSession() as session, session.post(r.hook_url, json={"text": "x"}) as resp:
            assert resp.status == 404  # "its URL stops working"
        r.webhook_done = True


def _generic_curl() -> Command:
    return next(c for c in readme_commands() if c.section == "Generic webhooks")


async def webhook_post(r: Reader, cmd: Command) -> None:
    if r.webhook_done:
        return  # run by room_command while `!hookshot webhook <name>`'s URL existed
    assert r.user is not None and r.hook_url
    text = cmd.text.replace("https://hooks.example.org/webhook/<id>", r.hook_url)
    assert text != cmd.text, "the README's webhook URL placeholder changed"
    assert r.sh_json(text) == {"ok": True}
    notice = await r.user.wait_for_message(r.room, is_notice_with("passed"))
    assert notice["content"]["msgtype"] == "m.notice"
    assert "<strong>passed</strong>" in notice["content"]["formatted_body"]


async def assign(r: Reader, cmd: Command) -> None:
    """`NAME=value` lines: evaluated by bash, then the README's placeholders replaced by real values."""
    name = cmd.text.split("=", 1)[0]
    if cmd.text == "ID=...":
        r.vars["ID"] = r.connection["id"]
        return
    value = r.sh(f'{cmd.text}\nprintf %s "${name}"')
    assert r.user is not None
    real = {
        "H": ("the-provisioning-secret", r.provisioning_secret),
        "API": ("http://127.0.0.1:9001/v1", f"http://127.0.0.1:{r.ports['provisioning']}/v1"),
        "U": ("@alice:example.org", r.user.user_id),
        "ROOM": ("!abcdefg", r.room),
    }[name]
    assert real[0] in value, f"{cmd.text}: the placeholder {real[0]!r} changed"
    r.vars[name] = value.replace(*real)


async def provisioning_curl(r: Reader, cmd: Command) -> None:
    out = r.sh_json(cmd.text)
    check = PROVISIONING_CHECKS.get(cmd.text)
    assert check is not None, f"no check for {cmd.text}"
    check(r, out)


def _created(r: Reader, out: Any) -> None:
    assert out["config"] == {"name": "ci-builds"} and out["secrets"]["url"].startswith(f"{r.base_url}/webhook/")
    r.connection = out


PROVISIONING_CHECKS: dict[str, Callable[[Reader, Any], None]] = {
    "curl $API/health": lambda r, out: _eq(out, {}),
    'curl -H "$H" $API/connectiontypes': lambda r, out: _has(
        out["Webhook"], {"type", "eventType", "service", "botUserId"}
    ),
    'curl -H "$H" "$API/$ROOM/connections?$U"': lambda r, out: [
        _has(c, {"type", "eventType", "id", "service", "botUserId", "config"}) for c in out
    ],
    'curl -H "$H" -X PUT -d \'{"name": "ci-builds"}\' '
    '"$API/$ROOM/connections/uk.half-shot.matrix-hookshot.generic.hook?$U"': _created,
    'curl -H "$H" "$API/$ROOM/connections/$ID?$U"': lambda r, out: _eq(out["id"], r.connection["id"]),
    'curl -H "$H" -X PATCH -d \'{"waitForComplete": true}\' "$API/$ROOM/connections/$ID?$U"': lambda r, out: _eq(
        out["config"], {"name": "ci-builds", "waitForComplete": True}
    ),
    'curl -H "$H" -X DELETE "$API/$ROOM/connections/$ID?$U"': lambda r, out: _eq(out, {"ok": True}),
}


def _eq(a: Any, b: Any) -> None:
    assert a == b, f"{a!r} != {b!r}"


def _has(obj: Any, keys: set[str]) -> None:
    assert isinstance(obj, dict) and keys <= set(obj), f"{obj!r} lacks {keys - set(obj)}"


def handler_for(cmd: Command) -> Handler | None:
    if cmd.text in NOT_RUN:
        return None
    fixed: dict[str, Handler] = {
        "./scripts/bootstrap.sh": bootstrap,
        "install -m 600 config.yaml.sample config.yaml": copy_sample,
        ".venv/bin/hookshot-py generate-registration -c config.yaml -r registration.yaml": generate_registration,
        ".venv/bin/hookshot-py check-config -c config.yaml -r registration.yaml": check_config,
        ".venv/bin/hookshot-py run -c config.yaml -r registration.yaml": run_bridge,
        ".venv/bin/hookshot-py migrate -c config.yaml": migrate,
    }
    if cmd.text in fixed:
        return fixed[cmd.text]
    if cmd.section == "Using it in a room" and cmd.text in ROOM_COMMANDS:
        return room_command
    if cmd.section == "Generic webhooks" and cmd.text.startswith("curl "):
        return webhook_post
    if cmd.section == "Provisioning API":
        if re.fullmatch(r"[A-Z]+=\S.*", cmd.text):
            return assign
        if cmd.text in PROVISIONING_CHECKS:
            return provisioning_curl
    raise LookupError(f"README command without a handler in tests/test_readme.py: {cmd.text!r} ({cmd.section})")


# Sections in the order a reader needs them: the bridge first, then what uses it.
ORDER = [
    "The two commands", "Running your own deployment", "Using it in a room", "Generic webhooks", "Provisioning API",
]  # fmt: skip


def test_every_readme_command_has_a_handler() -> None:
    commands = readme_commands()
    assert {c.section for c in commands} == set(ORDER)
    assert len(commands) >= 20
    for cmd in commands:
        handler_for(cmd)
    assert {c.text for c in commands} >= set(NOT_RUN)


@pytest.mark.e2e
async def test_readme_commands(tmp_path: Path, pg_admin_dsn: str) -> None:
    checkout = tmp_path / "checkout"
    _copy_checkout(checkout)
    reader = Reader(checkout, tmp_path, pg_admin_dsn)
    commands = sorted(readme_commands(), key=lambda c: ORDER.index(c.section))
    migrate_last = [c for c in commands if "migrate" in c.text]
    try:
        for cmd in [c for c in commands if c not in migrate_last]:
            handler = handler_for(cmd)
            if handler is not None:
                await handler(reader, cmd)
        assert reader.bridge is not None
        reader.bridge.send_signal(signal.SIGTERM)
        assert reader.bridge.wait(timeout=30) == 0, _tail(tmp_path / "bridge.log")
        for cmd in migrate_last:
            await migrate(reader, cmd)
    finally:
        if reader.user is not None:
            await reader.user.close()
        if reader.bridge is not None and reader.bridge.poll() is None:
            reader.bridge.kill()
            reader.bridge.wait()
        if reader.synapse is not None:
            await reader.synapse.stop()


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"
