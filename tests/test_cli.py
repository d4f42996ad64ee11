"""The hookshot-py command line: generate-registration, migrate, and config errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import asyncpg
import yaml

from support.bridge import create_database

SAMPLE = Path(__file__).resolve().parents[1] / "config.yaml.sample"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hookshot_py", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_generate_registration_writes_tokens_and_namespaces(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(SAMPLE.read_text())
    out = run("generate-registration", "-c", str(config), "-r", str(tmp_path / "reg.yaml"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    reg = yaml.safe_load((tmp_path / "reg.yaml").read_text())
    assert len(reg["as_token"]) >= 32 and reg["as_token"] != reg["hs_token"]
    regexes = [ns["regex"] for ns in reg["namespaces"]["users"]]
    assert all(ns["exclusive"] for ns in reg["namespaces"]["users"])
    assert any(r.startswith("@_webhooks_") for r in regexes)
    assert any(r.startswith("@hookshot:") for r in regexes)
    again = run("generate-registration", "-c", str(config), "-r", str(tmp_path / "reg.yaml"), cwd=tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr


def test_bad_config_stops_with_one_line_naming_the_key(tmp_path):
    data = yaml.safe_load(SAMPLE.read_text())
    data["generic"]["urlPrefx"] = data["generic"].pop("urlPrefix")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data))
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
    data = yaml.safe_load(SAMPLE.read_text())
    data["database"] = {"url": dsn}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    out = run("migrate", "-c", str(config), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "up to date" in out.stdout
    conn = await asyncpg.connect(dsn)
    try:
        tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    finally:
        await conn.close()
    assert {"connections", "generic_hooks", "outbox", "appservice_txns", "user_tokens"} <= tables
