"""Whatever a client sends, the proxy answers with a status, not a crash, and leaks no slot."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.service.conftest import Stack

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_MESSAGES = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "tool", 7])},
        optional={
            "content": _JSON,
            "tool_calls": _JSON,
            "tool_call_id": _JSON,
        },
    ),
    max_size=3,
)
_BODIES = st.fixed_dictionaries(
    {},
    optional={
        "model": _JSON, "messages": _MESSAGES | _JSON, "stream": _JSON, "max_tokens": _JSON,
        "tools": _JSON, "metadata": _JSON, "kvbaton": _JSON, "prompt_cache_key": _JSON,
    },
)  # fmt: skip
_HEADERS = st.dictionaries(
    st.sampled_from(
        ["x-kvbaton-program-id", "x-kvbaton-deadline", "x-kvbaton-last-step", "traceparent",
         "x-stainless-retry-count", "helicone-session-path", "x-session-id"]
    ),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
)  # fmt: skip


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(body=_BODIES, headers=_HEADERS)
async def test_random_requests_never_crash_or_leak(
    stack: Stack, body: dict[str, Any], headers: dict[str, str]
) -> None:
    if body.get("max_tokens") is not None:
        body["max_tokens"] = 2  # keep the engine's work small when the body is valid
    async with stack.http.post(
        stack.proxy + "/v1/chat/completions", data=json.dumps(body), headers=headers
    ) as r:
        raw = await r.read()
        assert r.status < 500, raw
        if r.status >= 400 and r.content_type == "application/json":
            assert "error" in json.loads(raw)
    async with stack.http.get(stack.proxy + "/kvbaton/v1/programs") as r:
        stats = (await r.json())["stats"]
    assert (stats["queued"], stats["inflight"]) == (0, 0)
