"""libolm (python-olm, what mautrix-python's OlmMachine uses) against vodozemac's Python bindings,
on what the bridge does per message in an encrypted room: Megolm-encrypt the event and pickle the
outbound session (mautrix saves it after every message), plus what it does per new member device
(an Olm session and an encrypted room key) and per incoming message (Megolm-decrypt).

    .venv/bin/python bench/crypto_libs.py [--n 2000]

Prints the mean time per operation for each library; run by hand, figures in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import olm
import vodozemac

PICKLE_KEY = b"k" * 32
EVENT = json.dumps({"type": "m.room.message", "room_id": "!r:example.org", "content": {
    "msgtype": "m.notice", "body": "x" * 400, "format": "org.matrix.custom.html", "formatted_body": "<p>" + "x" * 400,
}})


def per_op(fn: Callable[[], object], n: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def libolm(n: int) -> dict[str, float]:
    out = olm.OutboundGroupSession()
    inbound = olm.InboundGroupSession(out.session_key)
    sample = out.encrypt(EVENT)
    alice, bob = olm.Account(), olm.Account()
    bob.generate_one_time_keys(1)
    bob_curve = bob.identity_keys["curve25519"]

    def olm_session() -> object:
        bob.generate_one_time_keys(1)
        otk = next(iter(bob.one_time_keys["curve25519"].values()))
        return olm.OutboundSession(alice, bob_curve, otk).encrypt(out.session_key)

    return {
        "Megolm encrypt": per_op(lambda: out.encrypt(EVENT), n),
        "pickle outbound session": per_op(lambda: out.pickle(PICKLE_KEY.decode()), n),
        "Megolm decrypt": per_op(lambda: inbound.decrypt(sample), n),
        "Olm session + room key": per_op(olm_session, max(50, n // 20)),
    }


def vodozemac_(n: int) -> dict[str, float]:
    out = vodozemac.GroupSession()
    inbound = vodozemac.InboundGroupSession(out.session_key)
    sample = out.encrypt(EVENT.encode())
    alice, bob = vodozemac.Account(), vodozemac.Account()
    bob_curve = bob.curve25519_key

    def olm_session() -> object:
        bob.generate_one_time_keys(1)
        otk = next(iter(bob.one_time_keys.values()))
        bob.mark_keys_as_published()
        return alice.create_outbound_session(bob_curve, otk).encrypt(out.session_key.to_base64().encode())

    return {
        "Megolm encrypt": per_op(lambda: out.encrypt(EVENT.encode()), n),
        "pickle outbound session": per_op(lambda: out.pickle(PICKLE_KEY), n),
        "Megolm decrypt": per_op(lambda: inbound.decrypt(sample), n),
        "Olm session + room key": per_op(olm_session, max(50, n // 20)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    n = parser.parse_args().n
    results = {"libolm (python-olm 3.2.16)": libolm(n), "vodozemac 0.10.0": vodozemac_(n)}
    ops = list(next(iter(results.values())))
    print(f"{'µs per operation':26}" + "".join(f"{name:>28}" for name in results))
    for op in ops:
        print(f"{op:26}" + "".join(f"{r[op]:>28.1f}" for r in results.values()))


if __name__ == "__main__":
    main()
