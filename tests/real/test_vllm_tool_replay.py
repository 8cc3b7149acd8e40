"""The live replayer's forced tool calls on vLLM: each reply that a tool follows comes back
as real ``tool_calls``, so the proxy sees the program's tool pauses as it would a real
agent's. Needs the engine's hermes tool parser (``scripts/real_engine.sh`` starts it so)."""

from __future__ import annotations

import re

from kvbaton.middleware.bench.replay import replay_trace
from kvbaton.middleware.bench.trace import Call, Program
from tests.real.conftest import Proxied
from tests.real.vllm import needs_real_engine

pytestmark = needs_real_engine

TRACE = [
    Program(
        id=f"tools-{p}",
        arrival=0.2 * p,
        calls=(
            Call(id="c0", agent="coder", system="agent", system_tokens=200, input_tokens=80,
                 output_tokens=60, tool="bash", tool_s=0.3),
            Call(id="c1", agent="coder", after=("c0",), input_tokens=60, output_tokens=60,
                 tool="grep", tool_s=0.2),
            Call(id="c2", agent="coder", after=("c1",), input_tokens=40, output_tokens=16),
        ),
    )
    for p in range(3)
]  # fmt: skip


async def test_forced_tool_calls_reach_the_proxy_as_tool_pauses(stack: Proxied) -> None:
    records = await replay_trace(stack.proxy, TRACE, seed=11, tool_calls=True)
    assert all(not r.failed for r in records)
    for record in records:
        first, second, last = record.calls
        # The tool call's JSON and argument (about output_tokens words) came back whole.
        assert 45 <= first.completion_tokens <= 4 * 60 + 64
        assert last.completion_tokens == 16  # no tool: the exact length, as before
        assert second.cached_tokens > 0  # the second call continues the first's prompt
    async with stack.http.get(f"{stack.proxy}/metrics") as response:
        metrics = await response.text()
    pauses = re.search(r"^kvbaton_tool_pause_seconds_count (\S+)$", metrics, re.MULTILINE)
    assert pauses is not None and float(pauses.group(1)) == 2 * len(TRACE)
