"""Token formulas for images, audio and video, per provider.

Images (from width and height in pixels):

* OpenAI, tile models (gpt-4o, gpt-4.1, gpt-4.5, o1, o3, gpt-5, gpt-4o-mini, ...): ``detail="low"``
  costs the model's base tokens; ``"high"`` fits the image in 2048x2048, scales the shortest side
  down to 768 and costs ``base + tile * number of 512-pixel tiles``. Base/tile are 85/170 for
  gpt-4o, gpt-4.1 and gpt-4.5, 75/150 for o1 and o3, 70/140 for gpt-5, 2833/5667 for gpt-4o-mini
  (OpenAI's vision guide). ``"auto"`` is counted as high, except for images that fit one 512-pixel
  tile, which are counted as low and marked estimated (OpenAI does not document its choice).
* OpenAI, patch models (gpt-4.1-mini, gpt-4.1-nano, o4-mini, gpt-5-mini, gpt-5-nano): 32-pixel
  patches, at most 1536 (larger images are scaled down), times the model's multiplier; ``detail``
  does not apply.
* Anthropic: the image is scaled so the long edge is at most 1568 px and the area at most 1.2 MP
  (about 1,600 tokens, which reproduces Anthropic's table: 1092x1092 → 1590), then
  ``ceil(width * height / 750)``.
* Gemini: 258 tokens when both sides are at most 384 px, else 258 per 768x768 tile.

Unknown dimensions (a remote URL) count the provider's worst case and are marked estimated.

Audio and video by duration: Gemini documents 32 tokens/s of audio and 263 tokens/s of video
(exact); OpenAI's audio models take roughly 10 tokens/s of input audio (estimated), which is also
the estimate for every other provider.
"""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, Decimal

from spendgate.errors import InvalidUsageError
from spendgate.tokens._count import TokenCount
from spendgate.tokens._encodings import normalize_model
from spendgate.tokens._profiles import provider_family

__all__ = [
    "anthropic_image_tokens",
    "audio_part_tokens",
    "audio_tokens",
    "gemini_image_tokens",
    "image_part_tokens",
    "image_tokens",
    "openai_image_tokens",
    "video_tokens",
]

_DETAILS = frozenset({"low", "high", "auto"})
_ANTHROPIC_MAX_EDGE = 1568
_ANTHROPIC_MAX_PIXELS = 1_200_000
_ANTHROPIC_PIXELS_PER_TOKEN = 750
_GEMINI_TOKENS = 258
_GEMINI_SMALL = 384
_GEMINI_TILE = 768
_GEMINI_WORST_CASE = (4032, 3024)  # a 12-megapixel photo: 24 tiles
_PATCH = 32
_MAX_PATCHES = 1536

# (prefix, base tokens, tile tokens); the first matching prefix wins.
_TILE_MODELS: tuple[tuple[str, int, int], ...] = (
    ("gpt-4o-mini", 2833, 5667),
    ("gpt-5", 70, 140),
    ("o1", 75, 150),
    ("o3", 75, 150),
    ("computer-use", 65, 129),
)
_DEFAULT_TILE = (85, 170)
_PATCH_MODELS: tuple[tuple[str, Decimal], ...] = (
    ("gpt-4.1-mini", Decimal("1.62")),
    ("gpt-4.1-nano", Decimal("2.46")),
    ("gpt-5-mini", Decimal("1.62")),
    ("gpt-5-nano", Decimal("2.46")),
    ("o4-mini", Decimal("1.72")),
)

# Tokens per second of media: (rate, exact).
_AUDIO_RATES = {"google": (Decimal(32), True)}
_VIDEO_RATES = {"google": (Decimal(263), True)}
_DEFAULT_AUDIO_RATE = (Decimal(10), False)
_DEFAULT_VIDEO_RATE = (Decimal(263), False)


