"""OpenAI wire format: chat completions (whole and streamed), embeddings and the model list."""

from __future__ import annotations

import base64
import hashlib
import math
import random
import struct
from collections.abc import Sequence
from typing import Any

from spendgate.testing._fake_turn import Turn, json_pieces
from spendgate.testing._fake_wire import sse
from spendgate.usage import Usage

__all__ = ["DONE", "chat_chunks", "chat_completion", "embedding_list", "embedding_vector", "model_list", "tool_call_id"]

#: The frame that ends every OpenAI stream.
DONE = sse("[DONE]")

_FINGERPRINT = "fp_fake"


def tool_call_id(request_index: int, position: int) -> str:
    """A deterministic OpenAI tool-call id."""
    return f"call_fake{request_index:06d}x{position}"


def chat_usage(usage: Usage) -> dict[str, Any]:
    """OpenAI's ``usage`` object: ``prompt_tokens`` includes cached tokens, ``completion_tokens`` reasoning."""
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens, "audio_tokens": usage.input_audio_tokens},
        "completion_tokens_details": {
            "reasoning_tokens": usage.reasoning_tokens,
            "audio_tokens": usage.output_audio_tokens,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _tool_calls(turn: Turn, request_index: int) -> list[dict[str, Any]]:
    return [
        {
            "id": call.id or tool_call_id(request_index, i),
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments_json},
        }
        for i, call in enumerate(turn.tool_calls)
    ]


def _head(turn: Turn, completion_id: str, created: int, kind: str) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": kind,
        "created": created,
        "model": turn.model,
        "service_tier": "default",
        "system_fingerprint": _FINGERPRINT,
    }


def chat_completion(
    turn: Turn, *, completion_id: str, created: int, request_index: int, choices: int, with_usage: bool
) -> dict[str, Any]:
    """A whole ``chat.completion`` object."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": turn.text if turn.text or not turn.tool_calls else None,
        "refusal": None,
        "annotations": [],
    }
    if turn.tool_calls:
        message["tool_calls"] = _tool_calls(turn, request_index)
    body = _head(turn, completion_id, created, "chat.completion")
    body["choices"] = [
        {"index": i, "message": message, "logprobs": None, "finish_reason": turn.finish} for i in range(choices)
    ]
    if with_usage:
        body["usage"] = chat_usage(turn.usage)
    return body


def _choice_deltas(turn: Turn, request_index: int) -> list[tuple[dict[str, Any], str | None]]:
    """The (delta, finish_reason) pairs of one choice, in order."""
    first: dict[str, Any] = {"role": "assistant", "content": "" if turn.text or not turn.tool_calls else None}
    first["refusal"] = None
    deltas: list[tuple[dict[str, Any], str | None]] = [(first, None)]
    deltas += [({"content": piece}, None) for piece in turn.pieces]
    for i, call in enumerate(turn.tool_calls):
        head = {"index": i, "id": call.id or tool_call_id(request_index, i), "type": "function"}
        deltas.append(({"tool_calls": [{**head, "function": {"name": call.name, "arguments": ""}}]}, None))
        deltas += [
            ({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}, None)
            for piece in json_pieces(call.arguments_json)
        ]
    deltas.append(({}, turn.finish))
    return deltas


def chat_chunks(
    turn: Turn,
    *,
    completion_id: str,
    created: int,
    request_index: int,
    choices: int,
    usage_chunk: bool,
    usage_fields: bool,
) -> list[bytes]:
    """The SSE frames of a streamed chat completion, ``[DONE]`` last.

    ``usage_chunk`` adds OpenAI's final chunk with empty ``choices`` and the ``usage``;
    ``usage_fields`` gives every other chunk ``"usage": null`` (what OpenAI does when usage is asked for).
    """
    head = _head(turn, completion_id, created, "chat.completion.chunk")
    frames: list[bytes] = []
    for index in range(choices):
        for delta, finish in _choice_deltas(turn, request_index):
            chunk = {**head, "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            if usage_fields:
                chunk["usage"] = None
            frames.append(sse(chunk))
    if usage_chunk:
        frames.append(sse({**head, "choices": [], "usage": chat_usage(turn.usage)}))
    frames.append(DONE)
    return frames


def embedding_vector(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector for ``text`` (equal texts, equal vectors)."""
    rng = random.Random(hashlib.sha256(text.encode()).digest())
    values = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def embedding_list(
    inputs: Sequence[str], *, model: str, dimensions: int, base64_encoded: bool, usage: Usage | None
) -> dict[str, Any]:
    """An embeddings ``list``; vectors as float lists or, for ``encoding_format="base64"``, packed float32."""
    data = []
    for index, text in enumerate(inputs):
        vector = embedding_vector(text, dimensions)
        embedding: list[float] | str = (
            base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if base64_encoded else vector
        )
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    body: dict[str, Any] = {"object": "list", "data": data, "model": model}
    if usage is not None:
        body["usage"] = {"prompt_tokens": usage.input_tokens, "total_tokens": usage.input_tokens}
    return body


def model_list(models: Sequence[str], created: int) -> dict[str, Any]:
    """OpenAI's ``GET /v1/models`` list."""
    return {
        "object": "list",
        "data": [
            {
                "id": name,
                "object": "model",
                "created": created,
                "owned_by": "anthropic" if "claude" in name else "openai",
            }
            for name in models
        ],
    }
