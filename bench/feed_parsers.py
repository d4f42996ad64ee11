"""Benchmark: feed parsers on this machine (the measurement behind the choice of fastfeedparser).

Parses generated RSS 2.0, Atom and JSON Feed documents (tests/fakes/feeds.py, HTML summaries of
~1 KB per item) with each parser installed, and prints the mean time per document. feedparser
is not a dependency of the bridge: install it into the venv to compare.

    .venv/bin/pip install feedparser==6.0.14
    .venv/bin/python bench/feed_parsers.py
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from fakes.feeds import atom, item, json_feed, rss  # noqa: E402

SUMMARY = "<p>" + "Lorem ipsum dolor sit amet, <b>consectetur</b> adipiscing elit. " * 15 + "</p>"


def documents() -> dict[str, bytes]:
    def items(n: int) -> list[dict[str, Any]]:
        return [item(i, summary=SUMMARY, author=f"Author {i}") for i in range(n, 0, -1)]

    return {
        "RSS, 50 items": rss("Bench", items(50)),
        "Atom, 50 items": atom("Bench", items(50)),
        "JSON Feed, 50 items": json_feed("Bench", items(50)),
        "RSS, 500 items": rss("Bench", items(500)),
    }


def parsers() -> dict[str, Callable[[bytes], Any]]:
    found: dict[str, Callable[[bytes], Any]] = {}
    try:
        fast = importlib.import_module("fastfeedparser")
        found["fastfeedparser"] = fast.parse
    except ImportError:
        pass
    try:
        fp = importlib.import_module("feedparser")
        found["feedparser"] = lambda b: fp.parse(b, sanitize_html=False, resolve_relative_uris=False)
        found["feedparser (defaults)"] = fp.parse
    except ImportError:
        pass
    return found


def main() -> None:
    docs = documents()
    for name, parse in parsers().items():
        cells = []
        for label, body in docs.items():
            entries = len(parse(body).entries)
            runs = 5 if "500" in label else 20
            start = time.perf_counter()
            for _ in range(runs):
                parse(body)
            ms = (time.perf_counter() - start) / runs * 1000
            cells.append(f"{label} ({len(body) // 1024} KiB): {ms:.2f} ms, {entries} items")
        print(f"{name}:\n  " + "\n  ".join(cells))


if __name__ == "__main__":
    main()
