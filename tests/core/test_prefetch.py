"""Next-agent prefetch with explicit ``now``: what is warmed, when, and how much is kept."""

import dataclasses

import pytest

from kvbaton.middleware.core.actions import Dispatch, Warm
from kvbaton.middleware.core.policies import make_policy
from kvbaton.middleware.core.prefetch import PrefetchConfig, Prefetcher
from kvbaton.middleware.core.scheduler import Scheduler, SchedulerConfig
from kvbaton.middleware.core.types import CallOutcome, CallSpec


def call(pid: str, agent: str, n: int, prefix: int = 1000) -> CallSpec:
    return CallSpec(f"{pid}-{n}", pid, agent=agent, workflow="wf", prefix_tokens=prefix)


def run(p: Prefetcher, pid: str, agents: list[str], now: float) -> list[Warm]:
    warms: list[Warm] = []
    for i, agent in enumerate(agents):
        warms += p.started(call(pid, agent, i, prefix=1000 + len(agent)), now + i)
    return warms


def test_warms_the_learned_successor_with_its_prefix_size() -> None:
    p = Prefetcher(PrefetchConfig(cooldown_s=0.0))
    assert run(p, "p1", ["planner", "writer"], 0.0) == []  # nothing learned before
    warms = p.started(call("p2", "planner", 0), 10.0)
    assert warms == [Warm("agent", "p2", 1006, "wf", "writer")]


def test_rare_successors_and_recently_warmed_prefixes_are_skipped() -> None:
    p = Prefetcher(PrefetchConfig(min_share=0.3, cooldown_s=5.0))
    for i in range(4):
        run(p, f"a{i}", ["planner", "writer"], 0.0)
    run(p, "b", ["planner", "critic"], 0.0)  # 1 in 5: below min_share
    warms = p.started(call("c", "planner", 0), 100.0)
    assert [w.agent for w in warms] == ["writer"]
    assert p.started(call("d", "planner", 0), 102.0) == []  # warmed 2 s ago: still hot
    assert [w.agent for w in p.started(call("e", "planner", 0), 106.0)] == ["writer"]


def test_memory_stays_bounded_under_many_workflows_and_agents() -> None:
    config = PrefetchConfig(max_workflows=8, max_agents_per_workflow=4, max_programs=16)
    p = Prefetcher(config)
    for i in range(500):
        spec = CallSpec(f"c{i}", f"p{i}", agent=f"agent{i % 50}", workflow=f"wf{i % 20}")
        p.started(spec, float(i))
    assert len(p.next_agents._workflows) <= 8
    assert all(len(f.successors) <= 4 for f in p.next_agents._workflows.values())
    assert len(p.next_agents._last_agent) <= 16


def test_kvflow_policy_emits_warms_after_dispatch_and_others_do_not() -> None:
    for policy, expect in (("kvflow", True), ("baseline", False), ("continuum", False)):
        s = Scheduler(make_policy(policy), SchedulerConfig())
        for pid in ("p1", "p2"):
            for i, agent in enumerate(("planner", "writer")):
                actions = s.submit(call(pid, agent, i), float(i))
                s.finish(f"{pid}-{i}", CallOutcome(prompt_tokens=1000), float(i) + 0.5)
        actions = s.submit(call("p3", "planner", 0), 10.0)
        assert isinstance(actions[0], Dispatch)
        assert any(isinstance(a, Warm) for a in actions) is expect, policy


def test_warms_stop_when_the_admission_pool_is_tight() -> None:
    policy = dataclasses.replace(make_policy("kvbaton"), prefetch=frozenset({"agent"}))
    config = SchedulerConfig(kv_tokens=4000, admit_share=1.0)
    s = Scheduler(policy, config)
    for i, agent in enumerate(("planner", "writer")):  # learn planner -> writer
        s.submit(call("p1", agent, i, prefix=1000), float(i))
        s.finish(f"p1-{i}", CallOutcome(prompt_tokens=1000), float(i) + 0.5)
    roomy = s.submit(call("p2", "planner", 0, prefix=1000), 10.0)
    assert [w.agent for w in roomy if isinstance(w, Warm)] == ["writer"]
    s.submit(CallSpec("big", "p3", prompt_tokens=2500), 11.0)  # fills the pool
    tight = s.submit(call("p4", "planner", 0, prefix=1000), 30.0)
    assert not any(isinstance(w, Warm) for w in tight)


def test_a_policy_names_only_known_prefetch_kinds_and_admission_orders() -> None:
    base = make_policy("kvbaton")
    with pytest.raises(ValueError, match="unknown prefetch kinds"):
        dataclasses.replace(base, prefetch=frozenset({"agents"}))
    with pytest.raises(ValueError, match="unknown program admission"):
        dataclasses.replace(base, programs="prority")
