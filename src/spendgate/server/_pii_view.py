"""Answers without personal data, for analytics that must not identify people.

With ``analytics_exclude_pii`` (for every caller) or ``?exclude_pii=true`` (one request), the usage and
analytics routes name users by a pseudonym (``u-`` + 16 hex digits of an HMAC-SHA256 of the user id)
in breakdowns, top-user lists and exports, and exports leave out each event's client address, user
agent and metadata. Totals are unchanged. The pseudonym is stable for as long as its secret is: the
master key, else the first encryption key, else a random secret of the process (stable until restart).
It cannot be reversed without that secret; filters still take real user ids.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import replace
from typing import Any

from spendgate.ledger import UsageEvent
from spendgate.settings import Settings

__all__ = ["PiiView"]


class PiiView:
    """Pseudonyms for user ids and events stripped of what identifies a person (module docstring)."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    @classmethod
    def from_settings(cls, settings: Settings) -> PiiView:
        for secret in (settings.master_key, settings.encryption_keys):
            if secret is not None:
                return cls(b"spendgate-pii-view:" + secret.get_secret_value().encode())
        return cls(secrets.token_bytes(32))

    def alias(self, user_id: str | None) -> str | None:
        if user_id is None:
            return None
        return "u-" + hmac.new(self._secret, user_id.encode(), hashlib.sha256).hexdigest()[:16]

    def event(self, event: UsageEvent) -> UsageEvent:
        return replace(event, user_id=self.alias(event.user_id), client_ip=None, user_agent=None, metadata={})

    def keys(self, rows: list[dict[str, Any]], field: str = "key") -> list[dict[str, Any]]:
        """Rows of a breakdown by user with their keys replaced by pseudonyms."""
        return [{**row, field: self.alias(row[field])} for row in rows]
