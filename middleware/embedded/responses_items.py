"""The Responses API's shapes, mapped onto the engine's chat view and back.

The engine thinks in chat messages (`kvbaton.middleware.engine.replies.chat_reply`,
`tokens.render_chat`); the Responses API speaks in input and output *items*. Inbound:
``instructions`` become a system message, ``message`` items chat messages, consecutive
``function_call`` items one assistant message with ``tool_calls``, ``function_call_output``
items ``tool`` messages; ``reasoning`` and other item types add nothing the engine reads.
Outbound: a reply is one ``message`` item with an ``output_text`` part, or one
``function_call`` item per tool call. Shapes follow ``openai.types.responses``.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..engine import Reply
from .wire import HoldParams

__all__ = [
    "ResponseStore",
    "ResponsesRequest",
    "chat_messages",
    "chat_tool_choice",
    "chat_tools",
    "conversation_after",
    "function_call_id",
    "function_call_item",
    "message_item",
    "output_items",
    "response_usage",
    "with_system",
]


class ResponsesRequest(BaseModel):
    """A ``POST /v1/responses`` body; unknown fields are ignored, as the real servers do."""

    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    input: str | list[dict[str, Any]] = Field(min_length=1)
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    previous_response_id: str | None = None
    stream: bool = False
    temperature: float | None = None
    top_p: float | None = None
    metadata: dict[str, Any] | None = None
    priority: int | None = None
    rid: str | None = None
    kvbaton_hold: HoldParams | None = None


class ResponseStore:
    """Recent responses' conversations (chat messages, reply included), by response id,
    so that a request with ``previous_response_id`` continues them. Bounded, LRU."""

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()

    def put(self, response_id: str, conversation: list[dict[str, Any]]) -> None:
        self._items[response_id] = conversation
        self._items.move_to_end(response_id)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def get(self, response_id: str) -> list[dict[str, Any]] | None:
        return self._items.get(response_id)


# -- inbound ----------------------------------------------------------------------------


def chat_messages(body: ResponsesRequest) -> list[dict[str, Any]]:
    """The request's input as chat messages, without ``instructions`` (see `with_system`)."""
    if isinstance(body.input, str):
        return [{"role": "user", "content": body.input}]
    messages: list[dict[str, Any]] = []
    for item in body.input:
        message = _message_of(item)
        if message is None:
            continue
        previous = messages[-1] if messages else None
        if message.get("tool_calls") and previous is not None and _open_call_turn(previous):
            previous["tool_calls"].extend(message["tool_calls"])
        else:
            messages.append(message)
    return messages


def with_system(instructions: str | None, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"role": "system", "content": instructions}, *messages] if instructions else messages


def chat_tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Function tools in chat shape; built-in tools (web search, ...) are not offered."""
    functions = [
        {
            "type": "function",
            "function": {
                "name": tool["name"],
                "description": tool.get("description"),
                "parameters": tool.get("parameters") or {"type": "object", "properties": {}},
            },
        }
        for tool in tools or ()
        if tool.get("type") == "function" and isinstance(tool.get("name"), str)
    ]
    return functions or None


def chat_tool_choice(choice: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
    """``{"type": "function", "name": N}`` in chat's ``{"function": {"name": N}}`` shape."""
    if isinstance(choice, dict):
        if choice.get("type") == "function" and isinstance(choice.get("name"), str):
            return {"type": "function", "function": {"name": choice["name"]}}
        return "auto"  # built-in tool or allowed_tools: the engine picks among functions
    return choice


def _message_of(item: dict[str, Any]) -> dict[str, Any] | None:
    match item.get("type"):
        case None | "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                return None
            return {"role": role, "content": _text_of(item.get("content"))}
        case "function_call":
            call = {"name": item.get("name", ""), "arguments": item.get("arguments", "{}")}
            tool_call = {"id": item.get("call_id"), "type": "function", "function": call}
            return {"role": "assistant", "content": None, "tool_calls": [tool_call]}
        case "function_call_output":
            output = item.get("output")
            content = output if isinstance(output, str) else _text_of(output)
            return {"role": "tool", "tool_call_id": item.get("call_id"), "content": content}
        case _:
            return None


def _open_call_turn(message: dict[str, Any]) -> bool:
    return message.get("role") == "assistant" and bool(message.get("tool_calls"))


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else []
    return "".join(
        part["text"]
        for part in parts
        if isinstance(part, dict) and isinstance(part.get("text"), str)
    )


# -- outbound ---------------------------------------------------------------------------


def message_item(
    text: str, status: str = "completed", item_id: str | None = None
) -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {
        "type": "message",
        "id": item_id or f"msg_{uuid.uuid4().hex}",
        "role": "assistant",
        "status": status,
        "content": [] if status == "in_progress" else content,
    }


def function_call_item(
    call_id: str, name: str, arguments: str, status: str = "completed"
) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": function_call_id(call_id),
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def function_call_id(call_id: str) -> str:
    """The output item id of the function call ``call_id`` (``call_x`` → ``fc_x``)."""
    return f"fc_{call_id.removeprefix('call_')}"


def output_items(reply: Reply, completed_tokens: int, finished: bool) -> list[dict[str, Any]]:
    """What a reply adds: its tool calls if it ended as one, else the text generated."""
    if reply.tool_calls and finished:
        return [function_call_item(c.id, c.name, c.arguments) for c in reply.tool_calls]
    text = "".join(reply.pieces[:completed_tokens])
    return [message_item(text, "completed" if finished else "incomplete")]


def response_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """The engine's chat ``usage`` in Responses field names."""
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens", 0) if isinstance(details, dict) else 0
    return {
        "input_tokens": usage["prompt_tokens"],
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": usage["completion_tokens"],
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage["total_tokens"],
    }


def conversation_after(
    messages: list[dict[str, Any]], items: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``messages`` followed by the output ``items`` as chat messages (for the store)."""
    body = ResponsesRequest.model_construct(input=items)
    return [*messages, *chat_messages(body)]
