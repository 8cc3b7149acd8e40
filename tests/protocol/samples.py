"""Payloads shaped exactly like the OpenAI, Responses and SGLang APIs return them."""

import json
from typing import Any

SYSTEM = {"role": "system", "content": "You are a travel assistant. Use tools when needed."}
USER = {"role": "user", "content": "What's the weather in Paris and in Rome?"}

TOOL_CALLS = [
    {
        "id": "call_paris",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris","unit":"c"}'},
    },
    {
        "id": "call_rome",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Rome","unit":"c"}'},
    },
]


def chat_completion(message: dict[str, Any], finish_reason: str, cid: str) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion",
        "created": 1727000000,
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "system_fingerprint": None,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
        ],
        "usage": {
            "prompt_tokens": 120,
            "completion_tokens": 38,
            "total_tokens": 158,
            "prompt_tokens_details": {"cached_tokens": 96, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
    }


# Turn 1: the model asks for two tools (shaped as vLLM/SGLang return it: refusal, audio...).
REPLY_1 = {
    "role": "assistant",
    "content": None,
    "refusal": None,
    "annotations": [],
    "audio": None,
    "function_call": None,
    "tool_calls": TOOL_CALLS,
    "reasoning_content": None,
}
RESPONSE_1 = chat_completion(REPLY_1, "tool_calls", "chatcmpl-1")

# What a client sends back: the reply echoed slightly differently (no refusal/audio,
# content missing, arguments re-serialised with spaces), then one tool message per call.
ECHO_1 = {
    "role": "assistant",
    "tool_calls": [
        {
            "id": "call_paris",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "c"}'},
        },
        {
            "id": "call_rome",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"unit": "c", "city": "Rome"}'},
        },
    ],
}
TOOL_RESULTS = [
    {"role": "tool", "tool_call_id": "call_paris", "content": "18C, cloudy"},
    {"role": "tool", "tool_call_id": "call_rome", "content": [{"type": "text", "text": "24C"}]},
]
TURN_1 = [SYSTEM, USER]
TURN_2 = [SYSTEM, USER, ECHO_1, *TOOL_RESULTS]

REPLY_2 = {
    "role": "assistant",
    "content": "Paris is 18C and cloudy; Rome is 24C.",
    "refusal": None,
    "tool_calls": [],
}
RESPONSE_2 = chat_completion(REPLY_2, "stop", "chatcmpl-2")
ECHO_2 = {"role": "assistant", "content": [{"type": "text", "text": REPLY_2["content"] + "\n"}]}
TURN_3 = [*TURN_2, ECHO_2, {"role": "user", "content": "And in Oslo?"}]


# --- streams ---------------------------------------------------------------------------------


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-s1",
        "object": "chat.completion.chunk",
        "created": 1727000000,
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "system_fingerprint": None,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        "usage": None,
    }


def _tool_fragment(index: int, arguments: str, first: str | None = None) -> dict[str, Any]:
    fragment: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if first:
        fragment.update(id=f"call_{first.lower()}", type="function")
        fragment["function"]["name"] = "get_weather"
    return fragment


CHAT_STREAM_EVENTS: list[dict[str, Any]] = [
    _chunk({"role": "assistant", "content": "", "refusal": None}),
    _chunk({"content": "Checking "}),
    _chunk({"content": "both cities… ☁"}),
    _chunk({"tool_calls": [_tool_fragment(0, "", first="Paris")]}),
    _chunk({"tool_calls": [_tool_fragment(0, '{"city":')]}),
    _chunk({"tool_calls": [_tool_fragment(0, ' "Paris"}')]}),
    _chunk({"tool_calls": [_tool_fragment(1, '{"city": "Ro', first="Rome")]}),
    _chunk({"tool_calls": [_tool_fragment(1, 'me"}')]}),
    _chunk({}, finish="tool_calls"),
    {
        **_chunk({}),
        "choices": [],
        "usage": {
            "prompt_tokens": 82,
            "completion_tokens": 40,
            "total_tokens": 122,
            "prompt_tokens_details": {"cached_tokens": 64},
        },
    },
]


