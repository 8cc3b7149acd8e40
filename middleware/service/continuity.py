"""Finding the program of a request that declares none, and remembering replies for it."""

from __future__ import annotations

from typing import Any

from kvbaton.middleware.protocol import (
    ContinuationIndex,
    Identity,
    Route,
    StreamSummary,
    prompt_text,
    reply_message,
    reply_text,
    request_messages,
)
from kvbaton.middleware.protocol.payloads import prefill_only, shared_prompt

__all__ = ["continued_program", "remember_reply", "remember_stream", "stream_message"]


def continued_program(
    index: ContinuationIndex, route: Route, body: dict[str, Any], identity: Identity, now: float
) -> str | None:
    """The program whose earlier request and reply this request extends, if any."""
    if identity.previous_response_id:
        found = index.lookup_response(identity.previous_response_id, now)
        if found is not None:
            return found
    if route in (Route.CHAT, Route.RESPONSES):
        return index.lookup(request_messages(route, body), now)
    prompt = shared_prompt(route, body)
    return index.lookup_text(prompt, now) if prompt is not None else None


def remember_reply(
    index: ContinuationIndex,
    route: Route,
    body: dict[str, Any],
    reply: Any,
    program_id: str,
    now: float,
) -> None:
    """Remember a whole (non-streamed) reply so that the program's next request finds it."""
    if route is Route.RESPONSES and isinstance(reply, dict) and isinstance(reply.get("id"), str):
        index.remember_response(reply["id"], program_id, now)
    if route in (Route.CHAT, Route.RESPONSES):
        message = reply_message(route, reply)
        if message is not None:
            index.remember(request_messages(route, body), message, program_id, now)
        return
    prompt, text = prompt_text(route, body), reply_text(route, reply)
    if prompt is not None and text is not None and not prefill_only(route, body):
        index.remember_text(prompt, text, program_id, now)


def remember_stream(
    index: ContinuationIndex,
    route: Route,
    body: dict[str, Any],
    summary: StreamSummary,
    program_id: str,
    now: float,
) -> None:
    """The same for a streamed reply, rebuilt from what the stream said."""
    if summary.response is not None:  # the Responses API streams its final object
        remember_reply(index, route, body, summary.response, program_id, now)
        return
    if route is Route.CHAT:
        index.remember(request_messages(route, body), stream_message(summary), program_id, now)
        return
    prompt = prompt_text(route, body)
    if prompt is not None and not prefill_only(route, body):
        index.remember_text(prompt, summary.text, program_id, now)


def stream_message(summary: StreamSummary) -> dict[str, Any]:
    """The assistant message a streamed chat reply amounts to."""
    message: dict[str, Any] = {"role": "assistant", "content": summary.text}
    if summary.tool_calls:
        message["tool_calls"] = [
            {
                "id": t.id,
                "type": "function",
                "function": {"name": t.name, "arguments": t.arguments},
            }
            for t in summary.tool_calls
        ]
    return message
