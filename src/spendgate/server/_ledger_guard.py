"""Refuse gateway calls while the ledger cannot be written, rather than serve them unmetered.

When a write to the ledger fails (disk full, a read-only file, a database that is down), the failing
request is answered 503 ``ledger_unavailable`` by the app's error handler, which also trips this guard.
For ``Settings.ledger_failure_hold_s`` seconds after that, the gateway refuses new calls *before*
forwarding them (503 with ``Retry-After``): no provider tokens are spent that could not be metered.
The next call after the hold goes through and trips it again if the ledger still fails. With the
write-ahead journal, settles are acknowledged on the journal's append, so a ledger that cannot be
written only delays the journal's drain and trips nothing. ``ledger_failure_hold_s = 0`` turns the
guard off (calls are forwarded; a settle that fails is still answered 503).
"""

from __future__ import annotations

import math
import time

from spendgate.server._errors import ApiError

__all__ = ["LedgerGuard"]


class LedgerGuard:
    """Trips on a ledger write failure; refuses gateway calls for ``hold_s`` seconds after it."""

    def __init__(self, hold_s: float) -> None:
        self.hold_s = hold_s
        self._until = 0.0
        self._reason = ""
        self.trips = 0
        """Times the guard tripped (for tests and /metrics)."""

    def tripped(self, reason: str) -> None:
        """Record a ledger write failure (``reason``: its message, kept for the refusals)."""
        if self.hold_s > 0:
            self._until = time.monotonic() + self.hold_s
            self._reason = reason
            self.trips += 1

    def check(self) -> None:
        """Raise 503 ``ledger_unavailable`` while the hold lasts; nothing otherwise (one float comparison)."""
        if self._until:
            left = self._until - time.monotonic()
            if left > 0:
                raise ApiError(
                    503, "ledger_unavailable",
                    f"the ledger cannot be written ({self._reason}); calls are refused rather than served unmetered",
                    headers={"Retry-After": str(max(1, math.ceil(left)))},
                )  # fmt: skip
            self._until = 0.0
