"""What the handlers share, stored on the app under one typed key."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from kvbaton.adapters.base import Backend
from kvbaton.middleware.protocol.conversation import ContinuationIndex
from kvbaton.middleware.service.dispatcher import Dispatcher
from kvbaton.middleware.service.metrics import ProxyMetrics
from kvbaton.middleware.settings import ProxySettings

__all__ = ["SERVICE", "Service", "spawn"]


def spawn(tasks: set[asyncio.Task[Any]], coro: Coroutine[Any, Any, Any]) -> None:
    """Run ``coro`` in the background, kept in ``tasks`` until done (awaited at shutdown)."""
    task = asyncio.get_running_loop().create_task(coro)
    tasks.add(task)
    task.add_done_callback(tasks.discard)


@dataclass(slots=True)
class Service:
    settings: ProxySettings
    backend: Backend
    dispatcher: Dispatcher
    metrics: ProxyMetrics
    continuation: ContinuationIndex
    clock: Callable[[], float]
    background: set[asyncio.Task[Any]] = field(default_factory=set)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        spawn(self.background, coro)


SERVICE = web.AppKey("service", Service)
