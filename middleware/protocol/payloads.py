"""Where each API keeps a call's input and its reply, for prefix continuation."""

from collections.abc import Mapping
from typing import Any

from kvbaton.middleware.protocol.routes import Route, route_of
from kvbaton.middleware.protocol.values import get, sequence

__all__ = [
    "prefill_only",
    "prompt_text",
    "reply_message",
    "reply_text",
    "request_messages",
    "shared_prompt",
]


def request_messages(route: str, body: Any) -> Any:
    """Chat ``messages`` or Responses ``input`` (a string or a list of items); else None."""
    match route_of(route):
        case Route.CHAT:
            return get(body, "messages")
        case Route.RESPONSES:
            return get(body, "input")
        case _:
            return None


def _raw_prompt(route: str, body: Any) -> Any:
    """The prompt field of ``/v1/completions`` (``prompt``) or ``/generate`` (``text``)."""
    match route_of(route):
        case Route.COMPLETIONS:
            return get(body, "prompt")
        case Route.GENERATE:
            return get(body, "text")
        case _:
            return None


def prompt_text(route: str, body: Any) -> str | None:
    """The text prompt of ``/v1/completions`` or ``/generate`` (one prompt only)."""
    prompt = _raw_prompt(route, body)
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    return prompt if isinstance(prompt, str) else None


def shared_prompt(route: str, body: Any) -> str | None:
    """The text every prompt of the request starts with: its one prompt, or what a batch
    of text prompts has in common (SGLang's frontend scores ``select`` choices as one
    batch, ``[state + choice for choice in choices]``, that continues ``state``)."""
    prompt = _raw_prompt(route, body)
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return _common_prefix(prompt) or None
    return prompt if isinstance(prompt, str) else None


def prefill_only(route: str, body: Any) -> bool:
    """A text call that asks for no output (SGLang ``max_new_tokens: 0``, completions
    ``max_tokens: 0``): a cache warm-up, such as the shared prefix SGLang's frontend sends
    before a batch of programs. Its prompt is not a program's conversation so far."""
    match route_of(route):
        case Route.GENERATE:
            limit = get(body, "sampling_params", "max_new_tokens")
        case Route.COMPLETIONS:
            limit = get(body, "max_tokens")
        case _:
            return False
    return limit == 0 and not isinstance(limit, bool)


def _common_prefix(texts: list[str]) -> str:
    # The lexicographically first and last texts differ earliest: their common prefix is all's.
    first, last = min(texts), max(texts)
    pairs = enumerate(zip(first, last, strict=False))
    end = next((i for i, (a, b) in pairs if a != b), len(first))
    return first[:end]


def reply_message(route: str, response_json: Any) -> dict[str, Any] | None:
    """The assistant message a reply adds to the conversation, chat-shaped; None if none.

    For the Responses API it is built from the output items (text and ``function_call``
    items), which :mod:`.canonical` treats as the same conversation unit.
    """
    match route_of(route):
        case Route.CHAT:
            message = get(response_json, "choices", 0, "message")
            return {"role": "assistant", **message} if isinstance(message, Mapping) else None
        case Route.RESPONSES:
            return _responses_message(get(response_json, "output"))
        case Route.COMPLETIONS | Route.GENERATE:
            text = reply_text(route, response_json)
            return None if text is None else {"role": "assistant", "content": text}
        case _:
            return None


def reply_text(route: str, response_json: Any) -> str | None:
    """The generated text of a ``/v1/completions`` or ``/generate`` reply."""
    match route_of(route):
        case Route.COMPLETIONS:
            text = get(response_json, "choices", 0, "text")
        case Route.GENERATE:
            text = get(response_json, "text")
        case _:
            return None
    return text if isinstance(text, str) else None


def _responses_message(output: Any) -> dict[str, Any] | None:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for item in sequence(output):
        kind = get(item, "type")
        if kind == "message":
            texts.extend(_output_texts(get(item, "content")))
        elif kind == "function_call":
            function = {"name": get(item, "name"), "arguments": get(item, "arguments")}
            calls.append({"id": get(item, "call_id"), "type": "function", "function": function})
    if not texts and not calls:
        return None
    return {"role": "assistant", "content": "".join(texts), "tool_calls": calls}


def _output_texts(content: Any) -> list[str]:
    return [
        text
        for part in sequence(content)
        if isinstance(text := get(part, "text"), str)
        and get(part, "type") in ("output_text", "text", None)
    ]
