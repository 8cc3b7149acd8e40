"""SGLang's frontend language (``sgl.function`` with ``gen``, ``select``, ``fork`` and
``run_batch``) over ``RuntimeEndpoint`` pointed at the proxy.

``sglang`` needs torch, so it lives in its own venv (``scripts/sglang_frontend.sh``,
``build/sglang-frontend/venv``, or ``KVBATON_SGLANG_PYTHON``); the programs run there, in
``sglang_programs.py``, and this test reads the proxy's view of them. Skipped where that
Python is missing; the last test replays the frontend's requests without it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from pathlib import Path
from typing import Any

import pytest

from .conftest import Stack, call_nodes

ROOT = Path(__file__).resolve().parents[2]
PYTHON = Path(
    os.environ.get("KVBATON_SGLANG_PYTHON", ROOT / "build/sglang-frontend/venv/bin/python")
)
needs_sglang = pytest.mark.skipif(
    not PYTHON.exists(), reason=f"no sglang Python at {PYTHON}: bash scripts/sglang_frontend.sh"
)


async def run_programs(stack: Stack) -> dict[str, object]:
    script = Path(__file__).with_name("sglang_programs.py")
    process = await asyncio.create_subprocess_exec(
        str(PYTHON),
        str(script),
        stack.proxy,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, err.decode()[-3000:]
    result: dict[str, object] = json.loads(out)
    return result


@needs_sglang
async def test_programs_gen_select_fork_and_batch(stack: Stack) -> None:
    result = await run_programs(stack)
    assert result["agent"]["tool"] in ("search", "calculator", "none")  # type: ignore[index]
    assert len(result["batch"]) == 3  # type: ignore[arg-type]
    programs = await stack.settled()
    # agent.run and each of run_batch's three programs: gen, select (a prefill of the state,
    # then the choices scored as one batch), gen; each is one program, found by text
    # continuation. run_batch's shared-prefix warm-up is a program of its own (1 call).
    # brainstorm's two fork branches share only a prefix that was never sent, so each is a
    # program (gen, then the prefill before the join); the join's gen continues the first
    # branch's text and joins its program (2 + 1 calls).
    assert sorted(p["calls"] for p in programs) == [1, 2, 3, 4, 4, 4, 4]
    for summary in programs:
        assert summary["agents"] == [] and summary["tool_pauses"] == []
        if summary["calls"] == 4:
            program = await stack.program(summary["program_id"])
            calls = [n["id"] for n in call_nodes(program)]
            edges = [(e["source"], e["target"]) for e in program["graph"]["edges"]]
            assert edges == list(itertools.pairwise(calls))
            assert program["cached_tokens"] > 0  # each call continues the one before


async def test_frontend_requests_through_the_proxy(stack: Stack) -> None:
    """The requests ``RuntimeEndpoint`` sends for ``gen``, ``select`` and a
    ``concate_and_append`` join, replayed as they were recorded from sglang 0.5.23."""

    async def post(path: str, body: dict[str, Any]) -> Any:
        async with stack.http.post(stack.proxy + path, json=body) as r:
            assert r.status == 200, await r.text()
            return await r.json() if r.content_type == "application/json" else None

    async with stack.http.get(stack.proxy + "/get_model_info") as r:
        assert (await r.json())["model_path"] == "kvbaton-tiny"
    state = "SYSTEM:You are careful.\nUSER:Which tool?\nASSISTANT:"
    plan = await post("/generate", {"text": state, "sampling_params": {"max_new_tokens": 8}})
    state += plan["text"] + "\nUSER:Pick one.\nASSISTANT:"
    zero = {"max_new_tokens": 0}
    first = await post("/generate", {"text": state, "sampling_params": zero})
    choices = await post(
        "/generate",
        {
            "text": [state + c for c in ("search", "none")],
            "sampling_params": {**zero, "temperature": 0},
            "return_logprob": True,
            "return_text_in_logprobs": True,
            "logprob_start_len": first["meta_info"]["prompt_tokens"] - 2,
        },
    )
    assert len(choices) == 2 and choices[0]["meta_info"]["input_token_logprobs"][0][2]
    await post("/concate_and_append_request", {"src_rids": ["f1"], "dst_rid": "main"})
    await post("/generate", {"text": state + "search\nUSER:3 results\nASSISTANT:"})
    program = await stack.only_program()
    assert program["calls"] == 4 and program["cached_tokens"] > 0
