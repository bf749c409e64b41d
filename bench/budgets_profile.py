"""A deterministic loop of authorize + settle (memory:// counters, journal on) for profilers. Prints JSON.

    .venv/bin/python bench/budgets_profile.py [--pairs 2000]                 # CPU µs per pair
    .venv/bin/python bench/budgets_profile.py --pairs 2000 --vary-input     # prompts of many lengths
    .venv/bin/python bench/budgets_profile.py --pairs 2000 --cprofile 25    # calls per pair, top functions
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/tmp/cg.out \\
        .venv/bin/python bench/budgets_profile.py --pairs 2000 --callgrind  # instructions of the loop alone

The same calls as ``bench/budgets.py`` (a user's day, a team's month and a global day limit; 100 users),
without its per-call latency bookkeeping. What would make a run depend on the wall clock is made
count-driven: the clock steps ``--step-us`` per reading (so the policy is re-read every
``policy_refresh_s`` of clock time, as in service), and the journal seals its file every
``max_pending`` (1000) settles, not after ``max_delay_s``. The journal's writer process is not part of
the figures (callgrind does not follow children unless asked).

``--vary-input`` gives each call one of 4,000 input token counts instead of always 1,200, as prompts of
every length do: worst-case estimates and what is held for them are then rarely the ones worked out for
an earlier call.

``--callgrind`` switches callgrind's instrumentation on (``callgrind_control``) for the measured loop only,
so the ``summary:`` line of the output file divided by ``--pairs`` is the instructions per pair.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from spendgate import Meter, Settings, Usage

USAGE = Usage(input_tokens=1200, output_tokens=300)


class StepClock:
    """A clock that moves ``step`` forward on every reading: deterministic, and it does move."""

    def __init__(self, start: datetime, step: timedelta) -> None:
        self._now = start
        self._step = step
        self.readings = 0

    def now(self) -> datetime:
        self._now += self._step
        self.readings += 1
        return self._now


def setup(meter: Meter) -> None:
    meter.set_limit(scope="global", period="day", amount=Decimal("1000000"))
    meter.set_limit(scope="team", scope_id="t0", period="month", amount=Decimal("1000000"))
    for i in range(100):
        meter.set_limit(scope="user", scope_id=f"u{i}", period="day", amount=Decimal("10000"))


def pairs(meter: Meter, count: int, offset: int = 0, vary: bool = False) -> None:
    for i in range(offset, offset + count):
        tokens = 1000 + (i * 37) % 4000 if vary else 1200
        d = meter.authorize(user_id=f"u{i % 100}", team_id="t0", provider="openai", model="gpt-4o",
                            input_tokens=tokens, max_tokens=400)  # fmt: skip
        if not d.allowed:
            raise SystemExit(f"call {i} was refused: {d.reason}")
        meter.settle(d, USAGE, latency_ms=100)


def instrument(on: bool) -> None:
    """Switch callgrind's instrumentation of this process on or off (when run under callgrind)."""
    state = "on" if on else "off"
    subprocess.run(["callgrind_control", f"--instr={state}", str(os.getpid())], check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--step-us", type=float, default=10.0, help="clock step per reading (µs)")
    parser.add_argument("--cprofile", type=int, metavar="TOP", default=0, help="profile; print the TOP functions")
    parser.add_argument("--callgrind", action="store_true", help="instrument the measured loop only")
    parser.add_argument("--writer", choices=("process", "thread"), default="process")
    parser.add_argument("--vary-input", action="store_true", help="one of 4,000 input token counts per call")
    args = parser.parse_args()
    clock = StepClock(datetime(2026, 3, 10, 9, 0, tzinfo=UTC), timedelta(microseconds=args.step_us))
    out: dict[str, Any] = {"pairs": args.pairs, "vary_input": args.vary_input}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            database_url=f"sqlite:///{tmp}/bench.db",
            counters_url="memory://",
            journal_dir=Path(tmp) / "journal",
            journal_writer=args.writer,
        )
        with Meter(settings=settings, clock=clock) as meter:
            assert meter.journal is not None
            meter.journal.max_delay_s = 1e9  # seal by count only (the ticker's first wait still ends on time)
            setup(meter)
            pairs(meter, args.warmup, vary=args.vary_input)
            gc.collect()
            readings = clock.readings
            profiler = cProfile.Profile() if args.cprofile else None
            if args.callgrind:
                instrument(True)
            start, cpu = time.perf_counter(), time.process_time()
            if profiler is not None:
                profiler.enable()
            pairs(meter, args.pairs, args.warmup, vary=args.vary_input)
            if profiler is not None:
                profiler.disable()
            if args.callgrind:
                instrument(False)
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
            if args.pairs:
                out["cpu_us_per_pair"] = round(cpu / args.pairs * 1e6, 1)
                out["wall_us_per_pair"] = round(elapsed / args.pairs * 1e6, 1)
                out["clock_readings_per_pair"] = round((clock.readings - readings) / args.pairs, 2)
            if profiler is not None and args.pairs:
                stats = pstats.Stats(profiler)
                calls = sum(row[1] for row in stats.stats.values())  # type: ignore[attr-defined]
                out["function_calls_per_pair"] = round(calls / args.pairs, 1)
                stats.sort_stats("tottime").print_stats(args.cprofile)
            meter.flush()
            out["events_in_ledger"] = meter.summary().requests
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
