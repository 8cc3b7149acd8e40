"""Deterministic synthetic replies: text that says it is synthetic, and valid tool calls.

Everything is a function of the request (a hash of the messages or prompt), so the same
conversation always gets the same reply, and an agent's tool loop always ends: the number of
tool rounds after each user message is 1-4, picked by a hash of the first user message.
Token counts use `tokens`, so ``reply.token_ids`` are exactly what the engine generates.
"""

from __future__ import annotations

import hashlib
import json
import random
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from . import tokens
from .schema_values import value_for

__all__ = ["SYNTHETIC_MARK", "Reply", "ToolCall", "chat_reply", "text_reply"]

SYNTHETIC_MARK = "[kvbaton synthetic reply]"

FinishReason = Literal["stop", "length", "tool_calls"]

_WORDS = (
    "agent", "cache", "prefix", "token", "batch", "queue", "tool", "call", "plan", "step",
    "graph", "node", "result", "value", "state", "check", "merge", "route", "warm", "pin",
    "hold", "evict", "reply", "answer", "summary", "draft", "review", "search", "fetch",
    "update", "report", "the", "a", "of", "to", "and", "with", "for", "on", "in", "then",
    "next", "first", "last", "each", "all",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # a JSON object, serialised


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply and the exact token pieces the engine generates for it.

    ``pieces`` render the assistant body (content, then tool calls) as `tokens` cuts it;
    ``len(pieces)`` is the completion token count.
    """

    content: str
    tool_calls: tuple[ToolCall, ...]
    finish_reason: FinishReason
    pieces: tuple[str, ...]
    stop_matched: str | None = None

    @property
    def token_ids(self) -> list[int]:
        return [tokens.token_id(p) for p in self.pieces]

    @property
    def text(self) -> str:
        """The generated text (the rendered body, tool calls included)."""
        return "".join(self.pieces)


def chat_reply(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None = None,
    tool_choice: str | Mapping[str, Any] | None = None,
    max_tokens: int | None = None,
    ignore_eos: bool = False,
) -> Reply:
    """The reply to an OpenAI-style chat request.

    With tools offered (and ``tool_choice`` not ``"none"``) it is one tool call until the
    conversation's tool-round budget is spent, then a final text answer; ``"required"`` and a
    named function always call. Never more than ``max_tokens`` tokens; ``ignore_eos`` makes a
    text answer exactly ``max_tokens`` long (a tool call still ends after the call). Raises
    ValueError for a named tool that is not offered.
    """
    rng = random.Random(_digest(messages))
    tool = _pick_tool(messages, tools or (), tool_choice, rng)
    if tool is None:
        return _text(rng, max_tokens, ignore_eos)
    call = _tool_call(tool, rng)
    body = tokens.pieces(tokens.render_assistant_body("", [(call.name, call.arguments)]))
    if max_tokens is not None and len(body) >= max_tokens:
        # Like a real engine: the call is cut off and is no longer a parseable tool call.
        cut = tuple(body[:max_tokens])
        return Reply("".join(cut), (), "length", cut)
    return Reply("", (call,), "tool_calls", tuple(body))


def text_reply(
    seed: str | Sequence[int],
    max_tokens: int | None,
    ignore_eos: bool = False,
    stop: Sequence[str] = (),
) -> Reply:
    """A completion for a raw prompt (text or token ids), cut at the first ``stop`` string."""
    rng = random.Random(_digest(seed))
    reply = _text(rng, max_tokens, ignore_eos)
    return _apply_stop(reply, stop) if stop else reply


# -- text -------------------------------------------------------------------------------


def _text(rng: random.Random, max_tokens: int | None, ignore_eos: bool) -> Reply:
    # A natural reply is N tokens and then EOS, so it stops only if max_tokens > N (as the
    # engine model decides: fewer outputs than max_new_tokens means "stop").
    target = rng.randint(16, 64)
    finish: FinishReason = "stop"
    if max_tokens is not None and (ignore_eos or max_tokens <= target):
        target, finish = max_tokens, "length"
    out = tokens.pieces(SYNTHETIC_MARK)
    while len(out) < target:
        out.extend(tokens.pieces(" " + rng.choice(_WORDS)))
    cut = tuple(out[:target])
    return Reply("".join(cut), (), finish, cut)


def _apply_stop(reply: Reply, stop: Sequence[str]) -> Reply:
    text = reply.content
    hits = [(text.find(s), s) for s in stop if s and s in text]
    if not hits:
        return reply
    at, matched = min(hits)
    kept: list[str] = []
    size = 0
    for piece in reply.pieces:
        if size + len(piece) > at:
            break
        kept.append(piece)
        size += len(piece)
    return Reply("".join(kept), (), "stop", tuple(kept), stop_matched=matched)


# -- tools ------------------------------------------------------------------------------


def _pick_tool(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]],
    tool_choice: str | Mapping[str, Any] | None,
    rng: random.Random,
) -> Mapping[str, Any] | None:
    functions = [t.get("function") or {} for t in tools if t.get("type", "function") == "function"]
    if not functions or tool_choice == "none":
        return None
    if isinstance(tool_choice, Mapping):
        name = (tool_choice.get("function") or {}).get("name")
        for f in functions:
            if f.get("name") == name:
                return f
        raise ValueError(f"tool_choice names a function that is not offered: {name!r}")
    if tool_choice != "required" and _tool_rounds(messages) >= _round_budget(messages):
        return None
    return rng.choice(functions)


def _tool_rounds(messages: Sequence[Mapping[str, Any]]) -> int:
    rounds = 0
    for m in reversed(messages):
        if m.get("role") == "user":
            break
        if m.get("role") == "assistant" and m.get("tool_calls"):
            rounds += 1
    return rounds


def _round_budget(messages: Sequence[Mapping[str, Any]]) -> int:
    first_user = next((m for m in messages if m.get("role") == "user"), {})
    return 1 + _digest(first_user.get("content")) % 4


def _tool_call(function: Mapping[str, Any], rng: random.Random) -> ToolCall:
    name = str(function.get("name", "tool"))
    args = value_for(function.get("parameters") or {"type": "object"}, rng)
    if not isinstance(args, dict):
        args = {"value": args}
    arguments = json.dumps(args)
    call_id = "call_" + hashlib.sha1(f"{name}:{arguments}:{rng.random()}".encode()).hexdigest()[:24]
    return ToolCall(call_id, name, arguments)


def _digest(obj: Any) -> int:
    if isinstance(obj, str):
        data = obj.encode()
    elif isinstance(obj, Sequence) and all(isinstance(x, int) for x in obj[:64]):
        data = b",".join(str(x).encode() for x in obj)
    else:
        data = json.dumps(obj, sort_keys=True, default=str).encode()
    return zlib.crc32(data)
