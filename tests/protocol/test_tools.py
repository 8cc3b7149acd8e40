from typing import Any

import pytest

from kvbaton.middleware.protocol.payloads import (
    prompt_text,
    reply_message,
    reply_text,
    request_messages,
)
from kvbaton.middleware.protocol.routes import Route, route_of
from kvbaton.middleware.protocol.tools import (
    ToolCall,
    requested_tool_calls,
    returned_tool_call_ids,
)

from .samples import RESPONSE_1, RESPONSE_2, RESPONSE_OBJECT, TURN_1, TURN_2, TURN_3

ROUTES = [
    ("/v1/chat/completions", Route.CHAT),
    ("/chat/completions", Route.CHAT),
    ("/v1/chat/completions/?x=1", Route.CHAT),
    ("v1/responses", Route.RESPONSES),
    ("/v1/completions", Route.COMPLETIONS),
    ("/generate", Route.GENERATE),
    (Route.GENERATE, Route.GENERATE),
    ("/v1/generate", None),
    ("/v1/models", None),
    ("/v1/responses/resp_1", None),
    ("", None),
]


@pytest.mark.parametrize(("path", "route"), ROUTES)
def test_route_of(path: str, route: Route | None) -> None:
    assert route_of(path) is route


COMPLETION = {
    "id": "cmpl-1",
    "object": "text_completion",
    "choices": [{"index": 0, "text": " Paris.", "finish_reason": "stop", "logprobs": None}],
}
GENERATE = {"text": " Paris.", "output_ids": [12366, 13], "meta_info": {"id": "g1"}}

# (name, route, response, expected tool calls)
REQUESTED: list[tuple[str, str, Any, list[ToolCall]]] = [
    (
        "chat tool_calls",
        Route.CHAT,
        RESPONSE_1,
        [
            ToolCall("call_paris", "get_weather", '{"city":"Paris","unit":"c"}'),
            ToolCall("call_rome", "get_weather", '{"city":"Rome","unit":"c"}'),
        ],
    ),
    ("chat no tools", Route.CHAT, RESPONSE_2, []),
    (
        "responses function_call",
        Route.RESPONSES,
        RESPONSE_OBJECT,
        [ToolCall("call_w1", "get_weather", '{"city":"Paris"}')],
    ),
    ("completions", Route.COMPLETIONS, COMPLETION, []),
    ("unknown route", "/v1/embeddings", RESPONSE_1, []),
    ("not json object", Route.CHAT, [1, 2], []),
    ("choices empty", Route.CHAT, {"choices": []}, []),
    (
        "malformed calls skipped",
        Route.CHAT,
        {
            "choices": [
                {"message": {"tool_calls": [None, {"function": {"name": "f"}}, {"id": "x"}]}}
            ]
        },
        [ToolCall("", "f", "")],
    ),
    ("responses output not a list", Route.RESPONSES, {"output": {"type": "function_call"}}, []),
]


@pytest.mark.parametrize(
    ("route", "response", "expected"), [r[1:] for r in REQUESTED], ids=[r[0] for r in REQUESTED]
)
def test_requested_tool_calls(route: str, response: Any, expected: list[ToolCall]) -> None:
    assert requested_tool_calls(route, response) == expected


# (name, route, request body, expected returned ids)
RETURNED: list[tuple[str, str, Any, list[str]]] = [
    ("chat first turn", Route.CHAT, {"messages": TURN_1}, []),
    ("chat tool results", Route.CHAT, {"messages": TURN_2}, ["call_paris", "call_rome"]),
    ("chat later turn", Route.CHAT, {"messages": TURN_3}, []),
    (
        "chat old results are not new",
        Route.CHAT,
        {
            "messages": [
                *TURN_2,
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "?"},
            ]
        },
        [],
    ),
    (
        "responses stateless",
        Route.RESPONSES,
        {
            "input": [
                {"role": "user", "content": "hi"},
                *RESPONSE_OBJECT["output"],
                {"type": "function_call_output", "call_id": "call_w1", "output": "18C"},
            ]
        },
        ["call_w1"],
    ),
    (
        "responses with previous_response_id",
        Route.RESPONSES,
        {
            "previous_response_id": "resp_1",
            "input": [
                {"type": "function_call_output", "call_id": "a", "output": "1"},
                {"type": "function_call_output", "call_id": "b", "output": "2"},
            ],
        },
        ["a", "b"],
    ),
    ("responses string input", Route.RESPONSES, {"input": "hello"}, []),
    (
        "malformed",
        Route.CHAT,
        {"messages": [None, {"role": "tool", "tool_call_id": 5}, "x"]},
        ["5"],
    ),
    ("not a body", Route.CHAT, "body", []),
]


@pytest.mark.parametrize(
    ("route", "body", "expected"), [r[1:] for r in RETURNED], ids=[r[0] for r in RETURNED]
)
def test_returned_tool_call_ids(route: str, body: Any, expected: list[str]) -> None:
    assert returned_tool_call_ids(route, body) == expected


def test_reply_message() -> None:
    chat = reply_message(Route.CHAT, RESPONSE_1)
    assert chat is not None and chat["role"] == "assistant" and len(chat["tool_calls"]) == 2
    assert reply_message(Route.RESPONSES, RESPONSE_OBJECT) == {
        "role": "assistant",
        "content": "Let me check.",
        "tool_calls": [
            {
                "id": "call_w1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            }
        ],
    }
    assert reply_message(Route.COMPLETIONS, COMPLETION) == {
        "role": "assistant",
        "content": " Paris.",
    }
    assert reply_message(Route.GENERATE, GENERATE) == {"role": "assistant", "content": " Paris."}
    assert reply_message(Route.CHAT, {"choices": "x"}) is None
    assert reply_message(Route.RESPONSES, {"output": []}) is None
    assert reply_message("/v1/embeddings", RESPONSE_1) is None


def test_reply_text_and_prompts() -> None:
    assert reply_text(Route.COMPLETIONS, COMPLETION) == " Paris."
    assert reply_text(Route.GENERATE, GENERATE) == " Paris."
    assert reply_text(Route.CHAT, RESPONSE_2) is None
    assert prompt_text(Route.COMPLETIONS, {"prompt": "Capital of France?"}) == "Capital of France?"
    assert prompt_text(Route.COMPLETIONS, {"prompt": ["one"]}) == "one"
    assert prompt_text(Route.COMPLETIONS, {"prompt": ["a", "b"]}) is None
    assert prompt_text(Route.COMPLETIONS, {"prompt": [1, 2, 3]}) is None
    assert prompt_text(Route.GENERATE, {"text": "hi", "sampling_params": {}}) == "hi"
    assert prompt_text(Route.GENERATE, {"input_ids": [1, 2]}) is None
    assert request_messages(Route.CHAT, {"messages": TURN_1}) == TURN_1
    assert request_messages(Route.RESPONSES, {"input": "hi"}) == "hi"
    assert request_messages(Route.COMPLETIONS, {"prompt": "hi"}) is None
