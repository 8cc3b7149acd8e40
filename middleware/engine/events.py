"""Values exchanged with `EngineModel`: requests in; steps, events and stats out.

Times are seconds on the caller's clock (real or simulated); sizes are tokens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "EngineStats",
    "Event",
    "FinishReason",
    "Finished",
    "GenRequest",
    "Preempted",
    "PrefillDone",
    "Step",
    "TokenOut",
]

FinishReason = Literal["stop", "length", "abort"]


@dataclass(frozen=True, slots=True)
class GenRequest:
    """One generation request.

    ``output``: the token ids to generate (the engine has no weights, the caller decides the
    reply). The request emits ``min(len(output), max_new_tokens)`` tokens and finishes with
    "stop" if the output was shorter than ``max_new_tokens``, else "length". Without
    ``output``, it emits ``max_new_tokens`` filler ids. ``max_new_tokens == 0`` is a
    prefill-only request: it warms the cache and finishes after prefill.
    ``priority``: higher runs first (SGLang semantics) and is kept longer in the cache.
    ``hold_key``: on finish, pin prompt + output under this key for ``hold_ttl_s`` seconds
    (atomically, so nothing can evict it between finish and pin).
    """

    rid: str
    tokens: Sequence[int]
    max_new_tokens: int
    arrival: float
    priority: int = 0
    output: Sequence[int] | None = None
    hold_key: str | None = None
    hold_ttl_s: float = math.inf


@dataclass(frozen=True, slots=True)
class PrefillDone:
    """The prompt is computed (emitted once per request, with its first token if any).

    ``queued_s``: seconds the request has spent in the waiting queue so far, on the
    caller's clock (a driver splits its latency into queueing and compute with it).
    """

    rid: str
    prompt_tokens: int
    cached_tokens: int
    queued_s: float = 0.0


@dataclass(frozen=True, slots=True)
class TokenOut:
    """One output token; ``index`` 0 is the first token."""

    rid: str
    index: int
    token_id: int


@dataclass(frozen=True, slots=True)
class Finished:
    """``queued_s``: seconds in the waiting queue over the request's life (before its
    first admission and again after each preemption)."""

    rid: str
    finish_reason: FinishReason
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    queued_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Preempted:
    """KV ran out: the request's own KV was freed and it went back to the waiting queue;
    ``recomputed_tokens`` will be prefilled again when it is readmitted."""

    rid: str
    recomputed_tokens: int


Event = PrefillDone | TokenOut | Finished | Preempted


@dataclass(frozen=True, slots=True)
class Step:
    """One engine iteration starting at ``now``; its ``events`` happen at now + duration_s."""

    duration_s: float
    events: tuple[Event, ...]
    prefill_tokens: int = 0
    decode_batch: int = 0


@dataclass(frozen=True, slots=True)
class EngineStats:
    """A snapshot of the engine (counts are since start; sizes in tokens)."""

    running: int
    waiting: int
    kv_capacity_tokens: int
    kv_used_tokens: int
    kv_cached_tokens: int
    kv_evictable_tokens: int
    kv_held_tokens: int
    holds: int
    waiting_tokens: int
    prompt_tokens_total: int
    cached_tokens_total: int
    generated_tokens_total: int
    evicted_tokens_total: int
    preemptions_total: int
    recomputed_tokens_total: int
    finished_total: int
    aborted_total: int

    @property
    def token_usage(self) -> float:
        """Fraction of the KV pool in use (cached tokens count as used, as in SGLang)."""
        return self.kv_used_tokens / self.kv_capacity_tokens if self.kv_capacity_tokens else 0.0

    @property
    def cache_hit_rate(self) -> float:
        """Cached prompt tokens / prompt tokens, over all prefilled requests."""
        total = self.prompt_tokens_total
        return self.cached_tokens_total / total if total else 0.0
