"""The prefix store: what a warm loads, and the bounds on what it keeps."""

from __future__ import annotations

from typing import Any

from kvbaton.middleware.core.actions import Warm
from kvbaton.middleware.service.prefixes import PrefixStore

SYSTEM = {"role": "system", "content": "you are a coder"}
REPLY = {"role": "assistant", "content": "done"}


def _body(user: str, **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [SYSTEM, {"role": "user", "content": user}], **extra}


def test_resume_is_the_last_request_and_its_reply_with_prompt_fields_only() -> None:
    store = PrefixStore()
    body = _body("a", tools=[{"type": "function"}], temperature=0.3, stream=True, max_tokens=9)
    store.remember("p1", "wf", "coder", body, REPLY)
    assert store.body_for(Warm("resume", "p1", 10)) == {
        "model": "m",
        "tools": [{"type": "function"}],
        "messages": [*body["messages"], REPLY],
    }
    assert store.body_for(Warm("agent", "p9", 10, "wf", "coder")) == {
        "model": "m",
        "tools": [{"type": "function"}],
        "messages": [SYSTEM],
    }
    assert store.body_for(Warm("agent", "p9", 10, "other", "coder")) is None
    assert store.body_for(Warm("resume", "p2", 10)) is None


def test_an_agent_without_system_messages_has_no_fixed_prefix() -> None:
    store = PrefixStore()
    store.remember("p1", "wf", "coder", {"messages": [{"role": "user", "content": "x"}]}, None)
    assert store.agent("wf", "coder") is None
    assert store.resume("p1") == {"messages": [{"role": "user", "content": "x"}]}


def test_bounds_entries_characters_and_oversized_contexts() -> None:
    store = PrefixStore(programs_capacity=2, agents_capacity=1, max_chars=500, total_chars=400)
    for i in range(3):
        store.remember(f"p{i}", "wf", f"a{i}", _body("x" * 50), REPLY)
    assert (store.resume("p0"), len(store)) == (None, 2)
    assert store.agent("wf", "a1") is None and store.agent("wf", "a2") is not None
    store.remember("p3", None, None, _body("y" * 150), REPLY)  # over the total: oldest go
    assert store.chars <= 400 and store.resume("p3") is not None and store.resume("p1") is None
    store.remember("p3", None, None, _body("z" * 600), REPLY)  # too big: the old one goes too
    assert store.resume("p3") is None
    store.forget("p2")
    assert len(store) == 0 and store.chars == 0
