"""What SGLang's frontend language needs of the engine: batched ``/generate`` with token
texts in the logprobs (``select``), and ``/concate_and_append_request`` (``join``)."""

import pytest


async def post(client, path, body, status=200):
    resp = await client.post(path, json=body)
    assert resp.status == status, await resp.text()
    return await resp.json() if resp.content_type == "application/json" else None


async def test_a_batch_is_answered_in_order_with_one_output_per_prompt(client):
    state = "USER: pick a colour\nASSISTANT:"
    texts = [state + c for c in (" red", " green", " blue")]
    singles = [await post(client, "/generate", {"text": t}) for t in texts]
    batch = await post(client, "/generate", {"text": texts, "rid": "sel"})
    assert isinstance(batch, list) and len(batch) == 3
    assert [o["meta_info"]["id"] for o in batch] == ["sel_0", "sel_1", "sel_2"]
    assert [o["text"] for o in batch] == [o["text"] for o in singles]
    assert all(o["meta_info"]["cached_tokens"] > 0 for o in batch)  # the singles came first
    ids = await post(client, "/generate", {"input_ids": [[1, 2, 3], [4, 5]], "rid": ["a", "b"]})
    assert [o["meta_info"]["prompt_tokens"] for o in ids] == [3, 2]
    assert [o["meta_info"]["id"] for o in ids] == ["a", "b"]


async def test_select_scoring_gets_token_texts(client):
    state = "Q: which tool?\nA:"
    body = {
        "text": [state + " search", state + " none"],
        "sampling_params": {"max_new_tokens": 0, "temperature": 0},
        "return_logprob": True,
        "return_text_in_logprobs": True,
        "logprob_start_len": 3,
    }
    for text, out in zip(body["text"], await post(client, "/generate", body), strict=True):
        logprobs = out["meta_info"]["input_token_logprobs"]
        assert "".join(entry[2] for entry in logprobs) == text[len("Q: which") :]
        assert all(isinstance(entry[0], float) for entry in logprobs)
        assert out["meta_info"]["output_token_logprobs"] == []
    plain = await post(
        client, "/generate", {**body, "text": state, "return_text_in_logprobs": False}
    )
    assert {entry[2] for entry in plain["meta_info"]["input_token_logprobs"]} == {None}


@pytest.mark.parametrize(
    "body",
    [
        {"text": ["a", "b"], "stream": True},
        {"text": ["a", "b"], "rid": ["only-one"]},
        {"text": ["a", "b"], "session_params": {"id": "s"}},
        {"text": ["a"], "rid": ["x", "y"]},
    ],
)
async def test_bad_batches_are_400(client, body):
    error = await post(client, "/generate", body, status=400)
    assert error["error"]["type"] == "invalid_request_error"


async def test_concatenate_and_append_is_acknowledged(client):
    assert (
        await post(client, "/concate_and_append_request", {"src_rids": ["a"], "dst_rid": "b"})
        is None
    )
    error = await post(client, "/concate_and_append_request", {"dst_rid": "b"}, status=400)
    assert error["error"]["param"] == "src_rids"
