"""Meter LLM calls where they are made: instrument an OpenAI or Anthropic SDK client, or track a function.

* :func:`instrument` patches one OpenAI/Anthropic client instance (sync or async) so every call is
  authorized against the budgets, then settled with the provider-reported usage (streams too).
* :func:`track` decorates any function (sync or async) that returns a provider response.

See ``docs/integrations.md``.
"""

from __future__ import annotations

from spendgate.integrations._instrument import instrument, uninstrument
from spendgate.integrations._streams import AsyncMeteredStream, MeteredStream
from spendgate.integrations._track import track

__all__ = ["AsyncMeteredStream", "MeteredStream", "instrument", "track", "uninstrument"]
