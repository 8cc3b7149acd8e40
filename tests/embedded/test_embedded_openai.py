"""OpenAI API of the embedded engine, through the real openai client over loopback."""

import asyncio
import json

import openai
import pytest

from kvbaton.middleware.engine.replies import SYNTHETIC_MARK

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"enum": ["c", "f"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "days"],
        },
    },
}


async def test_models_and_plain_chat(openai_client):
    models = await openai_client.models.list()
    assert [m.id for m in models.data] == ["kvbaton-tiny"]
    resp = await openai_client.chat.completions.create(
        model="kvbaton-tiny", messages=[{"role": "user", "content": "Hello!"}]
    )
    choice = resp.choices[0]
    assert choice.finish_reason == "stop" and choice.message.content.startswith(SYNTHETIC_MARK)
    assert resp.usage.prompt_tokens > 0 and 16 <= resp.usage.completion_tokens <= 64
    assert resp.usage.prompt_tokens_details.cached_tokens == 0


async def test_streamed_chat_equals_plain_chat(openai_client):
    messages = [{"role": "user", "content": "Tell me something."}]
    plain = await openai_client.chat.completions.create(model="m", messages=messages, max_tokens=20)
    stream = await openai_client.chat.completions.create(
        model="m",
        messages=messages,
        max_tokens=20,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 20
    # The first request cached the prompt: the second one hits it.
    assert chunks[-1].usage.prompt_tokens_details.cached_tokens > 0


async def test_tool_loop_hits_the_cache_every_turn(openai_client):
    messages = [
        {"role": "system", "content": "You are a weather agent."},
        {"role": "user", "content": "Weather in Paris for the week?"},
    ]
    previous = None
    for _ in range(6):
        resp = await openai_client.chat.completions.create(
            model="m", messages=messages, tools=[WEATHER]
        )
        usage, message = resp.usage, resp.choices[0].message
        if previous is not None:
            # The previous prompt and reply (but its last, unfed token) are cached.
            assert usage.prompt_tokens_details.cached_tokens >= previous - 1
        previous = usage.prompt_tokens + usage.completion_tokens
        if resp.choices[0].finish_reason != "tool_calls":
            assert message.content.startswith(SYNTHETIC_MARK)
            break
        (call,) = message.tool_calls
        args = json.loads(call.function.arguments)
        assert call.function.name == "get_weather" and {"city", "days"} <= args.keys()
        assert 1 <= args["days"] <= 7
        messages.append(message.model_dump(exclude_none=True))
        messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"})
    else:
        pytest.fail("the synthetic agent never gave a final answer")


async def test_streamed_tool_call_deltas(openai_client):
    messages = [{"role": "user", "content": "Weather?"}]
    plain = await openai_client.chat.completions.create(
        model="m", messages=messages, tools=[WEATHER], tool_choice="required"
    )
    stream = await openai_client.chat.completions.create(
        model="m", messages=messages, tools=[WEATHER], tool_choice="required", stream=True
    )
    fragments, finish = [], None
    async for chunk in stream:
        fragments.extend(chunk.choices[0].delta.tool_calls or [])
        finish = chunk.choices[0].finish_reason or finish
    first = fragments[0]
    assert first.id == plain.choices[0].message.tool_calls[0].id
    assert first.function.name == "get_weather" and first.type == "function"
    assert all(f.id is None and f.function.name is None for f in fragments[1:])
    arguments = "".join(f.function.arguments or "" for f in fragments)
    assert (
        len(fragments) > 2
        and arguments == plain.choices[0].message.tool_calls[0].function.arguments
    )
    assert finish == "tool_calls"


async def test_named_tool_choice_and_none(openai_client):
    named = {"type": "function", "function": {"name": "get_weather"}}
    resp = await openai_client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}], tools=[WEATHER], tool_choice=named
    )
    assert resp.choices[0].message.tool_calls[0].function.name == "get_weather"
    resp = await openai_client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}], tools=[WEATHER], tool_choice="none"
    )
    assert resp.choices[0].message.tool_calls is None


async def test_completions_plain_streamed_and_token_prompts(openai_client):
    resp = await openai_client.completions.create(
        model="m", prompt="Once upon a time", max_tokens=8
    )
    assert resp.choices[0].finish_reason == "length" and resp.usage.completion_tokens == 8
    assert resp.usage.prompt_tokens_details.cached_tokens == 0
    stream = await openai_client.completions.create(
        model="m",
        prompt="Once upon a time",
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].text for c in chunks if c.choices) == resp.choices[0].text
    assert chunks[-1].usage.prompt_tokens_details.cached_tokens == resp.usage.prompt_tokens - 1
    by_ids = await openai_client.completions.create(
        model="m", prompt=[1, 2, 3, 4], max_tokens=200, extra_body={"ignore_eos": True}
    )
    assert by_ids.usage.prompt_tokens == 4 and by_ids.usage.completion_tokens == 200


async def test_bad_requests_are_openai_errors(client, openai_client):
    resp = await client.post("/v1/chat/completions", data=b"{not json")
    body = await resp.json()
    assert resp.status == 400 and set(body["error"]) == {"message", "type", "param", "code"}
    resp = await client.post("/v1/chat/completions", json={"messages": "hi"})
    assert resp.status == 400 and (await resp.json())["error"]["param"] == "messages"
    resp = await client.post("/v1/chat/completions", json=[1, 2])
    assert resp.status == 400
    resp = await client.post("/v1/completions", json={"prompt": ["a", "b"]})
    assert resp.status == 400 and (await resp.json())["error"]["param"] == "prompt"
    with pytest.raises(openai.BadRequestError):
        await openai_client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}], n=2
        )
    with pytest.raises(openai.BadRequestError, match="not offered"):
        await openai_client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "x"}],
            tools=[WEATHER],
            tool_choice={"type": "function", "function": {"name": "nope"}},
        )
    with pytest.raises(openai.BadRequestError, match="KV pool"):
        await openai_client.completions.create(
            model="m", prompt=list(range(23_990)), max_tokens=100, extra_body={"ignore_eos": True}
        )
    resp = await client.get("/no/such/route")
    assert resp.status == 404 and "error" in await resp.json()


async def wait_idle(client, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        load = (await (await client.get("/v1/loads")).json())["loads"][0]
        if load["num_running_reqs"] == 0 and load["num_waiting_reqs"] == 0:
            return load
        assert asyncio.get_running_loop().time() < deadline, load
        await asyncio.sleep(0.05)


async def test_client_disconnect_aborts_streaming_request(client):
    body = {
        "messages": [{"role": "user", "content": "long"}],
        "max_tokens": 3000,
        "ignore_eos": True,
        "stream": True,
    }
    resp = await client.post("/v1/chat/completions", json=body)
    await resp.content.readuntil(b"\n\n")
    await resp.content.readuntil(b"\n\n")  # a token has been generated
    resp.close()
    await wait_idle(client)
    metrics = await (await client.get("/metrics")).text()
    assert 'sglang:num_aborted_requests_total{model_name="kvbaton-tiny"} 1.0' in metrics


async def test_client_disconnect_aborts_waiting_request(client):
    body = {"messages": [{"role": "user", "content": "x"}], "max_tokens": 3000, "ignore_eos": True}
    task = asyncio.create_task(client.post("/v1/chat/completions", json=body))
    await asyncio.sleep(0.2)
    load = (await (await client.get("/v1/loads")).json())["loads"][0]
    assert load["num_running_reqs"] == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_idle(client)
