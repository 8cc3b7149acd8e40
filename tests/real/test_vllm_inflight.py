"""In front of vLLM with no --max-inflight, the proxy learns how many requests vLLM runs at
once (it does not say) from its /metrics, and keeps the rest of the queue itself."""

from __future__ import annotations

import asyncio
import re

from kvbaton.middleware.bench.replay_text import call_text
from tests.real.conftest import proxied
from tests.real.vllm import URL, metric, needs_real_engine

pytestmark = needs_real_engine

SEQS = 8  # --max-num-seqs, as scripts/real_engine.sh starts vLLM


async def test_the_queue_forms_in_the_proxy_not_in_vllm() -> None:
    async with proxied(URL, policy="program-fcfs") as stack:

        async def call(i: int) -> None:
            await stack.client.chat.completions.create(
                model="tiny", max_tokens=96, extra_body={"ignore_eos": True},
                messages=[{"role": "user", "content": call_text(f"inflight-{i}", "c0", 100)}],
                extra_headers={"x-kvbaton-program-id": f"inflight-{i}"},
            )  # fmt: skip

        async def limit() -> float:
            async with stack.http.get(f"{stack.proxy}/metrics") as response:
                found = re.search(r"^kvbaton_max_inflight (\S+)$", await response.text(), re.M)
            assert found is not None
            return float(found.group(1))

        assert await limit() == 256  # vLLM's default batch, until it says otherwise
        calls = []
        for wave in range(6):  # a wave of calls every 0.5 s: more than vLLM can run
            calls += [asyncio.create_task(call(wave * SEQS + i)) for i in range(SEQS)]
            await asyncio.sleep(0.5)
        seen_waiting, limits = [], []
        while not all(c.done() for c in calls):
            await asyncio.sleep(0.3)
            seen_waiting.append(metric(URL, "vllm:num_requests_waiting"))
            limits.append(await limit())
        await asyncio.gather(*calls)
    assert max(limits) <= SEQS + 1  # it learnt the engine's batch and kept to it
    # vLLM's own queue stays short: what waits, waits in the proxy.
    assert sorted(seen_waiting)[len(seen_waiting) // 2] <= 1
