"""The usage-only event is taken out of a stream, whatever the chunking; nothing else is."""

from __future__ import annotations

import json

import pytest

from kvbaton.middleware.protocol.usage_events import UsageEventFilter, wants_usage


def _event(payload: object, crlf: bool = False) -> bytes:
    end = b"\r\n\r\n" if crlf else b"\n\n"
    return b"data: " + json.dumps(payload).encode() + end


CONTENT = _event({"choices": [{"index": 0, "delta": {"content": "hi"}}]})
WITH_USAGE_INLINE = _event(
    {"choices": [{"index": 0, "delta": {}}], "usage": {"prompt_tokens": 3}}, crlf=True
)
USAGE_ONLY = _event({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}})
COMMENT = b": keep-alive\n\n"
DONE = b"data: [DONE]\n\n"
STREAM = CONTENT + COMMENT + WITH_USAGE_INLINE + USAGE_ONLY + DONE
EXPECTED = CONTENT + COMMENT + WITH_USAGE_INLINE + DONE


def _run(chunks: list[bytes]) -> bytes:
    f = UsageEventFilter()
    return b"".join(f.feed(c) for c in chunks) + f.flush()


def test_every_split_point_gives_the_same_stream() -> None:
    for i in range(len(STREAM) + 1):
        for j in range(i, len(STREAM) + 1, 7):
            assert _run([STREAM[:i], STREAM[i:j], STREAM[j:]]) == EXPECTED, (i, j)


def test_byte_by_byte() -> None:
    assert _run([STREAM[i : i + 1] for i in range(len(STREAM))]) == EXPECTED


def test_unterminated_tail_is_forwarded_as_is() -> None:
    assert _run([CONTENT + b"data: {partial"]) == CONTENT + b"data: {partial"


@pytest.mark.parametrize(
    ("body", "wanted"),
    [
        ({"stream_options": {"include_usage": True}}, True),
        ({"stream_options": {"include_usage": False}}, False),
        ({"stream_options": "yes"}, False),
        ({}, False),
    ],
)
def test_wants_usage(body: dict[str, object], wanted: bool) -> None:
    assert wants_usage(body) is wanted
