"""Server-sent events: split an upstream byte stream into whole events, and build error events (pure).

The gateway forwards each upstream event's bytes unchanged as soon as the event is complete; it only
parses the ``data:`` JSON to count usage and to hide the usage chunk a client did not ask for.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["SseSplitter", "error_event", "event_data"]

_BOUNDARY = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE = re.compile(r"\r\n|\n|\r")


class SseSplitter:
    """Feed bytes as they arrive; get back each complete event (with its blank-line terminator)."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        events: list[bytes] = []
        while (match := _BOUNDARY.search(self._buffer)) is not None:
            events.append(self._buffer[: match.end()])
            self._buffer = self._buffer[match.end() :]
        return events

    def rest(self) -> bytes:
        """What came after the last complete event (a stream cut short mid-event)."""
        rest, self._buffer = self._buffer, b""
        return rest


def event_data(event: bytes) -> tuple[str | None, str | None]:
    """The event's name (``event:``) and its data (the ``data:`` lines joined), or None for each."""
    name: str | None = None
    data: list[str] = []
    for line in _LINE.split(event.decode("utf-8", errors="replace")):
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
    return name, ("\n".join(data) if data else None)


def error_event(wire: str, error: dict[str, Any]) -> bytes:
    """An error the client's SDK raises mid-stream: OpenAI ``data: {"error": …}``, Anthropic ``event: error``."""
    if wire == "anthropic":
        payload = json.dumps({"type": "error", "error": error})
        return f"event: error\ndata: {payload}\n\n".encode()
    return f"data: {json.dumps({'error': error})}\n\n".encode()
