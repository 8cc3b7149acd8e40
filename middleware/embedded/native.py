"""SGLang-native routes: ``/generate``, sessions, abort and flush (info routes: `info`).

Shapes follow SGLang 0.5 (``python/sglang/srt/entrypoints/http_server.py``): ``/generate``
returns ``{text, output_ids, meta_info}``; streaming sends cumulative ``text``/``output_ids``
per token as ``data: {json}`` chunks, then ``data: [DONE]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from typing import Any

from aiohttp import web

from ..engine import Finished, TokenOut, text_reply, tokens
from .batch import single_rid, split_batch
from .calls import Call, Tally, aborting_on_error, follow_call, hold_of, run_call, submit_call
from .errors import ApiError, read_json_object
from .keys import RUNNER, SESSIONS
from .sessions import Session, hold_key
from .sse import open_stream, send_done, send_event
from .wire import (
    AbortRequest,
    CloseSessionRequest,
    GenerateRequest,
    OpenSessionRequest,
)

__all__ = ["add_native_routes"]


def add_native_routes(app: web.Application) -> None:
    app.router.add_post("/generate", generate)
    app.router.add_put("/generate", generate)
    app.router.add_post("/open_session", open_session)
    app.router.add_post("/close_session", close_session)
    app.router.add_post("/abort_request", abort_request)
    for method in ("GET", "POST"):
        app.router.add_route(method, "/flush_cache", flush_cache)


# -- /generate --------------------------------------------------------------------------


async def generate(request: web.Request) -> web.StreamResponse:
    body = GenerateRequest.model_validate(await read_json_object(request))
    batch = split_batch(body)
    if batch is not None:
        return web.json_response(await asyncio.gather(*(_generate_one(request, b) for b in batch)))
    new_ids, seed = _input(body)
    sp = body.sampling_params
    max_new = sp.max_new_tokens if sp.max_new_tokens is not None else 128
    reply = text_reply(seed, max_new, sp.ignore_eos, sp.stops)
    rid = single_rid(body) or uuid.uuid4().hex
    session = _session(request, body)
    if session is None:
        hold = hold_of(request, body.kvbaton_hold, body.session_id)
        call = Call(rid, new_ids, reply, max_new, body.priority or 0, *hold)
    else:
        ttl = request.app[RUNNER].model_seconds(session.timeout_s or math.inf)
        prompt = [*session.tokens, *new_ids]
        call = Call(rid, prompt, reply, max_new, body.priority or 0, hold_key(session.id), ttl)
        session.busy = True
    tally = Tally(len(call.prompt), time.monotonic())
    try:
        if body.stream:
            return await _stream_generate(request, body, call, tally)
        tally = await run_call(request, call)
        return web.json_response(_output(body, call, tally, final=True))
    finally:
        if session is not None:
            _end_turn(session, call, tally)


async def _generate_one(request: web.Request, body: GenerateRequest) -> dict[str, Any]:
    """One prompt of a batch (never streamed, never in a session)."""
    new_ids, seed = _input(body)
    sp = body.sampling_params
    max_new = sp.max_new_tokens if sp.max_new_tokens is not None else 128
    reply = text_reply(seed, max_new, sp.ignore_eos, sp.stops)
    hold = hold_of(request, body.kvbaton_hold, body.session_id)
    rid = single_rid(body) or uuid.uuid4().hex
    call = Call(rid, new_ids, reply, max_new, body.priority or 0, *hold)
    return _output(body, call, await run_call(request, call), final=True)


def _input(body: GenerateRequest) -> tuple[list[int], str | list[int]]:
    """New prompt token ids, and the seed of the synthetic reply."""
    if (body.text is None) == (body.input_ids is None):
        raise ApiError("exactly one of text and input_ids must be given", param="text")
    if body.text is not None:
        text = body.text
        if isinstance(text, list):
            if len(text) != 1:
                raise ApiError("batched generation is not supported", param="text")
            text = text[0]
        return tokens.encode(text), text
    ids: Any = body.input_ids
    if ids and isinstance(ids[0], list):
        if len(ids) != 1:
            raise ApiError("batched generation is not supported", param="input_ids")
        ids = ids[0]
    if not ids:
        raise ApiError("input_ids must not be empty", param="input_ids")
    return list(ids), list(ids)


def _session(request: web.Request, body: GenerateRequest) -> Session | None:
    params = body.session_params
    if params is None:
        return None
    if body.session_id is not None:
        raise ApiError("session_id cannot be combined with session_params", param="session_id")
    if params.offset not in (None, -1) or params.replace or params.drop_previous_output:
        raise ApiError("session offset/replace/drop_previous_output are not supported")
    session = request.app[SESSIONS].get(params.id, time.monotonic())
    if session is None:
        raise ApiError(f"session {params.id!r} is not open", param="session_params.id")
    if session.busy:
        raise ApiError(f"session {params.id!r} already has a request in flight")
    return session


def _end_turn(session: Session, call: Call, tally: Tally) -> None:
    session.busy = False
    session.last_active = time.monotonic()
    if tally.finish_reason in ("stop", "length"):
        # The engine pinned this prompt + output at finish; the next turn appends to it.
        session.tokens = (*call.prompt, *call.reply.token_ids[: tally.completion_tokens])


async def _stream_generate(
    request: web.Request, body: GenerateRequest, call: Call, tally: Tally
) -> web.StreamResponse:
    queue = submit_call(request, call)
    async with aborting_on_error(request, call):
        response = await open_stream(request)
    with contextlib.suppress(ConnectionResetError):
        async with contextlib.aclosing(follow_call(request, call, queue, tally)) as batches:
            async for batch in batches:
                final = any(isinstance(e, Finished) for e in batch)
                tokens_out = [e for e in batch if isinstance(e, TokenOut)]
                # One chunk per token; the step's last token carries the finish reason.
                for i, event in enumerate(tokens_out):
                    last = final and i == len(tokens_out) - 1
                    tally_now = _partial(tally, event.index + 1, last)
                    await send_event(response, _output(body, call, tally_now, final=last))
                if final and not tokens_out:
                    await send_event(response, _output(body, call, tally, final=True))
        await send_done(response)
    return response


def _partial(tally: Tally, completion: int, final: bool) -> Tally:
    if final:
        return tally
    return Tally(tally.prompt_tokens, tally.started, tally.cached_tokens, completion)


def _output(body: GenerateRequest, call: Call, tally: Tally, *, final: bool) -> dict[str, Any]:
    n = tally.completion_tokens
    ids = call.reply.token_ids[:n]
    meta: dict[str, Any] = {
        "id": call.rid,
        "finish_reason": _finish(call, tally) if final else None,
        "prompt_tokens": tally.prompt_tokens,
        "completion_tokens": n,
        "cached_tokens": tally.cached_tokens,
    }
    if final:
        meta["e2e_latency"] = tally.e2e_s
    if body.return_logprob:
        meta.update(_logprobs(body, call.prompt, ids, call.reply.pieces[:n]))
    return {"text": "".join(call.reply.pieces[:n]), "output_ids": ids, "meta_info": meta}


def _finish(call: Call, tally: Tally) -> dict[str, Any]:
    match tally.finish_reason:
        case "stop":
            matched = call.reply.stop_matched
            return {"type": "stop", "matched": matched if matched else tokens.EOS_TOKEN_ID}
        case "length":
            return {"type": "length", "length": tally.completion_tokens}
        case _:
            return {"type": "abort", "message": "Abort request."}


def _fake_logprob(token_id: int) -> float:
    return -round((token_id % 1000) / 250.0, 4)


def _logprobs(
    body: GenerateRequest, prompt: list[int], output: list[int], output_texts: tuple[str, ...]
) -> dict[str, Any]:
    """``[logprob, token id, token text or None]`` per token (text with
    ``return_text_in_logprobs``; for the prompt only where it was sent as one text)."""
    start = body.logprob_start_len
    inputs = prompt[start:] if start >= 0 else []
    texts = _prompt_texts(body, prompt)[start:] if start >= 0 else []
    out_texts = output_texts if body.return_text_in_logprobs else (None,) * len(output)
    return {
        "input_token_logprobs": [
            [None if start + i == 0 else _fake_logprob(t), t, texts[i]]
            for i, t in enumerate(inputs)
        ],
        "output_token_logprobs": [
            [_fake_logprob(t), t, text] for t, text in zip(output, out_texts, strict=True)
        ],
    }


def _prompt_texts(body: GenerateRequest, prompt: list[int]) -> list[str | None]:
    if body.return_text_in_logprobs and isinstance(body.text, str) and body.session_params is None:
        pieces = tokens.pieces(body.text)
        if len(pieces) == len(prompt):
            return list(pieces)
    return [None] * len(prompt)


# -- sessions, abort, flush -------------------------------------------------------------


async def open_session(request: web.Request) -> web.Response:
    body = OpenSessionRequest.model_validate(await read_json_object(request))
    try:
        session = request.app[SESSIONS].open(body.session_id, body.timeout, time.monotonic())
    except ValueError as exc:
        raise ApiError(str(exc), param="session_id") from None
    return web.json_response(session.id)


async def close_session(request: web.Request) -> web.Response:
    body = CloseSessionRequest.model_validate(await read_json_object(request))
    sessions = request.app[SESSIONS]
    opened = sessions.close(body.session_id) is not None
    if not sessions.untag(body.session_id) and not opened:
        raise ApiError(f"session {body.session_id!r} is not open", param="session_id")
    request.app[RUNNER].release(hold_key(body.session_id))
    return web.Response()


async def abort_request(request: web.Request) -> web.Response:
    body = AbortRequest.model_validate(await read_json_object(request))
    runner = request.app[RUNNER]
    if body.abort_all:
        runner.abort_all()
    elif body.rid:
        runner.abort(body.rid)
    return web.Response()


async def flush_cache(request: web.Request) -> web.Response:
    note = (
        "Please check backend logs for more details. (When there are running or waiting "
        "requests, the operation will not be performed.)\n"
    )
    if request.app[RUNNER].model.flush():
        return web.Response(text="Cache flushed.\n" + note)
    return web.Response(text="Cache not flushed.\n" + note, status=400)
