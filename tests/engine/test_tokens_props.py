"""Properties of the synthetic tokenizer that prefix caching relies on."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from kvbaton.middleware.engine import tokens

# Pieces of text that sit next to the template's own markers in awkward ways.
FRAGMENTS = [
    "<|im_start|>",
    "<|im_end|>",
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
    "<|im_",
    "<tool",
    "</",
    "<",
    "|>",
    "\n",
    "\n\n",
    "  ",
    "    ",
    "_",
    "__init__",
    "abcdefghijklmnop",
    " word",
    "1234567",
    '{"a": [1, 2.5, null]}',
    "'s",
    "...",
    "abc123def",
    "x2",
    "end.",
    "2025-01-01T00:00:00Z",
]
ALPHABET = st.sampled_from(list(" \t\r\n<|>/_{}[]\":,.'!?-aZq09éß中ж\u00a0\u2028"))
# What a text starts and ends with matters most: that is where it meets the template.
EDGES = st.sampled_from(["", " ", "  ", "\t", "\n", " \n", "<", "<|", "_", "x", ".", "1", "é"])
texts = st.tuples(
    EDGES,
    st.lists(
        st.one_of(st.sampled_from(FRAGMENTS), st.text(ALPHABET, max_size=8), st.text(max_size=4)),
        max_size=6,
    ).map("".join),
    EDGES,
).map("".join)

tool_calls = st.lists(
    st.fixed_dictionaries(
        {
            "id": st.just("call_1"),
            "type": st.just("function"),
            "function": st.fixed_dictionaries(
                {
                    "name": texts,
                    "arguments": st.one_of(
                        texts, st.dictionaries(texts, texts, max_size=3).map(json.dumps)
                    ),
                }
            ),
        }
    ),
    max_size=2,
)
messages = st.one_of(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["system", "user", "developer"]), "content": texts}
    ),
    st.fixed_dictionaries(
        {"role": st.just("assistant"), "content": st.none() | texts, "tool_calls": tool_calls}
    ),
    st.fixed_dictionaries({"role": st.just("tool"), "tool_call_id": texts, "content": texts}),
)
tool_lists = st.none() | st.lists(
    st.fixed_dictionaries(
        {
            "type": st.just("function"),
            "function": st.fixed_dictionaries({"name": texts, "description": texts}),
        }
    ),
    min_size=1,
    max_size=2,
)


@settings(max_examples=400, deadline=None)
@given(st.lists(messages, max_size=6), tool_lists)
def test_a_chat_tokenizes_the_same_message_by_message(chat, tools):
    parts = [tokens.render_chat([], tools, add_generation_prompt=False)] if tools else []
    parts += [tokens.render_chat([m], add_generation_prompt=False) for m in chat]
    parts.append(tokens.GENERATION_PROMPT)
    whole = tokens.render_chat(chat, tools)
    assert "".join(parts) == whole
    assert [i for part in parts for i in tokens.encode(part)] == tokens.encode(whole)


@settings(max_examples=300, deadline=None)
@given(st.lists(messages, max_size=3), texts, tool_calls, st.integers(min_value=0, max_value=40))
def test_a_generated_reply_and_its_cut_prefixes_are_a_prefix_of_the_next_prompt(
    chat, content, calls, cut
):
    prompt = tokens.encode(tokens.render_chat(chat))
    body = tokens.render_assistant_body(
        content, [(c["function"]["name"], c["function"]["arguments"]) for c in calls]
    )
    generated = tokens.pieces(body)
    # The whole reply, sent back as an assistant message with its tool calls.
    whole = {"role": "assistant", "content": content, "tool_calls": calls}
    # A reply cut at max_tokens, sent back as plain content.
    cut_text = "".join(generated[:cut])
    for message, expected in (
        (whole, generated),
        ({"role": "assistant", "content": cut_text}, generated[:cut]),
    ):
        following = tokens.encode(tokens.render_chat([*chat, message]))
        expected_ids = prompt + [tokens.token_id(p) for p in expected]
        assert following[: len(expected_ids)] == expected_ids
        assert following[len(expected_ids)] == tokens.token_id("<|im_end|>")


@settings(max_examples=500)
@given(texts, st.integers(min_value=0, max_value=60))
def test_the_text_of_the_first_k_pieces_cuts_into_those_k_pieces(text, k):
    pieces = tokens.pieces(text)
    assert "".join(pieces) == text
    assert tokens.pieces("".join(pieces[:k])) == pieces[:k]


@given(texts)
def test_a_newline_is_always_a_piece_of_its_own(text):
    assert all(p == "\n" or "\n" not in p for p in tokens.pieces(text))
    assert all(p for p in tokens.pieces(text))
