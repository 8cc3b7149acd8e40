"""Typed application keys and shared type aliases of the embedded server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from .metrics import EngineMetrics
from .runner import EngineRunner
from .sessions import SessionTable
from .settings import EngineSettings

__all__ = ["METRICS", "RUNNER", "SESSIONS", "SETTINGS", "Handler"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SETTINGS = web.AppKey("kvbaton_engine_settings", EngineSettings)
RUNNER = web.AppKey("kvbaton_engine_runner", EngineRunner)
SESSIONS = web.AppKey("kvbaton_engine_sessions", SessionTable)
METRICS = web.AppKey("kvbaton_engine_metrics", EngineMetrics)
