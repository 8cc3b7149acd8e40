"""One generation from a handler's point of view: submit, follow events, tally usage."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from ..engine import Event, Finished, GenRequest, PrefillDone, Reply, TokenOut
from ..engine.events import FinishReason
from .errors import ApiError
from .keys import METRICS, RUNNER, SESSIONS, SETTINGS
from .sessions import hold_key
from .wire import HoldParams

__all__ = [
    "Call",
    "Tally",
    "aborting_on_error",
    "follow_call",
    "hold_of",
    "run_call",
    "submit_call",
]


@dataclass(frozen=True, slots=True)
class Call:
    """What a handler asks of the engine; ``reply`` is the output it will generate."""

    rid: str
    prompt: list[int]
    reply: Reply
    max_new_tokens: int
    priority: int = 0
    hold_key: str | None = None
    hold_ttl_s: float = math.inf


@dataclass(slots=True)
class Tally:
    """Usage and timing of one call as its events arrive (times are real seconds)."""

    prompt_tokens: int
    started: float
    cached_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: FinishReason | None = None
    first_token_s: float | None = None
    e2e_s: float = 0.0

    def update(self, event: Event) -> None:
        match event:
            case PrefillDone():
                self.cached_tokens = event.cached_tokens
            case TokenOut():
                self.completion_tokens = event.index + 1
                if self.first_token_s is None:
                    self.first_token_s = time.monotonic() - self.started
            case Finished():
                self.finish_reason = event.finish_reason
                self.e2e_s = time.monotonic() - self.started

    @property
    def usage(self) -> dict[str, object]:
        """OpenAI ``usage``, with ``prompt_tokens_details.cached_tokens`` always present."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
        }


def hold_of(
    request: web.Request, params: HoldParams | None, session_id: str | None = None
) -> tuple[str | None, float]:
    """A request's ``kvbaton_hold`` as the model's (key, TTL in model seconds); else, with
    the session radix cache on, its ``session_id``: held until ``/close_session``."""
    if params is not None:
        return params.key, request.app[RUNNER].model_seconds(params.ttl_s)
    if session_id and request.app[SETTINGS].enable_session_radix_cache:
        request.app[SESSIONS].tag(session_id)
        return hold_key(session_id), math.inf
    return None, math.inf


def submit_call(request: web.Request, call: Call) -> asyncio.Queue[Event]:
    """Queue ``call`` in the engine; a refusal (too long, duplicate rid) is a 400."""
    runner = request.app[RUNNER]
    req = GenRequest(
        call.rid,
        call.prompt,
        call.max_new_tokens,
        runner.now(),
        call.priority,
        call.reply.token_ids,
        call.hold_key,
        call.hold_ttl_s,
    )
    try:
        return runner.submit(req)
    except ValueError as exc:
        raise ApiError(str(exc)) from None


async def follow_call(
    request: web.Request, call: Call, queue: asyncio.Queue[Event], tally: Tally
) -> AsyncGenerator[list[Event], None]:
    """Yield the submitted call's events in batches (one batch per engine step), updating
    ``tally`` first. Ends after `Finished`; leaving early, being cancelled or losing the
    client aborts the request in the model (use it under ``contextlib.aclosing``)."""

    def gone() -> bool:
        return request.transport is None or request.transport.is_closing()

    events = request.app[RUNNER].follow(call.rid, queue, gone)
    async with contextlib.aclosing(events):
        batch: list[Event] = []
        async for event in events:
            tally.update(event)
            batch.append(event)
            if queue.empty() or isinstance(event, Finished):
                yield batch
                batch = []
    if tally.finish_reason is not None:
        request.app[METRICS].observe(tally.first_token_s, tally.e2e_s)


async def run_call(request: web.Request, call: Call) -> Tally:
    """Submit and wait for the whole call (non-streaming handlers)."""
    tally = Tally(len(call.prompt), time.monotonic())
    queue = submit_call(request, call)
    async with contextlib.aclosing(follow_call(request, call, queue, tally)) as batches:
        async for _ in batches:
            pass
    return tally


@contextlib.asynccontextmanager
async def aborting_on_error(request: web.Request, call: Call) -> AsyncIterator[None]:
    """Abort ``call`` if the block fails before its events are followed (e.g. the client
    left while the stream headers were being sent)."""
    try:
        yield
    except BaseException:
        request.app[RUNNER].abort(call.rid)
        raise
