"""Canonical, stable hashes of conversations: what a client echoes back must hash the same.

A conversation is cut into *units*, one per message, each reduced to what survives a client
echoing it: role, text, tool calls (id, name, arguments as parsed JSON) and the tool call it
answers. Dropped: fields clients add or lose (``refusal``, ``annotations``, ``audio``,
``name``, ``reasoning_content``, ...), the None/""/missing/[text parts] distinction, outer
whitespace, and argument formatting. Chat messages and Responses API input items share the
same units: consecutive assistant-side items (a message item and its ``function_call``
items) form one unit, as one chat assistant message would. ``reasoning`` items are skipped.

The hashes form a chain (``h_i = H(h_{i-1} + unit_i)``), so every prefix of a conversation
has a hash and all of them cost one pass. Text prompts (``/v1/completions``, ``/generate``)
chain over fixed blocks of :data:`TEXT_BLOCK` characters instead.
"""

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kvbaton.middleware.protocol.values import get, sequence, text

__all__ = ["TEXT_BLOCK", "chain", "message_units", "tail_key", "text_chain"]

TEXT_BLOCK = 256
"""Characters per block of a text prompt's hash chain."""

_CHAT_SEED = b"kvbaton/chat/1"
_TEXT_SEED = b"kvbaton/text/1"
_TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text"})
_SKIPPED_ITEMS = frozenset({"reasoning"})
_INSTRUCTION_ROLES = frozenset({"system", "developer"})


@dataclass(slots=True)
class _Unit:
    role: str
    text: str = ""
    calls: list[list[str]] = field(default_factory=list)
    answers: str = ""

    def encode(self) -> bytes:
        return _stable([self.role, self.text.strip(), self.calls, self.answers]).encode()


def message_units(messages: Any, *, without_instructions: bool = False) -> list[bytes]:
    """The canonical encoding of each unit of chat messages or Responses input items.

    ``without_instructions`` drops system and developer messages: what is left is the
    dialogue, which stays the same when an agent hands the conversation to another agent
    with other instructions (see :mod:`.conversation`).
    """
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    units: list[_Unit] = []
    for message in sequence(messages):
        unit = _unit(message)
        if unit is None or (without_instructions and unit.role in _INSTRUCTION_ROLES):
            continue
        if units and unit.role == "assistant" and units[-1].role == "assistant":
            units[-1].text += unit.text
            units[-1].calls.extend(unit.calls)
        else:
            units.append(unit)
    return [unit.encode() for unit in units]


def chain(units: list[bytes]) -> list[bytes]:
    """``result[i]`` is the hash of ``units[: i + 1]``."""
    hashes, current = [], _CHAT_SEED
    for unit in units:
        current = _hash(current + unit)
        hashes.append(current)
    return hashes


def text_chain(prompt: str) -> list[bytes]:
    """``result[k]`` is the hash of the first ``k * TEXT_BLOCK`` characters (k from 0)."""
    hashes = [_TEXT_SEED]
    for start in range(TEXT_BLOCK, len(prompt) + 1, TEXT_BLOCK):
        block = prompt[start - TEXT_BLOCK : start]
        hashes.append(_hash(hashes[-1] + block.encode("utf-8", "surrogatepass")))
    return hashes


def tail_key(block_hash: bytes, tail: str) -> bytes:
    """The hash of a text that is ``block_hash``'s blocks followed by ``tail``."""
    return _hash(block_hash + b"|" + tail.encode("utf-8", "surrogatepass"))


def _hash(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def _unit(message: Any) -> _Unit | None:
    if not isinstance(message, Mapping):
        return _Unit("?", _stable(message))
    kind = message.get("type")
    if kind is None or kind == "message":
        return _message_unit(message)
    if kind in _SKIPPED_ITEMS:
        return None
    if kind == "function_call":
        return _Unit("assistant", calls=[_call(message.get("call_id"), message)])
    if kind == "function_call_output":
        return _Unit("tool", _content(message.get("output")), answers=_id(message.get("call_id")))
    return _Unit(f"item:{_id(kind)}", answers=_id(message.get("call_id") or message.get("id")))


def _message_unit(message: Mapping[str, Any]) -> _Unit:
    calls = [
        _call(call.get("id"), call.get("function"))
        for call in sequence(message.get("tool_calls"))
        if isinstance(call, Mapping)
    ]
    legacy = message.get("function_call")
    if isinstance(legacy, Mapping):
        calls.append(_call("", legacy))
    return _Unit(
        _id(message.get("role")),
        _content(message.get("content")),
        calls,
        _id(message.get("tool_call_id")),
    )


def _call(call_id: Any, function: Any) -> list[str]:
    return [_id(call_id), _id(get(function, "name")), _arguments(get(function, "arguments"))]


def _id(value: Any) -> str:
    return text(value) or ""


def _content(content: Any) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        return "".join(_part(part) for part in content)
    return _stable(content)


def _part(part: Any) -> str:
    if isinstance(part, str):
        return part
    body = part.get("text") if isinstance(part, Mapping) else None
    if isinstance(body, str) and part.get("type", "text") in _TEXT_PART_TYPES:
        return body
    return _stable(part)


def _arguments(arguments: Any) -> str:
    """Arguments as parsed JSON, so re-serialising clients still match; raw if not JSON."""
    if not isinstance(arguments, str):
        return _stable(arguments)
    try:
        return _stable(json.loads(arguments))
    except (ValueError, RecursionError):
        return arguments.strip()


def _stable(value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)
    except (TypeError, ValueError, RecursionError):
        return f"<{type(value).__name__}>"
