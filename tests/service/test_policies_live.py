"""Every policy, live through the proxy, on an engine whose KV pool admission must share.

Programs here never say which call is their last (as most clients do not): a policy that
keeps such programs' room for ever would leave the later ones parked until they expire.
"""

from __future__ import annotations

import asyncio

import pytest

from kvbaton.middleware.core.policies import POLICIES
from kvbaton.middleware.embedded.settings import EngineSettings
from tests.service.conftest import Stack, start_stack

PROGRAMS = 8
TURNS = 3
# Each program's context reaches ~2,000 tokens; the pool holds about three of them.
POOL = 6000


async def run_program(stack: Stack, index: int) -> None:
    messages = [{"role": "system", "content": f"agent {index}: " + "rules " * 300}]
    for turn in range(TURNS):
        messages.append({"role": "user", "content": f"step {turn}: " + "data " * 120})
        reply = await stack.client.chat.completions.create(
            model="m",
            messages=messages,  # type: ignore[arg-type]
            max_tokens=8,
            extra_headers={"x-kvbaton-program-id": f"p{index}"},
        )
        messages.append({"role": "assistant", "content": reply.choices[0].message.content or ""})
        await asyncio.sleep(0.05)  # the client thinks


@pytest.mark.parametrize("policy", list(POLICIES))
async def test_every_policy_finishes_programs_that_never_mark_their_end(policy: str) -> None:
    engine = EngineSettings(port=0, time_scale=0.02, kv_tokens=POOL)
    async with start_stack(engine, policy=policy, engine_kv_tokens=POOL, idle_ttl_s=600) as s:
        runs = [run_program(s, i) for i in range(PROGRAMS)]
        await asyncio.wait_for(asyncio.gather(*runs), timeout=60)
        programs = await s.programs()
        assert len(programs) == PROGRAMS
        assert all(p["calls"] == TURNS and p["queued"] == 0 for p in programs.values())
        async with s.http.get(f"{s.proxy}/health") as r:
            health = await r.json()
        assert health["queued"] == 0 and health["inflight"] == 0
