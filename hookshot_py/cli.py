"""`hookshot-py` / `python -m hookshot_py`: run, generate-registration, migrate."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

import yaml

from hookshot_py import __version__
from hookshot_py.config import ConfigError, load_config, load_registration
from hookshot_py.config.registration import generate_registration

log = logging.getLogger("hookshot_py")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hookshot-py", description="A Matrix bridge for code forges and webhooks.")
    p.add_argument("--version", action="version", version=f"hookshot_py {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the bridge")
    run.add_argument("-c", "--config", default="config.yaml", type=Path)
    run.add_argument("-r", "--registration", default="registration.yaml", type=Path)
    gen = sub.add_parser("generate-registration", help="write an appservice registration for the homeserver")
    gen.add_argument("-c", "--config", default="config.yaml", type=Path)
    gen.add_argument("-r", "--registration", default="registration.yaml", type=Path)
    gen.add_argument("--force", action="store_true", help="overwrite an existing registration file")
    mig = sub.add_parser("migrate", help="apply database migrations and exit")
    mig.add_argument("-c", "--config", default="config.yaml", type=Path)
    return p


async def _run(config_path: Path, registration_path: Path) -> int:
    from hookshot_py.app import Bridge
    from hookshot_py.log_setup import setup_logging

    config = load_config(config_path)
    registration = load_registration(registration_path)
    setup_logging(config.logging)
    for warning in config.warnings:
        log.warning("config: %s", warning)
    bridge = Bridge(config, registration)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await bridge.start()
    except BaseException:
        await bridge.stop()
        raise
    await stop.wait()
    log.info("Stopping…")
    await bridge.stop()
    return 0


async def _migrate(config_path: Path) -> int:
    from hookshot_py.db.database import run_migrations
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
        await asyncio.to_thread(run_migrations, dsn)
        print("Database is up to date.")
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
            args.registration.write_text(yaml.safe_dump(reg, sort_keys=False))
            print(f"Wrote {args.registration}. Add it to the homeserver's app_service_config_files and restart it.")
            return 0
        if args.command == "migrate":
            return asyncio.run(_migrate(args.config))
        return asyncio.run(_run(args.config, args.registration))
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        print(f"error: {e.filename or e}: file not found", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
