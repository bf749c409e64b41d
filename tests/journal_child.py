"""Child process for the journal kill test: settle in threads, print each reservation id once acknowledged.

python journal_child.py DATABASE_URL JOURNAL_DIR THREADS
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from spendgate import Meter, Settings, Usage


def main() -> None:
    database_url, journal_dir, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    meter = Meter(settings=Settings(database_url=database_url, journal_dir=Path(journal_dir)))
    out_lock = threading.Lock()

    def worker(n: int) -> None:
        i = 0
        while True:
            d = meter.authorize(user_id=f"u{n}", provider="openai", model="gpt-4o", input_tokens=100, max_tokens=10)
            meter.settle(d, Usage(input_tokens=100, output_tokens=i % 10))
            with out_lock:
                sys.stdout.write(d.reservation_id + "\n")
                sys.stdout.flush()
            i += 1

    for n in range(threads):
        threading.Thread(target=worker, args=(n,), daemon=True).start()
    threading.Event().wait()


if __name__ == "__main__":
    main()
