"""The embedded engine's Responses API, driven by the real OpenAI SDK."""

import json

import openai
import pytest

TOOLS = [
    {
        "type": "function",
        "name": "read_file",
        "description": "Read a file",
        "parameters": {
            "type": "object",
            "properties": {"path": {"type": "string"}},
            "required": ["path"],
        },
    }
]


async def _tool_loop(openai_client, first_input, *, stream=False):
    """Run a Responses tool loop to its final text; returns every response."""
    items = [{"role": "user", "content": first_input}]
    responses = []
    for _ in range(8):
        if stream:
            async with openai_client.responses.stream(
                model="m", input=items, tools=TOOLS, instructions="You are a coder."
            ) as events:
                kinds = [event.type async for event in events]
                response = await events.get_final_response()
            assert kinds[:2] == ["response.created", "response.in_progress"]
            assert kinds[-1] == "response.completed"
        else:
            response = await openai_client.responses.create(
                model="m", input=items, tools=TOOLS, instructions="You are a coder."
            )
        responses.append(response)
        calls = [item for item in response.output if item.type == "function_call"]
        if not calls:
            return responses
        items += [item.model_dump(exclude_none=True) for item in response.output]
        items += [
            {"type": "function_call_output", "call_id": c.call_id, "output": "file body"}
            for c in calls
        ]
    raise AssertionError("the tool loop did not end")


@pytest.mark.parametrize("stream", [False, True])
async def test_tool_loop_ends_in_text_and_reuses_the_cache(openai_client, stream):
    responses = await _tool_loop(openai_client, "fix the bug in main.py", stream=stream)
    assert len(responses) >= 2
    first, last = responses[0], responses[-1]
    call = first.output[0]
    assert call.type == "function_call" and call.name == "read_file"
    assert call.call_id.startswith("call_")
    assert set(json.loads(call.arguments)) == {"path"}
    assert last.status == "completed"
    assert "[kvbaton synthetic reply]" in last.output_text
    assert last.usage.input_tokens > first.usage.input_tokens
    # The second call resends the first call's prompt and output: the engine cached them.
    assert responses[1].usage.input_tokens_details.cached_tokens >= first.usage.input_tokens


async def test_streamed_and_whole_replies_agree(openai_client):
    whole = await openai_client.responses.create(model="m", input="hello there")
    async with openai_client.responses.stream(model="m", input="hello there") as events:
        deltas = [e.delta async for e in events if e.type == "response.output_text.delta"]
        streamed = await events.get_final_response()
    assert "".join(deltas) == streamed.output_text == whole.output_text
    assert streamed.usage.output_tokens == whole.usage.output_tokens == len(deltas)


async def test_streamed_function_call_arguments_arrive_in_pieces(openai_client):
    stream = await openai_client.responses.create(
        model="m", input="look", tools=TOOLS, tool_choice="required", stream=True
    )
    pieces, done = [], None
    async for event in stream:
        if event.type == "response.function_call_arguments.delta":
            pieces.append(event.delta)
        elif event.type == "response.output_item.done":
            done = event.item
    assert done is not None and done.type == "function_call"
    assert "".join(pieces) == done.arguments and len(pieces) > 1


async def test_previous_response_id_continues_the_conversation(openai_client):
    first = await openai_client.responses.create(
        model="m", input="find the file", tools=TOOLS, tool_choice="required"
    )
    call = first.output[0]
    second = await openai_client.responses.create(
        model="m",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "x"}],
        tools=TOOLS,
    )
    assert second.previous_response_id == first.id
    assert second.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens
    assert second.usage.input_tokens_details.cached_tokens >= first.usage.input_tokens


async def test_max_output_tokens_makes_an_incomplete_response(openai_client):
    response = await openai_client.responses.create(
        model="m", input="write a long essay", max_output_tokens=5
    )
    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage.output_tokens == 5


async def test_errors_are_openai_shaped(openai_client):
    with pytest.raises(openai.NotFoundError, match="previous response"):
        await openai_client.responses.create(model="m", input="x", previous_response_id="nope")
    with pytest.raises(openai.BadRequestError, match="input"):
        await openai_client.responses.create(model="m", input=[])
    with pytest.raises(openai.BadRequestError, match="not offered"):
        await openai_client.responses.create(
            model="m",
            input="x",
            tools=TOOLS,
            tool_choice={"type": "function", "name": "missing"},
        )
