import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvbaton.middleware.protocol.sse import StreamSummary
from kvbaton.middleware.protocol.tools import ToolCall
from kvbaton.middleware.protocol.usage import Usage

from .samples import (
    CHAT_STREAM,
    CHAT_STREAM_EVENTS,
    RESPONSE_OBJECT,
    RESPONSES_STREAM,
    RESPONSES_STREAM_EVENTS,
    SGLANG_STREAM,
    sse,
)


def summarize(chunks: list[bytes]) -> StreamSummary:
    summary = StreamSummary()
    for chunk in chunks:
        summary.feed(chunk)
    summary.close()
    return summary


def snapshot(s: StreamSummary) -> tuple[Any, ...]:
    return (
        s.text,
        s.tool_calls,
        s.finish_reason,
        s.usage,
        s.response_id,
        s.error,
        s.meta_info,
        s.response,
        s.done,
        s.events,
        s.malformed,
    )


CHAT_CALLS = [
    ToolCall("call_paris", "get_weather", '{"city": "Paris"}'),
    ToolCall("call_rome", "get_weather", '{"city": "Rome"}'),
]


def test_chat_stream_with_tool_calls() -> None:
    s = summarize([CHAT_STREAM])
    assert s.text == "Checking both cities… ☁"
    assert s.tool_calls == CHAT_CALLS
    assert s.finish_reason == "tool_calls"
    assert s.usage is not None and s.usage["prompt_tokens"] == 82
    assert s.tokens == Usage(82, 40, 64)
    assert (s.response_id, s.error, s.done, s.events) == ("chatcmpl-s1", None, True, 10)


@pytest.mark.parametrize(
    "stream", [CHAT_STREAM, sse(CHAT_STREAM_EVENTS, newline="\r\n")], ids=["lf", "crlf"]
)
def test_chat_stream_split_at_every_byte(stream: bytes) -> None:
    whole = snapshot(summarize([stream]))
    assert whole[1] == CHAT_CALLS
    for cut in range(len(stream) + 1):
        assert snapshot(summarize([stream[:cut], stream[cut:]])) == whole, cut
    assert snapshot(summarize([stream[i : i + 1] for i in range(len(stream))])) == whole


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(RESPONSES_STREAM)), max_size=30))
def test_any_chunking_gives_the_same_summary(cuts: list[int]) -> None:
    for stream in (CHAT_STREAM, RESPONSES_STREAM, SGLANG_STREAM):
        points = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
        chunks = [stream[a:b] for a, b in itertools.pairwise(points)]
        assert snapshot(summarize(chunks)) == snapshot(summarize([stream]))


def test_responses_stream() -> None:
    s = summarize([RESPONSES_STREAM])
    assert s.text == "Let me check."
    assert s.tool_calls == [ToolCall("call_w1", "get_weather", '{"city":"Paris"}')]
    assert s.finish_reason == "tool_calls"
    assert s.response == RESPONSE_OBJECT
    assert s.response_id == RESPONSE_OBJECT["id"]
    assert s.tokens == Usage(50, 20, 32)
    assert s.done and s.error is None


def test_truncated_responses_stream_keeps_partial_calls() -> None:
    events = [
        e
        for e in RESPONSES_STREAM_EVENTS
        if e["type"] not in ("response.completed", "response.output_item.done")
    ]
    s = summarize([sse(events, named=True)])
    assert s.tool_calls == [ToolCall("call_w1", "get_weather", '{"city":"Paris"}')]
    assert (s.done, s.response, s.finish_reason) == (False, None, None)


def test_responses_events_without_event_lines() -> None:
    unnamed = b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in RESPONSES_STREAM_EVENTS)
    assert snapshot(summarize([unnamed]))[:5] == snapshot(summarize([RESPONSES_STREAM]))[:5]


@pytest.mark.parametrize(
    ("status", "details", "reason"),
    [
        ("completed", None, "stop"),
        ("incomplete", {"reason": "max_output_tokens"}, "length"),
        ("failed", None, "error"),
    ],
)
def test_responses_finish_reasons(status: str, details: Any, reason: str) -> None:
    response = {
        "id": "r",
        "status": status,
        "incomplete_details": details,
        "output": [],
        "usage": None,
    }
    if status == "failed":
        response["error"] = {"code": "server_error", "message": "boom"}
    s = summarize([sse([{"type": f"response.{status}", "response": response}], named=True)])
    assert s.finish_reason == reason
    assert (s.error is not None) == (status == "failed")


