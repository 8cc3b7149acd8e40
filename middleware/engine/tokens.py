"""A deterministic synthetic tokenizer and a prefix-stable chat template.

The embedded engine has no real vocabulary. Text is cut into pieces by one regular expression
and each piece gets a stable id, ``crc32(piece) & 0x7FFFFFFF``. A piece is, first match wins:

- a chat marker or tool tag (``<|im_start|>``, ``<|im_end|>``, ``<tool_call>``,
  ``</tool_call>``, ``<tool_response>``, ``</tool_response>``): one token, as a real chat
  tokenizer has them as special tokens;
- up to 10 ASCII letters after an optional space or underscore (a word, or the first 10
  letters of a longer one);
- up to 3 punctuation characters other than ``<``, after up to 16 spaces (the indentation);
- up to 2 other letters after an optional space or underscore;
- up to 3 digits;
- ``<`` and up to 2 punctuation characters after it;
- one newline; up to 16 other whitespace characters; a lone underscore.

"Spaces" and "whitespace" never include the newline. On English prose, JSON, rendered tool
calls and chat prompts the counts are within 20% of a real BPE tokenizer's (cl100k, o200k; see
``tests/engine/test_tokens_reference.py``): a one-argument tool call is about 20 tokens.

Pieces concatenate back to the exact text. A newline is always a piece of its own and a
``<`` only ever starts a piece; in a rendering, a message's content (or a generated reply)
ends where ``<|im_end|>`` begins, and each message (or reply) begins after a newline. So no
piece reaches across those seams, and tokenizing a rendered chat message by message gives the
same ids as tokenizing the whole rendering: that is what makes the second turn of an agent
hit the cache on the first turn's prompt and reply. The expression has no lookaround, so the
text of the first ``k`` pieces of ``t`` cuts into exactly those ``k`` pieces again (a reply
cut at ``max_tokens`` and sent back re-tokenizes to what was generated).
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

__all__ = [
    "EOS_TOKEN_ID",
    "GENERATION_PROMPT",
    "count",
    "encode",
    "pieces",
    "render_assistant_body",
    "render_chat",
    "render_tool_call",
    "token_id",
]

_PIECE = re.compile(
    r"<(?:\|im_start\|>|\|im_end\|>|/?tool_call>|/?tool_response>)"  # special tokens
    r"|[ _]?[A-Za-z]{1,10}"  # an English word, or 10 letters of a longer one
    r"|[^\S\n]{0,16}[^\w\s<]{1,3}"  # punctuation, with the indentation before it
    r"|[ _]?[^\W\d_]{1,2}"  # other letters
    r"|\d{1,3}"
    r"|<[^\w\s<]{0,2}"  # so '<' only ever starts a piece
    r"|\n"
    r"|[^\S\n]{1,16}"
    r"|_"
)

EOS_TOKEN_ID = 0
"""The id SGLang-style ``meta_info.finish_reason.matched`` reports when a reply ends naturally."""

_START = "<|im_start|>"
_END = "<|im_end|>\n"
GENERATION_PROMPT = f"{_START}assistant\n"
"""Appended after the last message; ends in a newline so the reply starts a fresh piece."""


def pieces(text: str) -> list[str]:
    """Cut ``text`` into token pieces; ``"".join(pieces(t)) == t``."""
    return _PIECE.findall(text)


@lru_cache(maxsize=1 << 16)
def token_id(piece: str) -> int:
    """The stable id of one piece (a non-negative 31-bit int)."""
    return zlib.crc32(piece.encode()) & 0x7FFFFFFF


def encode(text: str) -> list[int]:
    """Token ids of ``text``."""
    return [token_id(p) for p in _PIECE.findall(text)]


def count(text: str) -> int:
    """Number of tokens in ``text``."""
    return len(_PIECE.findall(text))


def render_tool_call(name: str, arguments: str) -> str:
    """How one tool call appears in an assistant turn (and in the generated output)."""
    return f'<tool_call>\n{{"name": {json.dumps(name)}, "arguments": {arguments}}}\n</tool_call>\n'


def render_assistant_body(content: str, tool_calls: Iterable[tuple[str, str]] = ()) -> str:
    """The text an assistant turn generates: its content, then its ``(name, arguments)`` calls.

    The engine inserts exactly these tokens into its prefix cache when the reply finishes, and
    `render_chat` renders a later copy of the same assistant message with the same text.
    """
    return content + "".join(render_tool_call(name, args) for name, args in tool_calls)


def render_chat(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None = None,
    *,
    add_generation_prompt: bool = True,
) -> str:
    """Render OpenAI-style chat messages (and offered tools) to one prompt string.

    Prefix-stable: ``render_chat(m[:k]) + render_assistant_body(reply)`` is a prefix of
    ``render_chat(m[:k] + [reply_message] + later)``, piece for piece.
    """
    parts = [_render_tools(tools)] if tools else []
    parts.extend(_render_message(m) for m in messages)
    if add_generation_prompt:
        parts.append(GENERATION_PROMPT)
    return "".join(parts)


def _render_tools(tools: Sequence[Mapping[str, Any]]) -> str:
    listing = "\n".join(json.dumps(t, sort_keys=True) for t in tools)
    return f"{_START}system\n# Tools\n<tools>\n{listing}\n</tools>{_END}"


def _render_message(message: Mapping[str, Any]) -> str:
    role = str(message.get("role", "user"))
    content = _content_text(message.get("content"))
    if role == "assistant":
        calls = [_call_parts(c) for c in message.get("tool_calls") or ()]
        return f"{_START}assistant\n{render_assistant_body(content, calls)}{_END}"
    if role == "tool":
        return f"{_START}tool\n<tool_response>\n{content}\n</tool_response>{_END}"
    return f"{_START}{role}\n{content}{_END}"


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "".join(_part_text(p) for p in content)
    return str(content)


def _part_text(part: Any) -> str:
    if isinstance(part, Mapping):
        if part.get("type", "text") == "text":
            return str(part.get("text", ""))
        return f"<{part.get('type')}>"
    return str(part)


def _call_parts(call: Mapping[str, Any]) -> tuple[str, str]:
    function = call.get("function") or {}
    arguments = function.get("arguments", "{}")
    # Clients echo back the string we generated; a dict (some SDKs) is serialised the same way.
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    return str(function.get("name", "")), arguments
