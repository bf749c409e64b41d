"""Who a limit applies to: :class:`Scope` (dimension → id) and the :class:`RequestContext` it is matched against.

A scope names ids over six dimensions, always kept in this order::

    team, user, key, session, provider, model

The empty scope is *global* (every request). ``user:alice`` is Alice's spend; ``team:ml/model:gpt-4o``
is the ML team's spend on gpt-4o. Text form: ``dimension:id`` pairs joined by ``/``; inside an id,
``%`` and ``/`` are written ``%25`` and ``%2F`` (so ``model:openrouter%2Fanthropic%2Fclaude-3`` round-trips).
A model id ending in ``*`` matches by prefix: ``model:claude-sonnet-4*`` covers every dated snapshot.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import unquote

from spendgate._frozen import fast_init
from spendgate.budgets._check import BudgetConfigError

__all__ = ["DIMENSIONS", "RequestContext", "Scope", "as_scope"]

#: Scope dimensions in their canonical order.
DIMENSIONS: tuple[str, ...] = ("team", "user", "key", "session", "provider", "model")

_ALIASES = {"api_key": "key", "team_id": "team", "user_id": "user", "api_key_id": "key", "session_id": "session"}
_CTX_ATTR = {
    "team": "team_id",
    "user": "user_id",
    "key": "api_key_id",
    "session": "session_id",
    "provider": "provider",
    "model": "model",
}
_ORDER = {name: i for i, name in enumerate(DIMENSIONS)}
_MAX_ID = 256


@fast_init
@dataclass(frozen=True, slots=True, kw_only=True)
class RequestContext:
    """Who is asking for what: the facts every limit is matched against.

    ``tier`` is the user's tier name (``None`` means the tier table's default). ``tags`` ride along for
    callers; no limit matches on them.
    """

    provider: str
    model: str
    user_id: str | None = None
    team_id: str | None = None
    api_key_id: str | None = None
    session_id: str | None = None
    tier: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", MappingProxyType(dict(self.tags)))

    def dimension(self, name: str) -> str | None:
        """The context's id for scope dimension ``name`` (``"user"`` → ``user_id``)."""
        value: str | None = getattr(self, _CTX_ATTR[name])
        return value

    def with_model(self, provider: str, model: str) -> RequestContext:
        """The same requester asking for another model (used to test downgrade candidates)."""
        return RequestContext(
            provider=provider,
            model=model,
            user_id=self.user_id,
            team_id=self.team_id,
            api_key_id=self.api_key_id,
            session_id=self.session_id,
            tier=self.tier,
            tags=self.tags,
        )


def _canonical(name: str) -> str:
    dim = _ALIASES.get(name, name)
    if dim not in _ORDER:
        raise BudgetConfigError("scope", f"unknown dimension {name!r} (known: {', '.join(DIMENSIONS)}, global)")
    return dim


def _escape(value: str) -> str:
    return value.replace("%", "%25").replace("/", "%2F")


