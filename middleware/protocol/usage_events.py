"""Dropping the usage-only event that the proxy asked an engine for on a client's behalf.

OpenAI-style streams report token usage only in a final ``choices: []`` chunk, and only
when the client sets ``stream_options.include_usage``. The proxy needs the counts for every
call, so it asks for them anyway; clients that did not ask may index ``choices[0]`` of
every chunk, so that one event is taken out. Everything else passes through unchanged;
at most one incomplete event is held back at a time.
"""

from __future__ import annotations

import json
import re

__all__ = ["UsageEventFilter", "wants_usage"]

_BOUNDARY = re.compile(rb"\r?\n\r?\n")


def wants_usage(body: dict[str, object]) -> bool:
    """Whether the client itself asked for the usage chunk."""
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


class UsageEventFilter:
    """Feed stream bytes in any chunking; get back the bytes to forward now."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._pending + chunk
        cut = 0
        out: list[bytes] = []
        for match in _BOUNDARY.finditer(data):
            event = data[cut : match.end()]
            if not _usage_only(event):
                out.append(event)
            cut = match.end()
        self._pending = data[cut:]
        return b"".join(out)

    def flush(self) -> bytes:
        """The rest of the stream (an unterminated last event), forwarded as it is."""
        rest, self._pending = self._pending, b""
        return rest


def _usage_only(event: bytes) -> bool:
    if b'"usage"' not in event:
        return False
    for line in event.splitlines():
        if line.startswith(b"data:"):
            try:
                payload = json.loads(line[5:])
            except (json.JSONDecodeError, UnicodeDecodeError):
                return False
            return isinstance(payload, dict) and payload.get("choices") == []
    return False
