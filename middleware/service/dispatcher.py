"""Carries out the core's actions on the event loop.

Handlers wait in :meth:`Dispatcher.slot` until the core dispatches their call; the
dispatcher's ticker wakes the core at its next deadline. This is the one place where
actions meet I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, assert_never

from kvbaton.adapters.base import Backend
from kvbaton.middleware.core.actions import (
    Action,
    Dispatch,
    PauseObserved,
    Pin,
    ProgramExpired,
    Unpin,
    Warm,
)
from kvbaton.middleware.core.scheduler import Scheduler
from kvbaton.middleware.core.types import CallOutcome, CallSpec
from kvbaton.middleware.service.metrics import ProxyMetrics
from kvbaton.middleware.service.prefixes import PrefixStore

__all__ = ["LOAD_EVERY_S", "MAX_WARMS_IN_FLIGHT", "Dispatcher", "Ticket"]

# Warms at the engine at once: more would compete with the calls they are meant to speed up.
MAX_WARMS_IN_FLIGHT = 4
# How often the engine's load is read where the in-flight limit follows it: often next to
# a call's length (seconds), cheap for the engine (one /metrics scrape).
LOAD_EVERY_S = 0.5


@dataclass(slots=True)
class Ticket:
    """A dispatched call: its engine rank, and the outcome the handler fills in."""

    spec: CallSpec
    rank: int | None
    queued_s: float
    hold_key: str | None = None
    outcome: CallOutcome = field(default_factory=lambda: CallOutcome(ok=False))


class Dispatcher:
    def __init__(
        self,
        scheduler: Scheduler,
        metrics: ProxyMetrics,
        clock: Callable[[], float],
        backend: Backend,
        spawn: Callable[[Coroutine[Any, Any, Any]], None],
        prefixes: PrefixStore | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.metrics = metrics
        self.clock = clock
        self.backend = backend
        self.prefixes = prefixes or PrefixStore()
        self._spawn = spawn  # pin control calls run in the background, off the request path
        self._warms: set[asyncio.Task[None]] = set()  # cancelled at shutdown, not awaited
        self._waiting: dict[str, asyncio.Future[Dispatch]] = {}
        self._wake = asyncio.Event()
        self._ticker_wakes_at = math.inf

    @contextlib.asynccontextmanager
    async def slot(self, spec: CallSpec) -> AsyncIterator[Ticket]:
        """Wait until the core dispatches ``spec``; always gives the slot back on exit.

        Leaving normally reports the ticket's outcome; leaving by cancellation (the client
        went away) or error frees the slot as cancelled or failed.
        """
        future: asyncio.Future[Dispatch] = asyncio.get_running_loop().create_future()
        self._waiting[spec.call_id] = future
        arrived = self.clock()
        try:
            self._run(self.scheduler.submit(spec, arrived))
            dispatch = await future
        except BaseException:
            self._waiting.pop(spec.call_id, None)
            self._run(self.scheduler.cancel(spec.call_id, self.clock()))
            raise
        ticket = Ticket(spec, dispatch.rank, self.clock() - arrived, dispatch.hold_key)
        self.metrics.queue_wait_seconds.observe(ticket.queued_s)
        try:
            yield ticket
        except asyncio.CancelledError:
            self._run(self.scheduler.cancel(spec.call_id, self.clock()))
            raise
        except BaseException:
            self._run(self.scheduler.finish(spec.call_id, CallOutcome(ok=False), self.clock()))
            raise
        self._run(self.scheduler.finish(spec.call_id, ticket.outcome, self.clock()))

    def apply(self, actions: list[Action]) -> None:
        """Carry out actions the core returned outside a call (e.g. ``end_program``)."""
        self._run(actions)

    def _run(self, actions: list[Action]) -> None:
        for action in actions:
            match action:
                case Dispatch(call_id=call_id):
                    future = self._waiting.pop(call_id, None)
                    if future is not None and not future.done():
                        future.set_result(action)
                case PauseObserved(pause=pause):
                    self.metrics.tool_pause_seconds.observe(pause.duration_s)
                case ProgramExpired(program_id=program_id):
                    self.metrics.programs_expired.inc()
                    self.prefixes.forget(program_id)
                case Pin(key=key, ttl_s=ttl_s):
                    self.metrics.pins.labels(event="pinned").inc()
                    # Pin keys are program ids; engines that re-touch need the context.
                    prefix = self.prefixes.resume(key)
                    self._spawn(self.backend.retime_pin(key, ttl_s, prefix))
                case Unpin(key=key, reason=reason):
                    self.metrics.pins.labels(event=reason).inc()
                    self._spawn(self.backend.release_pin(key))
                case Warm():
                    self._warm(action)
                case _:
                    assert_never(action)
        # Wake the ticker only when the core now wants it earlier than it planned to wake.
        deadline = self.scheduler.next_deadline()
        if deadline is not None and deadline < self._ticker_wakes_at:
            self._wake.set()

    def _warm(self, warm: Warm) -> None:
        """Send a warm in the background, outside the scheduler's slots; skipped when the
        engine cannot warm, the store has not seen the prefix, or enough warms are already
        at the engine."""
        body = self.prefixes.body_for(warm) if self.backend.capabilities.can_warm else None
        if body is None or len(self._warms) >= MAX_WARMS_IN_FLIGHT:
            self.metrics.warms.labels(kind=warm.kind, result="skipped").inc()
            return
        task = asyncio.get_running_loop().create_task(self._send_warm(warm.kind, body))
        self._warms.add(task)
        task.add_done_callback(self._warms.discard)

    async def _send_warm(self, kind: str, body: dict[str, Any]) -> None:
        cached = await self.backend.warm(body)
        self.metrics.warms.labels(kind=kind, result="failed" if cached is None else "sent").inc()

    @property
    def warms_in_flight(self) -> int:
        return len(self._warms)

    async def aclose(self) -> None:
        """Cancel warms still in flight (shutdown): a warm no one will use is not waited for."""
        tasks = list(self._warms)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def run_load_poller(self, every_s: float = LOAD_EVERY_S) -> None:
        """Tell the core the engine's load every ``every_s``, for as long as the app runs
        (started where the in-flight limit follows the engine)."""
        while True:
            load = await self.backend.load()
            if load is not None:
                self._run(self.scheduler.engine_load(load, self.clock()))
            await asyncio.sleep(every_s)

    async def run_ticker(self) -> None:
        """Call the core's ``tick`` at its deadlines, for as long as the app runs."""
        while True:
            self._wake.clear()
            deadline = self.scheduler.next_deadline()
            self._ticker_wakes_at = math.inf if deadline is None else deadline
            delay = None if deadline is None else max(0.0, deadline - self.clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            self._run(self.scheduler.tick(self.clock()))
