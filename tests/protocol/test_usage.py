from typing import Any

import pytest

from kvbaton.middleware.protocol.usage import Usage, find_usage, read_meta_info, read_usage

from .samples import RESPONSE_1, RESPONSE_OBJECT

# (name, payload given to find_usage, expected)
CASES: list[tuple[str, Any, Usage | None]] = [
    ("chat with cache report", RESPONSE_1, Usage(120, 38, 96)),
    (
        "chat without cache report",
        {"usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}},
        Usage(10, 2, None),
    ),
    (
        "vllm null details",
        {"usage": {"prompt_tokens": 10, "completion_tokens": 2, "prompt_tokens_details": None}},
        Usage(10, 2, None),
    ),
    ("responses", RESPONSE_OBJECT, Usage(50, 20, 32)),
    (
        "responses completed event",
        {"type": "response.completed", "response": RESPONSE_OBJECT},
        Usage(50, 20, 32),
    ),
    (
        "sglang meta_info",
        {
            "text": "x",
            "meta_info": {"prompt_tokens": 12, "completion_tokens": 5, "cached_tokens": 8},
        },
        Usage(12, 5, 8),
    ),
    ("sglang zero cached", {"meta_info": {"prompt_tokens": 3, "cached_tokens": 0}}, Usage(3, 0, 0)),
    ("no usage", {"choices": []}, None),
    ("usage null", {"usage": None}, None),
    ("not an object", [1], None),
    (
        "wrong types",
        {
            "usage": {
                "prompt_tokens": "12",
                "completion_tokens": -4,
                "prompt_tokens_details": {"cached_tokens": True},
            }
        },
        Usage(0, 0, None),
    ),
    (
        "floats and nan",
        {"usage": {"prompt_tokens": 7.0, "completion_tokens": float("nan")}},
        Usage(7, 0, None),
    ),
]


@pytest.mark.parametrize(("payload", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_find_usage(payload: Any, expected: Usage | None) -> None:
    assert find_usage(payload) == expected


def test_readers_reject_non_objects() -> None:
    assert read_usage("12") is None
    assert read_meta_info(None) is None
    assert read_usage({}) == Usage(0, 0, None)
