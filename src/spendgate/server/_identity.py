"""Who is calling: users, teams and API keys, stored in the ledger database's control store.

An API key is shown once at creation: ``sk-sg-<key id>-<secret>``. Only a SHA-256 of the whole token is
stored; verification looks the key up by its id (no scan) and compares hashes in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from spendgate._pii import FieldCipher
from spendgate._pii_keyring import UserSealer
from spendgate.clock import Clock
from spendgate.errors import InvalidUsageError
from spendgate.ledger import ControlStore

__all__ = ["ApiKey", "IdentityStore", "Principal", "Role", "Team", "User", "check_key_tags"]

Role = Literal["admin", "viewer", "member"]
ROLES: tuple[Role, ...] = ("admin", "viewer", "member")
_PREFIX = "sk-sg-"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _text(name: str, value: object, *, optional: bool = False, max_length: int = 200) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise InvalidUsageError(name, f"must be a non-empty string of at most {max_length} characters")
    return value


@dataclass(frozen=True, slots=True)
class User:
    """A person or service that spends (the seeds' profile)."""

    user_id: str
    username: str | None = None
    email: str | None = None
    tier: str | None = None
    team_id: str | None = None
    is_active: bool = True
    preferences: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: str | None = None

    def __post_init__(self) -> None:
        _text("user_id", self.user_id)
        for name in ("username", "email", "tier", "team_id"):
            _text(name, getattr(self, name), optional=True)


@dataclass(frozen=True, slots=True)
class Team:
    team_id: str
    name: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: str | None = None

    def __post_init__(self) -> None:
        _text("team_id", self.team_id)
        _text("name", self.name, optional=True)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key's record (never its secret)."""

    key_id: str
    role: Role
    user_id: str | None = None
    team_id: str | None = None
    name: str | None = None
    hash: str = field(default="", repr=False)
    created_at: str | None = None
    expires_at: str | None = None
    revoked_at: str | None = None
    cache: bool = False
    """Gateway calls with this key use the response cache without asking per request."""
    tags: dict[str, str] = field(default_factory=dict)
    """Tags every call made with this key is recorded with (a request's own tags override them)."""

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("hash")
        return data


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of a request, resolved from its API key."""

    role: Role
    key_id: str | None = None
    user_id: str | None = None
    team_id: str | None = None
    tier: str | None = None
    cache: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def can_read_all(self) -> bool:
        return self.role in ("admin", "viewer")


class IdentityStore:
    """Users, teams and keys as control objects (kinds ``user``, ``team``, ``api_key``); every change audited."""

    def __init__(
        self, control: ControlStore, clock: Clock, *, cache_s: float = 5.0, cipher: FieldCipher | None = None
    ) -> None:
        self.control = control
        self.clock = clock
        self.cipher = cipher or FieldCipher()
        """Seals users' personal fields at rest (``Settings.encryption_keys``); without keys, stores them as given."""
        self.sealer = UserSealer(self.cipher, getattr(control, "_engine", None))
        """Seals them with each user's own key, which erasure destroys (``spendgate._pii_keyring``)."""
        self.cache_s = cache_s
        """How long a verified key is trusted without reading the database again (a revocation made by
        another replica takes effect within this time; one made here, at once)."""
        self._verified: dict[str, tuple[Principal, float, datetime | None]] = {}

    # -- users and teams ---------------------------------------------------------------------------

    def put_user(self, user: User, *, actor: str, create: bool = False) -> User:
        stamped = user if user.created_at else replace(user, created_at=self.clock.now().isoformat())
        self.control.put("user", user.user_id, self.sealer.seal_record(asdict(stamped)), actor=actor,
                         create_only=create)  # fmt: skip
        self.forget()
        return stamped

    def get_user(self, user_id: str) -> User | None:
        body = self.control.get("user", user_id)
        return None if body is None else User(**self.sealer.open_record(body))

    def list_users(self) -> list[User]:
        return [User(**self.sealer.open_record(body)) for body in self.control.list_objects("user")]

    def rotate_users(self, *, actor: str) -> int:
        """Re-seal every user's personal fields with their own key (sealing plain ones and ones sealed with a
        deployment key directly); how many users changed. ``sealer.rewrap_keys()`` re-wraps the users' keys."""
        changed = 0
        for body in self.control.list_objects("user"):
            rotated = self.sealer.seal_record(body)
            if rotated != body:
                self.control.put("user", body["user_id"], rotated, actor=actor)
                changed += 1
        self.forget()
        return changed

    def delete_user(self, user_id: str, *, actor: str) -> bool:
        self.forget()
        return self.control.delete("user", user_id, actor=actor)

    def put_team(self, team: Team, *, actor: str, create: bool = False) -> Team:
        stamped = team if team.created_at else replace(team, created_at=self.clock.now().isoformat())
        self.control.put("team", team.team_id, asdict(stamped), actor=actor, create_only=create)
        return stamped

    def get_team(self, team_id: str) -> Team | None:
        body = self.control.get("team", team_id)
        return None if body is None else Team(**body)

    def list_teams(self) -> list[Team]:
        return [Team(**body) for body in self.control.list_objects("team")]

    def delete_team(self, team_id: str, *, actor: str) -> bool:
        return self.control.delete("team", team_id, actor=actor)

    # -- keys -----------------------------------------------------------------------------------

    def create_key(
        self,
        *,
        role: Role,
        actor: str,
        user_id: str | None = None,
        team_id: str | None = None,
        name: str | None = None,
        expires_at: datetime | None = None,
        cache: bool = False,
        tags: Mapping[str, str] | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key and its secret token (shown once; only its hash is kept)."""
        if role not in ROLES:
            raise InvalidUsageError("role", f"must be one of {', '.join(ROLES)}")
        checked_tags = check_key_tags(tags or {})
        if role == "member" and user_id is None:
            raise InvalidUsageError("user_id", "a member key belongs to a user")
        if expires_at is not None and expires_at.tzinfo is None:
            raise InvalidUsageError("expires_at", "must be timezone-aware")
        key_id = secrets.token_hex(8)
        token = f"{_PREFIX}{key_id}-{secrets.token_urlsafe(32)}"
        key = ApiKey(
            key_id=key_id,
            role=role,
            user_id=user_id,
            team_id=team_id,
            name=name,
            hash=_hash(token),
            created_at=self.clock.now().isoformat(),
            expires_at=None if expires_at is None else expires_at.isoformat(),
            cache=cache,
            tags=checked_tags,
        )
        self.control.put("api_key", key_id, asdict(key), actor=actor, create_only=True)
        return key, token

    def get_key(self, key_id: str) -> ApiKey | None:
        body = self.control.get("api_key", key_id)
        return None if body is None else ApiKey(**body)

    def list_keys(self) -> list[ApiKey]:
        return [ApiKey(**body) for body in self.control.list_objects("api_key")]

    def revoke_key(self, key_id: str, *, actor: str) -> ApiKey | None:
        key = self.get_key(key_id)
        if key is None:
            return None
        revoked = replace(key, revoked_at=key.revoked_at or self.clock.now().isoformat())
        self.control.put("api_key", key_id, asdict(revoked), actor=actor)
        self.forget()
        return revoked

    def rotate_key(self, key_id: str, *, actor: str) -> tuple[ApiKey, str] | None:
        """Revoke a key and issue a new one with the same owner, role and name."""
        old = self.revoke_key(key_id, actor=actor)
        if old is None:
            return None
        expires = None if old.expires_at is None else datetime.fromisoformat(old.expires_at)
        return self.create_key(
            role=old.role,
            actor=actor,
            user_id=old.user_id,
            team_id=old.team_id,
            name=old.name,
            expires_at=expires,
            cache=old.cache,
            tags=old.tags,
        )

    def cached(self, token: str) -> Principal | None:
        """What :meth:`verify` answers from its cache, with no I/O; None when the token is not cached."""
        cached = self._verified.get(_hash(token))
        if cached is not None and cached[1] > time.monotonic() and (cached[2] is None or cached[2] > self.clock.now()):
            return cached[0]
        return None

    def verify(self, token: str) -> Principal | None:
        """The principal of a valid, unexpired, unrevoked key; None otherwise (cached for ``cache_s``)."""
        if not token.startswith(_PREFIX):
            return None
        found_cached = self.cached(token)
        if found_cached is not None:
            return found_cached
        digest = _hash(token)
        now_s = time.monotonic()
        found = self._verify(token, digest)
        if found is None:
            return None
        principal, expires = found
        if self.cache_s > 0:
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[digest] = (principal, now_s + self.cache_s, expires)
        return principal

    def forget(self) -> None:
        """Drop every cached verification (after a change to keys or users)."""
        self._verified.clear()

    def _verify(self, token: str, digest: str) -> tuple[Principal, datetime | None] | None:
        key_id = token[len(_PREFIX) :].split("-", 1)[0]
        key = self.get_key(key_id)
        if key is None or not hmac.compare_digest(key.hash, digest):
            return None
        expires = None if key.expires_at is None else datetime.fromisoformat(key.expires_at)
        if key.revoked_at is not None or (expires is not None and expires <= self.clock.now()):
            return None
        tier = None
        if key.user_id is not None:
            user = self.get_user(key.user_id)
            if user is not None:
                if not user.is_active:
                    return None
                tier = user.tier
        principal = Principal(role=key.role, key_id=key.key_id, user_id=key.user_id, team_id=key.team_id, tier=tier,
                              cache=key.cache, tags=dict(key.tags))  # fmt: skip
        return principal, expires


#: At most this many tags on a key, each name and value at most 200 characters.
MAX_KEY_TAGS = 32


def check_key_tags(tags: Mapping[str, object]) -> dict[str, str]:
    """A key's tags: string names and values, non-empty names, bounded (errors name ``tags.<name>``)."""
    if not isinstance(tags, Mapping):
        raise InvalidUsageError("tags", "must be an object of string values")
    if len(tags) > MAX_KEY_TAGS:
        raise InvalidUsageError("tags", f"at most {MAX_KEY_TAGS} tags")
    out: dict[str, str] = {}
    for name, value in tags.items():
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise InvalidUsageError("tags", f"names must be non-empty strings of at most 200 characters: {name!r}")
        if not isinstance(value, str) or len(value) > 200:
            raise InvalidUsageError(f"tags.{name}", "must be a string of at most 200 characters")
        out[name] = value
    return out


def update_fields(current: Mapping[str, Any], changes: Mapping[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    """``current`` with ``changes`` applied; a change to a field not in ``allowed`` names it in the error."""
    for name in changes:
        if name not in allowed:
            raise InvalidUsageError(name, "cannot be changed")
    return {**current, **changes}
