"""Tokens of a chat request: messages, a separate system prompt, tools and response formats.

Framing follows the OpenAI cookbook ("How to count tokens with tiktoken"): each message costs
``per_message`` (3) tokens plus the tokens of its role, a ``name`` costs ``per_name`` (1) more, and
the reply is primed with 3 (gpt-3.5-turbo-0301: 4 per message, -1 per name). Providers without a
public tokenizer reuse these constants, as an estimate.

Content may be a string or a list of parts, in OpenAI's shapes (``text``, ``image_url``,
``input_audio``, ``refusal``; Responses' ``input_text``/``input_image``) or Anthropic's (``text``,
``image``, ``tool_use``, ``tool_result``, ``thinking``, ``document``). A part of a type we do not know
is counted as the tokens of its compact JSON and marked estimated. Anthropic ``cache_control`` marks
the end of a cache-eligible prefix, counted in the order Anthropic caches: tools, system, messages.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from spendgate.errors import InvalidUsageError
from spendgate.tokens._count import Breakdown, TokenCount
from spendgate.tokens._media import audio_part_tokens, image_part_tokens
from spendgate.tokens._probe import HEADER_CHARS, decode_base64, image_size, parse_data_url, wav_seconds
from spendgate.tokens._profiles import Profile
from spendgate.tokens._tools import count_response_format, count_tool_calls, count_tools
from spendgate.tokens._validate import as_list, mapping, string, to_json

__all__ = ["count_request"]

CountText = Callable[[str], int]

#: Bytes per second assumed for compressed audio whose duration we cannot read (128 kbit/s).
_COMPRESSED_AUDIO_BYTES_PER_SECOND = Decimal(16_000)
_TEXT_FIELDS = {"text": "text", "input_text": "text", "output_text": "text", "refusal": "refusal"}


def count_request(
    profile: Profile,
    count: CountText,
    *,
    text: object = None,
    messages: object = None,
    tools: object = None,
    system: object = None,
    response_format: object = None,
) -> TokenCount:
    """Count a whole request; see :meth:`spendgate.tokens.TokenCounter.count`."""
    out = Breakdown(exact=profile.exact)
    if tools is not None:
        count_tools(out, count, tools, profile.func_init)
    if system is not None:
        out.overhead += profile.per_message + count("system")
        _count_content(out, profile, count, system, "system")
    if messages is not None:
        for i, message in enumerate(as_list(messages, "messages", "messages")):
            _count_message(out, profile, count, message, i)
    if messages is not None or system is not None:
        out.overhead += profile.reply
    if response_format is not None:
        count_response_format(out, count, response_format)
    if text is not None:
        out.text += count(string(text, "text"))
    return out.freeze(profile.method)


def _count_message(out: Breakdown, profile: Profile, count: CountText, message: object, i: int) -> None:
    if type(message) is not dict and not isinstance(message, Mapping):
        raise InvalidUsageError(f"messages[{i}]", f"must be a mapping, got {type(message).__name__}")
    role = message.get("role")
    if type(role) is not str:
        raise InvalidUsageError(f"messages[{i}].role", f"must be a string, got {type(role).__name__}")
    out.overhead += profile.per_message + count(role)
    content = message.get("content")
    if type(content) is str:
        out.text += count(content)
    elif content is not None:
        _count_content(out, profile, count, content, f"messages[{i}].content")
    if len(message) > 2:  # anything besides role and content
        _count_message_extras(out, profile, count, message, i, role)


def _count_message_extras(
    out: Breakdown, profile: Profile, count: CountText, message: Mapping[str, Any], i: int, role: str
) -> None:
    name = message.get("name")
    if name is not None:
        out.text += count(string(name, f"messages[{i}].name"))
        out.overhead += profile.per_name
    for key in ("tool_calls", "function_call"):
        calls = message.get(key)
        if calls is not None:
            count_tool_calls(out, count, calls, f"messages[{i}].{key}")
    refusal = message.get("refusal")
    if refusal is not None:
        out.text += count(string(refusal, f"messages[{i}].refusal"))
    if role in ("tool", "function"):
        out.exact = False  # how tool results are framed is not documented


def _count_content(out: Breakdown, profile: Profile, count: CountText, content: object, where: str) -> None:
    """Count a string or a list of content parts."""
    if isinstance(content, str):
        out.text += count(content)
        return
    for j, item in enumerate(as_list(content, where, "content parts")):
        here = f"{where}[{j}]"
        part = mapping(item, here)
        kind = string(part.get("type"), f"{here}.type")
        field = _TEXT_FIELDS.get(kind)
        if field is not None:
            out.text += count(string(part.get(field), f"{here}.{field}"))
        elif kind in ("image_url", "input_image", "image"):
            _count_image(out, profile, part, kind, here)
        elif kind == "input_audio":
            _count_audio(out, profile, part, here)
        elif kind == "tool_use":
            out.tool += count(string(part.get("name"), f"{here}.name")) + count(to_json(part.get("input", {})))
            out.exact = False
        elif kind == "tool_result":
            result = part.get("content")
            if result is not None:
                _count_content(out, profile, count, result, f"{here}.content")
            out.exact = False
        elif kind == "thinking":
            out.text += count(string(part.get("thinking"), f"{here}.thinking"))
        elif kind == "document":
            _count_document(out, profile, count, part, here)
        else:
            _count_unknown(out, count, part)
        if "cache_control" in part:
            out.cache_breakpoint()


def _count_unknown(out: Breakdown, count: CountText, part: Mapping[str, Any]) -> None:
    """A part we have no rule for: the tokens of its compact JSON, estimated."""
    out.text += count(to_json({k: v for k, v in part.items() if k not in ("type", "cache_control")}))
    out.exact = False


def _count_document(out: Breakdown, profile: Profile, count: CountText, part: Mapping[str, Any], where: str) -> None:
    """An Anthropic document: a text or content source is counted as such, anything else (PDF) as JSON."""
    source = part.get("source")
    kind = source.get("type") if isinstance(source, Mapping) else None
    if kind == "text" and isinstance(source, Mapping):
        out.text += count(string(source.get("data"), f"{where}.source.data"))
    elif kind == "content" and isinstance(source, Mapping):
        _count_content(out, profile, count, source.get("content"), f"{where}.source.content")
    else:
        _count_unknown(out, count, part)
    out.exact = False


def _image_bytes(payload: str) -> tuple[int, int] | None:
    """Width and height of a base64 image, decoding only its head when that is enough."""
    head = decode_base64(payload, HEADER_CHARS)
    size = image_size(head) if head is not None else None
    if size is None and len(payload) > HEADER_CHARS:
        whole = decode_base64(payload)
        size = image_size(whole) if whole is not None else None
    return size


def _count_image(out: Breakdown, profile: Profile, part: Mapping[str, Any], kind: str, where: str) -> None:
    detail = "auto"
    payload: str | None = None
    if kind == "image":  # Anthropic: {"source": {"type": "base64", "data": ...}} or a URL/file source
        source = mapping(part.get("source"), f"{where}.source")
        if source.get("type") == "base64":
            payload = string(source.get("data"), f"{where}.source.data")
    else:  # OpenAI: {"image_url": {"url", "detail"}} or {"image_url": "..."}; Responses: {"image_url", "detail"}
        spec = part.get("image_url")
        if isinstance(spec, Mapping):
            url = string(spec.get("url"), f"{where}.image_url.url")
            detail = string(spec.get("detail"), f"{where}.image_url.detail", default="auto")
        else:
            url = string(spec, f"{where}.image_url", default="")
            detail = string(part.get("detail"), f"{where}.detail", default="auto")
        parsed = parse_data_url(url)
        if parsed is not None:
            payload = parsed[1]
    size = _image_bytes(payload) if payload else None
    width, height = size if size is not None else (None, None)
    try:
        tokens, exact = image_part_tokens(profile.family, profile.model, width, height, detail.lower())
    except InvalidUsageError as exc:
        raise InvalidUsageError(f"{where}.detail", exc.message) from None
    out.image += tokens
    out.exact = out.exact and exact


def _count_audio(out: Breakdown, profile: Profile, part: Mapping[str, Any], where: str) -> None:
    spec = mapping(part.get("input_audio"), f"{where}.input_audio")
    payload = string(spec.get("data"), f"{where}.input_audio.data")
    audio_format = string(spec.get("format"), f"{where}.input_audio.format", default="").lower()
    data = decode_base64(payload) or b""
    seconds = wav_seconds(data) if audio_format in ("wav", "") else None
    if seconds is None:
        seconds = Decimal(len(data)) / _COMPRESSED_AUDIO_BYTES_PER_SECOND
    tokens, _ = audio_part_tokens(profile.family, seconds)
    out.audio += tokens
    out.exact = False  # chat audio is an estimate on every provider
