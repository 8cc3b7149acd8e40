"""SGLang-native API of the embedded engine over loopback HTTP."""

import asyncio
import itertools
import json

import pytest
from prometheus_client import REGISTRY

from kvbaton.middleware.embedded import EngineSettings, create_engine_app
from kvbaton.middleware.engine import UnknownProfileError


async def generate(client, **body):
    resp = await client.post("/generate", json=body)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def load(client):
    return (await (await client.get("/v1/loads")).json())["loads"][0]


async def sse_chunks(resp):
    raw = (await resp.read()).decode()
    assert raw.endswith("data: [DONE]\n\n")
    frames = raw.split("\n\n")[:-1]
    assert all(f.startswith("data: ") for f in frames)
    return [json.loads(f[len("data: ") :]) for f in frames[:-1]]


async def test_generate_text_and_input_ids(client):
    out = await generate(
        client, text="The capital of France is", sampling_params={"max_new_tokens": 6}
    )
    meta = out["meta_info"]
    assert meta["finish_reason"] == {"type": "length", "length": 6}
    assert meta["completion_tokens"] == len(out["output_ids"]) == 6 and meta["cached_tokens"] == 0
    # "The", " capital", " of", " France", " is" (cl100k cuts it the same way)
    assert meta["prompt_tokens"] == 5 and meta["e2e_latency"] > 0 and meta["id"]
    natural = await generate(client, input_ids=[5, 6, 7], rid="mine")
    assert natural["meta_info"]["id"] == "mine"
    assert natural["meta_info"]["finish_reason"] == {"type": "stop", "matched": 0}
    assert natural["text"].startswith("[kvbaton synthetic reply]")


async def test_generate_stream_is_cumulative_sglang_framing(client):
    resp = await client.post(
        "/generate", json={"text": "Hi", "stream": True, "sampling_params": {"max_new_tokens": 5}}
    )
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    chunks = await sse_chunks(resp)
    assert len(chunks) == 5
    assert [len(c["output_ids"]) for c in chunks] == [1, 2, 3, 4, 5]
    assert all(b["text"].startswith(a["text"]) for a, b in itertools.pairwise(chunks))
    assert [c["meta_info"]["finish_reason"] for c in chunks[:-1]] == [None] * 4
    assert chunks[-1]["meta_info"]["finish_reason"] == {"type": "length", "length": 5}


async def test_prefill_only_warms_the_cache(client):
    prompt = "A long shared system prompt. " * 40
    warm = await generate(client, text=prompt, sampling_params={"max_new_tokens": 0})
    assert warm["text"] == "" and warm["output_ids"] == []
    assert warm["meta_info"]["finish_reason"] == {"type": "length", "length": 0}
    streamed = await client.post(
        "/generate", json={"text": prompt, "stream": True, "sampling_params": {"max_new_tokens": 0}}
    )
    (only,) = await sse_chunks(streamed)
    assert only["meta_info"]["completion_tokens"] == 0
    used = await generate(client, text=prompt + "Question?", sampling_params={"max_new_tokens": 2})
    assert used["meta_info"]["cached_tokens"] >= warm["meta_info"]["prompt_tokens"] - 1


@pytest.mark.parametrize(
    "body",
    [
        {"text": "x", "sampling_params": {"max_new_token": 3}},
        {"text": "x", "input_ids": [1]},
        {},
        {"text": "x", "sampling_params": {"n": 2}},
        {"input_ids": "abc"},
        {"text": ["a", "b"], "stream": True},  # batches are served whole (test_embedded_frontend)
        {"text": "x", "session_params": {"id": "missing"}},
    ],
)
async def test_bad_generate_requests(client, body):
    resp = await client.post("/generate", json=body)
    assert resp.status == 400
    assert (await resp.json())["error"]["message"]


async def test_sessions_append_and_hold_kv(client):
    sid = await (await client.post("/open_session", json={"capacity_of_str_len": 1000})).json()
    first = await generate(
        client, text="Turn one.", session_params={"id": sid}, sampling_params={"max_new_tokens": 10}
    )
    held = (await load(client))["kv_held_tokens"]
    m1 = first["meta_info"]
    assert held == m1["prompt_tokens"] + m1["completion_tokens"] - 1
    second = await generate(
        client, text=" Turn two.", session_params={"id": sid}, sampling_params={"max_new_tokens": 4}
    )
    m2 = second["meta_info"]
    assert m2["prompt_tokens"] == m1["prompt_tokens"] + m1["completion_tokens"] + 3
    assert m2["cached_tokens"] == held
    assert (await load(client))["num_streaming_sessions"] == 1
    dup = await client.post("/open_session", json={"capacity_of_str_len": 1, "session_id": sid})
    assert dup.status == 400
    assert (await client.post("/close_session", json={"session_id": sid})).status == 200
    assert (await load(client))["kv_held_tokens"] == 0
    closed = await client.post("/generate", json={"text": "x", "session_params": {"id": sid}})
    assert closed.status == 400
    assert (await client.post("/close_session", json={"session_id": sid})).status == 400


