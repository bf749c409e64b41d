"""Child process for tests/test_ledger_durability.py: record events until killed.

Usage: python ledger_kill_child.py URL PREFIX THREADS

Each thread records events one by one and in small batches, and prints every event id to stdout
(flushed) right after ``record``/``record_many`` returned, i.e. once the ledger acknowledged it.
The parent kills this process with SIGKILL at a random moment and checks that every printed id
survived. Ids repeat on purpose now and then (a retried request), so duplicates are exercised too.
"""

from __future__ import annotations

import sys
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from spendgate.ledger import UsageEvent, open_store
from spendgate.usage import Usage

T0 = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)


def main() -> None:
    url, prefix, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = open_store(url, create=False)
    out_lock = threading.Lock()

    def acknowledge(ids: list[str]) -> None:
        with out_lock:
            sys.stdout.write("".join(f"{event_id}\n" for event_id in ids))
            sys.stdout.flush()

    def event(event_id: str, n: int) -> UsageEvent:
        return UsageEvent(
            event_id=event_id,
            timestamp=T0 + timedelta(seconds=n),
            provider="openai",
            model="gpt-4o",
            usage=Usage(input_tokens=n % 1000, output_tokens=7),
            cost=None if n % 5 == 0 else Decimal(n) / 10**9,
            user_id=f"user-{n % 3}",
        )

    def writer(t: int) -> None:
        n = 0
        while True:
            n += 1
            if n % 4:
                event_id = f"{prefix}-{t}-{n}" if n % 11 else f"{prefix}-{t}-{n - 1}"  # a retry now and then
                store.record(event(event_id, n))
                acknowledge([event_id])
            else:
                batch = [event(f"{prefix}-{t}-{n}-{k}", n + k) for k in range(5)]
                store.record_many(batch)
                acknowledge([e.event_id for e in batch])

    acknowledge(["READY"])  # before any writer starts, so it is always the first line
    workers = [threading.Thread(target=writer, args=(t,), daemon=True) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


if __name__ == "__main__":
    main()
