import copy
from typing import Any

import pytest

from kvbaton.middleware.protocol.canonical import TEXT_BLOCK, chain, message_units
from kvbaton.middleware.protocol.conversation import ContinuationIndex
from kvbaton.middleware.protocol.payloads import reply_message
from kvbaton.middleware.protocol.routes import Route

from .samples import (
    RESPONSE_1,
    RESPONSE_2,
    RESPONSE_OBJECT,
    SYSTEM,
    TURN_1,
    TURN_2,
    TURN_3,
    USER,
)


def units(messages: Any) -> list[bytes]:
    return message_units(messages)


# Pairs that a client may send for the same message: they must encode the same.
EQUIVALENT: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("content None vs missing", {"role": "assistant", "content": None}, {"role": "assistant"}),
    (
        "content '' vs None",
        {"role": "assistant", "content": ""},
        {"role": "assistant", "content": None},
    ),
    (
        "text parts vs string",
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "user", "content": "ab"},
    ),
    (
        "outer whitespace",
        {"role": "assistant", "content": "hi\n"},
        {"role": "assistant", "content": " hi"},
    ),
    (
        "echo-only fields",
        {
            "role": "assistant",
            "content": "x",
            "refusal": None,
            "annotations": [],
            "audio": None,
            "name": "bot",
        },
        {"role": "assistant", "content": "x"},
    ),
    (
        "empty tool_calls",
        {"role": "assistant", "content": "x", "tool_calls": []},
        {"role": "assistant", "content": "x", "tool_calls": None},
    ),
    (
        "arguments re-serialised",
        {
            "role": "assistant",
            "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": '{"a":1,"b":[2]}'}}],
        },
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "c",
                    "type": "function",
                    "function": {"name": "f", "arguments": '{"b": [2], "a": 1}'},
                }
            ],
        },
    ),
    (
        "responses easy message vs chat",
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        {"role": "user", "content": "hi"},
    ),
]

DIFFERENT: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("role", {"role": "user", "content": "hi"}, {"role": "system", "content": "hi"}),
    ("text", {"role": "user", "content": "hi"}, {"role": "user", "content": "ho"}),
    ("inner whitespace", {"role": "user", "content": "a b"}, {"role": "user", "content": "ab"}),
    (
        "tool call id",
        {
            "role": "assistant",
            "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{}"}}],
        },
        {
            "role": "assistant",
            "tool_calls": [{"id": "c2", "function": {"name": "f", "arguments": "{}"}}],
        },
    ),
    (
        "arguments",
        {
            "role": "assistant",
            "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": '{"a":1}'}}],
        },
        {
            "role": "assistant",
            "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": '{"a":2}'}}],
        },
    ),
    (
        "tool_call_id",
        {"role": "tool", "tool_call_id": "a", "content": "r"},
        {"role": "tool", "tool_call_id": "b", "content": "r"},
    ),
    (
        "image",
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:1"}}]},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:2"}}]},
    ),
]


@pytest.mark.parametrize(("a", "b"), [r[1:] for r in EQUIVALENT], ids=[r[0] for r in EQUIVALENT])
def test_equivalent_messages_encode_the_same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert units([a]) == units([b])


