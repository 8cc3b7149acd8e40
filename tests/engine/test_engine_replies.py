"""Synthetic replies: deterministic, bounded, and tool calls valid against their schemas."""

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvbaton.middleware.engine import chat_reply, text_reply
from kvbaton.middleware.engine.replies import SYNTHETIC_MARK


def validate(value, schema):
    """A small JSON-schema checker for the keywords the generator promises to honour."""
    if "const" in schema:
        assert value == schema["const"]
        return
    if "enum" in schema:
        assert value in schema["enum"]
        return
    if "anyOf" in schema:
        errors = 0
        for option in schema["anyOf"]:
            try:
                validate(value, option)
            except AssertionError:
                errors += 1
        assert errors < len(schema["anyOf"])
        return
    kind = schema.get("type", "string")
    if isinstance(kind, list):
        kind = next(k for k in kind if k != "null")
    checks = {
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "array": lambda v: isinstance(v, list),
        "object": lambda v: isinstance(v, dict),
        "null": lambda v: v is None,
    }
    assert checks[kind](value), (value, schema)
    if kind in ("integer", "number"):
        assert schema.get("minimum", value) <= value <= schema.get("maximum", value)
    if kind == "string":
        assert schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value))
    if kind == "array":
        assert schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value))
        for item in value:
            validate(item, schema.get("items", {}))
    if kind == "object":
        assert set(schema.get("required", ())) <= value.keys()
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                validate(value[key], sub)


scalar_schemas = st.one_of(
    st.just({"type": "string"}),
    st.builds(
        lambda lo, n: {"type": "string", "minLength": lo, "maxLength": lo + n},
        st.integers(0, 30),
        st.integers(0, 5),
    ),
    st.builds(
        lambda lo, n: {"type": "integer", "minimum": lo, "maximum": lo + n},
        st.integers(-50, 50),
        st.integers(0, 10),
    ),
    st.builds(
        lambda lo, n: {"type": "number", "minimum": lo, "maximum": lo + n},
        st.integers(-50, 50),
        st.integers(0, 10),
    ),
    st.just({"type": "boolean"}),
    st.just({"type": ["string", "null"]}),
    st.lists(st.text(max_size=5), min_size=1, max_size=4).map(lambda e: {"enum": e}),
    st.just({"anyOf": [{"type": "null"}, {"type": "integer"}]}),
)


def containers(children):
    return st.one_of(
        st.builds(
            lambda item, lo: {"type": "array", "items": item, "minItems": lo, "maxItems": lo + 2},
            children,
            st.integers(0, 2),
        ),
        st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True), children, max_size=4).flatmap(
            lambda props: st.builds(
                lambda req: {"type": "object", "properties": props, "required": req},
                st.lists(st.sampled_from(sorted(props)), unique=True) if props else st.just([]),
            )
        ),
    )


schemas = st.recursive(scalar_schemas, containers, max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(schemas.filter(lambda s: s.get("type") == "object"), st.text(max_size=40))
def test_tool_arguments_are_valid_against_the_schema(schema, ask):
    tools = [{"type": "function", "function": {"name": "f", "parameters": schema}}]
    messages = [{"role": "user", "content": ask}]
    reply = chat_reply(messages, tools, tool_choice="required")
    (call,) = reply.tool_calls
    validate(json.loads(call.arguments), schema)
    assert reply.finish_reason == "tool_calls"
    assert re.fullmatch(r"call_[0-9a-f]{24}", call.id)
    assert chat_reply(messages, tools, tool_choice="required") == reply  # deterministic


def tool_loop(user_text: str) -> int:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    messages = [{"role": "user", "content": user_text}]
    for rounds in range(10):
        reply = chat_reply(messages, tools)
        if not reply.tool_calls:
            assert reply.content.startswith(SYNTHETIC_MARK)
            return rounds
        call = reply.tool_calls[0]
        fn = {"name": call.name, "arguments": call.arguments}
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": call.id, "type": "function", "function": fn}],
            }
        )
        messages.append({"role": "tool", "tool_call_id": call.id, "content": "ok"})
    raise AssertionError("tool loop did not end")


def test_tool_rounds_are_one_to_four_and_deterministic():
    rounds = {tool_loop(f"task {i}") for i in range(40)}
    assert rounds <= {1, 2, 3, 4} and len(rounds) > 1
    assert tool_loop("task 7") == tool_loop("task 7")


def test_tool_choice_none_and_named():
    tools = [
        {"type": "function", "function": {"name": "a", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "b", "parameters": {"type": "object"}}},
    ]
    messages = [{"role": "user", "content": "hi"}]
    assert not chat_reply(messages, tools, tool_choice="none").tool_calls
    named = {"type": "function", "function": {"name": "b"}}
    assert chat_reply(messages, tools, tool_choice=named).tool_calls[0].name == "b"
    with pytest.raises(ValueError, match="not offered"):
        chat_reply(messages, tools, tool_choice={"type": "function", "function": {"name": "z"}})


@given(st.integers(0, 200), st.booleans(), st.text(max_size=30))
def test_text_length_bounds(max_tokens, ignore_eos, prompt):
    reply = text_reply(prompt, max_tokens, ignore_eos)
    assert len(reply.pieces) <= max_tokens
    if ignore_eos:
        assert len(reply.pieces) == max_tokens and reply.finish_reason == "length"
    natural = text_reply(prompt, None)
    assert 16 <= len(natural.pieces) <= 64 and natural.finish_reason == "stop"
    assert natural.content.startswith(SYNTHETIC_MARK)
    expected = "stop" if max_tokens > len(natural.pieces) else "length"
    assert text_reply(prompt, max_tokens).finish_reason == expected


def test_tool_call_cut_by_max_tokens_is_plain_length():
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    reply = chat_reply([{"role": "user", "content": "x"}], tools, "required", max_tokens=3)
    assert reply.finish_reason == "length" and not reply.tool_calls and len(reply.pieces) == 3


def test_stop_strings_cut_on_token_boundaries():
    full = text_reply("p", None)
    word = full.content.split()[4]
    cut = text_reply("p", None, stop=[word])
    assert cut.finish_reason == "stop" and cut.stop_matched == word
    assert word not in cut.content and full.content.startswith(cut.content)
