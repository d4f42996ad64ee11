"""Benchmark: the bridge polling many feeds on a local feed server.

Starts an embedded Postgres, the null homeserver (bench/null_homeserver.py), a feed server (the
tests' fake, tests/fakes/feeds.py, in this process) and the bridge as its own process. Subscribes
F feeds (one room each) over the provisioning API, then:

1. **one round**: makes every feed due at once and measures how long the bridge takes to poll
   them all (the worst case: jitter normally spreads them over the interval);
2. **steady state**: lets the bridge run for M minutes at its interval, with a share of the feeds
   publishing a new item every minute, and reports the bridge's CPU and peak RSS, requests per
   feed per interval, 304s, and messages sent.

    .venv/bin/python bench/feeds.py -f 1000 --interval 60 --minutes 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp
import asyncpg
import yaml
from aiohttp import web

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests"))

from fakes.feeds import FakeFeeds, item  # noqa: E402
from null_homeserver import make_app as null_homeserver  # noqa: E402
from webhooks import Sampler, wait_http  # noqa: E402

from hookshot_py.db.embedded import EmbeddedPostgres  # noqa: E402
from hookshot_py.devenv.synapse import free_port, make_registration  # noqa: E402

DOMAIN = "bench.test"
SECRET = "bench-secret"
EVENT_TYPE = "uk.half-shot.matrix-hookshot.feed"
ITEMS_PER_FEED = 20


async def subscribe(base: str, urls: list[str], concurrency: int) -> float:
    sem = asyncio.Semaphore(concurrency)
    t0 = time.monotonic()
    async with aiohttp.ClientSession() as s:

        async def one(i: int, url: str) -> None:
            async with sem:
                room = f"!feed{i}:{DOMAIN}"
                async with s.put(f"{base}/v1/{room}/connections/{EVENT_TYPE}", params={"userId": f"@bench:{DOMAIN}"},
                                 json={"url": url}, headers={"Authorization": f"Bearer {SECRET}"}) as r:
                    body = await r.json()
                    assert r.status == 200, body

        await asyncio.gather(*(one(i, u) for i, u in enumerate(urls)))
    return time.monotonic() - t0


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-f", "--feeds", type=int, default=1000)
    ap.add_argument("--interval", type=int, default=60)
    ap.add_argument("--minutes", type=float, default=3)
    ap.add_argument("--concurrency", type=int, default=4, help="feeds.pollConcurrency")
    ap.add_argument("--changing", type=float, default=0.1, help="share of feeds publishing an item every minute")
    ap.add_argument("--no-conditional", action="store_true", help="the server ignores ETag/Last-Modified (always 200)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="hookshot-bench-feeds-"))
    as_port, listener_port, hs_port, feed_port = free_port(), free_port(), free_port(), free_port()
    reg_path = work / "registration.yaml"
    reg_path.write_text(yaml.safe_dump(make_registration(f"http://127.0.0.1:{as_port}", DOMAIN)))
    pg = EmbeddedPostgres(work / "pg")
    dsn = pg.start()
    runners: list[web.AppRunner] = []
    bridge = None
    fake = FakeFeeds()
    latest = {}
    for i in range(args.feeds):
        latest[i] = ITEMS_PER_FEED
        fake.set_items(f"f{i}", [item(n) for n in range(ITEMS_PER_FEED, 0, -1)], title=f"Feed {i}",
                       conditional=not args.no_conditional)
    try:
        for app, port in ((null_homeserver(DOMAIN), hs_port), (fake.app(), feed_port)):
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            runners.append(runner)
        config = {
            "bridge": {"domain": DOMAIN, "url": f"http://127.0.0.1:{hs_port}", "port": as_port, "bindAddress": "127.0.0.1"},
            "passFile": str(work / "passkey.pem"),
            "logging": {"level": "warn"},
            "listeners": [{"port": listener_port, "bindAddress": "127.0.0.1", "resources": ["provisioning", "metrics"]}],
            "permissions": [{"actor": "*", "services": [{"service": "*", "level": "admin"}]}],
            "feeds": {"enabled": True, "pollIntervalSeconds": args.interval, "pollConcurrency": args.concurrency},
            "outboundUrls": {"allowedIpRanges": ["127.0.0.1/32"]},
            "provisioning": {"secret": SECRET},
            "database": {"url": dsn},
        }
        cfg_path = work / "config.yaml"
        cfg_path.write_text(yaml.safe_dump(config))
        log = open(work / "bridge.log", "wb")
        bridge = subprocess.Popen(
            [sys.executable, "-m", "hookshot_py", "run", "-c", str(cfg_path), "-r", str(reg_path)],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{listener_port}"
        await wait_http(f"{base}/ready")
        urls = [f"http://127.0.0.1:{feed_port}/feeds/f{i}" for i in range(args.feeds)]
        t_sub = await subscribe(base, urls, 8)
        db = await asyncpg.connect(dsn)

        with Sampler(bridge.pid) as sampler:
            # 1. one round, every feed due at once
            fake.requests.clear()
            cpu0 = sampler.cpu()
            t0 = time.monotonic()
            marked = await db.fetchval("SELECT now()")
            await db.execute("UPDATE feeds SET next_poll_at = now()")
            # The poller notices feeds made due behind its back within 5 s (it knows the next due
            # time of those it scheduled itself): time the round from its first request.
            while not fake.requests:
                await asyncio.sleep(0.01)
            t0 = time.monotonic()
            while await db.fetchval("SELECT count(*) FROM feeds WHERE last_polled_at IS NULL OR last_polled_at < $1",
                                    marked) and time.monotonic() - t0 < 600:
                await asyncio.sleep(0.05)
            t_round = time.monotonic() - t0
            cpu_round = sampler.cpu() - cpu0

            # 2. steady state
            fake.requests.clear()
            sent0 = await sent_count(hs_port)
            cpu0 = sampler.cpu()
            t0 = time.monotonic()
            changing = random.sample(range(args.feeds), int(args.feeds * args.changing))
            next_change = t0
            new_items = 0
            while time.monotonic() - t0 < args.minutes * 60:
                if time.monotonic() >= next_change:
                    for i in changing:
                        latest[i] += 1
                        fake.set_items(f"f{i}", [item(n) for n in range(latest[i], latest[i] - ITEMS_PER_FEED, -1)],
                                       title=f"Feed {i}")
                    new_items += len(changing)
                    next_change += 60
                await asyncio.sleep(0.5)
            elapsed = time.monotonic() - t0
            cpu_steady = sampler.cpu() - cpu0
            peak = sampler.peak
        await asyncio.sleep(5)  # let the last sends go out
        sent = await sent_count(hs_port) - sent0
        per_feed = Counter(r.name for r in fake.requests)
        statuses = Counter(r.status for r in fake.requests)
        await db.close()

        polls_per_feed = [per_feed.get(f"f{i}", 0) for i in range(args.feeds)]
        expected = elapsed / args.interval
        print(f"hookshot_py feeds benchmark — {time.strftime('%Y-%m-%d')}, "
              f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
        print(f"feeds:               {args.feeds} ({ITEMS_PER_FEED} items each), interval {args.interval} s, "
              f"pollConcurrency {args.concurrency}, conditional GET {'ignored' if args.no_conditional else 'answered'}"
              " by the server")
        print(f"subscribing:         {t_sub:.1f} s over the provisioning API (each fetched and parsed once)")
        print(f"one round (all due): {t_round:.1f} s, bridge CPU {cpu_round:.1f} s")
        print(f"steady state:        {elapsed:.0f} s, {len(fake.requests)} requests ({dict(statuses)}), "
              f"{args.changing:.0%} of feeds publishing one item a minute ({new_items} items)")
        print(f"polls per feed:      min {min(polls_per_feed)}, max {max(polls_per_feed)}, "
              f"expected ~{expected:.1f} (interval ± 10% jitter)")
        print(f"messages sent:       {sent} (new items: {new_items}; items published in the last interval may still be due)")
        print(f"bridge CPU:          {cpu_steady:.1f} s in {elapsed:.0f} s ({cpu_steady / elapsed:.1%} of one core)")
        print(f"bridge peak RSS:     {peak / 1024 / 1024:.0f} MiB")
    finally:
        if bridge is not None:
            bridge.terminate()
            bridge.wait(30)
        for runner in runners:
            await runner.cleanup()
        pg.stop()


async def sent_count(port: int) -> int:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{port}/_null/sent") as r:
            return int((await r.json())["count"])


if __name__ == "__main__":
    asyncio.run(main())
