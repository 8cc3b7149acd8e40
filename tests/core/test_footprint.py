"""A program's KV footprint as one prefix tree: chains, forks, agents, forgetting."""

import pytest

from kvbaton.middleware.core.actions import Dispatch
from kvbaton.middleware.core.footprint import Footprints
from kvbaton.middleware.core.policies import make_policy
from kvbaton.middleware.core.scheduler import Scheduler, SchedulerConfig
from kvbaton.middleware.core.types import CallOutcome, CallSpec


def spec(call: str, step: str | None = None, parent: str | None = None, **kw: object) -> CallSpec:
    return CallSpec(call, "P", step=step, parent_step=parent, **kw)  # type: ignore[arg-type]


def test_a_chain_counts_its_latest_context() -> None:
    f = Footprints()
    assert f.observe(spec("c1"), 500) == 500
    assert f.observe(spec("c1"), 600) == 600  # prompt and reply, once the call ended
    assert f.observe(spec("c2"), 650) == 650  # the next call continues it: 50 new tokens
    assert f.observe(spec("c2"), 640) == 650  # a context never shrinks


def test_siblings_share_their_parent_once_and_add_their_own_suffixes() -> None:
    f = Footprints()
    f.observe(spec("r", "root"), 1000)
    assert f.observe(spec("a", "a", "root"), 1100) == 1100
    assert f.observe(spec("b", "b", "root"), 1200) == 1300  # 1000 shared + 100 + 200
    assert f.observe(spec("c", "c", "root"), 1050) == 1350
    # A grandchild continues a; its parent's tokens are not counted again.
    assert f.observe(spec("a2", "a2", "a"), 1150) == 1400


def test_an_agent_on_another_prefix_starts_afresh_and_its_prefix_counts_once() -> None:
    f = Footprints()
    f.observe(spec("p", "plan", agent="planner", prefix_tokens=300), 400)
    # Two researchers fork from the planner, each on the researcher's 600-token prompt.
    r1 = spec("r1", "r1", "plan", agent="researcher", prefix_tokens=600)
    r2 = spec("r2", "r2", "plan", agent="researcher", prefix_tokens=600)
    assert f.observe(r1, 650) == 400 + 600 + 50
    assert f.observe(r2, 680) == 400 + 600 + 50 + 80


def test_a_parent_counted_before_the_program_came_back_is_not_assumed_shared() -> None:
    f = Footprints()
    f.observe(spec("r", "root"), 1000)
    f.forget("P")  # the program left the pool: its KV may be evicted since
    assert len(f) == 0
    assert f.observe(spec("a", "a", "root"), 1100) == 1100
    assert f.observe(spec("b", "b", "root"), 1200) == 2300  # each may need its whole context


def test_the_oldest_calls_are_forgotten_but_their_tokens_still_count() -> None:
    f = Footprints(max_nodes=2)
    f.observe(spec("a", "a"), 100)
    f.observe(spec("b", "b", "a"), 150)
    f.observe(spec("c", "c", "b"), 170)
    # a is forgotten: a child of a counts its whole context, on top of what was counted.
    assert f.observe(spec("d", "d", "a"), 120) == 170 + 120
    with pytest.raises(ValueError):
        Footprints(max_nodes=0)


def test_admission_counts_a_forks_branches_side_by_side() -> None:
    config = SchedulerConfig(kv_tokens=3000, admit_share=1.0, min_batch=1)
    s = Scheduler(make_policy("kvbaton"), config)
    s.submit(CallSpec("x1", "X", prompt_tokens=10), 0.0)  # keeps the engine busy
    s.submit(CallSpec("r", "A", step="root", prompt_tokens=800), 0.0)
    s.finish("r", CallOutcome(prompt_tokens=800, completion_tokens=50), 1.0)
    for i in range(3):  # three children of root, 200 new tokens each
        child = CallSpec(f"c{i}", "A", step=f"c{i}", parent_step="root", prompt_tokens=1050)
        s.submit(child, 1.0)
    assert s.admission is not None
    assert s.admission.footprint("A") == 850 + 3 * 200 + 100  # one tree, plus headroom
    # The latest context alone (1050) would leave room for B; the three branches do not.
    actions = s.submit(CallSpec("b1", "B", prompt_tokens=1500), 2.0)
    assert not [a for a in actions if isinstance(a, Dispatch) and a.call_id == "b1"]
    assert "B" in s.admission.parked


def test_a_chain_without_steps_keeps_one_call_in_memory() -> None:
    f = Footprints()
    for i in range(100):
        f.observe(spec(f"c{i}"), 100 * (i + 1))
        f.observe(spec(f"c{i}"), 100 * (i + 1) + 50)  # the reply
    assert f.observe(spec("c100"), 10_200) == 10_200
    assert len(f._programs["P"].nodes) <= 4
