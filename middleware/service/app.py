"""``create_app``: the proxy as an aiohttp application (no module-level app)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

from aiohttp import web

from kvbaton.adapters.base import Backend
from kvbaton.adapters.detect import connect
from kvbaton.middleware.core.policies import Policy, make_policy
from kvbaton.middleware.core.retention import RETENTIONS, reload_from_profile
from kvbaton.middleware.core.scheduler import Scheduler, SchedulerConfig
from kvbaton.middleware.engine import load_profile
from kvbaton.middleware.protocol.conversation import ContinuationIndex
from kvbaton.middleware.service.context import SERVICE, Service, spawn
from kvbaton.middleware.service.dispatcher import Dispatcher
from kvbaton.middleware.service.errors import error_middleware
from kvbaton.middleware.service.metrics import ProxyMetrics
from kvbaton.middleware.service.prefixes import PrefixStore
from kvbaton.middleware.service.routes import add_routes
from kvbaton.middleware.settings import ProxySettings

__all__ = ["create_app", "make_runner"]


def create_app(
    settings: ProxySettings,
    *,
    backend: Backend | None = None,
    clock: Callable[[], float] | None = None,
) -> web.Application:
    """The proxy in front of ``settings.backend`` (or of ``backend``, if given).

    ``clock`` defaults to the event loop's monotonic time.
    """
    if settings.backend is None and backend is None:
        raise ValueError("create_app needs settings.backend or a backend")
    _policy(settings)  # fail now, not on the first request
    load_profile(settings.engine_profile)
    app = web.Application(
        client_max_size=int(settings.max_body_mb * 1024 * 1024),
        middlewares=[error_middleware],
    )
    metrics = ProxyMetrics()
    add_routes(app, metrics.handle)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        engine = backend or await connect(
            settings.backend or "",
            settings.engine_kind,
            priority=settings.engine_priority,
            connect_timeout_s=settings.connect_timeout_s,
            read_timeout_s=settings.read_timeout_s,
        )
        service = _service(settings, engine, metrics, clock or asyncio.get_running_loop().time)
        app[SERVICE] = service
        loops = [asyncio.create_task(service.dispatcher.run_ticker())]
        if service.dispatcher.scheduler.limit.adaptive:
            loops.append(asyncio.create_task(service.dispatcher.run_load_poller()))
        try:
            yield
        finally:
            for loop in loops:
                loop.cancel()
            await service.dispatcher.aclose()
            await asyncio.gather(*loops, *service.background, return_exceptions=True)
            await engine.release_all()  # no session or pin outlives the proxy
            if backend is None:
                await engine.aclose()

    app.cleanup_ctx.append(contextlib.asynccontextmanager(lifecycle))
    return app


def _service(
    settings: ProxySettings, backend: Backend, metrics: ProxyMetrics, clock: Callable[[], float]
) -> Service:
    # The profile prices a reload (what a pin saves) and stands in for a KV size the
    # engine does not report.
    profile = load_profile(settings.engine_profile)
    config = SchedulerConfig(
        max_inflight=settings.max_inflight
        or backend.capabilities.max_running
        or settings.default_max_inflight,
        programs_capacity=settings.programs_capacity,
        idle_ttl_s=settings.idle_ttl_s,
        kv_tokens=backend.capabilities.kv_tokens or profile.kv_tokens,
        # An engine that batches an unknown number of requests but reports its load: keep
        # the queue in the proxy by following that load, unless the operator set a limit.
        adaptive_inflight=settings.max_inflight is None and backend.capabilities.reports_load,
        # An engine that cannot hold KV itself keeps pins only if the proxy admits no work
        # that would evict them.
        guard_pins=not backend.capabilities.holds_kv,
    )
    scheduler = Scheduler(_policy(settings), config, reload_s=reload_from_profile(profile))
    background: set[asyncio.Task[Any]] = set()
    prefixes = PrefixStore(programs_capacity=min(settings.programs_capacity, 10_000))
    dispatcher = Dispatcher(
        scheduler, metrics, clock, backend, partial(spawn, background), prefixes
    )
    metrics.gauge(
        "kvbaton_queue_depth", "calls waiting in the proxy", lambda: scheduler.stats().queued
    )
    metrics.gauge("kvbaton_inflight", "calls at the engine", lambda: scheduler.stats().inflight)
    metrics.gauge("kvbaton_programs", "live programs", lambda: len(scheduler.programs))
    metrics.gauge(
        "kvbaton_max_inflight", "most calls at the engine at once", lambda: scheduler.limit.value
    )
    pins = scheduler.keeper.pins
    metrics.gauge(
        "kvbaton_pinned_tokens", "KV tokens pinned for paused programs", lambda: pins.pinned_tokens
    )
    metrics.gauge("kvbaton_pins_live", "paused programs with pinned KV", lambda: len(pins))
    return Service(
        settings=settings,
        backend=backend,
        dispatcher=dispatcher,
        metrics=metrics,
        continuation=ContinuationIndex(settings.continuation_capacity),
        clock=clock,
        background=background,
    )


def _policy(settings: ProxySettings) -> Policy:
    policy = make_policy(settings.policy)
    if settings.retention is None:
        return policy
    if settings.retention not in RETENTIONS:
        known = ", ".join(RETENTIONS)
        raise ValueError(f"unknown retention {settings.retention!r}; available: {known}")
    return dataclasses.replace(policy, retention=settings.retention)


def make_runner(app: web.Application) -> web.AppRunner:
    """An ``AppRunner`` that cancels a handler when its client disconnects, so that the
    call leaves the queue and its engine request is aborted."""
    return web.AppRunner(app, handler_cancellation=True, access_log=None)
