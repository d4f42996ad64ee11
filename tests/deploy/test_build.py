"""deploy/: the image's build steps run unchanged in a plain virtualenv, and the other deployment
files agree with the code (config keys, ports, routes, body limits).

No Docker engine runs here, so the Dockerfile itself is not built: its COPY instructions are
reproduced under a directory standing for the image's `/`, its one build RUN (deploy/build.sh) is
run there, and the image's CMD then runs from the result with the Dockerfile's ENV.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from hookshot_py.config import ConfigError, load_config
from hookshot_py.devenv.synapse import free_port

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
BUILD_RUN = "sh /src/deploy/build.sh /opt/hookshot /src && rm -rf /src"


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        word, _, args = pending.strip().partition(" ")
        out.append((word.upper(), " ".join(args.split())))
        pending = ""
    return out


def dockerignore_allows(path: str) -> bool:
    allowed = False
    for pattern in (REPO / ".dockerignore").read_text().splitlines():
        pattern = pattern.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern.rstrip("/") + "/"):
            allowed = negate
    return allowed


def image_env(root: Path) -> dict[str, str]:
    """The Dockerfile's ENV lines, with the image's absolute paths moved under `root`."""
    env: dict[str, str] = {}
    for word, args in dockerfile():
        if word == "ENV":
            for item in shlex.split(args):
                name, _, value = item.partition("=")
                value = value.replace("$PATH", os.environ["PATH"])
                env[name] = re.sub(r"(^|:)/(opt|run|data)/", lambda m: f"{m.group(1)}{root}/{m.group(2)}/", value)
    return env


def test_image_build_steps_run_in_a_plain_virtualenv(tmp_path: Path) -> None:
    root = tmp_path / "image"
    steps = dockerfile()
    assert steps[0] == ("FROM", "python:3.11-slim-bookworm")
    runs = [args for word, args in steps if word == "RUN"]
    assert len(runs) == 2 and runs[0].startswith("useradd --system") and runs[1] == BUILD_RUN, runs
    assert ("USER", "hookshot") in steps
    assert dict(steps)["HEALTHCHECK"].endswith('CMD ["hookshot-healthcheck"]')

    # COPY, as docker would (only what .dockerignore lets into the build context).
    for word, args in steps:
        if word != "COPY":
            continue
        *sources, dest = args.split()
        target = root / dest.lstrip("/")
        for source in sources:
            assert dockerignore_allows(source), f"{source} is excluded by .dockerignore"
            src = REPO / source
            if src.is_dir():
                shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target / src.name)

    # The build RUN (minus the cleanup), with / mapped to `root`.
    build = subprocess.run(
        ["sh", str(root / "src/deploy/build.sh"), str(root / "opt/hookshot"), str(root / "src")],
        capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHON": sys.executable},
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    assert "hookshot_py" in build.stdout and "postgres (PostgreSQL)" in build.stdout, build.stdout
    bin_dir = root / "opt/hookshot/bin"
    assert not (bin_dir / "synapse_homeserver").exists()  # the bridge alone

    # The image's runtime: ENV, WORKDIR /data, the embedded Postgres on the volume.
    env = {**os.environ, **image_env(root)}
    env.pop("VIRTUAL_ENV", None)
    for d in ("data", "run/hookshot"):
        (root / d).mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((REPO / "config.yaml.sample").read_text())
    webhooks_port = free_port()
    config["listeners"][0]["port"] = webhooks_port
    config["listeners"][1]["port"] = free_port()
    config["provisioning"]["secret"] = secrets.token_hex(32)
    config["bridge"].update(url=f"http://127.0.0.1:{free_port()}", port=free_port())  # no homeserver here
    (root / "data/config.yaml").write_text(yaml.safe_dump(config))
    migrate = subprocess.run(
        ["hookshot-py", "migrate", "-c", str(root / "data/config.yaml")],
        cwd=root / "data", env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    assert "up to date" in migrate.stdout
    assert (root / "data/hookshot-data/postgres/PG_VERSION").exists()
    assert shutil.which("hookshot-py", path=env["PATH"]) == str(bin_dir / "hookshot-py")

    # The healthcheck fails while nothing answers /live.
    env["HOOKSHOT_HEALTHCHECK_URL"] = f"http://127.0.0.1:{webhooks_port}/live"
    health = subprocess.run(["hookshot-healthcheck"], env=env, capture_output=True, text=True, timeout=30)
    assert health.returncode == 1 and "Connection refused" in health.stderr, health.stderr

    # The image's ENTRYPOINT + CMD, with no homeserver yet (as before Synapse is up): /live
    # answers, so the healthcheck passes; `docker stop` (SIGTERM) stops it and its Postgres.
    gen = subprocess.run(
        ["hookshot-py", "generate-registration", "-c", str(root / "data/config.yaml"), "-r",
         str(root / "data/registration.yaml")], env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert gen.returncode == 0, gen.stderr
    instructions = dict(steps)
    command = json.loads(instructions["ENTRYPOINT"]) + json.loads(instructions["CMD"])
    command = [arg.replace("/data/", f"{root}/data/") for arg in command]
    log_path = tmp_path / "bridge.log"
    with log_path.open("wb") as log:
        bridge = subprocess.Popen(command, cwd=root / "data", env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(600):
            assert bridge.poll() is None, log_path.read_text()
            if subprocess.run(["hookshot-healthcheck"], env=env, capture_output=True, timeout=30).returncode == 0:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"the healthcheck never passed:\n{log_path.read_text()}")
        bridge.send_signal(signal.SIGTERM)
        assert bridge.wait(timeout=10) == 0, log_path.read_text()
    finally:
        if bridge.poll() is None:
            bridge.kill()
    assert "not reachable" in log_path.read_text()
    assert not (root / "data/hookshot-data/postgres/postmaster.pid").exists(), log_path.read_text()


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    unit = (DEPLOY / "hookshot-py.service").read_text()
    exec_start = re.search(r"^ExecStart=(\S+) run -c (\S+) -r (\S+)$", unit, re.M)
    assert exec_start and exec_start.group(1) == "/opt/hookshot/bin/hookshot-py", unit
    # verify checks that ExecStart's program exists: point it at this checkout's.
    local = tmp_path / "hookshot-py.service"
    local.write_text(unit.replace(exec_start.group(1), str(Path(sys.executable).parent / "hookshot-py")))
    out = subprocess.run(["systemd-analyze", "verify", str(local)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stderr.strip() == "" and out.stdout.strip() == "", out.stdout + out.stderr


def _listener_ports(config: Any) -> dict[str, int]:
    return {resource: listener.port for listener in config.listeners for resource in listener.resources}


def test_compose_config_and_nginx_match_the_bridge(tmp_path: Path) -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"synapse", "postgres", "hookshot"}
    hookshot = services["hookshot"]
    assert hookshot["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert hookshot["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "./data/hookshot:/data" in hookshot["volumes"]

    # The compose config is refused as shipped (a forgotten edit cannot go live)…
    text = (DEPLOY / "compose-config.yaml").read_text()
    (tmp_path / "config.yaml").write_text(text)
    with pytest.raises(ConfigError, match="provisioning.secret"):
        load_config(tmp_path / "config.yaml")
    # …loads after the documented edits, and points at the compose services.
    text = text.replace("change-me-to-the-output-of-openssl-rand-hex-32", secrets.token_hex(32))
    text = text.replace("change-me-to-POSTGRES_PASSWORD", secrets.token_hex(24))
    (tmp_path / "config.yaml").write_text(text)
    config = load_config(tmp_path / "config.yaml")
    assert config.bridge.url == "http://synapse:8008"
    assert config.database.url is not None and "@postgres:5432/hookshot" in config.database.url
    env = services["postgres"]["environment"]
    assert env["POSTGRES_USER"] == "hookshot" and env["POSTGRES_DB"] == "hookshot"
    ports = _listener_ports(config)
    published = {int(p.rsplit(":", 1)[1]) for p in hookshot["ports"]}
    assert published == {ports["webhooks"], ports["provisioning"]}
    assert all(p.startswith("127.0.0.1:") for s in services.values() for p in s.get("ports", []))

    # nginx proxies to config.yaml.sample's listeners, with body limits no lower than the bridge's.
    nginx = (DEPLOY / "nginx.conf").read_text()
    sample = load_config_sample(tmp_path)
    sample_ports = _listener_ports(sample)
    servers = nginx.split("\nserver {")[1:]
    assert len(servers) == 2
    public, admin = servers
    assert f"proxy_pass http://127.0.0.1:{sample_ports['webhooks']};" in public
    assert f"proxy_pass http://127.0.0.1:{sample_ports['provisioning']};" in admin
    assert "deny all;" in admin and "location /v1/" in admin
    assert re.search(r"client_max_body_size (\d+)m;", public)
    limit_mb = int(re.search(r"client_max_body_size (\d+)m;", public).group(1))  # type: ignore[union-attr]
    assert sample.generic is not None and limit_mb * 1024 * 1024 >= sample.generic.payload_size_limit
    # Each forge's path takes at least what the bridge takes from that forge.
    from hookshot_py.gitflic.inbound import MAX_BODY_BYTES as GITFLIC
    from hookshot_py.github.inbound import MAX_BODY_BYTES as GITHUB
    from hookshot_py.gitlab.inbound import MAX_BODY_BYTES as GITLAB
    from hookshot_py.jira.inbound import MAX_BODY_BYTES as JIRA

    for path, bridge_limit in [("/github/webhook", GITHUB), ("/gitlab/webhook", GITLAB),
                               ("/jira/webhook", JIRA), ("/gitflic/webhook", GITFLIC)]:  # fmt: skip
        found = re.search(rf"location = {path} +\{{ client_max_body_size (\d+)m; +proxy_pass ([^;]+);", public)
        assert found is not None, path
        assert int(found.group(1)) * 1024 * 1024 >= bridge_limit and found.group(2) == (
            f"http://127.0.0.1:{sample_ports['webhooks']}"
        ), path
    assert "client_max_body_size 64k;" in admin


def load_config_sample(tmp_path: Path) -> Any:
    data = yaml.safe_load((REPO / "config.yaml.sample").read_text())
    data["provisioning"]["secret"] = secrets.token_hex(32)
    path = tmp_path / "sample.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(path)


def test_license_and_changelog() -> None:
    license_text = (REPO / "LICENSE").read_text()
    assert license_text.lstrip().startswith("Apache License") and "Version 2.0, January 2004" in license_text
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    changelog = (REPO / "CHANGELOG.md").read_text()
    assert f"## {project['version']}" in changelog
