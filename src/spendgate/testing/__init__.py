"""Helpers for testing code that uses spendgate: a controllable clock (more to come: fake upstreams)."""

from __future__ import annotations

from spendgate.testing._clock import FakeClock

__all__ = ["FakeClock"]
