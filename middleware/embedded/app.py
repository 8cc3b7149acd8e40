"""The embedded engine's HTTP server: an aiohttp app factory and two ways to run it.

Usage::

    from kvbaton.middleware.embedded import EngineSettings, create_engine_app, serve_engine
    serve_engine("127.0.0.1", 30000, profile="demo-tiny", time_scale=1.0)   # blocking
    # or, inside a running loop:  await run_engine(EngineSettings(profile="demo-tiny"))
    # or:  web.run_app(create_engine_app(settings), host=..., port=..., handler_cancellation=True)

The model and its profile are built in the factory (an unknown profile fails there, listing
the known names); the real-time runner task lives in ``cleanup_ctx``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from ..engine import EngineModel, load_profile
from .errors import error_middleware
from .frontend import add_frontend_routes
from .holds import add_hold_routes
from .info import add_info_routes
from .keys import METRICS, RUNNER, SESSIONS, SETTINGS
from .metrics import EngineMetrics
from .native import add_native_routes
from .openai_api import add_openai_routes
from .responses_api import add_responses_routes
from .runner import EngineRunner
from .sessions import SessionTable
from .settings import EngineSettings

__all__ = ["create_engine_app", "run_engine", "serve_engine"]


def create_engine_app(settings: EngineSettings | None = None) -> web.Application:
    """Build the server app (SGLang-native and OpenAI routes) for ``settings``."""
    settings = settings or EngineSettings()
    profile = load_profile(settings.profile)
    model = EngineModel(
        profile,
        kv_tokens=settings.kv_tokens,
        max_running=settings.max_running,
        priority_scheduling=settings.priority_scheduling,
        priority_eviction=settings.radix_eviction_policy == "priority",
    )
    app = web.Application(middlewares=[error_middleware])
    app[SETTINGS] = settings
    sessions = SessionTable()
    app[SESSIONS] = sessions
    app[METRICS] = EngineMetrics(
        model.stats, lambda: sessions.count(time.monotonic()), settings.model_name
    )

    async def runner_ctx(app: web.Application) -> AsyncIterator[None]:
        runner = EngineRunner(model, time_scale=settings.time_scale)
        app[RUNNER] = runner
        task = asyncio.create_task(runner.run(), name="kvbaton-engine-runner")
        yield
        runner.abort_all()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(runner_ctx)
    add_native_routes(app)
    add_hold_routes(app)
    add_info_routes(app)
    add_openai_routes(app)
    add_responses_routes(app)
    add_frontend_routes(app)
    return app


async def run_engine(settings: EngineSettings) -> None:
    """Serve until cancelled (for callers that own the event loop)."""
    runner = web.AppRunner(create_engine_app(settings), handler_cancellation=True)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def serve_engine(host: str = "127.0.0.1", port: int = 30000, **settings: Any) -> None:
    """Serve in the foreground (blocking); ``settings`` are `EngineSettings` fields."""
    config = EngineSettings(host=host, port=port, **settings)
    web.run_app(
        create_engine_app(config),
        host=config.host,
        port=config.port,
        handler_cancellation=True,
        print=None,
    )
