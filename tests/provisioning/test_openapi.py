"""The served OpenAPI document is true: schemathesis fuzzes the live listener against it."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from support.bridge import PROVISIONING_SECRET
from support.helpers import http


async def test_document_is_served_and_describes_every_route(bridge):
    status, doc = await http("GET", f"{bridge.base_url}/v1/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {
        "/v1/health",
        "/v1/connectiontypes",
        "/v1/{roomId}/connections",
        "/v1/{roomId}/connections/{id}",
        "/v1/gitlab/instances",
        "/v1/gitlab/instances/{name}/projects",
        "/v1/jira/oauth",
        "/v1/jira/account",
        "/v1/jira/instances/{instanceName}/projects",
        "/v1/{roomId}/connections/{id}/deliveries",
    }


async def test_schemathesis_finds_no_5xx_and_no_schema_violation(bridge_factory, tmp_path):
    bridge = await bridge_factory({"generic": {"outbound": True}})  # every documented route served
    st = Path(sys.executable).with_name("st")
    proc = await asyncio.create_subprocess_exec(
        str(st), "run", f"{bridge.base_url}/v1/openapi.json",
        "--url", bridge.base_url,
        "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        "--header", f"Authorization: Bearer {PROVISIONING_SECRET}",
        "--max-examples", "40",
        "--generation-deterministic",
        cwd=tmp_path,  # schemathesis keeps a cache in its working directory
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=300)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-6000:]
