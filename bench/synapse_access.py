"""Synapse's time per request, room by room, from the log `webhooks.py --synapse-log` keeps.

    python bench/synapse_access.py /tmp/synapse.log [ROOM ...]

For each room (a bench phase: one room per round and side) it prints the `PUT /send` requests
into it: how many, their median and p90 time in Synapse, Synapse's CPU and database time per
request, and the other requests that arrived while that room's sends ran. Tells whether a slower
phase made Synapse work more per message or merely sent to it later.
"""

from __future__ import annotations

import re
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import unquote

LINE = re.compile(
    r"^(?P<ts>\S+ \S+) - synapse\.access\.\S+ - \d+ - INFO - \S+ - \S+ - \d+ - \{(?P<who>[^}]*)\} "
    r"Processed request: (?P<total>[\d.]+)sec/[\d.-]+sec ru=\((?P<cpu_u>[\d.]+)sec, (?P<cpu_s>[\d.]+)sec\) "
    r"db=\((?P<db_wait>[\d.]+)sec/(?P<db>[\d.]+)sec/\d+\) \S+ \S+ \"(?P<method>\S+) (?P<path>\S+)"
)
SEND = re.compile(r"/rooms/(?P<room>[^/]+)/send/")


@dataclass
class Phase:
    times: list[float] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)  # seconds since the epoch
    ends: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    db: list[float] = field(default_factory=list)
    first: datetime | None = None
    last: datetime | None = None
    others: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def parse(path: str) -> dict[str, Phase]:
    phases: dict[str, Phase] = defaultdict(Phase)
    rows = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = LINE.match(line)
            if m is None:
                continue
            ts = datetime.strptime(m["ts"], "%Y-%m-%d %H:%M:%S,%f")
            rows.append((ts, m))
            send = SEND.search(m["path"])
            if m["method"] == "PUT" and send is not None:
                p = phases[unquote(send["room"])]
                p.times.append(float(m["total"]))
                p.ends.append(ts.timestamp())
                p.starts.append(ts.timestamp() - float(m["total"]))
                p.cpu.append(float(m["cpu_u"]) + float(m["cpu_s"]))
                p.db.append(float(m["db"]) + float(m["db_wait"]))
                p.first = p.first or ts
                p.last = ts
    for ts, m in rows:  # what else Synapse served while each phase's sends ran
        if m["method"] == "PUT" and SEND.search(m["path"]):
            continue
        for p in phases.values():
            if p.first is not None and p.last is not None and p.first <= ts <= p.last:
                p.others[f"{m['method']} {re.sub(r'![^/]+|%21[^/]+|/[^/?]*:[^/?]+', '/…', m['path'].split('?')[0])}"] += 1
    return phases


def main() -> None:
    phases = parse(sys.argv[1])
    wanted = sys.argv[2:] or [room for room, p in sorted(phases.items(), key=lambda kv: kv[1].first or datetime.min)]
    for room in wanted:
        p = phases.get(room)
        if p is None or not p.times:
            print(f"{room}: no PUT /send")
            continue
        span = (p.last - p.first).total_seconds() if p.first and p.last else 0.0
        ordered = sorted(p.times)
        starts = sorted(p.starts)
        if len(starts) > 1 and starts[1] - starts[0] > 1.0:  # a warm-up send well before the run
            starts = starts[1:]
        # Little's law: how many sends Synapse was working on, on average, while the phase ran.
        busy = sum(e - s for s, e in zip(p.starts, p.ends, strict=True) if s >= starts[0])
        in_flight = busy / max(max(p.ends) - starts[0], 1e-9)
        print(f"{room}: {len(p.times)} sends over {span:.1f} s; in Synapse median {statistics.median(ordered) * 1000:.0f} ms, "
              f"p90 {ordered[int(len(ordered) * 0.9)] * 1000:.0f} ms; CPU {statistics.mean(p.cpu) * 1000:.1f} ms, "
              f"database {statistics.mean(p.db) * 1000:.1f} ms per send; {in_flight:.1f} in Synapse on average")
        busiest = sorted(p.others.items(), key=lambda kv: -kv[1])[:4]
        if busiest:
            print("    meanwhile: " + ", ".join(f"{n}× {what}" for what, n in busiest))


if __name__ == "__main__":
    main()
