"""OpenAI-compatible routes: ``/v1/models``, ``/v1/chat/completions``, ``/v1/completions``.

Replies are synthetic (`kvbaton.middleware.engine.replies`); timings and ``usage`` (with
``prompt_tokens_details.cached_tokens`` always present) come from the engine model.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Any

from aiohttp import web

from ..engine import Reply, TokenOut, chat_reply, text_reply, tokens
from ..engine.events import Finished, FinishReason
from .calls import Call, Tally, aborting_on_error, follow_call, hold_of, run_call, submit_call
from .deltas import ChatDeltas
from .errors import ApiError, read_json_object
from .keys import SETTINGS
from .sse import open_stream, send_done, send_event
from .wire import ChatCompletionRequest, CompletionRequest, NamedToolChoice

__all__ = ["add_openai_routes"]


def add_openai_routes(app: web.Application) -> None:
    app.router.add_get("/v1/models", list_models)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)


async def list_models(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    model = {
        "id": settings.model_name,
        "object": "model",
        "created": 0,
        "owned_by": "kvbaton",
        "root": settings.model_name,
    }
    return web.json_response({"object": "list", "data": [model]})


# -- chat -------------------------------------------------------------------------------


async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = ChatCompletionRequest.model_validate(await read_json_object(request))
    messages = [m.model_dump(exclude_none=True) for m in body.messages]
    tools = [t.model_dump(exclude_none=True) for t in body.tools] if body.tools else None
    choice: Any = body.tool_choice
    if isinstance(choice, NamedToolChoice):
        choice = choice.model_dump()
    try:
        reply = chat_reply(messages, tools, choice, body.token_limit, body.ignore_eos)
    except ValueError as exc:
        raise ApiError(str(exc), param="tool_choice") from None
    prompt = tokens.encode(tokens.render_chat(messages, tools))
    rid = body.rid or f"chatcmpl-{uuid.uuid4().hex}"
    max_new = _max_new(body.token_limit, reply)
    hold = hold_of(request, body.kvbaton_hold, body.session_id)
    call = Call(rid, prompt, reply, max_new, body.priority or 0, *hold)
    if body.stream:
        usage = body.stream_options is not None and body.stream_options.include_usage
        return await _stream_chat(request, call, usage)
    tally = await run_call(request, call)
    choice_out = {
        "index": 0,
        "message": _message(reply, tally),
        "logprobs": None,
        "finish_reason": _chat_finish(reply, tally.finish_reason),
    }
    return web.json_response(_envelope(request, call, "chat.completion", [choice_out], tally))


def _message(reply: Reply, tally: Tally) -> dict[str, Any]:
    if reply.tool_calls and tally.finish_reason == "stop":
        calls = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for c in reply.tool_calls
        ]
        return {"role": "assistant", "content": None, "tool_calls": calls}
    text = "".join(reply.pieces[: tally.completion_tokens])
    return {"role": "assistant", "content": text}


def _chat_finish(reply: Reply, finish: FinishReason | None) -> str:
    if finish == "stop" and reply.tool_calls:
        return "tool_calls"
    return finish or "abort"


async def _stream_chat(request: web.Request, call: Call, include_usage: bool) -> web.StreamResponse:
    tally = Tally(len(call.prompt), time.monotonic())
    queue = submit_call(request, call)
    base = _chunk_base(request, call, "chat.completion.chunk", include_usage)

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**base, "choices": [choice]}

    async with aborting_on_error(request, call):
        response = await open_stream(request)
        await send_event(response, chunk({"role": "assistant", "content": ""}))
    deltas = ChatDeltas(call.reply)
    with contextlib.suppress(ConnectionResetError):
        async with contextlib.aclosing(follow_call(request, call, queue, tally)) as batches:
            async for batch in batches:
                for event in batch:
                    if isinstance(event, TokenOut):
                        for delta in deltas.advance(event.index + 1):
                            await send_event(response, chunk(delta))
                    elif isinstance(event, Finished):
                        finish = _chat_finish(call.reply, event.finish_reason)
                        await send_event(response, chunk({}, finish))
        if include_usage:
            await send_event(response, {**base, "choices": [], "usage": tally.usage})
        await send_done(response)
    return response


# -- completions ------------------------------------------------------------------------


async def completions(request: web.Request) -> web.StreamResponse:
    body = CompletionRequest.model_validate(await read_json_object(request))
    prompt = _completion_prompt(body.prompt)
    ids = tokens.encode(prompt) if isinstance(prompt, str) else prompt
    reply = text_reply(prompt, body.max_tokens, body.ignore_eos, body.stops)
    rid = body.rid or f"cmpl-{uuid.uuid4().hex}"
    max_new = _max_new(body.max_tokens, reply)
    hold = hold_of(request, body.kvbaton_hold, body.session_id)
    call = Call(rid, ids, reply, max_new, body.priority or 0, *hold)
    if body.stream:
        usage = body.stream_options is not None and body.stream_options.include_usage
        return await _stream_completion(request, call, usage)
    tally = await run_call(request, call)
    choice = {
        "index": 0,
        "text": "".join(reply.pieces[: tally.completion_tokens]),
        "logprobs": None,
        "finish_reason": tally.finish_reason or "abort",
    }
    return web.json_response(_envelope(request, call, "text_completion", [choice], tally))


def _completion_prompt(prompt: str | list[int] | list[str]) -> str | list[int]:
    if isinstance(prompt, str):
        return prompt
    if prompt and all(isinstance(p, str) for p in prompt):
        if len(prompt) != 1:
            raise ApiError("batched prompts are not supported; send one prompt", param="prompt")
        return str(prompt[0])
    return [int(p) for p in prompt]


async def _stream_completion(
    request: web.Request, call: Call, include_usage: bool
) -> web.StreamResponse:
    tally = Tally(len(call.prompt), time.monotonic())
    queue = submit_call(request, call)
    base = _chunk_base(request, call, "text_completion", include_usage)

    def chunk(text: str, finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        return {**base, "choices": [choice]}

    async with aborting_on_error(request, call):
        response = await open_stream(request)
    with contextlib.suppress(ConnectionResetError):
        async with contextlib.aclosing(follow_call(request, call, queue, tally)) as batches:
            async for batch in batches:
                for event in batch:
                    if isinstance(event, TokenOut):
                        await send_event(response, chunk(call.reply.pieces[event.index]))
                    elif isinstance(event, Finished):
                        await send_event(response, chunk("", event.finish_reason))
        if include_usage:
            await send_event(response, {**base, "choices": [], "usage": tally.usage})
        await send_done(response)
    return response


# -- shared -----------------------------------------------------------------------------


def _max_new(limit: int | None, reply: Reply) -> int:
    # Without a limit the reply ends on its own: one more than its length reads as "stop".
    return limit if limit is not None else len(reply.pieces) + 1


def _chunk_base(request: web.Request, call: Call, kind: str, include_usage: bool) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": call.rid,
        "object": kind,
        "created": int(time.time()),
        "model": request.app[SETTINGS].model_name,
    }
    if include_usage:
        base["usage"] = None  # OpenAI: null on every chunk but the last
    return base


def _envelope(
    request: web.Request, call: Call, kind: str, choices: list[dict[str, Any]], tally: Tally
) -> dict[str, Any]:
    return {
        "id": call.rid,
        "object": kind,
        "created": int(time.time()),
        "model": request.app[SETTINGS].model_name,
        "choices": choices,
        "usage": tally.usage,
    }
