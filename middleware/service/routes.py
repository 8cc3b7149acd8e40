"""The route table: LLM calls, engine pass-through, health, metrics, the program API."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from kvbaton.adapters.base import UpstreamRequest
from kvbaton.middleware.core.programs import ProgramState
from kvbaton.middleware.core.scheduler import Scheduler
from kvbaton.middleware.protocol.forwarding import strip_own
from kvbaton.middleware.protocol.routes import Route
from kvbaton.middleware.service.calls import call_handler
from kvbaton.middleware.service.context import SERVICE
from kvbaton.middleware.service.errors import error_response
from kvbaton.middleware.service.ui_routes import add_ui_routes
from kvbaton.middleware.service.workflow_routes import add_workflow_routes

__all__ = ["add_routes"]

# Engine routes forwarded as they are: no program, no queue.
_PASS_THROUGH = [
    ("GET", "/v1/models"),
    ("GET", "/model_info"),
    ("GET", "/get_model_info"),
    ("GET", "/server_info"),
    ("GET", "/get_server_info"),
    ("GET", "/flush_cache"),
    ("POST", "/flush_cache"),
    ("POST", "/abort_request"),
    ("POST", "/concate_and_append_request"),  # SGLang's frontend joining forks
]


async def pass_through(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    headers, _ = strip_own(request.headers, None)
    body = await request.read() if request.can_read_body else None
    upstream = await service.backend.send(
        UpstreamRequest(request.method, request.path_qs, headers, body)
    )
    raw = await upstream.read()
    response = web.Response(body=raw, status=upstream.status)
    response.content_type = upstream.headers.get("Content-Type", "application/json").split(";")[0]
    return response


async def health(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    stats = service.dispatcher.scheduler.stats()
    try:
        upstream = await service.backend.send(UpstreamRequest("GET", "/health"))
        await upstream.read()
        engine_ok = upstream.status < 500
    except Exception:
        engine_ok = False
    body = {
        "status": "ok" if engine_ok else "engine_unavailable",
        "engine": service.backend.capabilities.kind,
        "queued": stats.queued,
        "inflight": stats.inflight,
    }
    return web.json_response(body, status=200 if engine_ok else 503)


async def list_programs(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    scheduler, now = service.dispatcher.scheduler, service.clock()
    stats = scheduler.stats()
    keeper, admission = scheduler.keeper, scheduler.admission
    programs = [_program_view(scheduler, p, now) for p in scheduler.programs]
    return web.json_response(
        {
            "object": "list",
            "policy": scheduler.policy.name,
            "now": now,  # the proxy's clock, that of every time in the views
            "stats": {
                "queued": stats.queued,
                "inflight": stats.inflight,
                "programs": stats.programs,
                "submitted": stats.submitted,
                "finished": stats.finished,
                "cancelled": stats.cancelled,
                "pins": keeper.totals(now),
                "admission": admission.totals() if admission is not None else None,
            },
            "data": programs,
        }
    )


async def get_program(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    scheduler = service.dispatcher.scheduler
    program_id = request.match_info["program_id"]
    program = scheduler.programs.get(program_id)
    if program is None:
        return error_response(
            404, f"no live program {program_id!r}", "not_found_error", param="program_id"
        )
    now = service.clock()
    body = _program_view(scheduler, program, now)
    body["now"] = now
    body["graph"] = program.graph.to_json()
    prediction = scheduler.workflows.predict(program, now)
    body["prediction"] = prediction.to_json() if prediction is not None else None
    return web.json_response(body)


def _program_view(scheduler: Scheduler, program: ProgramState, now: float) -> dict[str, Any]:
    """A program's summary with its pin and, under program admission, its place in the pool."""
    view: dict[str, Any] = program.summary() | scheduler.keeper.view(program.program_id, now)
    if scheduler.admission is not None:
        view |= scheduler.admission.view(program.program_id)
    return view


def add_routes(app: web.Application, metrics_handler: Any) -> None:
    for route in Route:
        app.router.add_post(route.value, call_handler(route))
    for method, path in _PASS_THROUGH:
        app.router.add_route(method, path, pass_through)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/kvbaton/v1/programs", list_programs)
    app.router.add_get("/kvbaton/v1/programs/{program_id}", get_program)
    add_workflow_routes(app)
    add_ui_routes(app)
