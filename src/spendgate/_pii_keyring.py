"""Personal fields sealed with a key of their own per user, so erasing a user destroys them everywhere.

With ``encryption_keys`` configured, a user's ``username`` and ``email`` are sealed with that user's own
Fernet key (``encu:`` + token); the user's key is kept in the ledger's ``pii_keys`` table, itself
sealed with the deployment's keys. Erasure deletes the user's key: every copy of their personal data
(the audit log's append-only entries, backups taken after the erasure, a record read by a stale
replica) becomes unreadable, without rewriting the hash-chained audit log (crypto-shredding). Backups
taken *before* the erasure still hold the key: they must expire on the retention schedule.

Values sealed with the deployment's keys directly (``enc:``, before this existed) and plain values stay
readable; ``spendgate encryption rotate`` moves them to per-user keys and re-wraps every user's key with
the first deployment key. Without ``encryption_keys`` values are stored as given (see ``_pii``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from spendgate._pii import PII_FIELDS, FieldCipher, new_key
from spendgate.errors import LedgerError
from spendgate.ledger._engine import LedgerEngine
from spendgate.ledger._pii_keys import PiiKeys

__all__ = ["USER_MARK", "UserSealer"]

#: The prefix of a value sealed with its user's own key.
USER_MARK = "encu:"


class UserSealer:
    """Seals and opens user records with per-user keys (module docstring). Thread-safe.

    Each call reads the user's wrapped key from the ledger (a write of a user, a read of one), so a key
    destroyed by another replica is never used again; unwrapping is cached by the wrapped text."""

    def __init__(self, cipher: FieldCipher, engine: LedgerEngine | None) -> None:
        self.cipher = cipher
        self.keys = PiiKeys(engine) if engine is not None and cipher.enabled else None
        self._unwrapped: dict[str, Fernet] = {}

    @property
    def enabled(self) -> bool:
        return self.keys is not None

    def _fernet(self, wrapped: str) -> Fernet:
        fernet = self._unwrapped.get(wrapped)
        if fernet is None:
            if len(self._unwrapped) >= 10_000:
                self._unwrapped.clear()
            fernet = self._unwrapped[wrapped] = Fernet(str(self.cipher.open(wrapped)).encode())
        return fernet

    def _key_of(self, user_id: str, *, create: bool) -> Fernet | None:
        assert self.keys is not None
        if create:
            return self._fernet(self.keys.get_or_add(user_id, lambda: str(self.cipher.seal(new_key()))))
        wrapped = self.keys.get(user_id)
        return None if wrapped is None else self._fernet(wrapped)

    def seal_record(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``body`` (a user record) with its personal fields sealed with its user's key (made if need be)."""
        if self.keys is None:
            return self.cipher.seal_record(body)
        fields = {k: v for k, v in body.items() if k in PII_FIELDS and v is not None and not v.startswith(USER_MARK)}
        if not fields:
            return dict(body)
        fernet = self._key_of(str(body["user_id"]), create=True)
        assert fernet is not None
        sealed = {k: USER_MARK + fernet.encrypt(str(self.cipher.open(v)).encode()).decode() for k, v in fields.items()}
        return {**body, **sealed}

    def open_record(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``body`` with its personal fields in plain text, however they were sealed."""
        out = self.cipher.open_record({k: v for k, v in body.items() if not _user_sealed(k, v)})
        sealed = {k: v for k, v in body.items() if _user_sealed(k, v)}
        if sealed:
            user_id = str(body["user_id"])
            fernet = self._key_of(user_id, create=False) if self.keys is not None else None
            if fernet is None:
                raise LedgerError(
                    f"the personal data of {user_id!r} cannot be read: no encryption_keys are configured,"
                    " or the user's key was destroyed (the user was erased)"
                )
            try:
                out.update({k: fernet.decrypt(v[len(USER_MARK) :].encode()).decode() for k, v in sealed.items()})
            except InvalidToken:
                raise LedgerError(f"the personal data of {user_id!r} does not open with the user's key") from None
        return {k: out[k] for k in body}

    def rewrap_keys(self) -> int:
        """Re-seal every user's key with the first deployment key; how many were re-wrapped."""
        if self.keys is None:
            return 0
        done = 0
        for user_id, wrapped in self.keys.items():
            done += self.keys.rewrap(user_id, wrapped, str(self.cipher.rotate(wrapped)))
        return done

    def shred(self, user_id: str) -> bool:
        """Destroy ``user_id``'s key (erasure); False when they had none."""
        return self.keys.delete(user_id) if self.keys is not None else False


def _user_sealed(name: str, value: object) -> bool:
    return name in PII_FIELDS and isinstance(value, str) and value.startswith(USER_MARK)
