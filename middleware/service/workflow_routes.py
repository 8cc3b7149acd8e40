"""The workflow API: declared graphs in, merged graphs out, and the end of a program.

``PUT /kvbaton/v1/workflows/{name}`` takes a declared graph (:mod:`core.workflows.declared`)
and answers with the merged graph; ``GET`` the same path returns it (``?format=node-link``
for networkx node-link JSON); ``GET /kvbaton/v1/workflows`` lists the workflows known;
``POST /kvbaton/v1/programs/{program_id}/end`` ends a program.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from kvbaton.middleware.core.workflows import WorkflowGraph, WorkflowTooLarge, parse_declared
from kvbaton.middleware.core.workflows.declared import MAX_NAME_CHARS
from kvbaton.middleware.protocol import wire
from kvbaton.middleware.service.context import SERVICE
from kvbaton.middleware.service.errors import error_response

__all__ = ["add_workflow_routes"]

_FORMATS = ("json", "node-link")


async def put_workflow(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if len(name) > MAX_NAME_CHARS:
        return _invalid(f"workflow name longer than {MAX_NAME_CHARS} characters", "name")
    try:
        body: Any = json.loads(await request.read())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return _invalid(f"request body is not valid JSON: {exc}", None)
    try:
        declared = parse_declared(body, name)
    except WorkflowTooLarge as exc:
        return error_response(413, str(exc), "invalid_request_error", code="workflow_too_large")
    except ValueError as exc:
        return _invalid(str(exc), None)
    workflows = request.app[SERVICE].dispatcher.scheduler.workflows
    return web.json_response(workflows.declare(name, declared).to_json())


async def get_workflow(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    form = request.query.get("format", "json")
    if form not in _FORMATS:
        return _invalid(f"format must be one of {', '.join(_FORMATS)}, got {form!r}", "format")
    graph = request.app[SERVICE].dispatcher.scheduler.workflows.get(name)
    if graph is None:
        return error_response(404, f"no workflow {name!r}", "not_found_error", param="name")
    return web.json_response(graph.node_link() if form == "node-link" else graph.to_json())


async def list_workflows(request: web.Request) -> web.Response:
    workflows = request.app[SERVICE].dispatcher.scheduler.workflows
    graphs = (workflows.get(name) for name in workflows.names())
    return web.json_response(
        {"object": "list", "data": [_brief(g) for g in graphs if g is not None]}
    )


async def end_program(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    program_id = request.match_info["program_id"]
    try:
        actions = service.dispatcher.scheduler.end_program(program_id, service.clock())
    except KeyError:
        return error_response(
            404, f"no live program {program_id!r}", "not_found_error", param="program_id"
        )
    service.dispatcher.apply(actions)
    return web.json_response({"program_id": program_id, "ended": True})


def _brief(graph: WorkflowGraph) -> dict[str, Any]:
    return {
        "name": graph.name,
        "declared": graph.declared,
        "agents": len(graph.agents()),
        "nodes": len(graph),
        "programs": graph.programs,
    }


def _invalid(message: str, param: str | None) -> web.Response:
    return error_response(400, message, "invalid_request_error", param=param)


def add_workflow_routes(app: web.Application) -> None:
    app.router.add_get("/kvbaton/v1/workflows", list_workflows)
    app.router.add_put(wire.PATH_WORKFLOW, put_workflow)
    app.router.add_get(wire.PATH_WORKFLOW, get_workflow)
    app.router.add_post(wire.PATH_PROGRAM_END, end_program)
