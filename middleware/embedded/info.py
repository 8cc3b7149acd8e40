"""SGLang-native read-only routes: model/server info, health, ``/metrics``, ``/v1/loads``."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from kvbaton import __version__

from ..engine.events import EngineStats
from .keys import METRICS, RUNNER, SESSIONS, SETTINGS

__all__ = ["ENGINE_NAME", "add_info_routes"]

ENGINE_NAME = "kvbaton-embedded"


def add_info_routes(app: web.Application) -> None:
    for path in ("/model_info", "/get_model_info"):
        app.router.add_get(path, model_info)
    for path in ("/server_info", "/get_server_info"):
        app.router.add_get(path, server_info)
    for path in ("/health", "/health_generate"):
        app.router.add_get(path, health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/loads", loads)


async def model_info(request: web.Request) -> web.Response:
    name = request.app[SETTINGS].model_name
    return web.json_response(
        {
            "model_path": name,
            "tokenizer_path": None,
            "is_generation": True,
            "preferred_sampling_params": None,
            "weight_version": "synthetic",
            "model_type": ENGINE_NAME,
        }
    )


async def server_info(request: web.Request) -> web.Response:
    settings, model = request.app[SETTINGS], request.app[RUNNER].model
    profile = model.profile
    stats = model.stats()
    return web.json_response(
        {
            "engine": ENGINE_NAME,
            "version": __version__,
            "profile": profile.name,
            "profile_description": profile.description,
            "model_path": settings.model_name,
            "served_model_name": settings.model_name,
            "max_running_requests": profile.max_running,
            "max_total_num_tokens": profile.kv_tokens,
            "chunked_prefill_size": profile.chunk_tokens,
            "page_size": profile.page_size,
            "schedule_policy": "fcfs",
            "enable_priority_scheduling": model.priority_scheduling,
            "radix_eviction_policy": "priority" if model.priority_eviction else "lru",
            "enable_session_radix_cache": settings.enable_session_radix_cache,
            "time_scale": settings.time_scale,
            "internal_states": [_load(request, stats)],
        }
    )


async def health(request: web.Request) -> web.Response:
    return web.Response()


async def metrics(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[METRICS].render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


async def loads(request: web.Request) -> web.Response:
    load = _load(request, request.app[RUNNER].model.stats())
    aggregate = {
        "total_running_reqs": load["num_running_reqs"],
        "total_waiting_reqs": load["num_waiting_reqs"],
        "total_reqs": load["num_total_reqs"],
        "total_used_tokens": load["num_used_tokens"],
        "total_tokens": load["max_total_num_tokens"],
        "avg_token_usage": load["token_usage"],
        "avg_throughput": load["gen_throughput"],
        "avg_utilization": load["utilization"],
    }
    return web.json_response(
        {
            "timestamp": datetime.now(UTC).isoformat(),
            "version": __version__,
            "dp_rank_count": 1,
            "loads": [load],
            "aggregate": aggregate,
        }
    )


def _load(request: web.Request, s: EngineStats) -> dict[str, Any]:
    runner = request.app[RUNNER]
    return {
        "dp_rank": 0,
        "num_running_reqs": s.running,
        "num_waiting_reqs": s.waiting,
        "num_total_reqs": s.running + s.waiting,
        "num_used_tokens": s.kv_used_tokens,
        "max_total_num_tokens": s.kv_capacity_tokens,
        "token_usage": round(s.token_usage, 4),
        "cache_hit_rate": round(s.cache_hit_rate, 4),
        "num_waiting_uncached_tokens": s.waiting_tokens,
        "kv_evictable_tokens": s.kv_evictable_tokens,
        "kv_held_tokens": s.kv_held_tokens,
        "gen_throughput": round(runner.gen_throughput(), 2),
        "utilization": round(s.running / runner.model.profile.max_running, 4),
        "num_streaming_sessions": request.app[SESSIONS].count(time.monotonic()),
    }
