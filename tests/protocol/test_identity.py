from dataclasses import asdict
from typing import Any

import pytest

from kvbaton.middleware.protocol import wire
from kvbaton.middleware.protocol.forwarding import strip_own
from kvbaton.middleware.protocol.identity import Identity, identify

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

# (name, headers, body, expected Identity fields)
FAMILIES: list[tuple[str, dict[str, str], Any, dict[str, Any]]] = [
    (
        "kvbaton headers",
        {
            "X-KVBaton-Program-Id": "run-42",
            "x-kvbaton-agent": "planner",
            "x-kvbaton-step": "3",
            "x-kvbaton-parent-step": "2",
            "x-kvbaton-last-step": "true",
            "x-kvbaton-workflow": "research",
            "x-kvbaton-tenant": "acme",
            "x-kvbaton-deadline": "12.5",
        },
        {},
        dict(
            program_id="run-42",
            source="kvbaton",
            agent="planner",
            step="3",
            parent_step="2",
            last_step=True,
            workflow="research",
            tenant="acme",
            deadline_s=12.5,
        ),
    ),
    (
        "kvbaton body field",
        {},
        {"kvbaton": {"program_id": "run-7", "agent": "writer", "step": 4, "deadline_s": 30}},
        dict(program_id="run-7", source="kvbaton", agent="writer", step="4", deadline_s=30.0),
    ),
    (
        "litellm trace id",
        {"x-litellm-trace-id": "t1"},
        {},
        dict(program_id="litellm:t1", source="litellm"),
    ),
    (
        "litellm session id",
        {"x-litellm-session-id": "s1"},
        {},
        dict(program_id="litellm:s1", source="litellm"),
    ),
    (
        "any vendor session id",
        {"x-acme-session-id": "v1"},
        {},
        dict(program_id="acme:v1", source="vendor-session"),
    ),
    (
        "helicone with path",
        {
            "Helicone-Session-Id": "h1",
            "Helicone-Session-Path": "/planner/search",
            "Helicone-Session-Name": "trip",
        },
        {},
        dict(
            program_id="helicone:h1",
            source="helicone",
            agent="search",
            parent_agent="planner",
            step="/planner/search",
            parent_step="/planner",
            workflow="trip",
        ),
    ),
    (
        "helicone root path",
        {"helicone-session-id": "h2", "helicone-session-path": "/planner"},
        {},
        dict(agent="planner", parent_agent=None, step="/planner", parent_step=None),
    ),
    (
        "portkey",
        {
            "x-portkey-trace-id": "p1",
            "x-portkey-span-id": "sp2",
            "x-portkey-parent-span-id": "sp1",
            "x-portkey-span-name": "critic",
        },
        {},
        dict(
            program_id="portkey:p1",
            source="portkey",
            agent="critic",
            step="sp2",
            parent_step="sp1",
        ),
    ),
    (
        "x-session-id",
        {"x-session-id": "s9"},
        {},
        dict(program_id="session:s9", source="session-header", parent_program=None),
    ),
    (
        "x-session-affinity",
        {"x-session-affinity": "s8"},
        {},
        dict(program_id="session:s8", source="session-header"),
    ),
    (
        "opencode child session",
        {"x-session-id": "ses_child", "x-parent-session-id": "ses_root"},
        {},
        dict(program_id="session:ses_child", source="opencode", parent_program="session:ses_root"),
    ),
    (
        "opencode by user agent",
        {"x-session-id": "ses_a", "x-session-affinity": "ses_a", "User-Agent": "opencode/1.0.3"},
        {},
        dict(program_id="session:ses_a", source="opencode"),
    ),
    (
        "dynamo",
        {
            "X-Dynamo-Session-ID": "d2",
            "X-Dynamo-Parent-Session-ID": "d1",
            "X-Dynamo-Session-Final": "true",
        },
        {},
        dict(program_id="dynamo:d2", source="dynamo", parent_program="dynamo:d1", last_step=True),
    ),
    (
        "claude code root",
        {"x-claude-code-session-id": "cc1"},
        {},
        dict(program_id="claude-code:cc1", source="claude-code", agent=None),
    ),
    (
        "claude code sub-agent",
        {
            "x-claude-code-session-id": "cc1",
            "x-claude-code-agent-id": "agent-b",
            "x-claude-code-parent-agent-id": "agent-a",
        },
        {},
        dict(program_id="claude-code:cc1", agent="agent-b", parent_agent="agent-a"),
    ),
    ("codex", {"session-id": "cx1"}, {}, dict(program_id="codex:cx1", source="codex")),
    (
        "traceparent",
        {"traceparent": TP},
        {},
        dict(
            program_id="traceparent:4bf92f3577b34da6a3ce929d0e0e4736",
            source="traceparent",
            parent_step="00f067aa0ba902b7",
        ),
    ),
    (
        "litellm body",
        {},
        {"litellm_session_id": "lb1"},
        dict(program_id="litellm:lb1", source="litellm-body"),
    ),
    (
        "metadata.session_id",
        {},
        {"metadata": {"session_id": "m1"}},
        dict(program_id="metadata:m1", source="metadata"),
    ),
    (
        "openrouter session_id",
        {},
        {"session_id": "or1", "trace": {"span_name": "summarise", "trace_name": "digest"}},
        dict(
            program_id="openrouter:or1", source="openrouter", agent="summarise", workflow="digest"
        ),
    ),
    (
        "openrouter trace",
        {},
        {"trace": {"trace_id": "tr1", "parent_span_id": "ps1"}},
        dict(program_id="openrouter:tr1", parent_step="ps1"),
    ),
    (
        "openai metadata thread_id",
        {},
        {"metadata": {"thread_id": "th1", "user_tier": "gold"}},
        dict(program_id="metadata:th1", source="metadata"),
    ),
    (
        "openai metadata conversation_id",
        {},
        {"metadata": {"conversation_id": "cv1"}},
        dict(program_id="metadata:cv1"),
    ),
    (
        "responses conversation",
        {},
        {"conversation": {"id": "conv_1"}},
        dict(program_id="conversation:conv_1", source="conversation"),
    ),
    (
        "prompt_cache_key",
        {},
        {"prompt_cache_key": "pk1"},
        dict(program_id="prompt-cache-key:pk1", source="prompt-cache-key"),
    ),
    (
        "user is a tenant, not a program",
        {},
        {"user": "u1"},
        dict(program_id=None, source="none", tenant="u1"),
    ),
    (
        "safety_identifier beats user as tenant",
        {},
        {"user": "u1", "safety_identifier": "sid1"},
        dict(program_id=None, tenant="sid1"),
    ),
    (
        "previous_response_id only",
        {},
        {"previous_response_id": "resp_1"},
        dict(program_id=None, source="previous-response", previous_response_id="resp_1"),
    ),
    ("nothing", {"content-type": "application/json"}, {"model": "m"}, dict(source="none")),
    ("stainless retry", {"x-stainless-retry-count": "2"}, {}, dict(retry=True)),
    ("stainless first try", {"X-Stainless-Retry-Count": "0"}, {}, dict(retry=False)),
]


