"""Prices and exact Decimal costs: the genai-prices catalog, your overrides, fallbacks and currencies.

>>> from spendgate.usage import Usage
>>> PriceBook().cost("openai", "gpt-4o", Usage(input_tokens=1000, output_tokens=100)).total
Decimal('0.0035000')

See docs/pricing.md for the override file format, versions, fallbacks, currencies and service tiers.
"""

from __future__ import annotations

from spendgate.pricing._book import PriceBook
from spendgate.pricing._breakdown import CostBreakdown, ModelPriceInfo
from spendgate.pricing._loader import PriceFile, load_overrides
from spendgate.pricing._overrides import ContextTier, FallbackPrice, PriceOverride, TimeOfDayRule, VolumeTier

__all__ = [
    "ContextTier",
    "CostBreakdown",
    "FallbackPrice",
    "ModelPriceInfo",
    "PriceBook",
    "PriceFile",
    "PriceOverride",
    "TimeOfDayRule",
    "VolumeTier",
    "load_overrides",
]
