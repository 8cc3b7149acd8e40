"""A summary of a server-sent-event stream, read from a copy of the bytes passed through.

Understands chat and text completion chunks (OpenAI), Responses API events and SGLang
``/generate`` streams. Work is linear in the bytes fed: each chunk is scanned once, and only
the unfinished last line is kept between chunks. Lines end in ``\\n`` or ``\\r\\n``.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kvbaton.middleware.protocol.tools import ToolCall
from kvbaton.middleware.protocol.usage import Usage, read_meta_info, read_usage
from kvbaton.middleware.protocol.values import get, mapping, sequence, text

__all__ = ["StreamSummary"]

_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})
_INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}


@dataclass(slots=True)
class _Call:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class StreamSummary:
    """Feed it the stream's bytes in any chunking; read what the stream said.

    ``finish_reason`` uses the chat vocabulary for every API (``stop``, ``length``,
    ``tool_calls``, ...; Responses: ``error`` for a failed response). ``usage`` is the raw
    usage object (chat: the final ``choices: []`` chunk; Responses: the final response's),
    ``tokens`` the parsed counts from whichever shape came.
    """

    def __init__(self) -> None:
        self._pending = bytearray()
        self._event = ""
        self._data: list[str] = []
        self._text: list[str] = []
        self._calls: dict[int, _Call] = {}
        self._incremental = False
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.response_id: str | None = None
        self.error: dict[str, Any] | None = None
        self.meta_info: dict[str, Any] | None = None
        self.response: dict[str, Any] | None = None
        self.done = False
        self.events = 0
        self.malformed = 0

    # --- reading ---------------------------------------------------------------------------

    def feed(self, chunk: bytes) -> None:
        end = chunk.rfind(b"\n")
        if end < 0:
            self._pending += chunk
            return
        lines = (bytes(self._pending) + chunk[: end + 1]).split(b"\n")
        self._pending = bytearray(chunk[end + 1 :])
        for line in lines[:-1]:
            self._line(line[:-1] if line.endswith(b"\r") else line)

    def close(self) -> None:
        """End of stream: take an unterminated last line and event as complete."""
        if self._pending:
            self._line(bytes(self._pending).rstrip(b"\r"))
            self._pending.clear()
        self._dispatch()

    # --- results ---------------------------------------------------------------------------

    @property
    def text(self) -> str:
        return "".join(self._text)

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [
            ToolCall(call.id, call.name, "".join(call.arguments))
            for _, call in sorted(self._calls.items())
            if call.name
        ]

    @property
    def tokens(self) -> Usage | None:
        return read_usage(self.usage) or read_meta_info(self.meta_info)

    # --- SSE framing -----------------------------------------------------------------------

    def _line(self, raw: bytes) -> None:
        if not raw:
            self._dispatch()
            return
        if raw.startswith(b":"):
            return
        name, _, value = raw.decode("utf-8", "replace").partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value

    def _dispatch(self) -> None:
        data, event = "\n".join(self._data), self._event
        self._data, self._event = [], ""
        if not data:
            return
        if data.strip() == "[DONE]":
            self.done = True
            return
        try:
            payload = json.loads(data)
        except (ValueError, RecursionError):
            self.malformed += 1
            return
        if isinstance(payload, Mapping):
            self.events += 1
            self._payload(event or text(payload.get("type")) or "", payload)

    def _payload(self, event: str, payload: Mapping[str, Any]) -> None:
        if event.startswith("response.") or event == "error":
            self._responses_event(event, payload)
        elif payload.get("error") is not None:
            self._set_error(payload["error"])
        elif payload.get("object") == "error":  # vLLM's older flat error shape
            self._set_error({k: payload.get(k) for k in ("message", "type", "param", "code")})
        elif "choices" in payload:
            self._chat_chunk(payload)
        elif "meta_info" in payload or "text" in payload:
            self._generate_chunk(payload)

    def _set_error(self, error: Any) -> None:
        self.error = dict(error) if isinstance(error, Mapping) else {"message": str(error)}

    # --- chat and text completions ------------------------------------------------------------

    def _chat_chunk(self, chunk: Mapping[str, Any]) -> None:
        self.response_id = self.response_id or text(chunk.get("id"))
        if isinstance(usage := chunk.get("usage"), Mapping):
            self.usage = dict(usage)
        for choice in sequence(chunk.get("choices")):
            if get(choice, "index") in (0, None):
                self._choice(mapping(choice))

    def _choice(self, choice: Mapping[str, Any]) -> None:
        delta = mapping(choice.get("delta"))
        for piece in (delta.get("content"), choice.get("text")):
            if isinstance(piece, str):
                self._text.append(piece)
        for fragment in sequence(delta.get("tool_calls")):
            if isinstance(fragment, Mapping):
                self._call_fragment(fragment)
        if isinstance(reason := choice.get("finish_reason"), str):
            self.finish_reason = reason

    def _call_fragment(self, fragment: Mapping[str, Any]) -> None:
        """The first fragment of a call has its id and name; ``arguments`` come in pieces."""
        index = fragment.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            index = len(self._calls) if fragment.get("id") else max(self._calls, default=0)
        call = self._calls.setdefault(index, _Call())
        call.id = call.id or text(fragment.get("id")) or ""
        call.name = call.name or text(get(fragment, "function", "name")) or ""
        if isinstance(piece := get(fragment, "function", "arguments"), str):
            call.arguments.append(piece)

    # --- SGLang /generate -------------------------------------------------------------------

    def _generate_chunk(self, chunk: Mapping[str, Any]) -> None:
        """``text`` is cumulative by default; with incremental output it is the new piece."""
        piece = chunk.get("text")
        if not isinstance(piece, str):
            pass
        elif not self._incremental and piece.startswith(self.text):
            self._text = [piece]  # cumulative: one piece, so ``self.text`` costs nothing
        else:
            self._incremental = True
            self._text.append(piece)
        meta_info = chunk.get("meta_info")
        if isinstance(meta_info, Mapping):
            self.meta_info = dict(meta_info)
            self.response_id = self.response_id or text(meta_info.get("id"))
            reason = get(meta_info, "finish_reason", "type")
            self.finish_reason = text(reason) or self.finish_reason

    # --- Responses API ----------------------------------------------------------------------

    def _responses_event(self, event: str, payload: Mapping[str, Any]) -> None:
        response = payload.get("response")
        if isinstance(response, Mapping):
            self.response_id = text(response.get("id")) or self.response_id
        if event == "response.output_text.delta" and isinstance(payload.get("delta"), str):
            self._text.append(payload["delta"])
        elif event in ("response.output_item.added", "response.output_item.done"):
            self._output_item(payload.get("output_index"), payload.get("item"))
        elif event == "response.function_call_arguments.delta":
            call = self._calls.get(_index(payload.get("output_index")))
            if call is not None and isinstance(payload.get("delta"), str):
                call.arguments.append(payload["delta"])
        elif event == "error":
            self._set_error({k: payload.get(k) for k in ("code", "message", "param")})
        elif event in _TERMINAL and isinstance(response, Mapping):
            self._final_response(response)

    def _output_item(self, output_index: Any, item: Any) -> None:
        if get(item, "type") != "function_call":
            return
        arguments = get(item, "arguments")
        self._calls[_index(output_index)] = _Call(
            text(get(item, "call_id")) or "",
            text(get(item, "name")) or "",
            [arguments] if isinstance(arguments, str) and arguments else [],
        )

    def _final_response(self, response: Mapping[str, Any]) -> None:
        self.response, self.done = dict(response), True
        if isinstance(usage := response.get("usage"), Mapping):
            self.usage = dict(usage)
        output = sequence(response.get("output"))
        calls = {i: item for i, item in enumerate(output) if get(item, "type") == "function_call"}
        if calls:
            self._calls = {}
            for index, item in calls.items():
                self._output_item(index, item)
        texts = [
            part["text"]
            for item in output
            if get(item, "type") == "message"
            for part in sequence(get(item, "content"))
            if get(part, "type") == "output_text" and isinstance(get(part, "text"), str)
        ]
        if texts:
            self._text = texts
        self.finish_reason = self._responses_reason(response)
        if response.get("status") == "failed":
            self._set_error(response.get("error") or {"message": "response failed"})

    def _responses_reason(self, response: Mapping[str, Any]) -> str:
        status = response.get("status")
        if self._calls:
            return "tool_calls"
        if status == "incomplete":
            return _INCOMPLETE.get(str(get(response, "incomplete_details", "reason")), "length")
        return "error" if status == "failed" else "stop"


def _index(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
