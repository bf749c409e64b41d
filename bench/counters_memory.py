"""Bytes per settled marker in ``memory://`` (tracemalloc). Prints JSON.

    .venv/bin/python bench/counters_memory.py [--holds 50000] [--rate 100] [--hold-ttl 120]

Reserves and commits ``--holds`` holds on one counter with the gateway's reservation ids
(``rsv_`` + 32 hex digits), the clock stepping ``1 / --rate`` seconds per hold, then divides the memory
the store kept by the number of settled markers it holds. The ids count: the store is what keeps them.
``bare_commit`` does the same with commits that had no hold (``release`` of a call never reserved).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tracemalloc

from spendgate.counters import MemoryCounterStore, ReserveItem

T0 = 1_773_100_000.0


def measure(holds: int, rate: float, hold_ttl: float, *, reserve: bool) -> dict[str, float | int]:
    ids = ["rsv_" + os.urandom(16).hex() for _ in range(holds)]
    store = MemoryCounterStore(max_holds=holds + 1)
    assert store.init("k", 0, expire_at=None)
    item = (ReserveItem("k", 1),)
    now = T0
    id_bytes = sum(sys.getsizeof(hold_id) for hold_id in ids)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for hold_id in ids:
        now += 1.0 / rate
        if reserve:
            assert store.reserve(hold_id, item, ttl_s=hold_ttl, now=now).ok
        assert store.commit(hold_id, {"k": 1}, now=now).ok
    del hold_id
    gc.collect()
    kept = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert store.commit(ids[0], {"k": 1}, now=now).already  # every marker is still there
    return {
        "markers": holds,
        "bytes_per_marker": round((kept + id_bytes) / holds, 1),  # the ids were allocated before tracing began
        "of_which_id_bytes": round(id_bytes / holds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--holds", type=int, default=50_000)
    parser.add_argument("--rate", type=float, default=100.0, help="settles per second of store clock")
    parser.add_argument("--hold-ttl", type=float, default=120.0, help="reserve ttl_s (seconds)")
    args = parser.parse_args()
    out = {
        "reserve_commit": measure(args.holds, args.rate, args.hold_ttl, reserve=True),
        "bare_commit": measure(args.holds, args.rate, args.hold_ttl, reserve=False),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
