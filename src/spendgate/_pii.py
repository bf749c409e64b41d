"""Personal data encrypted at rest: a user's ``username`` and ``email`` are stored as Fernet tokens.

Keys come from ``SPENDGATE_ENCRYPTION_KEYS`` (``Settings.encryption_keys``): comma-separated Fernet keys
(``spendgate encryption new-key`` makes one), the first encrypts, every one decrypts, so a key is
rotated by putting a new key first, running ``spendgate encryption rotate`` (re-encrypts every user with
it) and then dropping the old key. Fernet is AES-128-CBC with HMAC-SHA256 (``cryptography``); each
sealed value is ``enc:`` + token, so values written before encryption was turned on stay readable and
``rotate`` seals them too. Without keys values are stored as given; an encrypted value read without a
key that opens it is an error, never a silent garbage string.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

from spendgate.errors import ConfigurationError, LedgerError

__all__ = ["PII_FIELDS", "FieldCipher", "new_key"]

#: The fields of a user record that are sealed.
PII_FIELDS = ("username", "email")
_MARK = "enc:"


def new_key() -> str:
    """A fresh Fernet key (urlsafe base64 of 32 random bytes)."""
    return Fernet.generate_key().decode()


class FieldCipher:
    """Seals and opens the :data:`PII_FIELDS` of records (see the module docstring). Thread-safe."""

    def __init__(self, keys: Sequence[str] = ()) -> None:
        fernets = []
        for index, key in enumerate(keys):
            try:
                fernets.append(Fernet(key.strip().encode()))
            except (ValueError, TypeError):
                raise ConfigurationError(
                    f"encryption_keys[{index}] is not a Fernet key (32 url-safe base64-encoded bytes):"
                    " make one with `spendgate encryption new-key`"
                ) from None
        self._fernet = MultiFernet(fernets) if fernets else None

    @classmethod
    def from_text(cls, text: str | None) -> FieldCipher:
        """From the comma-separated setting (None or empty: no encryption)."""
        return cls([part for part in (text or "").split(",") if part.strip()])

    @classmethod
    def from_secret(cls, secret: SecretStr | None) -> FieldCipher:
        """From ``Settings.encryption_keys``."""
        return cls.from_text(None if secret is None else secret.get_secret_value())

    @property
    def enabled(self) -> bool:
        return self._fernet is not None

    def seal(self, value: str | None) -> str | None:
        """``value`` encrypted with the first key (as is without keys, or when it is None or sealed)."""
        if value is None or self._fernet is None or value.startswith(_MARK):
            return value
        return _MARK + self._fernet.encrypt(value.encode()).decode()

    def open(self, value: str | None) -> str | None:
        """The plain text of a sealed value (plain values are returned as they are)."""
        if value is None or not value.startswith(_MARK):
            return value
        if self._fernet is None:
            raise LedgerError("personal data is encrypted but no encryption_keys are configured")
        try:
            return self._fernet.decrypt(value[len(_MARK) :].encode()).decode()
        except InvalidToken:
            raise LedgerError("personal data could not be decrypted with any of the encryption_keys") from None

    def rotate(self, value: str | None) -> str | None:
        """``value`` sealed with the first key, whatever it was sealed with before (or if it was plain)."""
        if value is None or self._fernet is None:
            return value
        if not value.startswith(_MARK):
            return self.seal(value)
        try:
            return _MARK + self._fernet.rotate(value[len(_MARK) :].encode()).decode()
        except InvalidToken:
            raise LedgerError("personal data could not be decrypted with any of the encryption_keys") from None

    def seal_record(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return {k: self.seal(v) if k in PII_FIELDS else v for k, v in body.items()}

    def open_record(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return {k: self.open(v) if k in PII_FIELDS else v for k, v in body.items()}

    def rotate_record(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return {k: self.rotate(v) if k in PII_FIELDS else v for k, v in body.items()}
