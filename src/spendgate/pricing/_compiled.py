"""Compiled prices: one resolved price turned into a small straight-line function.

Every price spendgate supports is linear in the usage counts once two things are fixed: the cliff
tier (chosen by total input tokens) and, for catalog models that price cached audio/image tokens
separately, the overlap counts that spendgate's :class:`~spendgate.usage.Usage` cannot report (derived
here, see :class:`OverlapGroup`). So a price compiles to a list of :class:`Term` s, each
``coefficient * (signed sum of usage counts)`` added to one part of the breakdown, with one
coefficient per tier segment. :class:`CompiledPrice` generates Python source for exactly those terms
(the way :mod:`dataclasses` generates ``__init__``) so that pricing a call is a few attribute reads
and Decimal multiplications: well under the 2 µs budget, against ~50-170 µs for a full lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, NoReturn

from spendgate.errors import InvalidUsageError
from spendgate.pricing._breakdown import CostBreakdown, ModelPriceInfo, UnfrozenBreakdown
from spendgate.usage import Usage

__all__ = [
    "CACHE_READ",
    "CACHE_WRITE",
    "INPUT",
    "OTHER",
    "OUTPUT",
    "REASONING",
    "REQUEST",
    "ZERO",
    "CompiledPrice",
    "Guard",
    "Label",
    "OverlapGroup",
    "Term",
]

ZERO = Decimal(0)

#: Indices of the breakdown parts, in :class:`CostBreakdown` field order.
INPUT, CACHE_READ, CACHE_WRITE, OUTPUT, REASONING, REQUEST, OTHER = range(7)

TokenHandler = Callable[[Usage, str], CostBreakdown]


@dataclass(frozen=True, slots=True)
class Term:
    """``coef * (sum of sign * count) [/ divisor]`` added to breakdown part ``part``.

    ``coefs`` holds one coefficient per tier segment (price per unit, already divided by the unit
    size when that is exact). ``counts`` names usage attributes or derived overlap counts with their
    signs; an empty ``counts`` is a flat amount per request. ``divisor`` is used for unit sizes that
    do not divide exactly (genai-prices' per-hour prices), so the result matches its arithmetic.
    """

    part: int
    coefs: tuple[Decimal, ...]
    counts: tuple[tuple[str, int], ...] = ()
    divisor: int = 1


@dataclass(frozen=True, slots=True)
class OverlapGroup:
    """Derives counts of tokens in two usage fields at once, which ``Usage`` cannot report.

    ``whole`` (e.g. ``input_tokens``) contains ``shared`` (``cache_read_tokens``) and the disjoint
    ``others`` (``input_audio_tokens``, ``input_image_tokens``). ``names[i]`` becomes the number of
    tokens in both ``shared`` and ``others[i]``: the fewest consistent with the counts. Shared tokens
    are assumed to be plain text as far as possible; the rest fill ``others`` in order.
    """

    whole: str
    shared: str
    others: tuple[str, ...]
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Guard:
    """A derived count that must not be negative; ``field`` is named in the error when it is."""

    field: str
    counts: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class Label:
    """Who a compiled price belongs to: copied into every :class:`CostBreakdown` it produces."""

    provider: str
    model_id: str
    price_version: str
    source: str
    estimated: bool = False
    service_tier: str | None = None


class _Tokens:
    """Input and output tokens and nothing else, as a compiled price reads a :class:`Usage` (its fields)."""

    __slots__ = ("input_tokens", "output_tokens")
    cache_read_tokens = cache_write_tokens = reasoning_tokens = input_audio_tokens = output_audio_tokens = 0
    input_image_tokens = images = web_searches = 0
    audio_seconds = processing_seconds = ZERO

    def __init__(self, input_tokens: int, output_tokens: int) -> None:
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens


def _count_expr(counts: Sequence[tuple[str, int]]) -> str:
    expr = ""
    for name, sign in counts:
        coef = f"{abs(sign)} * {name}" if abs(sign) != 1 else name
        if not expr:
            expr = coef if sign > 0 else f"-{coef}"
        else:
            expr += f" + {coef}" if sign > 0 else f" - {coef}"
    return expr


class CompiledPrice:
    """A fully resolved price; ``evaluate(usage, model)`` returns the :class:`CostBreakdown`.

    ``thresholds`` are the cliff tier starts (ascending): segment ``i`` applies when
    ``usage.input_tokens > thresholds[i-1]``. ``minimum`` is a minimum charge per request (the
    top-up goes to ``request``). ``floors`` bill a count below a minimum at the minimum (genai-prices
    bills Groq Whisper audio at 10 s at least). ``on_token_usage`` handles usage with tokens for a
    price that has no token price at all, so such usage is never silently free.
    """

    __slots__ = (
        "evaluate",
        "floors",
        "guards",
        "info",
        "label",
        "minimum",
        "on_token_usage",
        "overlaps",
        "source",
        "terms",
        "thresholds",
    )

    evaluate: Callable[[Usage, str], CostBreakdown]

    def __init__(
        self,
        *,
        label: Label,
        info: ModelPriceInfo,
        terms: Sequence[Term],
        thresholds: Sequence[int] = (),
        minimum: Decimal | None = None,
        overlaps: Sequence[OverlapGroup] = (),
        guards: Sequence[Guard] = (),
        floors: Sequence[tuple[str, Decimal]] = (),
        on_token_usage: TokenHandler | None = None,
    ) -> None:
        self.label = label
        self.info = info
        self.terms = tuple(terms)
        self.thresholds = tuple(thresholds)
        self.minimum = minimum
        self.overlaps = tuple(overlaps)
        self.guards = tuple(guards)
        self.floors = tuple(floors)
        self.on_token_usage = on_token_usage
        for term in self.terms:
            if len(term.coefs) != len(self.thresholds) + 1:
                raise ValueError("every term needs one coefficient per tier segment")
            if not all(name.isidentifier() for name, _ in term.counts):
                raise ValueError(f"count names must be identifiers: {term.counts}")
        self.source = self._source()
        namespace = self._namespace()
        exec(compile(self.source, f"<spendgate price {label.price_version}>", "exec"), namespace)
        self.evaluate = namespace["evaluate"]

    def __repr__(self) -> str:
        return (
            f"CompiledPrice({self.label.price_version!r}, terms={len(self.terms)}, segments={len(self.thresholds) + 1})"
        )

    def tokens_total(self, input_tokens: int, output_tokens: int, model: str) -> Decimal | None:
        """``evaluate(Usage(input_tokens=..., output_tokens=...), model).total``, without making the Usage.

        The counts must be ints that a Usage accepts. None for a price that bills token usage its own way
        (``on_token_usage``): ask :meth:`evaluate`.
        """
        if self.on_token_usage is not None:
            return None
        return self.evaluate(_Tokens(input_tokens, output_tokens), model).total  # type: ignore[arg-type]  # as read

    def scaled(self, factor: Decimal) -> CompiledPrice:
        """The same price with every charge (not the minimum) multiplied by ``factor``."""
        terms = [replace(term, coefs=tuple(coef * factor for coef in term.coefs)) for term in self.terms]
        return CompiledPrice(
            label=self.label,
            info=self.info,
            terms=terms,
            thresholds=self.thresholds,
            minimum=self.minimum,
            overlaps=self.overlaps,
            guards=self.guards,
            floors=self.floors,
            on_token_usage=self.on_token_usage,
        )

    # -- code generation ----------------------------------------------------------------------------

    def _namespace(self) -> dict[str, Any]:
        label = self.label
        namespace: dict[str, Any] = {
            "_Open": UnfrozenBreakdown,
            "_CostBreakdown": CostBreakdown,
            "_Z": ZERO,
            "_provider": label.provider,
            "_model_id": label.model_id,
            "_version": label.price_version,
            "_estimated": label.estimated,
            "_tier": label.service_tier,
            "_min": self.minimum,
            "_on_tokens": self.on_token_usage,
            "_refuse": self._refuse,
        }
        for index in range(len(self.thresholds) + 1):
            namespace[f"_S{index}"] = tuple(term.coefs[index] for term in self.terms)
        for index, (_, floor) in enumerate(self.floors):
            namespace[f"_floor{index}"] = floor
        return namespace

    def _refuse(self, index: int, model: str) -> NoReturn:
        guard = self.guards[index]
        raise InvalidUsageError(
            guard.field,
            f"the cached, audio and image token counts are inconsistent for {self.label.provider}/{model}, whose"
            " price charges cached audio/image tokens separately (more cached or modality tokens than input)",
        )

    def _source(self) -> str:
        derived = {name for group in self.overlaps for name in group.names}
        read: set[str] = set()
        for term in self.terms:
            read.update(name for name, _ in term.counts)
        for guard in self.guards:
            read.update(name for name, _ in guard.counts)
        for group in self.overlaps:
            read.update((group.whole, group.shared, *group.others))
        if self.thresholds:
            read.add("input_tokens")
        read -= derived
        lines = ["def evaluate(u, model):"]
        if self.on_token_usage is not None:
            lines.append("    if u.input_tokens or u.output_tokens:")
            lines.append("        return _on_tokens(u, model)")
        lines.extend(f"    {name} = u.{name}" for name in sorted(read))
        for index, (name, _) in enumerate(self.floors):
            lines.append(f"    if 0 < {name} < _floor{index}:")
            lines.append(f"        {name} = _floor{index}")
        for group in self.overlaps:
            others = " - ".join(group.others)
            lines.append(f"    rest = {group.shared} - ({group.whole} - {others})")
            lines.append("    if rest < 0:")
            lines.append("        rest = 0")
            for name, other in zip(group.names, group.others, strict=True):
                lines.append(f"    {name} = {other} if {other} < rest else rest")
                lines.append(f"    rest -= {name}")
        lines.extend(self._coefficient_lines())
        used = sorted({term.part for term in self.terms} | ({REQUEST} if self.minimum is not None else set()))
        assigned: set[int] = set()
        for index, term in enumerate(self.terms):
            lines.extend(self._term_lines(index, term, first=term.part not in assigned))
            assigned.add(term.part)
        lines.extend(f"    p{part} = _Z" for part in used if part not in assigned)
        for index, guard in enumerate(self.guards):
            lines.append(f"    if {_count_expr(guard.counts)} < 0:")
            lines.append(f"        _refuse({index}, model)")
        lines.append("    total = " + (" + ".join(f"p{part}" for part in used) or "_Z"))
        if self.minimum is not None:
            lines.append("    if total < _min:")
            lines.append(f"        p{REQUEST} = p{REQUEST} + (_min - total)")
            lines.append("        total = _min")
        parts = ", ".join(f"p{part}" if part in used else "_Z" for part in range(7))
        lines.append(f"    b = _Open(_provider, model, _model_id, {parts}, total, 'USD', _version, _estimated, _tier)")
        lines.append("    b.__class__ = _CostBreakdown")
        lines.append("    return b")
        return "\n".join(lines) + "\n"

    def _coefficient_lines(self) -> list[str]:
        if not self.terms:
            return []
        names = ", ".join(f"k{index}" for index in range(len(self.terms))) + ","
        if not self.thresholds:
            return [f"    {names} = _S0"]
        lines: list[str] = []
        for segment in range(len(self.thresholds), 0, -1):
            keyword = "if" if segment == len(self.thresholds) else "elif"
            lines.append(f"    {keyword} input_tokens > {int(self.thresholds[segment - 1])}:")
            lines.append(f"        {names} = _S{segment}")
        lines.append("    else:")
        lines.append(f"        {names} = _S0")
        return lines

    @staticmethod
    def _term_lines(index: int, term: Term, *, first: bool) -> list[str]:
        """Code adding one term to its part; the first term of a part assigns it (saves adding to zero)."""
        part = f"p{term.part}"
        if not term.counts:
            return [f"    {part} = k{index}" if first else f"    {part} += k{index}"]
        lines = []
        if len(term.counts) == 1 and term.counts[0][1] == 1:
            count = term.counts[0][0]
        else:
            count = "n"
            lines.append(f"    n = {_count_expr(term.counts)}")
        amount = f"{count} * k{index}" + (f" / {int(term.divisor)}" if term.divisor != 1 else "")
        if first:
            lines.append(f"    {part} = {amount} if {count} else _Z")
        else:
            lines += [f"    if {count}:", f"        {part} += {amount}"]
        return lines
