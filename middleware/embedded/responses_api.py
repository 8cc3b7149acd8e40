"""The OpenAI Responses API, ``POST /v1/responses``, whole or streamed.

A request is turned into the engine's chat view (`responses_items`), generated like a chat
completion, and answered with output items; a stream sends the Responses event sequence
(``response.created`` … ``response.completed``, each event with its ``sequence_number``).
``previous_response_id`` continues a response this engine served recently.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..engine import TokenOut, chat_reply, tokens
from .calls import Call, Tally, aborting_on_error, follow_call, hold_of, run_call, submit_call
from .deltas import ChatDeltas
from .errors import ApiError, read_json_object
from .keys import SETTINGS
from .responses_items import (
    ResponsesRequest,
    ResponseStore,
    chat_messages,
    chat_tool_choice,
    chat_tools,
    conversation_after,
    function_call_id,
    function_call_item,
    message_item,
    output_items,
    response_usage,
    with_system,
)
from .sse import open_stream

__all__ = ["RESPONSES", "add_responses_routes"]

RESPONSES = web.AppKey("kvbaton_engine_responses", ResponseStore)


def add_responses_routes(app: web.Application) -> None:
    app[RESPONSES] = ResponseStore()
    app.router.add_post("/v1/responses", create_response)


@dataclass(slots=True)
class _Turn:
    """One response being made: the request, its conversation so far and the engine call."""

    body: ResponsesRequest
    response_id: str
    created_at: int
    history: list[dict[str, Any]]  # earlier turns + this input, without instructions
    call: Call


async def create_response(request: web.Request) -> web.StreamResponse:
    turn = _turn(request, ResponsesRequest.model_validate(await read_json_object(request)))
    if turn.body.stream:
        return await _stream(request, turn)
    tally = await run_call(request, turn.call)
    items = output_items(turn.call.reply, tally.completion_tokens, tally.finish_reason == "stop")
    _remember(request, turn, items)
    return web.json_response(_response(request, turn, items, tally))


def _turn(request: web.Request, body: ResponsesRequest) -> _Turn:
    history = [*_earlier(request, body.previous_response_id), *chat_messages(body)]
    messages = with_system(body.instructions, history)
    tools = chat_tools(body.tools)
    limit = body.max_output_tokens
    try:
        reply = chat_reply(messages, tools, chat_tool_choice(body.tool_choice), limit)
    except ValueError as exc:
        raise ApiError(str(exc), param="tool_choice") from None
    response_id = f"resp_{uuid.uuid4().hex}"
    max_new = limit if limit is not None else len(reply.pieces) + 1
    call = Call(
        body.rid or response_id,
        tokens.encode(tokens.render_chat(messages, tools)),
        reply,
        max_new,
        body.priority or 0,
        *hold_of(request, body.kvbaton_hold),
    )
    return _Turn(body, response_id, int(time.time()), history, call)


def _earlier(request: web.Request, previous_id: str | None) -> list[dict[str, Any]]:
    if previous_id is None:
        return []
    earlier = request.app[RESPONSES].get(previous_id)
    if earlier is None:
        raise ApiError(
            f"previous response {previous_id!r} is not known to this engine (it keeps the "
            f"{request.app[RESPONSES].capacity} most recent); send the full input instead",
            status=404,
            param="previous_response_id",
            kind="not_found_error",
        )
    return earlier


def _remember(request: web.Request, turn: _Turn, items: list[dict[str, Any]]) -> None:
    request.app[RESPONSES].put(turn.response_id, conversation_after(turn.history, items))


def _response(
    request: web.Request, turn: _Turn, items: list[dict[str, Any]], tally: Tally | None
) -> dict[str, Any]:
    """The ``Response`` object: in progress (``tally`` None) or finished."""
    body = turn.body
    status, incomplete = _status(tally)
    return {
        "id": turn.response_id,
        "object": "response",
        "created_at": turn.created_at,
        "status": status,
        "error": None,
        "incomplete_details": incomplete,
        "instructions": body.instructions,
        "max_output_tokens": body.max_output_tokens,
        "model": request.app[SETTINGS].model_name,
        "output": items,
        "parallel_tool_calls": body.parallel_tool_calls is not False,
        "previous_response_id": body.previous_response_id,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "tool_choice": body.tool_choice or "auto",
        "tools": body.tools or [],
        "metadata": body.metadata or {},
        "text": {"format": {"type": "text"}},
        "truncation": "disabled",
        "usage": response_usage(tally.usage) if tally is not None else None,
    }


def _status(tally: Tally | None) -> tuple[str, dict[str, str] | None]:
    if tally is None:
        return "in_progress", None
    if tally.finish_reason == "stop":
        return "completed", None
    return "incomplete", {"reason": "max_output_tokens"}


# -- streaming --------------------------------------------------------------------------


class _Events:
    """Sends Responses stream events, numbering them."""

    def __init__(self, response: web.StreamResponse) -> None:
        self.response = response
        self._seq = itertools.count()

    async def send(self, kind: str, **fields: Any) -> None:
        payload = {"type": kind, "sequence_number": next(self._seq), **fields}
        frame = f"event: {kind}\ndata: {json.dumps(payload)}\n\n"
        await self.response.write(frame.encode())


async def _stream(request: web.Request, turn: _Turn) -> web.StreamResponse:
    tally = Tally(len(turn.call.prompt), time.monotonic())
    queue = submit_call(request, turn.call)
    async with aborting_on_error(request, turn.call):
        events = _Events(await open_stream(request))
        opening = _response(request, turn, [], None)
        await events.send("response.created", response=opening)
        await events.send("response.in_progress", response=opening)
    items = _ItemStream(turn, events)
    with contextlib.suppress(ConnectionResetError):
        async with contextlib.aclosing(follow_call(request, turn.call, queue, tally)) as batches:
            async for batch in batches:
                for event in batch:
                    if isinstance(event, TokenOut):
                        await items.advance(event.index + 1)
        output = await items.close(tally)
        _remember(request, turn, output)
        final = _response(request, turn, output, tally)
        kind = "response.completed" if final["status"] == "completed" else "response.incomplete"
        await events.send(kind, response=final)
        await events.response.write_eof()
    return events.response


class _ItemStream:
    """Output items as their tokens arrive: a message's text deltas, or function calls
    announced by name and then filled in by argument deltas (`ChatDeltas` finds the cuts)."""

    def __init__(self, turn: _Turn, events: _Events) -> None:
        self.reply = turn.call.reply
        self.events = events
        self.deltas = ChatDeltas(self.reply)
        self.text_id = f"msg_{uuid.uuid4().hex}"
        self.text: list[str] = []
        self.opened: set[int] = set()

    async def advance(self, n_tokens: int) -> None:
        for delta in self.deltas.advance(n_tokens):
            if "content" in delta:
                await self._text_delta(delta["content"])
            for fragment in delta.get("tool_calls", ()):
                await self._call_fragment(fragment)

    async def close(self, tally: Tally) -> list[dict[str, Any]]:
        if self.reply.tool_calls and tally.finish_reason == "stop":
            return [await self._close_call(i) for i in range(len(self.reply.tool_calls))]
        return [await self._close_text(tally.finish_reason == "stop")]

    async def _text_delta(self, piece: str) -> None:
        if not self.opened:
            await self._open_text()
        self.text.append(piece)
        await self.events.send(
            "response.output_text.delta", **self._text_at(), delta=piece, logprobs=[]
        )

    async def _open_text(self) -> None:
        self.opened.add(0)
        item = message_item("", "in_progress", self.text_id)
        await self.events.send("response.output_item.added", output_index=0, item=item)
        await self.events.send("response.content_part.added", **self._text_at(), part=_part(""))

    async def _close_text(self, finished: bool) -> dict[str, Any]:
        if not self.opened:
            await self._open_text()
        text = "".join(self.text)
        item = message_item(text, "completed" if finished else "incomplete", self.text_id)
        at = self._text_at()
        await self.events.send("response.output_text.done", **at, text=text, logprobs=[])
        await self.events.send("response.content_part.done", **at, part=_part(text))
        await self.events.send("response.output_item.done", output_index=0, item=item)
        return item

    def _text_at(self) -> dict[str, Any]:
        return {"item_id": self.text_id, "output_index": 0, "content_index": 0}

    async def _call_fragment(self, fragment: dict[str, Any]) -> None:
        index = fragment["index"]
        call = self.reply.tool_calls[index]
        if index not in self.opened:
            self.opened.add(index)
            item = function_call_item(call.id, call.name, "", "in_progress")
            await self.events.send("response.output_item.added", output_index=index, item=item)
        piece = fragment.get("function", {}).get("arguments", "")
        if piece:
            await self.events.send(
                "response.function_call_arguments.delta",
                item_id=function_call_id(call.id),
                output_index=index,
                delta=piece,
            )

    async def _close_call(self, index: int) -> dict[str, Any]:
        call = self.reply.tool_calls[index]
        if index not in self.opened:
            await self._call_fragment({"index": index})
        item = function_call_item(call.id, call.name, call.arguments)
        await self.events.send(
            "response.function_call_arguments.done",
            item_id=item["id"],
            output_index=index,
            arguments=call.arguments,
        )
        await self.events.send("response.output_item.done", output_index=index, item=item)
        return item


def _part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