def sse(events: list[dict[str, Any]], newline: str = "\n", named: bool = False) -> bytes:
    out = [f": keep-alive{newline}{newline}"]
    for event in events:
        if named:
            out.append(f"event: {event['type']}{newline}")
        out.append(f"data: {json.dumps(event, ensure_ascii=False)}{newline}{newline}")
    if not named:
        out.append(f"data: [DONE]{newline}{newline}")
    return "".join(out).encode()


CHAT_STREAM = sse(CHAT_STREAM_EVENTS)

_RESPONSE_BASE: dict[str, Any] = {
    "id": "resp_67ccd2bed1ec8190",
    "object": "response",
    "created_at": 1741476542,
    "model": "gpt-4.1",
    "instructions": None,
    "previous_response_id": None,
    "error": None,
    "incomplete_details": None,
}
_MESSAGE_ITEM = {
    "type": "message",
    "id": "msg_1",
    "status": "completed",
    "role": "assistant",
    "content": [{"type": "output_text", "text": "Let me check.", "annotations": []}],
}
_CALL_ITEM = {
    "type": "function_call",
    "id": "fc_1",
    "call_id": "call_w1",
    "name": "get_weather",
    "arguments": '{"city":"Paris"}',
    "status": "completed",
}
RESPONSE_OBJECT = {
    **_RESPONSE_BASE,
    "status": "completed",
    "output": [_MESSAGE_ITEM, _CALL_ITEM],
    "usage": {
        "input_tokens": 50,
        "input_tokens_details": {"cached_tokens": 32},
        "output_tokens": 20,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 70,
    },
}

RESPONSES_STREAM_EVENTS: list[dict[str, Any]] = [
    {
        "type": "response.created",
        "sequence_number": 0,
        "response": {**_RESPONSE_BASE, "status": "in_progress", "output": [], "usage": None},
    },
    {
        "type": "response.output_item.added",
        "sequence_number": 1,
        "output_index": 0,
        "item": {**_MESSAGE_ITEM, "status": "in_progress", "content": []},
    },
    *(
        {
            "type": "response.output_text.delta",
            "sequence_number": 2 + i,
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "delta": piece,
            "logprobs": [],
        }
        for i, piece in enumerate(["Let ", "me ", "check."])
    ),
    {
        "type": "response.output_item.added",
        "sequence_number": 5,
        "output_index": 1,
        "item": {**_CALL_ITEM, "arguments": "", "status": "in_progress"},
    },
    *(
        {
            "type": "response.function_call_arguments.delta",
            "sequence_number": 6 + i,
            "item_id": "fc_1",
            "output_index": 1,
            "delta": piece,
        }
        for i, piece in enumerate(['{"city":', '"Paris"}'])
    ),
    {
        "type": "response.output_item.done",
        "sequence_number": 8,
        "output_index": 1,
        "item": _CALL_ITEM,
    },
    {"type": "response.completed", "sequence_number": 9, "response": RESPONSE_OBJECT},
]
RESPONSES_STREAM = sse(RESPONSES_STREAM_EVENTS, named=True)


def _meta(completion_tokens: int, finish: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": "5f1c2d0a",
        "finish_reason": finish,
        "prompt_tokens": 12,
        "completion_tokens": completion_tokens,
        "cached_tokens": 8,
        "cached_tokens_details": {"device": 8, "host": 0},
    }


SGLANG_STREAM = sse(
    [
        {"text": "The", "output_ids": [791], "meta_info": _meta(1, None)},
        {"text": "The answer", "output_ids": [791, 4320], "meta_info": _meta(2, None)},
        {
            "text": "The answer is 4.",
            "output_ids": [791, 4320, 374, 220, 19, 13],
            "meta_info": {**_meta(5, {"type": "stop", "matched": 128009}), "e2e_latency": 0.12},
        },
    ]
)
