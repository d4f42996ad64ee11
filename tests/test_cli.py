"""The hookshot-py command line: generate-registration, check-config, migrate, help, and config errors."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import yaml
from support.bridge import create_database

from hookshot_py import __version__
from hookshot_py.config.registration import generate_registration

SAMPLE = Path(__file__).resolve().parents[1] / "config.yaml.sample"
COMMANDS = ("run", "check-config", "generate-registration", "migrate")


def sample_data() -> dict[str, Any]:
    """The sample as an admin would fill it in: its placeholder provisioning secret replaced."""
    data = yaml.safe_load(SAMPLE.read_text())
    data["provisioning"]["secret"] = secrets.token_hex(32)
    return data


def write_config(tmp_path: Path, data: dict[str, Any], mode: int = 0o600) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    os.chmod(path, mode)
    return path


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hookshot_py", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_generate_registration_writes_tokens_and_namespaces(tmp_path):
    config = write_config(tmp_path, sample_data())
    out = run("generate-registration", "-c", str(config), "-r", str(tmp_path / "reg.yaml"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert stat.S_IMODE((tmp_path / "reg.yaml").stat().st_mode) == 0o600  # it holds the tokens
    reg = yaml.safe_load((tmp_path / "reg.yaml").read_text())
    assert len(reg["as_token"]) >= 32 and reg["as_token"] != reg["hs_token"]
    regexes = [ns["regex"] for ns in reg["namespaces"]["users"]]
    assert all(ns["exclusive"] for ns in reg["namespaces"]["users"])
    assert any(r.startswith("@_webhooks_") for r in regexes)
    assert any(r.startswith("@hookshot:") for r in regexes)
    again = run("generate-registration", "-c", str(config), "-r", str(tmp_path / "reg.yaml"), cwd=tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr


def test_bad_config_stops_with_one_line_naming_the_key(tmp_path):
    data = sample_data()
    data["generic"]["urlPrefx"] = data["generic"].pop("urlPrefix")
    config = write_config(tmp_path, data)
    (tmp_path / "reg.yaml").write_text("")
    out = run("run", "-c", str(config), "-r", str(tmp_path / "reg.yaml"), cwd=tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "generic.urlPrefx" in lines[0] and "urlPrefix" in lines[0], out.stderr


def test_missing_config_file_is_a_clear_error(tmp_path):
    out = run("run", "-c", str(tmp_path / "nope.yaml"), cwd=tmp_path)
    assert out.returncode == 2 and "nope.yaml" in out.stderr and "Traceback" not in out.stderr


async def test_migrate_applies_the_schema(tmp_path, pg_admin_dsn):
    dsn = await create_database(pg_admin_dsn)
    data = sample_data()
    data["database"] = {"url": dsn}
    config = write_config(tmp_path, data)
    out = run("migrate", "-c", str(config), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "up to date" in out.stdout
    conn = await asyncpg.connect(dsn)
    try:
        tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    finally:
        await conn.close()
    assert {"connections", "generic_hooks", "outbox", "appservice_txns", "user_tokens"} <= tables


def test_regenerating_a_readable_registration_makes_it_owner_only(tmp_path):
    config = write_config(tmp_path, sample_data())
    reg = tmp_path / "registration.yaml"
    reg.write_text("old")
    os.chmod(reg, 0o644)
    out = run("generate-registration", "-c", str(config), "-r", str(reg), "--force", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert stat.S_IMODE(reg.stat().st_mode) == 0o600 and "as_token" in reg.read_text()


# -- check-config -----------------------------------------------------------------------------------------


def test_check_config_accepts_a_good_config_and_registration(tmp_path):
    config = write_config(tmp_path, sample_data())
    assert run("generate-registration", "-c", str(config), cwd=tmp_path).returncode == 0
    out = run("check-config", "-c", str(config), "-r", "registration.yaml", cwd=tmp_path)
    assert (out.returncode, out.stderr) == (0, "")
    assert out.stdout == f"{config} and registration.yaml are valid.\n"
    out = run("check-config", cwd=tmp_path)  # -c defaults to config.yaml; without -r no registration is read
    assert (out.returncode, out.stdout, out.stderr) == (0, "config.yaml is valid.\n", "")


def test_check_config_lists_every_mistake_one_line_each(tmp_path):
    data = yaml.safe_load(SAMPLE.read_text())  # its placeholder secret is one of the mistakes
    data["bridge"]["port"] = "nine"
    data["generic"]["urlPrefx"] = data["generic"].pop("urlPrefix")
    config = write_config(tmp_path, data)
    out = run("check-config", "-c", str(config), cwd=tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.splitlines() == [
        'config error: bridge.port: expected an integer between 1 and 65535, got "nine"',
        "config error: generic.urlPrefx: unknown key (did you mean urlPrefix?)",
        "config error: provisioning.secret: a placeholder, not a secret; make a random one with: "
        'openssl rand -hex 32  (or: python3 -c "import secrets; print(secrets.token_hex(32))")',
    ]


def test_check_config_reports_config_and_registration_mistakes_together(tmp_path):
    data = sample_data()
    data["bot"]["colour"] = "red"
    config = write_config(tmp_path, data)
    (tmp_path / "registration.yaml").write_text("id: hookshot\nurl: http://127.0.0.1:9993\n")
    out = run("check-config", "-c", str(config), "-r", "registration.yaml", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.splitlines()[:4] == [
        "config error: bot.colour: unknown key (expected one of: displayname, avatar)",
        "registration error: as_token: required key is missing",
        "registration error: hs_token: required key is missing",
        "registration error: sender_localpart: required key is missing",
    ]


def test_check_config_finds_a_registration_that_does_not_match_the_config(tmp_path):
    data = sample_data()
    config = write_config(tmp_path, data)
    from hookshot_py.config import parse_config

    reg = generate_registration(parse_config(data, tmp_path))
    reg["url"] = "http://127.0.0.1:9000"
    reg["namespaces"]["users"] = [{"regex": "@_webhooks_.*:other\\.org", "exclusive": True}]
    (tmp_path / "registration.yaml").write_text(yaml.safe_dump(reg))
    os.chmod(tmp_path / "registration.yaml", 0o644)
    out = run("check-config", "-c", str(config), "-r", "registration.yaml", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.splitlines() == [
        "registration error: namespaces.users: no user namespace covers the generic.userIdPrefix users "
        '(@_webhooks_...:example.com); the homeserver will refuse them: add {regex: "@_webhooks_.*:example\\.com", '
        "exclusive: true}",
        "registration error: url: http://127.0.0.1:9000 points at port 9000, but the bridge listens on "
        "bridge.port 9993",
        "warning: registration.yaml holds the appservice tokens (as_token, hs_token) but its group and other "
        "users can read it (mode 0644); restrict it with: chmod 600 registration.yaml",
    ]


def test_check_config_warns_about_readable_secret_files_but_passes(tmp_path):
    config = write_config(tmp_path, sample_data(), mode=0o644)
    out = run("check-config", "-c", "config.yaml", cwd=tmp_path)
    assert out.returncode == 0
    assert out.stderr == (
        "warning: config.yaml holds secrets (provisioning.secret) but its group and other users can read it "
        "(mode 0644); restrict it with: chmod 600 config.yaml\n"
    )
    assert config.exists()


def test_run_warns_about_readable_secret_files_before_starting(tmp_path):
    """The warnings come before anything starts; the Bridge is replaced so the test needs no homeserver."""
    config = write_config(tmp_path, sample_data(), mode=0o640)
    assert run("generate-registration", "-c", str(config), cwd=tmp_path).returncode == 0
    os.chmod(tmp_path / "registration.yaml", 0o644)
    script = (
        "import sys, hookshot_py.app as app\n"
        "class NotStarted(Exception): pass\n"
        "class Bridge:\n"
        "    def __init__(self, config, registration, *args, **kwargs): pass\n"
        "    async def start(self): raise NotStarted\n"
        "    async def stop(self): pass\n"
        "app.Bridge = Bridge\n"
        "from hookshot_py.cli import main\n"
        "try:\n"
        "    main(['run'])\n"
        "except NotStarted:\n"
        "    sys.exit(42)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 42, out.stderr
    warnings = [line.split(" hookshot_py: ", 1)[1] for line in out.stderr.splitlines() if "WARNING" in line]
    assert warnings == [
        "registration.yaml holds the appservice tokens (as_token, hs_token) but its group and other users can "
        "read it (mode 0644); restrict it with: chmod 600 registration.yaml",
        "config.yaml holds secrets (provisioning.secret) but its group can read it (mode 0640); "
        "restrict it with: chmod 600 config.yaml",
    ]


def test_run_refuses_a_registration_that_does_not_match(tmp_path):
    data = sample_data()
    config = write_config(tmp_path, data)
    from hookshot_py.config import parse_config

    reg = generate_registration(parse_config(data, tmp_path))
    reg["url"] = "http://localhost:1234"
    (tmp_path / "registration.yaml").write_text(yaml.safe_dump(reg))
    os.chmod(tmp_path / "registration.yaml", 0o600)
    out = run("run", "-c", str(config), cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        "registration error: url: http://localhost:1234 points at port 1234, but the bridge listens on "
        "bridge.port 9993"
    ]


# -- help and version ---------------------------------------------------------------------------------------


def test_run_help_explains_config_and_registration_with_their_defaults(tmp_path):
    out = run("run", "--help", cwd=tmp_path)
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    assert "-c FILE, --config FILE the bridge's config" in text
    assert "(default: config.yaml in the current directory)" in text
    assert "-r FILE, --registration FILE the appservice registration shared with the homeserver" in text
    assert "(default: registration.yaml in the current directory)" in text


def test_check_config_help_says_what_it_checks(tmp_path):
    overview = " ".join(run("--help", cwd=tmp_path).stdout.split())
    assert "check-config check the config (and registration) without starting anything" in overview
    text = " ".join(run("check-config", "--help", cwd=tmp_path).stdout.split())
    assert "-r FILE, --registration FILE also check this registration, and that it matches the config" in text
    assert "Exits 0 when the bridge would start, 2 otherwise." in text


def test_version_works_on_every_command(tmp_path):
    for args in (("--version",), *((command, "--version") for command in COMMANDS)):
        out = run(*args, cwd=tmp_path)
        assert (out.returncode, out.stdout) == (0, f"hookshot_py {__version__}\n"), args
