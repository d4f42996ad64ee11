"""`hookshot-py` / `python -m hookshot_py`: run, check-config, generate-registration, migrate."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from hookshot_py import __version__
from hookshot_py.config import (
    Config,
    ConfigError,
    Registration,
    check_registration,
    load_config,
    load_registration,
    secret_file_warnings,
)
from hookshot_py.config.registration import generate_registration
from hookshot_py.db.cluster import ClusterError
from hookshot_py.secretfiles import write_private

log = logging.getLogger("hookshot_py")

CONFIG_HELP = (
    "the bridge's config: hookshot's config.yml format plus database, provisioning, gitflic and barkeep "
    "(every key is documented in config.yaml.sample); relative paths in it are relative to its directory "
    "(default: %(default)s in the current directory)"
)
REGISTRATION_HELP = (
    "the appservice registration shared with the homeserver (its tokens, namespaces and url), as written by "
    "generate-registration (default: %(default)s in the current directory)"
)


def _parser() -> argparse.ArgumentParser:
    version = f"hookshot_py {__version__}"
    p = argparse.ArgumentParser(prog="hookshot-py", description="A Matrix bridge for code forges and webhooks.")
    p.add_argument("--version", action="version", version=version)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=summary, description=description)
        cmd.add_argument("--version", action="version", version=version)
        cmd.add_argument("-c", "--config", default=Path("config.yaml"), type=Path, metavar="FILE", help=CONFIG_HELP)
        return cmd

    run = command(
        "run",
        "run the bridge",
        "Run the bridge: check the config and registration, start the database (a private Postgres under "
        "database.dataDirectory unless database.url is set) and apply migrations, then serve the appservice "
        "on bridge.port and the listeners. SIGINT or SIGTERM stops it.",
    )
    run.add_argument("-r", "--registration", default=Path("registration.yaml"), type=Path, metavar="FILE",
                     help=REGISTRATION_HELP)  # fmt: skip
    check = command(
        "check-config",
        "check the config (and registration) without starting anything",
        "List every mistake in the config and, with -r, in the registration and where the two disagree "
        "(namespaces, url, tokens); warn about files holding secrets that others can read. "
        "Exits 0 when the bridge would start, 2 otherwise.",
    )
    check.add_argument("-r", "--registration", type=Path, metavar="FILE",
                       help="also check this registration, and that it matches the config")  # fmt: skip
    gen = command(
        "generate-registration",
        "write an appservice registration for the homeserver",
        "Write a registration with new random tokens, the bot and its users' namespaces, and the url of "
        "bridge.port. The file is readable by its owner only (it holds the tokens).",
    )
    gen.add_argument("-r", "--registration", default=Path("registration.yaml"), type=Path, metavar="FILE",
                     help="where to write it (default: %(default)s)")  # fmt: skip
    gen.add_argument("--force", action="store_true", help="overwrite an existing registration file")
    command("migrate", "apply database migrations and exit", "Apply the database migrations and exit.")
    return p


def _print_errors(label: str, error: ConfigError) -> None:
    for e in error.errors:
        print(f"{label} error: {e}", file=sys.stderr)


@dataclass
class _Checked:
    """The loaded files, once every error in them was printed."""

    config: Config | None = None
    registration: Registration | None = None
    warnings: list[str] = field(default_factory=list)
    failed: bool = False


def _check(config_path: Path, registration_path: Path | None, *, config_first: bool = False) -> _Checked:
    """Load and cross-check the files, printing every error. With ``config_first``, a broken config is
    reported alone: the registration is read once the config is valid (``run`` does so)."""
    out = _Checked()
    try:
        out.config = load_config(config_path)
    except ConfigError as e:
        _print_errors("config", e)
        out.failed = True
        if config_first:
            return out
    if registration_path is not None:
        try:
            out.registration = load_registration(registration_path)
        except ConfigError as e:
            _print_errors("registration", e)
            out.failed = True
    if out.config is None:
        return out
    out.warnings = [f"config: {w}" for w in out.config.warnings]
    if out.registration is not None:
        found = check_registration(out.config, out.registration)
        for error in found.errors:
            _print_errors("registration", error)
        out.failed = out.failed or bool(found.errors)
        out.warnings += [f"registration: {w}" for w in found.warnings]
    out.warnings += secret_file_warnings(out.config, [config_path], registration_path)
    return out


def _check_config(config_path: Path, registration_path: Path | None) -> int:
    checked = _check(config_path, registration_path)
    for warning in checked.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if checked.failed:
        return 2
    files = f"{config_path} and {registration_path} are" if registration_path is not None else f"{config_path} is"
    print(f"{files} valid.")
    return 0


async def _run(config_path: Path, registration_path: Path) -> int:
    from hookshot_py.app import Bridge
    from hookshot_py.db.database import SchemaTooNew
    from hookshot_py.lifecycle import run_until_signal
    from hookshot_py.log_setup import setup_logging

    checked = _check(config_path, registration_path, config_first=True)
    if checked.failed or checked.config is None or checked.registration is None:
        return 2
    config, registration = checked.config, checked.registration
    setup_logging(config.logging)
    for warning in checked.warnings:
        log.warning("%s", warning)
    bridge = Bridge(config, registration, registration_path)
    # What is loaded by now lives as long as the process: keep the garbage collector off it, so
    # loading thousands of connections and serving requests never pay for re-scanning it.
    gc.freeze()
    try:
        # SIGINT/SIGTERM stop the bridge in every phase, start-up included, within 10 s.
        await run_until_signal(bridge.start, bridge.stop)
    except (OSError, SchemaTooNew, ClusterError) as e:  # a port in use, a database refusing us...
        log.error("Could not start: %s", e)
        return 1
    return 0


async def _migrate(config_path: Path) -> int:
    from hookshot_py.db.database import SchemaTooNew, apply_migrations
    from hookshot_py.db.embedded import EmbeddedPostgres
    from hookshot_py.log_setup import setup_logging

    config = load_config(config_path)
    setup_logging(config.logging)
    embedded = None
    dsn = config.database.url
    if dsn is None:
        embedded = EmbeddedPostgres(config.database.data_directory / "postgres")
        dsn = await asyncio.to_thread(embedded.start)
    try:
        await apply_migrations(dsn)
        print("Database is up to date.")
    except SchemaTooNew as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "generate-registration":
            if args.registration.exists() and not args.force:
                print(f"error: {args.registration} exists; pass --force to overwrite it", file=sys.stderr)
                return 2
            config = load_config(args.config)
            reg = generate_registration(config)
            write_private(args.registration, yaml.safe_dump(reg, sort_keys=False))
            print(f"Wrote {args.registration}. Add it to the homeserver's app_service_config_files and restart it.")
            return 0
        if args.command == "check-config":
            return _check_config(args.config, args.registration)
        if args.command == "migrate":
            return asyncio.run(_migrate(args.config))
        return asyncio.run(_run(args.config, args.registration))
    except ConfigError as e:
        _print_errors("config", e)
        return 2
    except FileNotFoundError as e:
        print(f"error: {e.filename or e}: file not found", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
