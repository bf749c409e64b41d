"""Helpers for testing code that uses spendgate: a controllable clock and a fake LLM provider.

* `FakeClock`: a clock that only moves when told to.
* `FakeUpstream`: an OpenAI- and Anthropic-compatible provider on 127.0.0.1 that answers over real
  HTTP with deterministic, correctly counted replies, and fails on request (`FakeReply`, `Fault`).

See ``docs/testing.md``.
"""

from __future__ import annotations

from spendgate.testing._clock import FakeClock
from spendgate.testing._fake_types import FakeReply, FakeRequest, FakeToolCall, Fault, IncludeUsage, ScriptedReply
from spendgate.testing._fake_upstream import DEFAULT_MODELS, FakeUpstream, Responder

__all__ = [
    "DEFAULT_MODELS",
    "FakeClock",
    "FakeReply",
    "FakeRequest",
    "FakeToolCall",
    "FakeUpstream",
    "Fault",
    "IncludeUsage",
    "Responder",
    "ScriptedReply",
]
