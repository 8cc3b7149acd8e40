"""`EngineModel`: continuous batching with chunked prefill, a radix prefix cache and
preemption, as a pure state machine driven by explicit ``now`` (seconds).

The same model runs behind the real-time HTTP server and inside the discrete-event simulator:
``step(now)`` plans one engine iteration, returns its duration from the cost model and the
events that happen at ``now + duration``; the driver advances its clock and calls again.

KV accounting (tokens): ``used = tokens in the radix tree + tokens owned by running
requests``. A running request locks its cached prefix in the tree and owns the KV it computed
beyond it; on finish its prompt + output go into the tree (like SGLang's
``cache_finished_req``), so the next turn of the conversation hits them. ``used`` never
exceeds ``kv_tokens``: room comes from evicting unlocked cached tokens, and when even that is
not enough for the next decode token, the lowest-ranked running request is preempted.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Sequence

from .costs import Profile
from .events import (
    EngineStats,
    Event,
    Finished,
    FinishReason,
    GenRequest,
    Preempted,
    PrefillDone,
    Step,
    TokenOut,
)
from .radix import RadixCache
from .request_state import RequestState

__all__ = ["EngineModel", "RequestTooLongError"]


class RequestTooLongError(ValueError):
    """The prompt plus its output cannot fit in the KV pool even alone."""


class EngineModel:
    """A single-GPU engine: one waiting queue, one running batch, one KV pool.

    ``priority_scheduling``: order the waiting queue by higher ``priority`` first, ties by
    arrival (SGLang ``--enable-priority-scheduling``), and preempt the lowest priority first;
    otherwise FCFS and preempt the latest arrival. ``priority_eviction``: the cache evicts
    lowest priority first, then least recently used (SGLang ``--radix-eviction-policy
    priority``); off, it evicts by LRU alone, SGLang's default. It is off by default because a
    node's priority never decays: with ever-growing program ranks as priorities, live programs
    would lose their cache before finished ones. ``token_events=False`` skips `TokenOut`
    events (a simulator that only needs timings saves the allocations).
    """

    def __init__(
        self,
        profile: Profile,
        *,
        kv_tokens: int | None = None,
        max_running: int | None = None,
        priority_scheduling: bool = True,
        priority_eviction: bool = False,
        token_events: bool = True,
    ) -> None:
        self.profile = profile.with_overrides(kv_tokens=kv_tokens, max_running=max_running)
        self.capacity = self.profile.kv_tokens
        self.priority_scheduling = priority_scheduling
        self.priority_eviction = priority_eviction
        self.token_events = token_events
        self.cache = RadixCache()
        self._live: dict[str, RequestState] = {}
        self._running: list[RequestState] = []  # admission order
        self._queue: list[tuple[tuple[float, ...], int, RequestState]] = []
        self._private = 0
        self._unprefilled = 0  # prompt tokens admitted but not yet computed, all requests
        self._order = itertools.count()
        self._c = dict.fromkeys(
            ("prompt", "cached", "generated", "preempt", "recomputed", "finished", "aborted"), 0
        )

    # -- requests --------------------------------------------------------------------------

    def submit(self, req: GenRequest, now: float) -> None:
        """Queue a request: ``req.arrival`` orders it, ``now`` starts its time queued.

        Raises ValueError for a duplicate live rid or an empty prompt, and
        `RequestTooLongError` when prompt + output exceed the KV pool.
        """
        if req.rid in self._live:
            raise ValueError(f"request id {req.rid!r} is already running")
        if not req.tokens or req.max_new_tokens < 0:
            raise ValueError("a request needs a non-empty prompt and max_new_tokens >= 0")
        key = (-req.priority, req.arrival) if self.priority_scheduling else (req.arrival,)
        r = RequestState(req, next(self._order), key, now)
        if len(req.tokens) + r.target > self.capacity:
            raise RequestTooLongError(
                f"prompt ({len(req.tokens)}) + output ({r.target}) tokens exceed the KV pool "
                f"({self.capacity} tokens)"
            )
        self._live[req.rid] = r
        self._enqueue(r)

    def abort(self, rid: str, now: float) -> bool:
        """Drop a waiting or running request (its KV is freed, nothing is cached).
        Returns False if ``rid`` is not live. No event is emitted."""
        r = self._live.pop(rid, None)
        if r is None:
            return False
        if r.running:
            self._release(r)
        self._c["aborted"] += 1
        return True

    def is_live(self, rid: str) -> bool:
        return rid in self._live

    # -- holds -----------------------------------------------------------------------------

    def hold(self, key: str, tokens: Sequence[int], until: float) -> int:
        """Pin the cached prefix of ``tokens`` until ``until``; returns tokens held."""
        return self.cache.hold(key, tokens, until)

    def retime(self, key: str, until: float) -> int:
        """Move the expiry of hold ``key`` to ``until``; returns its tokens (0: not held)."""
        return self.cache.retime(key, until)

    def release(self, key: str) -> bool:
        """Unpin ``key``; False if it was not held."""
        return self.cache.release(key)

    def next_deadline(self) -> float | None:
        """When the next hold expires (a driver with nothing to run should wake then);
        None if no hold ever expires."""
        deadline = self.cache.next_expiry()
        return None if deadline is None or math.isinf(deadline) else deadline

    def flush(self) -> bool:
        """Drop every unpinned cached token; refused (False) while requests are live."""
        if self._live:
            return False
        self.cache.evict(self.cache.evictable_tokens)
        return True

    # -- the engine loop -------------------------------------------------------------------

    def step(self, now: float) -> Step | None:
        """Plan and run one iteration at ``now``; None when there is nothing to run.

        NOTE on the algorithm: (1) requests whose prompt is computed decode one token each;
        if the KV pool cannot give them a token even after evicting, the lowest-ranked
        running request is preempted until it can. (2) Requests still prefilling get the next
        chunk, in admission order, within a budget of ``chunk_tokens`` new tokens per step.
        (3) Waiting requests are admitted in queue order while the budget, ``max_running``
        and the pool allow: the pool must fit the rest of every admitted prompt plus one
        decode token per running request. The head of the queue blocks those behind it.
        """
        self.cache.expire(now)
        if not self._live:
            return None
        events: list[Event] = []
        decoders = self._reserve_decode(now, events)
        budget = self.profile.chunk_tokens
        chunks = self._continue_prefills(budget)
        budget -= sum(take for _, take, _ in chunks)
        chunks += self._admit(now, budget)
        if not decoders and not chunks:
            return self._unstick(now, events)
        context = sum(r.cached + r.private for r in decoders)
        duration = self.profile.step_s([(t, c) for _, t, c in chunks], len(decoders), context)
        end = now + duration
        for r, _, _ in chunks:
            if r.computed == len(r.seq):
                self._prefill_done(r, events, end)
        for r in decoders:
            self._emit(r, events, end)
        prefill = sum(t for _, t, _ in chunks)
        return Step(duration, tuple(events), prefill, len(decoders))

    def _cache_priority(self, req: GenRequest) -> int:
        return req.priority if self.priority_eviction else 0

    def stats(self) -> EngineStats:
        """Counters and gauges, in tokens and requests."""
        c = self.cache
        waiting = [r for r in self._live.values() if not r.running]
        return EngineStats(
            running=len(self._running),
            waiting=len(waiting),
            kv_capacity_tokens=self.capacity,
            kv_used_tokens=self.used_tokens,
            kv_cached_tokens=c.total_tokens,
            kv_evictable_tokens=c.evictable_tokens,
            kv_held_tokens=c.held_tokens,
            holds=len(c.holds()),
            waiting_tokens=sum(len(r.req.tokens) for r in waiting),
            prompt_tokens_total=self._c["prompt"],
            cached_tokens_total=self._c["cached"],
            generated_tokens_total=self._c["generated"],
            evicted_tokens_total=c.evicted_tokens_total,
            preemptions_total=self._c["preempt"],
            recomputed_tokens_total=self._c["recomputed"],
            finished_total=self._c["finished"],
            aborted_total=self._c["aborted"],
        )

    @property
    def used_tokens(self) -> int:
        """KV tokens in use: cached in the tree plus owned by running requests."""
        return self.cache.total_tokens + self._private

    # -- scheduling ------------------------------------------------------------------------

    def _reserve_decode(self, now: float, events: list[Event]) -> list[RequestState]:
        decoders = [r for r in self._running if r.computed == len(r.seq)]
        while decoders and not self._make_room(len(decoders)):
            victim = self._victim()
            self._preempt(victim, now, events)
            if victim in decoders:
                decoders.remove(victim)
        self._alloc_each(decoders)
        return decoders

    def _continue_prefills(self, budget: int) -> list[tuple[RequestState, int, int]]:
        chunks = []
        for r in self._running:
            if budget <= 0:
                break
            left = len(r.seq) - r.computed
            if left <= 0:
                continue
            take = min(left, budget, self._available())
            if take > 0:
                chunks.append(self._prefill_chunk(r, take))
                budget -= take
        return chunks

    def _admit(self, now: float, budget: int) -> list[tuple[RequestState, int, int]]:
        chunks = []
        while budget > 0 and len(self._running) < self.profile.max_running:
            r = self._peek()
            if r is None:
                break
            seq = tuple(r.req.tokens) + tuple(r.out)
            # The last token is always computed: its logits sample the next token.
            matched, node = self.cache.match(seq[:-1], now, self._cache_priority(r.req))
            self.cache.lock(node)
            if not self._fits(len(seq) - matched):
                self.cache.unlock(node)
                break
            heapq.heappop(self._queue)
            r.queued_s += now - r.queued_at
            r.seq, r.node, r.cached, r.computed, r.private = seq, node, matched, matched, 0
            r.running = True
            self._running.append(r)
            self._unprefilled += len(seq) - matched
            chunks.append(self._prefill_chunk(r, min(len(seq) - matched, budget)))
            budget -= chunks[-1][1]
        return chunks

    def _fits(self, need: int) -> bool:
        headroom = len(self._running) + 1
        return self._available() - self._unprefilled - headroom >= need

    def _prefill_chunk(self, r: RequestState, take: int) -> tuple[RequestState, int, int]:
        room = self._make_room(take)
        assert room, "admission and _available() guarantee room for a chunk"
        self._alloc(take)
        r.private += take
        self._unprefilled -= take
        context = r.computed
        r.computed += take
        return r, take, context

    def _unstick(self, now: float, events: list[Event]) -> Step | None:
        # Nothing could run: running requests hold KV that none of them can extend. Preempt
        # the lowest-ranked one so the others (or the queue head) get room next step.
        if self._running:
            self._preempt(self._victim(), now, events)
        return Step(0.0, tuple(events)) if events else None

    # -- progress --------------------------------------------------------------------------

    def _prefill_done(self, r: RequestState, events: list[Event], end: float) -> None:
        if r.reported_cached is None:
            r.reported_cached = r.cached
            self._c["prompt"] += len(r.req.tokens)
            self._c["cached"] += r.cached
            events.append(PrefillDone(r.req.rid, len(r.req.tokens), r.cached, r.queued_s))
        if len(r.out) >= r.target:
            self._finish(r, events, end)
        else:
            self._emit(r, events, end)

    def _emit(self, r: RequestState, events: list[Event], end: float) -> None:
        token = r.next_token()
        r.out.append(token)
        self._c["generated"] += 1
        if self.token_events:
            events.append(TokenOut(r.req.rid, len(r.out) - 1, token))
        if len(r.out) >= r.target:
            self._finish(r, events, end)

    def _finish(self, r: RequestState, events: list[Event], end: float) -> None:
        req = r.req
        # The last sampled token has no KV yet (it was never fed back), as in SGLang.
        kv = tuple(req.tokens) + tuple(r.out[:-1])
        assert len(kv) == r.cached + r.private, (len(kv), r.cached, r.private)
        node = r.node
        self._free_private(r)
        self.cache.insert(kv, end, self._cache_priority(req))
        if req.hold_key is not None:
            self.cache.hold(req.hold_key, kv, end + req.hold_ttl_s)
        if node is not None:
            self.cache.unlock(node)
        r.node = None
        self._running.remove(r)
        r.running = False
        del self._live[req.rid]
        self._c["finished"] += 1
        stop = req.output is not None and len(req.output) < req.max_new_tokens
        cached = r.reported_cached or 0
        reason: FinishReason = "stop" if stop else "length"
        events.append(Finished(req.rid, reason, len(req.tokens), cached, len(r.out), r.queued_s))

    def _preempt(self, r: RequestState, now: float, events: list[Event]) -> None:
        recomputed = r.private
        self._release(r)
        r.queued_at = now  # it waits again from the start of the step that preempted it
        self._c["preempt"] += 1
        self._c["recomputed"] += recomputed
        self._enqueue(r)
        events.append(Preempted(r.req.rid, recomputed))

    def _release(self, r: RequestState) -> None:
        self._free_private(r)
        self._unprefilled -= len(r.seq) - r.computed
        if r.node is not None:
            self.cache.unlock(r.node)
            r.node = None
        self._running.remove(r)
        r.running = False

    def _victim(self) -> RequestState:
        if self.priority_scheduling:
            return min(self._running, key=lambda r: (r.req.priority, -r.req.arrival, -r.order))
        return max(self._running, key=lambda r: (r.req.arrival, r.order))

    # -- queue and pool --------------------------------------------------------------------

    def _enqueue(self, r: RequestState) -> None:
        heapq.heappush(self._queue, (r.key, r.order, r))

    def _peek(self) -> RequestState | None:
        while self._queue:
            r = self._queue[0][2]
            if self._live.get(r.req.rid) is r and not r.running:
                return r
            heapq.heappop(self._queue)  # aborted, or a stale entry
        return None

    def _available(self) -> int:
        return self.capacity - self.used_tokens + self.cache.evictable_tokens

    def _make_room(self, n: int) -> bool:
        free = self.capacity - self.used_tokens
        if free >= n:
            return True
        if free + self.cache.evictable_tokens < n:
            return False
        self.cache.evict(n - free)
        return True

    def _alloc(self, n: int) -> None:
        self._private += n
        assert self.used_tokens <= self.capacity, (self.used_tokens, self.capacity)

    def _alloc_each(self, reqs: list[RequestState]) -> None:
        for r in reqs:
            r.private += 1
        self._alloc(len(reqs))

    def _free_private(self, r: RequestState) -> None:
        self._private -= r.private
        r.private = 0