def check(identity: Identity, expected: dict[str, Any]) -> None:
    got = asdict(identity)
    assert {key: got[key] for key in expected} == expected


@pytest.mark.parametrize(
    ("headers", "body", "expected"), [r[1:] for r in FAMILIES], ids=[r[0] for r in FAMILIES]
)
def test_families(headers: dict[str, str], body: Any, expected: dict[str, Any]) -> None:
    check(identify(headers, body), expected)


# (name, headers, body, winning program id)
PRECEDENCE: list[tuple[str, dict[str, str], dict[str, Any], str]] = [
    (
        "kvbaton header over all",
        {"x-kvbaton-program-id": "k", "x-litellm-trace-id": "l"},
        {"kvbaton": {"program_id": "b"}},
        "k",
    ),
    (
        "kvbaton body over litellm",
        {"x-litellm-trace-id": "l"},
        {"kvbaton": {"program_id": "b"}},
        "b",
    ),
    (
        "litellm trace over session",
        {"x-litellm-trace-id": "t", "x-litellm-session-id": "s"},
        {},
        "litellm:t",
    ),
    (
        "litellm over dynamo",
        {"x-litellm-session-id": "s", "x-dynamo-session-id": "d"},
        {},
        "litellm:s",
    ),
    (
        "dynamo over claude code",
        {"x-claude-code-session-id": "c", "x-dynamo-session-id": "d"},
        {},
        "dynamo:d",
    ),
    (
        "claude code over vendor",
        {"x-claude-code-session-id": "c", "x-aaa-session-id": "a"},
        {},
        "claude-code:c",
    ),
    ("vendor over helicone", {"x-zed-session-id": "z", "helicone-session-id": "h"}, {}, "zed:z"),
    (
        "helicone over portkey",
        {"helicone-session-id": "h", "x-portkey-trace-id": "p"},
        {},
        "helicone:h",
    ),
    (
        "portkey over x-session-id",
        {"x-portkey-trace-id": "p", "x-session-id": "s"},
        {},
        "portkey:p",
    ),
    ("x-session-id over codex", {"x-session-id": "s", "session-id": "c"}, {}, "session:s"),
    ("codex over traceparent", {"session-id": "c", "traceparent": TP}, {}, "codex:c"),
    (
        "header over body",
        {"traceparent": TP},
        {"litellm_session_id": "l"},
        "traceparent:4bf92f3577b34da6a3ce929d0e0e4736",
    ),
    (
        "litellm body over metadata",
        {},
        {"litellm_session_id": "l", "metadata": {"session_id": "m"}},
        "litellm:l",
    ),
    (
        "metadata.session_id over openrouter",
        {},
        {"session_id": "o", "metadata": {"session_id": "m"}},
        "metadata:m",
    ),
    (
        "openrouter over metadata thread",
        {},
        {"session_id": "o", "metadata": {"thread_id": "t"}},
        "openrouter:o",
    ),
    (
        "metadata over conversation",
        {},
        {"conversation": "c", "metadata": {"trace_id": "t"}},
        "metadata:t",
    ),
    (
        "conversation over cache key",
        {},
        {"conversation": "c", "prompt_cache_key": "k"},
        "conversation:c",
    ),
    (
        "cache key over previous response",
        {},
        {"prompt_cache_key": "k", "previous_response_id": "r"},
        "prompt-cache-key:k",
    ),
]


