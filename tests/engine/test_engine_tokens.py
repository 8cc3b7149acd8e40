"""Synthetic tokenizer and the prefix-stable chat template."""

import json
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from kvbaton.middleware.engine import chat_reply, tokens


@given(st.text(max_size=300))
def test_pieces_round_trip(text):
    assert "".join(tokens.pieces(text)) == text
    assert tokens.count(text) == len(tokens.encode(text))


def test_ids_are_stable_crc32():
    assert tokens.encode("Hello world") == [
        zlib.crc32(b"Hello") & 0x7FFFFFFF,
        zlib.crc32(b" world") & 0x7FFFFFFF,
    ]
    assert tokens.pieces("abcdefghijkl, x") == ["abcdefghij", "kl", ",", " x"]


def assistant_message(messages, tools):
    reply = chat_reply(messages, tools)
    calls = [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in reply.tool_calls
    ]
    return reply, {"role": "assistant", "content": reply.content or None, "tool_calls": calls}


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search",
            "parameters": {
                "type": "object",
                "properties": {"q": {"type": "string"}},
                "required": ["q"],
            },
        },
    }
]

texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=80)


@settings(max_examples=60, deadline=None)
@given(st.lists(texts, min_size=1, max_size=4), st.booleans(), texts)
def test_prompt_plus_reply_is_a_token_prefix_of_the_next_prompt(users, with_tools, tool_out):
    tools = TOOLS if with_tools else None
    messages = [{"role": "system", "content": "You are an agent."}]
    for text in users:
        messages.append({"role": "user", "content": text})
        prompt = tokens.encode(tokens.render_chat(messages, tools))
        reply, message = assistant_message(messages, tools)
        messages.append(message)
        if reply.tool_calls:
            messages.append(
                {"role": "tool", "tool_call_id": reply.tool_calls[0].id, "content": tool_out}
            )
        generated = prompt + reply.token_ids
        following = tokens.encode(tokens.render_chat(messages, tools))
        assert following[: len(generated)] == generated


def test_rendering_includes_tool_calls_and_tool_results():
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "find it"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "search", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "RESULT-42"},
    ]
    text = tokens.render_chat(messages, TOOLS)
    assert '"name": "search"' in text and "RESULT-42" in text and "find it" in text
    assert json.dumps(TOOLS[0], sort_keys=True) in text
    assert text.endswith(tokens.GENERATION_PROMPT)
