"""Anthropic wire format: Messages (whole and streamed) and the model list."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from spendgate.testing._fake_turn import Finish, Turn, json_pieces
from spendgate.testing._fake_wire import sse
from spendgate.usage import Usage

__all__ = ["message", "message_events", "model_list", "tool_use_id"]

_STOP_REASONS: dict[Finish, str] = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def tool_use_id(request_index: int, position: int) -> str:
    """A deterministic Anthropic tool-use id."""
    return f"toolu_fake{request_index:06d}x{position}"


def message_usage(usage: Usage) -> dict[str, int]:
    """Anthropic's ``usage``: ``input_tokens`` excludes cache reads and writes, which are reported apart."""
    return {
        "input_tokens": usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "output_tokens": usage.output_tokens,
    }


def _blocks(turn: Turn, request_index: int) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if turn.text or not turn.tool_calls:
        blocks.append({"type": "text", "text": turn.text})
    blocks += [
        {
            "type": "tool_use",
            "id": call.id or tool_use_id(request_index, i),
            "name": call.name,
            "input": call.arguments_object,
        }
        for i, call in enumerate(turn.tool_calls)
    ]
    return blocks


def message(turn: Turn, *, message_id: str, request_index: int, with_usage: bool) -> dict[str, Any]:
    """A whole ``message`` object."""
    body: dict[str, Any] = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": turn.model,
        "content": _blocks(turn, request_index),
        "stop_reason": _STOP_REASONS[turn.finish],
        "stop_sequence": None,
    }
    if with_usage:
        body["usage"] = message_usage(turn.usage)
    return body


def _event(kind: str, **fields: Any) -> bytes:
    return sse({"type": kind, **fields}, event=kind)


def _block_events(turn: Turn, request_index: int) -> list[bytes]:
    frames: list[bytes] = []
    blocks = _blocks(turn, request_index)
    first_tool = len(blocks) - len(turn.tool_calls)
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            start: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in turn.pieces]
        else:
            start = {**block, "input": {}}
            arguments = turn.tool_calls[index - first_tool].arguments_json
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in json_pieces(arguments)]
        frames.append(_event("content_block_start", index=index, content_block=start))
        frames += [_event("content_block_delta", index=index, delta=delta) for delta in deltas]
        frames.append(_event("content_block_stop", index=index))
    return frames


def message_events(turn: Turn, *, message_id: str, request_index: int, with_usage: bool) -> list[bytes]:
    """The SSE frames of a streamed message: ``message_start`` (input usage), the content blocks,
    ``message_delta`` (output usage, stop reason) and ``message_stop`` last."""
    start = message(turn, message_id=message_id, request_index=request_index, with_usage=False)
    start.update(content=[], stop_reason=None)
    delta_fields: dict[str, Any] = {"delta": {"stop_reason": _STOP_REASONS[turn.finish], "stop_sequence": None}}
    if with_usage:
        start["usage"] = {**message_usage(turn.usage), "output_tokens": min(1, turn.usage.output_tokens)}
        delta_fields["usage"] = {"output_tokens": turn.usage.output_tokens}
    return [
        _event("message_start", message=start),
        *_block_events(turn, request_index),
        _event("message_delta", **delta_fields),
        _event("message_stop"),
    ]


def model_list(models: Sequence[str], created: datetime) -> dict[str, Any]:
    """Anthropic's ``GET /v1/models`` page."""
    data = [
        {"type": "model", "id": name, "display_name": name, "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ")}
        for name in models
    ]
    return {
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
