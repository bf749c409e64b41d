"""Tokens of tool definitions, tool calls and structured-output response formats.

Tool definitions follow the OpenAI cookbook's ``num_tokens_for_tools``: per function ``func_init``
(7 on o200k models, 10 on cl100k models) plus the tokens of ``"name:description"``; per parameter
object ``prop_init`` (3); per property ``prop_key`` (3) plus ``"key:type:description"``; per enum
``enum_init`` (-3) plus ``enum_item`` (3) and the item's tokens; ``func_end`` (12) once. The cookbook
verified this against the API for flat schemas, so those stay exact; anything it does not cover
(nested objects, ``items``, formats, ``$defs``...) is added as compact JSON and marked estimated.

OpenAI (``{"type": "function", "function": {...}}``), legacy ``functions`` entries and Anthropic tools
(``{"name", "description", "input_schema"}``) are all accepted. Tool calls in assistant messages and
response-format schemas are counted as the tokens of their text and marked estimated: OpenAI does
not document how it renders them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from spendgate.errors import InvalidUsageError
from spendgate.tokens._count import Breakdown
from spendgate.tokens._validate import as_list, is_list, mapping, string, to_json

__all__ = ["count_response_format", "count_tool_calls", "count_tools"]

CountText = Callable[[str], int]

PROP_INIT = 3
PROP_KEY = 3
ENUM_INIT = -3
ENUM_ITEM = 3
FUNC_END = 12

_COOKBOOK_PROPERTY_KEYS = frozenset({"type", "description", "enum"})
_COOKBOOK_SCHEMA_KEYS = frozenset({"type", "properties", "required", "additionalProperties"})


def _schema_tokens(out: Breakdown, count: CountText, schema: Mapping[str, Any], where: str) -> int:
    """The cookbook's property tokens of an object schema, plus compact JSON of what it does not cover."""
    tokens = 0
    extra = {k: v for k, v in schema.items() if k not in _COOKBOOK_SCHEMA_KEYS}
    if extra:
        out.exact = False
        tokens += count(to_json(extra))
    properties = schema.get("properties")
    if not properties:
        return tokens
    properties = mapping(properties, f"{where}.properties")
    tokens += PROP_INIT
    for key, value in properties.items():
        here = f"{where}.properties.{key}"
        prop = mapping(value, here)
        tokens += PROP_KEY
        kind = prop.get("type", "")
        if is_list(kind):
            out.exact = False
            kind = "|".join(map(str, kind))
        enum = prop.get("enum")
        if enum is not None:
            tokens += ENUM_INIT
            for item in as_list(enum, f"{here}.enum", "values"):
                tokens += ENUM_ITEM + count(item if isinstance(item, str) else to_json(item))
        description = string(prop.get("description"), f"{here}.description", default="")
        tokens += count(f"{key}:{kind}:{description.removesuffix('.')}")
        if any(k not in _COOKBOOK_PROPERTY_KEYS for k in prop):
            nested = {k: v for k, v in prop.items() if k not in _COOKBOOK_PROPERTY_KEYS}
            tokens += _schema_tokens(out, count, nested, here)
            out.exact = False
    return tokens


def count_tools(out: Breakdown, count: CountText, tools: object, func_init: int) -> None:
    """Add the tokens of tool definitions to ``out.tool``."""
    tools = as_list(tools, "tools", "tool definitions")
    if not tools:
        return
    for i, item in enumerate(tools):
        where = f"tools[{i}]"
        tool = mapping(item, where)
        if "function" in tool:
            where += ".function"
            function = mapping(tool["function"], where)
        else:
            function = tool
        name = string(function.get("name"), f"{where}.name")
        description = string(function.get("description"), f"{where}.description", default="")
        out.tool += func_init + count(f"{name}:{description.removesuffix('.')}")
        params = function.get("parameters", function.get("input_schema"))
        if params is not None:
            out.tool += _schema_tokens(out, count, mapping(params, f"{where}.parameters"), f"{where}.parameters")
        elif tool.get("type", "function") != "function":
            out.exact = False  # a provider's built-in tool: its definition is not sent as text
        if "cache_control" in tool:
            out.cache_breakpoint()
    out.tool += FUNC_END


def count_tool_calls(out: Breakdown, count: CountText, calls: object, where: str) -> None:
    """Add the tokens of an assistant message's ``tool_calls`` (or legacy ``function_call``) to ``out.tool``."""
    if isinstance(calls, Mapping):  # legacy function_call: one call, no wrapper
        calls = [{"function": calls}]
    for k, call in enumerate(as_list(calls, where, "tool calls")):
        here = f"{where}[{k}]"
        function = mapping(mapping(call, here).get("function"), f"{here}.function")
        name = string(function.get("name"), f"{here}.function.name")
        arguments = function.get("arguments", "")
        if not isinstance(arguments, str):
            arguments = to_json(arguments)
        out.tool += count(name) + count(arguments)
    out.exact = False


def count_response_format(out: Breakdown, count: CountText, response_format: object) -> None:
    """Add the tokens of a ``json_schema`` response format's schema to ``out.schema``."""
    response_format = mapping(response_format, "response_format")
    kind = response_format.get("type")
    if kind in ("text", "json_object"):
        return
    if kind != "json_schema":
        raise InvalidUsageError("response_format.type", f"must be 'text', 'json_object' or 'json_schema', got {kind!r}")
    if "json_schema" in response_format:  # Chat Completions nests the schema; the Responses API does not
        spec = mapping(response_format["json_schema"], "response_format.json_schema")
        where = "response_format.json_schema.schema"
    else:
        spec, where = response_format, "response_format.schema"
    schema = mapping(spec.get("schema"), where)
    out.schema += count(to_json(schema))
    out.exact = False