def _pixels(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidUsageError(name, f"must be a positive integer number of pixels, got {value!r}")
    return value


def _check_size(width: object, height: object) -> tuple[int, int]:
    return _pixels("width", width), _pixels("height", height)


def _patch_multiplier(model: str) -> Decimal | None:
    for prefix, multiplier in _PATCH_MODELS:
        if model.startswith(prefix):
            return multiplier
    return None


def _tile_rates(model: str) -> tuple[int, int]:
    for prefix, base, tile in _TILE_MODELS:
        if model.startswith(prefix):
            return base, tile
    return _DEFAULT_TILE


def _patch_tokens(width: int, height: int, multiplier: Decimal) -> int:
    patches = math.ceil(width / _PATCH) * math.ceil(height / _PATCH)
    if patches > _MAX_PATCHES:
        shrink = math.sqrt(_PATCH * _PATCH * _MAX_PATCHES / (width * height))
        shrink *= min(
            math.floor(width * shrink / _PATCH) / (width * shrink / _PATCH),
            math.floor(height * shrink / _PATCH) / (height * shrink / _PATCH),
        )
        patches = min(_MAX_PATCHES, math.ceil(width * shrink / _PATCH) * math.ceil(height * shrink / _PATCH))
    return int((patches * multiplier).to_integral_value(ROUND_CEILING))


def _tile_count(width: int, height: int) -> int:
    if max(width, height) > 2048:
        scale = 2048 / max(width, height)
        width, height = max(1, int(width * scale)), max(1, int(height * scale))
    if min(width, height) > 768:
        scale = 768 / min(width, height)
        width, height = max(1, int(width * scale)), max(1, int(height * scale))
    return math.ceil(width / 512) * math.ceil(height / 512)


def _openai(width: int | None, height: int | None, detail: str, model: str) -> tuple[int, bool]:
    """OpenAI image tokens and whether the figure is documented (not a guess)."""
    if detail not in _DETAILS:
        raise InvalidUsageError("detail", f"must be 'low', 'high' or 'auto', got {detail!r}")
    model = normalize_model(model)
    multiplier = _patch_multiplier(model)
    if multiplier is not None:
        if width is None or height is None:
            return int((_MAX_PATCHES * multiplier).to_integral_value(ROUND_CEILING)), False
        return _patch_tokens(width, height, multiplier), True
    base, tile = _tile_rates(model)
    if detail == "low":
        return base, True
    if width is None or height is None:
        return base + tile * 8, False  # 768x2048 after resizing: the most tiles any image can take
    if detail == "auto" and width <= 512 and height <= 512:
        return base, False
    return base + tile * _tile_count(width, height), True


def openai_image_tokens(width: int, height: int, detail: str = "auto", model: str = "gpt-4o") -> int:
    """Input tokens of a ``width`` x ``height`` image sent to an OpenAI ``model`` at ``detail``."""
    width, height = _check_size(width, height)
    return _openai(width, height, detail, model)[0]


def _anthropic(width: int, height: int) -> int:
    scale = min(1.0, _ANTHROPIC_MAX_EDGE / max(width, height), math.sqrt(_ANTHROPIC_MAX_PIXELS / (width * height)))
    if scale < 1.0:
        width, height = max(1, int(width * scale)), max(1, int(height * scale))
    return math.ceil(width * height / _ANTHROPIC_PIXELS_PER_TOKEN)


def anthropic_image_tokens(width: int, height: int) -> int:
    """Input tokens of a ``width`` x ``height`` image sent to Claude (after Anthropic's resizing)."""
    return _anthropic(*_check_size(width, height))


def _gemini(width: int, height: int) -> int:
    if width <= _GEMINI_SMALL and height <= _GEMINI_SMALL:
        return _GEMINI_TOKENS
    return _GEMINI_TOKENS * math.ceil(width / _GEMINI_TILE) * math.ceil(height / _GEMINI_TILE)


def gemini_image_tokens(width: int, height: int) -> int:
    """Input tokens of a ``width`` x ``height`` image sent to Gemini."""
    return _gemini(*_check_size(width, height))


def image_part_tokens(
    family: str, model: str, width: int | None, height: int | None, detail: str = "auto"
) -> tuple[int, bool]:
    """Tokens of one image for a provider ``family`` and whether the figure is documented.

    ``width``/``height`` of None mean unknown: the provider's worst case, not exact. Families without
    a published formula ("local", "other") are estimated with OpenAI's gpt-4o formula.
    """
    if family == "anthropic":
        if width is None or height is None:
            return _ANTHROPIC_MAX_PIXELS // _ANTHROPIC_PIXELS_PER_TOKEN, False
        return _anthropic(width, height), True
    if family == "google":
        if width is None or height is None:
            return _gemini(*_GEMINI_WORST_CASE), False
        return _gemini(width, height), width <= _GEMINI_SMALL and height <= _GEMINI_SMALL
    tokens, exact = _openai(width, height, detail, model if family == "openai" else "gpt-4o")
    return tokens, exact and family == "openai"


def image_tokens(
    provider: str, model: str, width: int | None = None, height: int | None = None, *, detail: str = "auto"
) -> TokenCount:
    """Tokens of one image for ``provider``/``model``; leave the size out when it is unknown."""
    if width is not None or height is not None:
        width, height = _check_size(width, height)
    family = provider_family(provider, model)
    tokens, exact = image_part_tokens(family, normalize_model(model), width, height, detail)
    return TokenCount(image=tokens, exact=exact, method=f"image:{family}")


def _seconds(seconds: float | Decimal) -> Decimal:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float | Decimal):
        raise InvalidUsageError("seconds", f"must be a number, got {type(seconds).__name__}")
    value = seconds if isinstance(seconds, Decimal) else Decimal(str(seconds))
    if not value.is_finite() or value < 0:
        raise InvalidUsageError("seconds", f"must be a finite, non-negative number, got {seconds!r}")
    return value


def _by_duration(
    rates: dict[str, tuple[Decimal, bool]], default: tuple[Decimal, bool], family: str, seconds: Decimal
) -> tuple[int, bool, Decimal]:
    rate, exact = rates.get(family, default)
    return int((seconds * rate).to_integral_value(ROUND_CEILING)), exact, rate


def audio_part_tokens(family: str, seconds: Decimal) -> tuple[int, bool]:
    """Tokens of ``seconds`` of input audio for a provider ``family`` and whether the rate is documented."""
    tokens, exact, _ = _by_duration(_AUDIO_RATES, _DEFAULT_AUDIO_RATE, family, seconds)
    return tokens, exact


def audio_tokens(provider: str, model: str, seconds: float | Decimal) -> TokenCount:
    """Input tokens of ``seconds`` of audio (Gemini: 32/s, exact; others ~10/s, estimated)."""
    family = provider_family(provider, model)
    tokens, exact, rate = _by_duration(_AUDIO_RATES, _DEFAULT_AUDIO_RATE, family, _seconds(seconds))
    return TokenCount(audio=tokens, exact=exact, method=f"audio:{family}:{rate}/s")


def video_tokens(provider: str, model: str, seconds: float | Decimal) -> TokenCount:
    """Input tokens of ``seconds`` of video, counted under ``image`` (Gemini: 263/s, exact; others estimated)."""
    family = provider_family(provider, model)
    tokens, exact, rate = _by_duration(_VIDEO_RATES, _DEFAULT_VIDEO_RATE, family, _seconds(seconds))
    return TokenCount(image=tokens, exact=exact, method=f"video:{family}:{rate}/s")
