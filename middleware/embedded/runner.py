"""The real-time driver of `EngineModel`: one asyncio task steps the model and sleeps.

Model time is ``(loop.time() - start) / time_scale`` seconds. Each iteration calls
``model.step(now)``, sleeps the step's duration times ``time_scale``, then hands the step's
events to per-request queues. With nothing to run it sleeps until a submit, a release, or the
next hold expiry. Handlers talk to the model only through this object, and every call is
synchronous on the event loop, so no locks are needed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncGenerator, Callable, Sequence

from ..engine import EngineModel, Event, Finished, GenRequest, TokenOut

__all__ = ["EngineRunner"]

_POLL_S = 0.25  # how often a waiting handler checks that its client is still there
_RATE_WINDOW_S = 10.0


class EngineRunner:
    """Owns the model clock, the step loop and the per-request event queues."""

    def __init__(
        self,
        model: EngineModel,
        *,
        time_scale: float = 1.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.model = model
        self.time_scale = time_scale
        self._clock = clock or asyncio.get_running_loop().time
        self._start = self._clock()
        self._queues: dict[str, asyncio.Queue[Event]] = {}
        self._wake = asyncio.Event()
        self._generated: deque[tuple[float, int]] = deque()

    def now(self) -> float:
        """Model time in seconds."""
        return (self._clock() - self._start) / self.time_scale

    def model_seconds(self, real_s: float) -> float:
        """Convert a real duration (e.g. a session timeout) to model seconds."""
        return real_s / self.time_scale

    # -- requests --------------------------------------------------------------------------

    def submit(self, req: GenRequest) -> asyncio.Queue[Event]:
        """Queue ``req`` (its ``arrival`` should be `now`); raises ValueError if refused."""
        self.model.submit(req, self.now())
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._queues[req.rid] = queue
        self._wake.set()
        return queue

    def abort(self, rid: str) -> bool:
        """Abort a live request; its queue receives ``Finished(..., "abort", ...)``."""
        if not self.model.abort(rid, self.now()):
            return False
        queue = self._queues.pop(rid, None)
        if queue is not None:
            queue.put_nowait(Finished(rid, "abort", 0, 0, 0))
        self._wake.set()
        return True

    def abort_all(self) -> int:
        return sum(self.abort(rid) for rid in list(self._queues))

    def live(self) -> list[str]:
        return list(self._queues)

    async def follow(
        self, rid: str, queue: asyncio.Queue[Event], gone: Callable[[], bool]
    ) -> AsyncGenerator[Event, None]:
        """Yield ``rid``'s events up to its `Finished`. If the consumer stops early, is
        cancelled, or ``gone()`` turns true (the client disconnected), the request is
        aborted in the model, so nothing is left running."""
        loop = asyncio.get_running_loop()
        done, checked = False, loop.time()
        try:
            while not done:
                # Check the client on a timer, not only when no events come: a busy request
                # produces events faster than any poll timeout.
                if loop.time() - checked >= _POLL_S:
                    if gone():
                        return
                    checked = loop.time()
                try:
                    event = queue.get_nowait()
                except asyncio.QueueEmpty:
                    try:
                        event = await asyncio.wait_for(queue.get(), _POLL_S)
                    except TimeoutError:
                        continue
                done = isinstance(event, Finished)
                yield event
        finally:
            if not done:
                self.abort(rid)

    # -- holds -----------------------------------------------------------------------------

    def hold(self, key: str, tokens: Sequence[int], ttl_s: float) -> int:
        """Pin a cached prefix for ``ttl_s`` model seconds; returns tokens held."""
        held = self.model.hold(key, tokens, self.now() + ttl_s)
        self._wake.set()
        return held

    def retime(self, key: str, ttl_s: float) -> int:
        """Keep hold ``key`` for ``ttl_s`` model seconds from now; returns tokens (0: none)."""
        held = self.model.retime(key, self.now() + ttl_s)
        self._wake.set()  # the runner sleeps until the next expiry
        return held

    def release(self, key: str) -> bool:
        released = self.model.release(key)
        self._wake.set()  # a waiting request may fit now
        return released

    def gen_throughput(self) -> float:
        """Generated tokens per real second over the last few seconds."""
        self._trim(self._clock())
        return sum(n for _, n in self._generated) / _RATE_WINDOW_S

    # -- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        """Step the model forever (cancel the task to stop)."""
        while True:
            step = self.model.step(self.now())
            if step is None:
                await self._idle()
                continue
            if step.duration_s > 0:
                await asyncio.sleep(step.duration_s * self.time_scale)
            else:
                await asyncio.sleep(0)
            self._deliver(step.events)

    async def _idle(self) -> None:
        self._wake.clear()
        deadline = self.model.next_deadline()
        timeout = None if deadline is None else max(0.0, deadline - self.now()) * self.time_scale
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    def _deliver(self, events: Sequence[Event]) -> None:
        tokens = 0
        for event in events:
            tokens += isinstance(event, TokenOut)
            queue = self._queues.get(event.rid)
            if queue is None:
                continue  # aborted while the step ran
            queue.put_nowait(event)
            if isinstance(event, Finished):
                del self._queues[event.rid]
        now = self._clock()
        self._generated.append((now, tokens))
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._generated and self._generated[0][0] < now - _RATE_WINDOW_S:
            self._generated.popleft()
