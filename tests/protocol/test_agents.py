"""Agents recognised from their instructions when nothing declares them."""

from kvbaton.middleware.protocol import Route
from kvbaton.middleware.protocol.agents import instructions_agent, instructions_of
from kvbaton.middleware.protocol.payloads import prefill_only, shared_prompt

CHAT = Route.CHAT.value
RESPONSES = Route.RESPONSES.value


def _chat(system: object) -> dict[str, object]:
    return {"messages": [{"role": "system", "content": system}, {"role": "user", "content": "q"}]}


def test_same_instructions_are_one_agent_across_apis() -> None:
    chat = instructions_agent(CHAT, _chat("You are the triage agent."))
    parts = _chat([{"type": "text", "text": "You are the triage agent. "}])
    responses = {"instructions": "You are the triage agent.", "input": "q"}
    assert chat is not None and chat.startswith("system:") and len(chat) == len("system:") + 8
    assert instructions_agent(CHAT, parts) == chat
    assert instructions_agent(RESPONSES, responses) == chat


def test_other_instructions_are_another_agent() -> None:
    assert instructions_agent(CHAT, _chat("You are A.")) != instructions_agent(
        CHAT, _chat("You are B.")
    )


def test_developer_message_and_responses_input_items_count() -> None:
    body = {"input": [{"role": "developer", "content": "Plan."}, {"role": "user", "content": "x"}]}
    assert instructions_of(RESPONSES, body) == "Plan."
    chat = {"messages": [{"role": "developer", "content": "Plan."}]}
    assert instructions_agent(CHAT, chat) == instructions_agent(RESPONSES, body)


def test_no_instructions_no_agent() -> None:
    assert instructions_agent(CHAT, {"messages": [{"role": "user", "content": "hi"}]}) is None
    assert instructions_agent(CHAT, _chat("   ")) is None
    assert instructions_agent(RESPONSES, {"input": "hi"}) is None
    assert instructions_agent("/generate", {"text": "hi"}) is None
    for junk in (None, [], "x", {"messages": "nope"}, {"messages": [None]}, _chat(3)):
        assert instructions_agent(CHAT, junk) is None


def test_shared_prompt_of_a_batch_is_its_common_prefix() -> None:
    state = "Q: pick a colour.\nA:"
    batch = {"text": [state + " red", state + " green", state + " blue"]}
    assert shared_prompt("/generate", batch) == state + " "
    assert shared_prompt("/generate", {"text": state}) == state
    assert shared_prompt("/v1/completions", {"prompt": ["ab", "ac"]}) == "a"
    assert shared_prompt("/generate", {"text": ["x", "y"]}) is None
    assert shared_prompt("/generate", {"text": [1, 2]}) is None
    assert shared_prompt("/generate", {"input_ids": [[1, 2]]}) is None
    assert shared_prompt(CHAT, {"messages": []}) is None


def test_prefill_only_calls() -> None:
    assert prefill_only("/generate", {"text": "x", "sampling_params": {"max_new_tokens": 0}})
    assert prefill_only("/v1/completions", {"prompt": "x", "max_tokens": 0})
    assert not prefill_only("/generate", {"text": "x", "sampling_params": {"max_new_tokens": 8}})
    assert not prefill_only("/generate", {"text": "x"})
    assert not prefill_only(
        "/generate", {"text": "x", "sampling_params": {"max_new_tokens": False}}
    )
    assert not prefill_only(CHAT, {"messages": [], "max_tokens": 0})
