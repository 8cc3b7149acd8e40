"""kvbaton's native KV pins on the embedded engine.

A request that carries ``kvbaton_hold: {key, ttl_s}`` has its prompt and output pinned under
``key`` when it finishes (atomically, so nothing is evicted in between). The proxy then
re-times the pin once it knows how long the program's tool will run, or releases it.
"""

from __future__ import annotations

from aiohttp import web

from .errors import read_json_object
from .keys import RUNNER
from .wire import HoldRelease, HoldUpdate

__all__ = ["add_hold_routes"]


async def retime_hold(request: web.Request) -> web.Response:
    """``POST /kvbaton/v1/hold {key, ttl_s}``: keep a pin ``ttl_s`` real seconds from now
    (0 releases it). Answers the tokens held; 404 if there is no such pin."""
    update = HoldUpdate.model_validate(await read_json_object(request))
    runner = request.app[RUNNER]
    if update.ttl_s == 0:
        released = runner.release(update.key)
        return web.json_response({"key": update.key, "held_tokens": 0, "released": released})
    held = runner.retime(update.key, runner.model_seconds(update.ttl_s))
    if not held:
        return _no_hold(update.key)
    return web.json_response({"key": update.key, "held_tokens": held})


async def release_hold(request: web.Request) -> web.Response:
    """``POST /kvbaton/v1/release {key}``."""
    release = HoldRelease.model_validate(await read_json_object(request))
    released = request.app[RUNNER].release(release.key)
    return web.json_response({"key": release.key, "released": released})


async def list_holds(request: web.Request) -> web.Response:
    holds = request.app[RUNNER].model.cache.holds()
    return web.json_response({"holds": holds, "held_tokens": sum(holds.values())})


def _no_hold(key: str) -> web.Response:
    error = {"message": f"no pin {key!r}", "type": "not_found_error", "param": "key", "code": None}
    return web.json_response({"error": error}, status=404)


def add_hold_routes(app: web.Application) -> None:
    app.router.add_post("/kvbaton/v1/hold", retime_hold)
    app.router.add_post("/kvbaton/v1/release", release_hold)
    app.router.add_get("/kvbaton/v1/holds", list_holds)