@pytest.mark.parametrize(
    ("headers", "body", "winner"), [r[1:] for r in PRECEDENCE], ids=[r[0] for r in PRECEDENCE]
)
def test_precedence(headers: dict[str, str], body: dict[str, Any], winner: str) -> None:
    assert identify(headers, body).program_id == winner


def test_own_fields_override_the_winning_framework() -> None:
    headers = {
        "x-portkey-trace-id": "p",
        "x-portkey-span-name": "critic",
        "x-kvbaton-agent": "judge",
    }
    identity = identify(headers, {})
    assert (identity.program_id, identity.source, identity.agent) == (
        "portkey:p",
        "portkey",
        "judge",
    )


def test_lower_families_do_not_leak_fields() -> None:
    headers = {
        "x-kvbaton-program-id": "k",
        "x-portkey-trace-id": "p",
        "x-portkey-span-name": "critic",
    }
    assert identify(headers, {}).agent is None


def test_headers_beat_body_field_per_field() -> None:
    body = {"kvbaton": {"program_id": "b", "agent": "body-agent", "last_step": True}}
    identity = identify({"x-kvbaton-agent": "header-agent", "x-kvbaton-last-step": "false"}, body)
    assert (identity.program_id, identity.agent, identity.last_step) == ("b", "header-agent", False)


def test_program_ids_from_different_sources_do_not_collide() -> None:
    ids = {
        identify({"x-litellm-session-id": "same"}, {}).program_id,
        identify({"helicone-session-id": "same"}, {}).program_id,
        identify({"x-session-id": "same"}, {}).program_id,
        identify({}, {"prompt_cache_key": "same"}).program_id,
        identify({}, {"session_id": "same"}).program_id,
        identify({"x-kvbaton-program-id": "same"}, {}).program_id,
    }
    assert len(ids) == 6


