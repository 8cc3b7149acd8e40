"""The LLM routes: identify the program, wait for the core's go, forward, account.

A call's life: read and check the body → find its program (declared, else continued
from an earlier reply) → queue in the core → forward when dispatched → relay the reply
(streamed bytes untouched) → tell the core what the engine reported.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from kvbaton.adapters.base import UpstreamRequest, UpstreamResponse
from kvbaton.adapters.errors import BackendError
from kvbaton.middleware.core.types import CallOutcome, CallSpec, ToolCall
from kvbaton.middleware.protocol import (
    Identity,
    Route,
    StreamSummary,
    Usage,
    find_usage,
    identify,
    reply_message,
    requested_tool_calls,
    returned_tool_call_ids,
    strip_own,
)
from kvbaton.middleware.protocol import ToolCall as RequestedTool
from kvbaton.middleware.protocol.agents import instructions_agent
from kvbaton.middleware.protocol.usage_events import UsageEventFilter, wants_usage
from kvbaton.middleware.service.context import SERVICE, Service
from kvbaton.middleware.service.continuity import (
    continued_program,
    remember_reply,
    remember_stream,
    stream_message,
)
from kvbaton.middleware.service.dispatcher import Ticket
from kvbaton.middleware.service.prefixes import fixed_prefix
from kvbaton.middleware.service.requests import read_call_body

__all__ = ["call_handler"]

# Rough prompt size before the engine has tokenized it; the engine's count replaces it.
_CHARS_PER_TOKEN = 4
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# How long the engine keeps a finished call's KV pinned before the proxy has re-timed or
# released the pin (it does so as soon as it has read the reply).
_HOLD_GRACE_S = 5.0


@dataclass(slots=True)
class _Call:
    route: Route
    body: dict[str, Any]
    headers: dict[str, str]
    identity: Identity
    spec: CallSpec

    @property
    def streaming(self) -> bool:
        return self.body.get("stream") is True


def call_handler(route: Route) -> Any:
    async def handle(request: web.Request) -> web.StreamResponse:
        service = request.app[SERVICE]
        started = service.clock()
        call = await _prepare(request, route, service)
        status = "error"
        try:
            async with service.dispatcher.slot(call.spec) as ticket:
                response = await _forward(request, service, call, ticket)
                status = str(response.status)
                return response
        except asyncio.CancelledError:
            status = "disconnect"
            service.metrics.client_disconnects.inc()
            raise
        except BackendError as exc:
            status = str(exc.status)
            service.metrics.upstream_errors.labels(code=str(exc.status)).inc()
            raise
        finally:
            service.metrics.requests.labels(route=route.name.lower(), code=status).inc()
            service.metrics.request_seconds.labels(route=route.name.lower()).observe(
                service.clock() - started
            )

    return handle


async def _prepare(request: web.Request, route: Route, service: Service) -> _Call:
    body = await read_call_body(request, route)
    identity = identify(request.headers, body)
    headers, body = strip_own(request.headers, body)
    program_id = _program_of(service, route, identity, body)
    spec = CallSpec(
        call_id=uuid.uuid4().hex,
        program_id=program_id,
        tenant=identity.tenant or "default",
        agent=identity.agent or instructions_agent(route, body),
        step=identity.step,
        parent_step=identity.parent_step,
        workflow=identity.workflow,
        prompt_tokens=_estimate_tokens(route, body),
        last_step=identity.last_step,
        retry=identity.retry,
        returned_tool_calls=tuple(returned_tool_call_ids(route, body)),
        deadline_s=identity.deadline_s,
        prefix_tokens=_prefix_tokens(route, body),
        tools=identity.tools,
    )
    return _Call(route, body, headers, identity, spec)


def _program_of(service: Service, route: Route, identity: Identity, body: dict[str, Any]) -> str:
    """Declared program, else the one this request continues, else a new one."""
    if identity.program_id is not None:
        return identity.program_id
    found = continued_program(service.continuation, route, body, identity, service.clock())
    return found if found is not None else f"anon-{uuid.uuid4().hex[:16]}"


def _estimate_tokens(route: Route, body: dict[str, Any]) -> int:
    field = {Route.CHAT: "messages", Route.COMPLETIONS: "prompt", Route.RESPONSES: "input"}
    source = body.get(field.get(route, "text"), body.get("input_ids"))
    if isinstance(source, list) and source and isinstance(source[0], int):
        return len(source)
    return len(json.dumps(source, default=str)) // _CHARS_PER_TOKEN


def _prefix_tokens(route: Route, body: dict[str, Any]) -> int:
    """Rough size of the call's fixed prefix (system messages and tools): what a warm of its
    agent would load. Chat calls only, as the prefix store keeps chat bodies."""
    messages = body.get("messages")
    if route is not Route.CHAT or not isinstance(messages, list):
        return 0
    fixed = fixed_prefix(messages)
    if not fixed:
        return 0
    return len(json.dumps([fixed, body.get("tools")], default=str)) // _CHARS_PER_TOKEN


async def _forward(
    request: web.Request, service: Service, call: _Call, ticket: Ticket
) -> web.StreamResponse:
    backend = service.backend
    body = dict(call.body)
    if ticket.rank is not None:
        backend.set_priority(body, ticket.rank)
    if ticket.hold_key is not None:
        backend.hold_at_finish(body, ticket.hold_key, _HOLD_GRACE_S)
    hide_usage = _ask_for_usage(call, body)
    if backend.capabilities.abort_endpoint and call.route in (Route.GENERATE, Route.CHAT):
        body.setdefault("rid", call.spec.call_id)
    upstream = await backend.send(
        UpstreamRequest(
            "POST",
            request.path_qs,
            {**call.headers, "Content-Type": "application/json", "Accept-Encoding": "identity"},
            json.dumps(body).encode(),
        )
    )
    try:
        if call.streaming and upstream.status == 200:
            return await _relay_stream(request, service, call, ticket, upstream, hide_usage)
        return await _relay_whole(service, call, ticket, upstream)
    except BaseException:
        upstream.close()  # a dropped connection aborts the request at the engine
        rid = body.get("rid")
        if isinstance(rid, str):
            service.spawn(backend.abort(rid))
        raise


async def _relay_whole(
    service: Service, call: _Call, ticket: Ticket, upstream: UpstreamResponse
) -> web.Response:
    raw = await upstream.read()
    response = web.Response(body=raw, status=upstream.status)
    response.content_type = _content_type(upstream)
    if upstream.status != 200:
        return response
    try:
        reply = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return response
    _account(service, ticket, find_usage(reply), requested_tool_calls(call.route, reply))
    remember_reply(
        service.continuation, call.route, call.body, reply, call.spec.program_id, service.clock()
    )
    if call.route is Route.CHAT:
        _remember_prefix(service, call, reply_message(call.route, reply))
    return response


async def _relay_stream(
    request: web.Request,
    service: Service,
    call: _Call,
    ticket: Ticket,
    upstream: UpstreamResponse,
    hide_usage: bool,
) -> web.StreamResponse:
    response = web.StreamResponse(status=200, headers=_SSE_HEADERS)
    response.content_type = _content_type(upstream)
    await response.prepare(request)
    summary = StreamSummary()
    usage_filter = UsageEventFilter() if hide_usage else None
    try:
        async for chunk in upstream.chunks():
            summary.feed(chunk)
            out = usage_filter.feed(chunk) if usage_filter else chunk
            if out:
                await response.write(out)
        if usage_filter is not None and (rest := usage_filter.flush()):
            await response.write(rest)
    except BackendError:
        # The status line is sent: the only way to tell the client is to break off the stream.
        if request.transport is not None:
            request.transport.close()
        raise
    await response.write_eof()
    summary.close()
    _account(service, ticket, summary.tokens, summary.tool_calls)
    remember_stream(
        service.continuation, call.route, call.body, summary, call.spec.program_id, service.clock()
    )
    if call.route is Route.CHAT:
        _remember_prefix(service, call, stream_message(summary))
    return response


def _remember_prefix(service: Service, call: _Call, reply: dict[str, Any] | None) -> None:
    """Keep what a warm of this program (or of its agent's fixed prefix) would load."""
    spec = call.spec
    service.dispatcher.prefixes.remember(
        spec.program_id, spec.workflow, spec.agent, call.body, reply
    )


def _account(
    service: Service, ticket: Ticket, usage: Usage | None, requested: list[RequestedTool]
) -> None:
    usage = usage or Usage()
    ticket.outcome = CallOutcome(
        ok=True,
        prompt_tokens=usage.prompt_tokens,
        cached_tokens=usage.cached_tokens or 0,
        completion_tokens=usage.completion_tokens,
        tool_calls=tuple(ToolCall(t.id, t.name) for t in requested),
    )
    for kind, value in (
        ("prompt", usage.prompt_tokens),
        ("cached", usage.cached_tokens or 0),
        ("completion", usage.completion_tokens),
    ):
        service.metrics.tokens.labels(kind=kind).inc(value)


def _ask_for_usage(call: _Call, body: dict[str, Any]) -> bool:
    """Ask the engine for a streamed call's token counts even if the client did not; returns
    whether the usage event must then be kept from the client."""
    if not call.streaming or call.route not in (Route.CHAT, Route.COMPLETIONS):
        return False
    if wants_usage(body):
        return False
    options = body.get("stream_options")
    body["stream_options"] = {
        **(options if isinstance(options, dict) else {}),
        "include_usage": True,
    }
    return True


def _content_type(upstream: UpstreamResponse) -> str:
    return upstream.headers.get("Content-Type", "application/json").split(";")[0].strip()