def test_responses_error_event() -> None:
    event = {
        "type": "error",
        "code": "rate_limit_exceeded",
        "message": "slow down",
        "param": None,
        "sequence_number": 3,
    }
    s = summarize([sse([event], named=True)])
    assert s.error == {"code": "rate_limit_exceeded", "message": "slow down", "param": None}


def test_sglang_stream() -> None:
    s = summarize([SGLANG_STREAM])
    assert s.text == "The answer is 4."
    assert s.finish_reason == "stop"
    assert s.meta_info is not None and s.meta_info["e2e_latency"] == 0.12
    assert s.tokens == Usage(12, 5, 8)
    assert (s.response_id, s.usage, s.done) == ("5f1c2d0a", None, True)


def test_sglang_incremental_output() -> None:
    events = [
        {"text": "The", "meta_info": {}},
        {"text": " answer", "meta_info": {}},
        {"text": " is 4.", "meta_info": {}},
    ]
    assert summarize([sse(events)]).text == "The answer is 4."


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {"error": {"message": "context too long", "type": "BadRequestError", "code": 400}},
            {"message": "context too long", "type": "BadRequestError", "code": 400},
        ),
        ({"error": "upstream died"}, {"message": "upstream died"}),
        (
            {
                "object": "error",
                "message": "bad",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            },
            {"message": "bad", "type": "BadRequestError", "param": None, "code": 400},
        ),
        ({"object": "error", "error": {"message": "x"}}, {"message": "x"}),
    ],
)
def test_error_events(payload: dict[str, Any], expected: dict[str, Any]) -> None:
    assert summarize([sse([payload])]).error == expected


def test_text_completion_stream() -> None:
    chunks = [
        {
            "id": "cmpl-1",
            "object": "text_completion",
            "choices": [{"index": 0, "text": " Par", "finish_reason": None}],
        },
        {
            "id": "cmpl-1",
            "object": "text_completion",
            "choices": [{"index": 0, "text": "is.", "finish_reason": "stop"}],
        },
    ]
    s = summarize([sse(chunks)])
    assert (s.text, s.finish_reason, s.response_id) == (" Paris.", "stop", "cmpl-1")


def test_only_first_choice_is_summarised() -> None:
    chunk = {
        "id": "c",
        "choices": [
            {"index": 1, "delta": {"content": "B"}},
            {"index": 0, "delta": {"content": "A"}},
        ],
    }
    assert summarize([sse([chunk])]).text == "A"


@pytest.mark.parametrize(
    "stream",
    [
        b"data: {not json}\n\n",
        b"data: [1, 2]\n\ndata: null\n\n",
        b'data: {"choices": "x", "usage": 5}\n\n',
        b'data: {"choices": [{"delta": {"tool_calls": [{"index": true, "function": 3}, 7]}}]}\n\n',
        b"event: response.output_item.added\n"
        b'data: {"item": {"type": "function_call"}, "output_index": "x"}\n\n',
        b'event: response.completed\ndata: {"response": {"output": 5, "usage": "x"}}\n\n',
        b"\xff\xfe garbage without newline",
        b"data: " + b"[" * 100_000 + b"\n\n",
        b"retry: 100\nid: 7\nunknown\n\n",
    ],
)
def test_malformed_streams_never_raise(stream: bytes) -> None:
    summarize([stream])
    summarize([stream[i : i + 7] for i in range(0, len(stream), 7)])


def test_multiline_data_and_missing_final_blank_line() -> None:
    s = summarize([b'data: {"choices": [{"index": 0,\ndata:  "delta": {"content": "hi"}}]}'])
    assert s.text == "hi"


def test_large_stream_is_linear() -> None:
    piece = sse([{"id": "c", "choices": [{"index": 0, "delta": {"content": "x" * 50}}]}])
    stream = piece * 20_000  # ~3 MB fed in 1 KB chunks
    s = StreamSummary()
    for start in range(0, len(stream), 1024):
        s.feed(stream[start : start + 1024])
    assert len(s.text) == 1_000_000
