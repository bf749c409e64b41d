"""What pricing returns: :class:`CostBreakdown` (the cost of one call) and :class:`ModelPriceInfo` (a price sheet)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from typing import Any

__all__ = ["CostBreakdown", "ModelPriceInfo", "UnfrozenBreakdown"]


def _jsonable(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    return value


@dataclass(frozen=True, slots=True)
class CostBreakdown:
    """The exact cost of one call, split into parts that add up to ``total`` exactly.

    Which part a charge lands in follows the price that was applied: ``input`` is the input not
    priced separately as cache reads/writes (or as audio/image tokens, which go to ``other``);
    ``output`` includes reasoning tokens unless the price lists reasoning separately (then they are
    in ``reasoning``); ``request`` holds per-request fees and any minimum-charge top-up; ``other``
    holds audio/image tokens, web searches, audio or processing seconds.
    """

    provider: str
    """Canonical provider id (``"openai"`` for ``"OpenAI"``), or the provider as given for custom ones."""
    model: str
    """The model reference that was priced, as asked."""
    model_id: str
    """The catalog model id or the override's model (pattern) whose price applied."""
    input: Decimal
    cache_read: Decimal
    cache_write: Decimal
    output: Decimal
    reasoning: Decimal
    request: Decimal
    other: Decimal
    total: Decimal
    currency: str
    price_version: str
    """Which price was used, e.g. ``"genai-prices@0.2.3:openai/gpt-4o"`` or ``"override:<id>"``."""
    estimated: bool
    """True when a configured fallback price stood in for an unknown model."""
    service_tier: str | None
    """``None`` for standard processing, else ``"batch"``, ``"flex"``, ``"priority"``, ..."""

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-friendly dict (Decimals as strings)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}


class UnfrozenBreakdown:
    """:class:`CostBreakdown` 's slot layout without the frozen checks, for the hot path only.

    A frozen dataclass sets each field through ``object.__setattr__`` (~1 µs for 15 fields, half the
    per-call budget). Compiled prices build this twin with plain attribute stores and then set
    ``__class__ = CostBreakdown``: the result *is* a ``CostBreakdown`` (frozen, equal, hashable,
    picklable). The assignment is checked at import, so a layout drift fails loudly.
    """

    __slots__ = CostBreakdown.__slots__

    def __init__(self, *values: object) -> None:
        raise NotImplementedError  # replaced at import by _generate_init's straight-line stores


def _generate_init() -> None:
    names = [f.name for f in fields(CostBreakdown)]
    source = f"def __init__(self, {', '.join(names)}):\n" + "".join(f"    self.{n} = {n}\n" for n in names)
    namespace: dict[str, Any] = {}
    exec(source, namespace)
    UnfrozenBreakdown.__init__ = namespace["__init__"]  # type: ignore[method-assign]
    probe = UnfrozenBreakdown(*names)
    probe.__class__ = CostBreakdown  # type: ignore[assignment]  # TypeError here if the layouts differ


_generate_init()


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelPriceInfo:
    """A model's price sheet at one moment, per million tokens, and where it comes from."""

    provider: str
    model: str
    """The model reference that was looked up."""
    model_id: str
    source: str
    """``"catalog"``, ``"override"`` or ``"fallback"``."""
    price_version: str
    service_tier: str | None = None
    input_mtok: Decimal | None = None
    output_mtok: Decimal | None = None
    cache_read_mtok: Decimal | None = None
    cache_write_mtok: Decimal | None = None
    reasoning_mtok: Decimal | None = None
    per_request: Decimal | None = None
    minimum_charge: Decimal | None = None
    per_second: Decimal | None = None
    context_tiers: tuple[int, ...] = ()
    """Input-token counts above which the (cliff) context-tier prices apply to the whole call."""
    has_volume_tiers: bool = False
    has_time_of_day: bool = False
    other_prices: Mapping[str, Decimal] = field(default_factory=dict)
    """Further catalog prices by genai-prices price key, e.g. ``{"web_searches_kcount": Decimal("10")}``."""
    context_window: int | None = None
    effective_from: datetime | None = None
    estimated: bool = False
    note: str = ""
    currency: str = "USD"

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-friendly dict (Decimals as strings, datetimes in ISO 8601)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}