HUGE = "x" * 1_000_000
MALFORMED: list[tuple[str, Any, Any, dict[str, Any]]] = [
    ("body is a list", {}, [1, 2], dict(source="none")),
    ("body is a string", {}, "hello", dict(source="none")),
    ("body is None", {}, None, dict(source="none")),
    ("headers not a mapping", None, {}, dict(source="none")),
    ("kvbaton field not an object", {}, {"kvbaton": "run-1"}, dict(source="none")),
    (
        "kvbaton fields wrong types",
        {},
        {"kvbaton": {"program_id": ["x"], "step": True, "deadline_s": "soon"}},
        dict(source="none", step=None, deadline_s=None),
    ),
    ("metadata not an object", {}, {"metadata": ["session_id"]}, dict(source="none")),
    (
        "metadata value not a string",
        {},
        {"metadata": {"session_id": {"a": 1}}},
        dict(source="none"),
    ),
    ("trace not an object", {}, {"trace": "t"}, dict(source="none")),
    (
        "empty and blank values",
        {"x-kvbaton-program-id": "  ", "x-session-id": ""},
        {"session_id": ""},
        dict(source="none"),
    ),
    (
        "bool is not an id",
        {},
        {"session_id": True, "user": False},
        dict(source="none", tenant=None),
    ),
    ("negative deadline", {"x-kvbaton-deadline": "-3"}, {}, dict(deadline_s=None)),
    (
        "nan deadline",
        {"x-kvbaton-deadline": "nan"},
        {"kvbaton": {"deadline_s": float("inf")}},
        dict(deadline_s=None),
    ),
    ("bad retry count", {"x-stainless-retry-count": "many"}, {}, dict(retry=False)),
    ("huge retry count", {"x-stainless-retry-count": "9" * 5000}, {}, dict(retry=False)),
    ("traceparent garbage", {"traceparent": "not-a-trace"}, {}, dict(source="none")),
    (
        "traceparent zero trace id",
        {"traceparent": "00-" + "0" * 32 + "-00f067aa0ba902b7-01"},
        {},
        dict(source="none"),
    ),
    (
        "traceparent zero span id",
        {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01"},
        {},
        dict(source="none"),
    ),
    ("traceparent version ff", {"traceparent": "ff" + TP[2:]}, {}, dict(source="none")),
    ("traceparent upper case", {"traceparent": TP.upper()}, {}, dict(source="none")),
    ("traceparent v00 with extra", {"traceparent": TP + "-extra"}, {}, dict(source="none")),
    (
        "traceparent future version",
        {"traceparent": "01" + TP[2:] + "-extra"},
        {},
        dict(source="traceparent"),
    ),
    (
        "helicone path of slashes",
        {"helicone-session-id": "h", "helicone-session-path": "///"},
        {},
        dict(agent=None, step=None),
    ),
    (
        "parent header is not a vendor",
        {"x-parent-session-id": "p", "x-dynamo-parent-session-id": "d"},
        {},
        dict(source="none"),
    ),
]


@pytest.mark.parametrize(
    ("headers", "body", "expected"), [r[1:] for r in MALFORMED], ids=[r[0] for r in MALFORMED]
)
def test_malformed_never_raises(headers: Any, body: Any, expected: dict[str, Any]) -> None:
    check(identify(headers, body), expected)


def test_huge_values_are_bounded() -> None:
    identity = identify({"x-kvbaton-program-id": HUGE, "x-kvbaton-agent": HUGE}, {"user": HUGE})
    assert identity.program_id is not None and len(identity.program_id) < 100
    assert identity.agent is not None and len(identity.agent) < 100
    assert identity.program_id == identify({"x-kvbaton-program-id": HUGE}, {}).program_id
    assert identity.program_id != identify({"x-kvbaton-program-id": HUGE + "y"}, {}).program_id


def test_strip_own() -> None:
    headers = {
        "Authorization": "Bearer x",
        "X-KVBaton-Program-Id": "run-1",
        "x-kvbaton-agent": "a",
        "Host": "proxy:8000",
        "Content-Length": "123",
        "Connection": "keep-alive, X-Custom-Hop",
        "X-Custom-Hop": "1",
        "Transfer-Encoding": "chunked",
        "Proxy-Authorization": "Basic y",
        "x-litellm-session-id": "kept",
        "traceparent": TP,
    }
    body = {"model": "m", "messages": [], "kvbaton": {"program_id": "run-1"}}
    new_headers, new_body = strip_own(headers, body)
    assert new_headers == {
        "Authorization": "Bearer x",
        "x-litellm-session-id": "kept",
        "traceparent": TP,
    }
    assert new_body == {"model": "m", "messages": []}
    assert "kvbaton" in body and "X-KVBaton-Program-Id" in headers  # inputs untouched
    assert new_body is not body


@pytest.mark.parametrize("body", [None, [1], "text", {"model": "m"}])
def test_strip_own_other_bodies(body: Any) -> None:
    assert strip_own({}, body)[1] == body


def test_wire_names_match() -> None:
    assert all(name.startswith(wire.HEADER_PREFIX) for name in wire.HEADERS)
    assert wire.HEADER_TO_FIELD[wire.HEADER_DEADLINE] == wire.FIELD_DEADLINE_S
    assert set(wire.HEADER_TO_FIELD.values()) == set(wire.FIELDS)
