"""Prefix continuation: which program a request that declares none most likely continues.

An agent's next call resends its conversation so far plus what happened since: request
N+1's input starts with request N's input followed by N's reply. So after each reply the
proxy remembers ``hash(input + reply) -> program`` and ``hash(input) -> program``; a new
request's program is the one remembered for its longest remembered prefix. Four key
spaces share one LRU of bounded size: chat messages / Responses input items
(:mod:`.canonical`), the same without system and developer messages, Responses ids
(``previous_response_id``) and text prompts.

The second space keeps a program whole across a *handoff*: an agent framework that passes
the conversation to another agent (OpenAI Agents SDK handoffs, supervisor graphs) resends
it under the new agent's system prompt, so its full prefix is new but its dialogue is not.
Only ``input + reply`` is remembered there, never a bare input: a request continues a
program through it only if it carries that program's own reply, so two programs that
merely start with the same user message under different system prompts stay apart.
"""

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kvbaton.middleware.protocol.canonical import (
    TEXT_BLOCK,
    chain,
    message_units,
    tail_key,
    text_chain,
)

__all__ = ["ContinuationIndex"]

_CHAT, _DIALOGUE, _RESPONSE, _TEXT = b"c", b"d", b"r", b"t"
_TAILS_PER_BLOCK = 8


@dataclass(frozen=True, slots=True)
class _Entry:
    program_id: str
    seen_at: float


class ContinuationIndex:
    """Bounded map from conversation prefixes to the program that produced them.

    ``capacity`` bounds the number of remembered keys (each ``remember`` adds at most three);
    the least recently used go first. With ``ttl_s``, a lookup that passes ``now`` also
    ignores keys remembered more than ``ttl_s`` seconds earlier.
    """

    def __init__(self, capacity: int, ttl_s: float | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = capacity
        self.ttl_s = ttl_s
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self._tails: OrderedDict[bytes, tuple[int, ...]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    # --- chat messages and Responses input items -----------------------------------------

    def remember(self, messages: Any, reply_message: Any, program_id: str, now: float) -> None:
        """After a reply: ``messages`` (+ the reply: one message, or a list of output items).

        Adds at most three keys: the input, the input + reply, and the latter's dialogue.
        """
        prefix = _as_list(messages)
        extended = [*prefix, *_as_list(reply_message)]
        for units in (message_units(prefix), message_units(extended)):
            if units:
                self._put(_CHAT + chain(units)[-1], program_id, now)
        dialogue = message_units(extended, without_instructions=True)
        if dialogue and reply_message is not None:
            self._put(_DIALOGUE + chain(dialogue)[-1], program_id, now)

    def lookup(self, messages: Any, now: float | None = None) -> str | None:
        """The program remembered for the longest prefix of ``messages``; failing that, the
        one whose dialogue (input + reply, instructions left out) it extends."""
        listed = _as_list(messages)
        for space, units in (
            (_CHAT, message_units(listed)),
            (_DIALOGUE, message_units(listed, without_instructions=True)),
        ):
            for digest in reversed(chain(units)):
                program_id = self._get(space + digest, now)
                if program_id is not None:
                    return program_id
        return None

    # --- Responses API ids ----------------------------------------------------------------

    def remember_response(self, response_id: str, program_id: str, now: float) -> None:
        self._put(_RESPONSE + response_id.encode("utf-8", "surrogatepass"), program_id, now)

    def lookup_response(self, previous_response_id: str, now: float | None = None) -> str | None:
        return self._get(_RESPONSE + previous_response_id.encode("utf-8", "surrogatepass"), now)

    # --- text prompts ---------------------------------------------------------------------

    def remember_text(self, prompt: str, completion: str, program_id: str, now: float) -> None:
        """After a ``/v1/completions`` or ``/generate`` reply: ``prompt`` (+ ``completion``)."""
        for text in dict.fromkeys((prompt, prompt + completion)):
            if text:
                self._put_text(text, program_id, now)

    def lookup_text(self, prompt: str, now: float | None = None) -> str | None:
        """The program remembered for the longest remembered text that ``prompt`` starts with.

        NOTE: keys are exact texts, found by walking the block chain of ``prompt`` from its
        end; each block hash lists the tail lengths (text beyond whole blocks) remembered
        under it, so a remembered text is checked in full, not just up to a block boundary.
        """
        hashes = text_chain(prompt)
        for blocks in range(len(hashes) - 1, -1, -1):
            start = blocks * TEXT_BLOCK
            for length in sorted(self._tails.get(hashes[blocks], ()), reverse=True):
                if start + length <= len(prompt):
                    key = _TEXT + tail_key(hashes[blocks], prompt[start : start + length])
                    program_id = self._get(key, now)
                    if program_id is not None:
                        return program_id
        return None

    def _put_text(self, text: str, program_id: str, now: float) -> None:
        blocks = len(text) // TEXT_BLOCK
        block_hash = text_chain(text[: blocks * TEXT_BLOCK])[-1]
        tail = text[blocks * TEXT_BLOCK :]
        self._put(_TEXT + tail_key(block_hash, tail), program_id, now)
        known = [length for length in self._tails.pop(block_hash, ()) if length != len(tail)]
        self._tails[block_hash] = (len(tail), *known[: _TAILS_PER_BLOCK - 1])  # newest first
        while len(self._tails) > self.capacity:
            self._tails.popitem(last=False)

    # --- the LRU --------------------------------------------------------------------------

    def _put(self, key: bytes, program_id: str, now: float) -> None:
        self._entries[key] = _Entry(program_id, now)
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def _get(self, key: bytes, now: float | None) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self.ttl_s is not None and now is not None and now - entry.seen_at > self.ttl_s:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry.program_id


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, Sequence):
        return list(value)
    return []
