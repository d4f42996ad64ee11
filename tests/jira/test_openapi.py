"""The OpenAPI document's JIRA routes are true of a bridge with JIRA enabled: schemathesis
fuzzes `/v1/jira/*` against the live listener (users it invents are not logged in)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from support.bridge import PROVISIONING_SECRET


async def test_schemathesis_on_the_jira_routes(start_jira_bridge: Any, tmp_path: Path) -> None:
    bridge = await start_jira_bridge()
    base = bridge.harness.base_url
    st = Path(sys.executable).with_name("st")
    proc = await asyncio.create_subprocess_exec(
        str(st), "run", f"{base}/v1/openapi.json",
        "--url", base,
        "--include-path-regex", "^/v1/jira/",
        "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        "--header", f"Authorization: Bearer {PROVISIONING_SECRET}",
        "--max-examples", "30",
        "--generation-deterministic",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=300)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-6000:]
    assert "Tested: 3" in text  # the three JIRA operations ran
