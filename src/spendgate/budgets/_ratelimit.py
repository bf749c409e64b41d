"""Rate-limit *specifications*: requests and tokens per minute, and concurrent calls, per scope.

Only the spec lives here; ``spendgate.counters`` enforces it. ``rpm`` and ``tpm`` count over a sliding
minute; ``concurrent`` caps calls in flight (reserved and not yet settled or released).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spendgate.budgets._check import BudgetConfigError, check_bool, check_int, check_keys, check_text
from spendgate.budgets._scope import Scope, as_scope

__all__ = ["RateLimit"]

_FIELDS = ("id", "scope", "rpm", "tpm", "concurrent", "enabled")
_MAX = 10**9


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimit:
    """At most ``rpm`` requests and ``tpm`` tokens per minute and ``concurrent`` calls at once for ``scope``.

    Each cap is a positive integer or ``None`` (no cap); at least one must be set. ``id`` defaults to
    ``"rate|<scope>"``.
    """

    scope: Scope
    rpm: int | None = None
    tpm: int | None = None
    concurrent: int | None = None
    enabled: bool = True
    id: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "scope", as_scope(self.scope))
        for name in ("rpm", "tpm", "concurrent"):
            value = getattr(self, name)
            if value is not None:
                check_int(name, value, low=1, high=_MAX)
        if self.rpm is None and self.tpm is None and self.concurrent is None:
            raise BudgetConfigError("rpm", "a rate limit needs at least one of rpm, tpm or concurrent")
        check_bool("enabled", self.enabled)
        object.__setattr__(self, "id", check_text("id", self.id, max_length=512) if self.id else f"rate|{self.scope}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict that :meth:`from_dict` reads back."""
        return {
            "id": self.id,
            "scope": str(self.scope),
            "rpm": self.rpm,
            "tpm": self.tpm,
            "concurrent": self.concurrent,
            "enabled": self.enabled,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RateLimit:
        """Build from :meth:`to_dict` output; unknown keys are refused naming the key."""
        data = check_keys("rate limit", data, _FIELDS)
        if data.get("scope") is None:
            raise BudgetConfigError("scope", "is required")
        return cls(**{k: v for k, v in data.items() if v is not None})
