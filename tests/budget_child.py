"""A child process for the cross-process budget test: authorize + settle in threads, print what got through.

python budget_child.py DATABASE_URL COUNTERS_URL THREADS CALLS
"""

from __future__ import annotations

import sys
import threading

from spendgate import Meter, Usage


def main() -> None:
    database_url, counters_url, threads, calls = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    allowed = 0
    lock = threading.Lock()
    with Meter(database_url=database_url, counters_url=counters_url) as meter:

        def worker() -> None:
            nonlocal allowed
            for _ in range(calls):
                d = meter.authorize(
                    team_id="shared", provider="openai", model="gpt-4o", input_tokens=1000, max_tokens=500
                )
                if d.allowed:
                    meter.settle(d, Usage(input_tokens=1000, output_tokens=400))
                    with lock:
                        allowed += 1

        pool = [threading.Thread(target=worker) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
    print(allowed, flush=True)


if __name__ == "__main__":
    main()