@pytest.mark.parametrize(("a", "b"), [r[1:] for r in DIFFERENT], ids=[r[0] for r in DIFFERENT])
def test_different_messages_encode_differently(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert units([a]) != units([b])


def test_chain_is_incremental() -> None:
    full = chain(units(TURN_3))
    assert full[: len(TURN_1)] == chain(units(TURN_1))
    assert len(set(full)) == len(full)


def test_three_turn_tool_conversation() -> None:
    index = ContinuationIndex(capacity=100)
    assert index.lookup(TURN_1) is None
    index.remember(TURN_1, reply_message(Route.CHAT, RESPONSE_1), "p1", now=0.0)
    assert index.lookup(TURN_2) == "p1"  # echo differs: no refusal, re-serialised args
    index.remember(TURN_2, reply_message(Route.CHAT, RESPONSE_2), "p1", now=1.0)
    assert index.lookup(TURN_3) == "p1"  # echo as text parts with a trailing newline
    assert index.lookup(TURN_1) == "p1"  # a retry of the first call


def test_longest_prefix_wins() -> None:
    index = ContinuationIndex(capacity=100)
    index.remember(TURN_1, None, "short", now=0.0)
    index.remember(TURN_1, reply_message(Route.CHAT, RESPONSE_1), "long", now=1.0)
    assert index.lookup(TURN_2) == "long"
    assert index.lookup([*TURN_1, {"role": "user", "content": "unrelated"}]) == "long"


def test_different_conversations_never_match() -> None:
    index = ContinuationIndex(capacity=100)
    index.remember(TURN_1, reply_message(Route.CHAT, RESPONSE_1), "p1", now=0.0)
    other_user = [SYSTEM, {"role": "user", "content": "What's the weather in Oslo?"}]
    assert index.lookup(other_user) is None
    assert index.lookup([{"role": "system", "content": "Another assistant."}, USER]) is None
    assert index.lookup([SYSTEM]) is None  # a shared system prompt alone is not a match
    assert index.lookup([]) is None


def test_a_changed_echo_falls_back_to_the_request_alone() -> None:
    index = ContinuationIndex(capacity=100)
    index.remember(TURN_1, reply_message(Route.CHAT, RESPONSE_1), "p1", now=0.0)
    tampered = copy.deepcopy(TURN_2)
    tampered[2]["tool_calls"][0]["function"]["arguments"] = '{"city": "Lyon", "unit": "c"}'
    assert chain(units(tampered))[2] != chain(units(TURN_2))[2]
    assert index.lookup(tampered) == "p1"  # via the remembered TURN_1 prefix


def test_responses_input_items_continue_a_response() -> None:
    index = ContinuationIndex(capacity=100)
    first_input = [{"role": "user", "content": "Weather in Paris?"}]
    index.remember(first_input, reply_message(Route.RESPONSES, RESPONSE_OBJECT), "p2", now=0.0)
    index.remember_response(RESPONSE_OBJECT["id"], "p2", now=0.0)
    # Stateless client: resends the input, the output items (reasoning dropped or not), results.
    second_input = [
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "Weather in Paris?"}],
        },
        {"type": "reasoning", "id": "rs_1", "summary": []},
        *RESPONSE_OBJECT["output"],
        {"type": "function_call_output", "call_id": "call_w1", "output": "18C"},
    ]
    assert index.lookup(second_input) == "p2"
    assert index.lookup_response(RESPONSE_OBJECT["id"]) == "p2"
    assert index.lookup_response("resp_other") is None


def test_responses_output_items_equal_their_chat_shaped_reply() -> None:
    user = {"role": "user", "content": "Weather in Paris?"}
    synthesized = reply_message(Route.RESPONSES, RESPONSE_OBJECT)
    assert units([user, *RESPONSE_OBJECT["output"]]) == units([user, synthesized])
    assert len(units([user, *RESPONSE_OBJECT["output"]])) == 2


def test_lru_bound() -> None:
    index = ContinuationIndex(capacity=4)
    for i in range(10):
        index.remember(
            [{"role": "user", "content": f"task {i}"}],
            {"role": "assistant", "content": "ok"},
            f"p{i}",
            now=i,
        )
        assert len(index) <= 4
    assert index.lookup([{"role": "user", "content": "task 0"}]) is None
    assert index.lookup([{"role": "user", "content": "task 9"}]) == "p9"


def test_lookup_refreshes_recency() -> None:
    index = ContinuationIndex(capacity=2)
    index.remember([{"role": "user", "content": "a"}], None, "pa", now=0.0)
    index.remember([{"role": "user", "content": "b"}], None, "pb", now=1.0)
    assert index.lookup([{"role": "user", "content": "a"}]) == "pa"
    index.remember([{"role": "user", "content": "c"}], None, "pc", now=2.0)
    assert index.lookup([{"role": "user", "content": "a"}]) == "pa"
    assert index.lookup([{"role": "user", "content": "b"}]) is None