class Scope(Mapping[str, str]):
    """An ordered, hashable, immutable mapping of dimension → id; empty means global.

    >>> s = Scope.parse("provider:openai/user:alice")
    >>> str(s), s["user"], s == Scope(user="alice", provider="openai")
    ('user:alice/provider:openai', 'alice', True)
    """

    __slots__ = ("_items",)
    _items: tuple[tuple[str, str], ...]

    def __init__(self, items: Mapping[str, str] | None = None, /, **ids: str) -> None:
        merged: dict[str, str] = {}
        for raw, value in [*(items or {}).items(), *ids.items()]:
            dim = _canonical(raw)
            if dim in merged:
                raise BudgetConfigError("scope", f"dimension {dim!r} given twice")
            if not isinstance(value, str) or not value or len(value) > _MAX_ID:
                raise BudgetConfigError("scope", f"{dim} id must be a non-empty string of at most {_MAX_ID} chars")
            if value.endswith("*") and dim != "model":
                raise BudgetConfigError("scope", f"only model ids may end in '*' (prefix match), got {dim}:{value}")
            merged[dim] = value
        object.__setattr__(self, "_items", tuple(sorted(merged.items(), key=lambda kv: _ORDER[kv[0]])))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Scope is immutable")

    @classmethod
    def parse(cls, text: str) -> Scope:
        """Read ``"user:alice/provider:openai"`` (``""`` or ``"global"`` is the global scope)."""
        if not isinstance(text, str):
            raise BudgetConfigError("scope", f"must be a string, got {type(text).__name__}")
        text = text.strip()
        if text in ("", "global"):
            return cls()
        pairs: dict[str, str] = {}
        for part in text.split("/"):
            name, sep, value = part.partition(":")
            if not sep or not value:
                raise BudgetConfigError("scope", f"expected 'dimension:id' pairs joined by '/', got {part!r}")
            dim = _canonical(name.strip())
            if dim in pairs:
                raise BudgetConfigError("scope", f"dimension {dim!r} given twice in {text!r}")
            pairs[dim] = unquote(value)
        return cls(pairs)

    @classmethod
    def of(cls, scope: str, scope_id: str | None = None) -> Scope:
        """The scope of ``meter.set_limit(scope=..., scope_id=...)``.

        ``scope`` is ``"global"`` (no id), one dimension (``"user"``, ``"team"``, ``"key"`` or
        ``"api_key"``, ``"session"``, ``"provider"``, ``"model"``) with its id, or several joined by
        ``+`` with their ids joined by ``/`` in the same order: ``Scope.of("user+provider", "alice/openai")``.
        The last id may itself contain ``/`` (``Scope.of("provider+model", "openrouter/meta/llama-3")``).
        """
        if not isinstance(scope, str) or not scope.strip():
            raise BudgetConfigError("scope", f"must be a dimension name or 'global', got {scope!r}")
        if scope.strip() == "global":
            if scope_id:
                raise BudgetConfigError("scope_id", "the global scope takes no id")
            return cls()
        dims = [_canonical(name.strip()) for name in scope.split("+")]
        if not scope_id:
            raise BudgetConfigError("scope_id", f"scope {scope!r} needs an id")
        ids = scope_id.split("/", len(dims) - 1)
        if len(ids) != len(dims) or not all(ids):
            raise BudgetConfigError(
                "scope_id", f"scope {scope!r} needs {len(dims)} ids joined by '/', got {scope_id!r}"
            )
        if len(set(dims)) != len(dims):
            raise BudgetConfigError("scope", f"dimension given twice in {scope!r}")
        return cls(dict(zip(dims, ids, strict=True)))

    @property
    def is_global(self) -> bool:
        """True for the empty scope, which matches every request."""
        return not self._items

    @property
    def kind(self) -> str:
        """The dimensions joined by ``+`` (``"user+provider"``), or ``"global"``: the ``scope`` of :meth:`of`."""
        return "+".join(dim for dim, _ in self._items) or "global"

    def matches(self, ctx: RequestContext) -> bool:
        """True if every dimension of this scope has the same id in ``ctx`` (a trailing ``*`` matches a prefix)."""
        for dim, expected in self._items:
            actual = ctx.dimension(dim)
            if actual is None:
                return False
            if expected.endswith("*"):
                if not actual.startswith(expected[:-1]):
                    return False
            elif actual != expected:
                return False
        return True

    def __getitem__(self, key: str) -> str:
        for dim, value in self._items:
            if dim == key:
                return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (dim for dim, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Scope):
            return self._items == other._items
        return super().__eq__(other)

    def __str__(self) -> str:
        return "/".join(f"{dim}:{_escape(value)}" for dim, value in self._items) or "global"

    def __repr__(self) -> str:
        return f"Scope.parse({str(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Scope.parse, (str(self),))


def as_scope(value: object) -> Scope:
    """``value`` as a :class:`Scope`: a Scope, its text (``"user:alice"``) or a mapping of dimension → id."""
    if isinstance(value, Scope):
        return value
    if isinstance(value, str):
        return Scope.parse(value)
    if isinstance(value, Mapping):
        return Scope(value)
    raise BudgetConfigError("scope", f"must be a Scope, its text or a mapping, got {type(value).__name__}")
