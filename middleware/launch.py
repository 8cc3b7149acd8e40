"""Starting and stopping the proxy and the embedded engine on local ports."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator

from aiohttp import web

from kvbaton.middleware.embedded.app import create_engine_app
from kvbaton.middleware.embedded.settings import EngineSettings
from kvbaton.middleware.service.app import create_app, make_runner
from kvbaton.middleware.settings import ProxySettings

__all__ = ["running_engine", "running_proxy", "serve_until_stopped"]


@contextlib.asynccontextmanager
async def _site(app: web.Application, host: str, port: int) -> AsyncIterator[str]:
    runner = make_runner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        yield f"http://{host}:{bound}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def running_engine(settings: EngineSettings) -> AsyncIterator[str]:
    """The embedded engine served on ``settings.host:port`` (port 0 = any free port)."""
    async with _site(create_engine_app(settings), settings.host, settings.port) as url:
        yield url


@contextlib.asynccontextmanager
async def running_proxy(settings: ProxySettings) -> AsyncIterator[tuple[str, str]]:
    """The proxy, in front of ``settings.backend`` or of an embedded engine it starts.

    Yields (proxy URL, engine URL).
    """
    async with contextlib.AsyncExitStack() as stack:
        if settings.backend is None:
            engine = EngineSettings(
                host="127.0.0.1",
                port=0,
                profile=settings.engine_profile,
                kv_tokens=settings.engine_kv_tokens,
                time_scale=settings.engine_time_scale,
            )
            url = await stack.enter_async_context(running_engine(engine))
            settings = settings.model_copy(update={"backend": url})
        proxy_url = await stack.enter_async_context(
            _site(create_app(settings), settings.host, settings.port)
        )
        yield proxy_url, settings.backend or ""


async def serve_until_stopped() -> None:
    """Wait for SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