def test_ttl() -> None:
    index = ContinuationIndex(capacity=10, ttl_s=60.0)
    index.remember(TURN_1, None, "p", now=100.0)
    assert index.lookup(TURN_1, now=150.0) == "p"
    assert index.lookup(TURN_1) == "p"  # no clock given: no expiry
    assert index.lookup(TURN_1, now=161.0) is None
    assert len(index) == 0


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ContinuationIndex(capacity=0)


@pytest.mark.parametrize(
    "messages",
    [
        None,
        3,
        "plain",
        {"role": "user"},
        [None, 1, "x", [], {"content": {"weird": True}}],
        [{"role": "assistant", "tool_calls": "nope", "function_call": {"name": 1}}],
        [{"role": "user", "content": "\ud800"}],
        [{"role": "tool", "content": [1, None, {"x": {1, 2}}]}],
    ],
)
def test_malformed_messages_never_raise(messages: Any) -> None:
    index = ContinuationIndex(capacity=10)
    index.remember(messages, messages, "p", now=0.0)
    index.lookup(messages)


def test_deeply_nested_arguments_never_raise() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    message = {
        "role": "assistant",
        "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": deep}}],
    }
    assert units([message]) == units([copy.deepcopy(message)])


# --- text prompts ------------------------------------------------------------------------------

SHARED = "You are a careful agent. " * 40  # > 3 blocks shared by every program


@pytest.mark.parametrize(
    "question_len", [1, 7, TEXT_BLOCK - 1, TEXT_BLOCK, TEXT_BLOCK + 5, 3 * TEXT_BLOCK]
)
def test_text_continuation(question_len: int) -> None:
    index = ContinuationIndex(capacity=100)
    prompt = SHARED + "Q: " + "x" * question_len + "\nA:"
    completion = " Thought: I should search.\nAction: search[kv cache]"
    index.remember_text(prompt, completion, "p", now=0.0)
    assert index.lookup_text(prompt + completion + "\nObservation: found it\nThought:") == "p"
    assert index.lookup_text(prompt) == "p"  # a retry
    assert index.lookup_text(prompt + " something else entirely") == "p"  # prompt-only key


def test_text_different_programs_sharing_a_long_prefix_never_match() -> None:
    index = ContinuationIndex(capacity=100)
    index.remember_text(SHARED + "Q: alpha\nA:", " a1", "pa", now=0.0)
    index.remember_text(SHARED + "Q: beta\nA:", " b1", "pb", now=0.0)
    assert index.lookup_text(SHARED + "Q: alpha\nA: a1\nQ: more") == "pa"
    assert index.lookup_text(SHARED + "Q: beta\nA: b1\nQ: more") == "pb"
    assert index.lookup_text(SHARED + "Q: gamma\nA:") is None
    assert index.lookup_text(SHARED) is None
    assert index.lookup_text("") is None


def test_text_tails_per_block_are_bounded() -> None:
    index = ContinuationIndex(capacity=1000)
    for i in range(50):
        index.remember_text(SHARED + "q" * i, "", f"p{i}", now=float(i))
    assert index.lookup_text(SHARED + "q" * 49 + "!") == "p49"
    assert max(len(tails) for tails in index._tails.values()) <= 8


def test_handoff_under_new_instructions_continues_the_program() -> None:
    """An agent hands the dialogue to another agent, which resends it under its own system
    prompt: the full prefix is new, the dialogue (input + the program's reply) is not."""
    index = ContinuationIndex(capacity=100)
    user = {"role": "user", "content": "my card was charged twice"}
    handoff = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "transfer_to_billing", "arguments": "{}"},
            }
        ],
    }
    index.remember([{"role": "system", "content": "You triage."}, user], handoff, "p", now=0.0)
    result = {"role": "tool", "tool_call_id": "call_1", "content": "{'assistant': 'Billing'}"}
    billing = [{"role": "system", "content": "You do billing."}, user, handoff, result]
    assert index.lookup(billing) == "p"


def test_same_first_message_under_other_instructions_is_another_program() -> None:
    index = ContinuationIndex(capacity=100)
    user = {"role": "user", "content": "hello"}
    index.remember(
        [{"role": "system", "content": "A"}, user], {"role": "assistant", "content": "hi"}, "p", 0.0
    )
    assert index.lookup([{"role": "system", "content": "B"}, user]) is None
    assert index.lookup([user]) is None