async def test_session_timeout_releases_kv(aiohttp_client, make_app):
    client = await aiohttp_client(make_app(time_scale=1.0, profile="llama-3.1-8b-h100"))
    body = {"capacity_of_str_len": 100, "session_id": "s", "timeout": 0.3}
    assert await (await client.post("/open_session", json=body)).json() == "s"
    await generate(
        client, text="hello", session_params={"id": "s"}, sampling_params={"max_new_tokens": 2}
    )
    assert (await load(client))["kv_held_tokens"] > 0
    await asyncio.sleep(0.5)
    assert (await load(client))["kv_held_tokens"] == 0
    assert (await load(client))["num_streaming_sessions"] == 0


async def test_abort_request_and_flush_cache(client):
    body = {
        "text": "go",
        "rid": "slow",
        "sampling_params": {"max_new_tokens": 3000, "ignore_eos": True},
    }
    task = asyncio.create_task(client.post("/generate", json=body))
    await asyncio.sleep(0.2)
    flush = await client.post("/flush_cache")
    assert flush.status == 400  # refused while a request runs
    assert (await client.post("/abort_request", json={"rid": "slow"})).status == 200
    resp = await task
    meta = (await resp.json())["meta_info"]
    assert meta["finish_reason"]["type"] == "abort" and 0 < meta["completion_tokens"] < 3000
    assert (await client.get("/flush_cache")).status == 200
    assert (await load(client))["num_used_tokens"] == 0
    task = asyncio.create_task(client.post("/generate", json={**body, "rid": "again"}))
    await asyncio.sleep(0.1)
    await client.post("/abort_request", json={"abort_all": True})
    assert (await (await task).json())["meta_info"]["finish_reason"]["type"] == "abort"


async def test_return_logprob(client):
    out = await generate(
        client,
        input_ids=[3, 4, 5],
        return_logprob=True,
        logprob_start_len=0,
        sampling_params={"max_new_tokens": 3},
    )
    meta = out["meta_info"]
    assert [t[1] for t in meta["input_token_logprobs"]] == [3, 4, 5]
    assert meta["input_token_logprobs"][0][0] is None
    assert [t[1] for t in meta["output_token_logprobs"]] == out["output_ids"]
    assert all(t[0] <= 0 for t in meta["output_token_logprobs"])


async def test_info_health_and_metrics(client, aiohttp_client, make_app):
    for path in ("/server_info", "/get_server_info"):
        info = await (await client.get(path)).json()
        assert info["engine"] == "kvbaton-embedded" and info["profile"] == "demo-tiny"
        assert info["max_total_num_tokens"] == 24000 and info["max_running_requests"] == 16
        assert info["page_size"] == 1 and info["version"]
    for path in ("/model_info", "/get_model_info"):
        info = await (await client.get(path)).json()
        assert info["is_generation"] is True and info["model_path"] == "kvbaton-tiny"
    assert (await client.get("/health")).status == 200
    await generate(client, text="count me", sampling_params={"max_new_tokens": 3})
    text = await (await client.get("/metrics")).text()
    for name in (
        "sglang:num_running_reqs",
        "sglang:num_queue_reqs",
        "sglang:cache_hit_rate",
        "sglang:token_usage",
        'sglang:cached_tokens_total{cache_source="device"',
        "sglang:evicted_tokens_total",
        "sglang:time_to_first_token_seconds_bucket",
    ):
        assert name in text.replace('model_name="kvbaton-tiny",', "")
    other = await aiohttp_client(make_app())
    other_text = await (await other.get("/metrics")).text()
    assert 'sglang:generation_tokens_total{model_name="kvbaton-tiny"} 0.0' in other_text
    assert not [m for m in REGISTRY.collect() if m.name.startswith("sglang")]
    loads = await (await client.get("/v1/loads")).json()
    assert loads["dp_rank_count"] == 1 and loads["aggregate"]["total_tokens"] == 24000


def test_settings_and_profiles_fail_early():
    with pytest.raises(UnknownProfileError, match=r"llama-3\.1-8b-h100"):
        create_engine_app(EngineSettings(profile="nope"))
    with pytest.raises(ValueError):
        EngineSettings(time_scale=0)
    app = create_engine_app(EngineSettings(profile="demo-tiny", kv_tokens=5000, max_running=2))
    assert app is not None
