"""Tool pauses, seen in the traffic: the calls a reply asks for and the results a request brings.

A pause starts at the last byte of a reply that asks for tool calls and ends when a request
arrives carrying their results.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kvbaton.middleware.protocol.routes import Route, route_of
from kvbaton.middleware.protocol.values import get, sequence, text

__all__ = ["ToolCall", "requested_tool_calls", "returned_tool_call_ids"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool call a reply asked for. ``id`` is ``""`` when the engine sent none."""

    id: str
    name: str
    arguments: str = ""


def requested_tool_calls(route: str, response_json: Any) -> list[ToolCall]:
    """Chat ``choices[0].message.tool_calls`` or Responses ``function_call`` output items."""
    match route_of(route):
        case Route.CHAT:
            calls = get(response_json, "choices", 0, "message", "tool_calls")
            return [c for c in map(_chat_call, sequence(calls)) if c is not None]
        case Route.RESPONSES:
            items = sequence(get(response_json, "output"))
            return [c for c in map(_responses_call, items) if c is not None]
        case _:
            return []


def returned_tool_call_ids(route: str, body: Any) -> list[str]:
    """Ids of the tool results a request carries after the model's last turn.

    Chat: ``role: "tool"`` messages after the last assistant message. Responses:
    ``function_call_output`` items after the last assistant-side item (all of them when
    the input continues a ``previous_response_id`` and so holds no assistant item).
    """
    match route_of(route):
        case Route.CHAT:
            messages = sequence(get(body, "messages"))
            tail = messages[_after_last(messages, _is_assistant_message) :]
            return _ids(tail, lambda m: get(m, "role") == "tool", "tool_call_id")
        case Route.RESPONSES:
            items = sequence(get(body, "input"))
            tail = items[_after_last(items, _is_assistant_item) :]
            return _ids(tail, lambda i: get(i, "type") == "function_call_output", "call_id")
        case _:
            return []


def _chat_call(call: Any) -> ToolCall | None:
    name = text(get(call, "function", "name"))
    if name is None:
        return None
    arguments = get(call, "function", "arguments")
    return ToolCall(text(get(call, "id")) or "", name, _str(arguments))


def _responses_call(item: Any) -> ToolCall | None:
    name = text(get(item, "name"))
    if get(item, "type") != "function_call" or name is None:
        return None
    return ToolCall(text(get(item, "call_id")) or "", name, _str(get(item, "arguments")))


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _is_assistant_message(message: Any) -> bool:
    return bool(get(message, "role") == "assistant")


def _is_assistant_item(item: Any) -> bool:
    kind = get(item, "type")
    return kind == "function_call" or (kind in ("message", None) and _is_assistant_message(item))


def _after_last(items: list[Any], test: Callable[[Any], bool]) -> int:
    for index in range(len(items) - 1, -1, -1):
        if test(items[index]):
            return index + 1
    return 0


def _ids(items: list[Any], test: Callable[[Any], bool], key: str) -> list[str]:
    found = (text(get(item, key)) for item in items if isinstance(item, Mapping) and test(item))
    return [value for value in found if value is not None]
