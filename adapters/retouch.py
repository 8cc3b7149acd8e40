"""Re-touching: keep a paused program's prefix in an LRU prefix cache that has no pin API.

An engine that evicts by least-recent use (vLLM's free-block queue, SGLang's default radix
cache) keeps what was used last. While a program waits for its tool, its prefix is warmed
again every ``every_s`` seconds until its TTL ends, so newer traffic evicts other KV first.
A touch of a prefix that is still cached costs one new token of prefill and one of decode;
one that was evicted anyway loads it back, which is what a resume warm would do.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Retoucher"]

Warm = Callable[[dict[str, Any]], Awaitable[int | None]]


class Retoucher:
    """One background loop per pinned key; every loop ends at its TTL, its release, or
    shutdown (`stop_all`)."""

    def __init__(self, warm: Warm, every_s: float) -> None:
        if every_s <= 0:
            raise ValueError("every_s must be positive")
        self._warm = warm
        self.every_s = every_s
        self._loops: dict[str, asyncio.Task[None]] = {}
        self.touches = 0  # warms sent, for tests and logs

    def start(self, key: str, ttl_s: float, prefix: dict[str, Any] | None) -> None:
        """(Re)start touching ``prefix`` for ``ttl_s`` seconds from now."""
        self.stop(key)
        if prefix is None or ttl_s <= 0:
            return
        task = asyncio.get_running_loop().create_task(self._loop(prefix, ttl_s))
        self._loops[key] = task
        task.add_done_callback(lambda done: self._forget(key, done))

    def stop(self, key: str) -> None:
        task = self._loops.pop(key, None)
        if task is not None:
            task.cancel()

    async def stop_all(self) -> None:
        tasks = list(self._loops.values())
        self._loops.clear()
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)

    def __len__(self) -> int:
        return len(self._loops)

    def _forget(self, key: str, done: asyncio.Task[None]) -> None:
        if self._loops.get(key) is done:
            del self._loops[key]

    async def _loop(self, prefix: dict[str, Any], ttl_s: float) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + ttl_s
        # The call that pinned it has just finished: its blocks are the most recent now.
        while end - loop.time() > self.every_s:
            await asyncio.sleep(self.every_s)
            self.touches += 1
            await self._warm(prefix)
