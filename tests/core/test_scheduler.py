"""The scheduler with explicit ``now``: ordering, admission, tool pauses, expiry."""

import pytest

from kvbaton.middleware.core.actions import Dispatch, PauseObserved, ProgramExpired
from kvbaton.middleware.core.policies import make_policy
from kvbaton.middleware.core.scheduler import Scheduler, SchedulerConfig
from kvbaton.middleware.core.types import CallOutcome, CallSpec, ProgramStatus, ToolCall


def sched(policy: str = "program-fcfs", slots: int = 1, **kw: float) -> Scheduler:
    return Scheduler(make_policy(policy), SchedulerConfig(max_inflight=slots, **kw))  # type: ignore[arg-type]


def dispatched(actions: list) -> list[str]:
    return [a.call_id for a in actions if isinstance(a, Dispatch)]


def test_program_fcfs_puts_returning_program_ahead_of_newcomers() -> None:
    s = sched()
    assert dispatched(s.submit(CallSpec("a1", "A"), now=0.0)) == ["a1"]
    s.submit(CallSpec("b1", "B"), now=1.0)  # queued behind a1
    s.submit(CallSpec("c1", "C"), now=2.0)
    assert dispatched(s.finish("a1", CallOutcome(), now=3.0)) == ["b1"]
    s.submit(CallSpec("a2", "A"), now=4.0)  # A comes back from its tool
    assert dispatched(s.finish("b1", CallOutcome(), now=5.0)) == ["a2"]
    assert dispatched(s.finish("a2", CallOutcome(), now=6.0)) == ["c1"]


def test_baseline_passes_through_without_rank() -> None:
    s = sched("baseline", slots=1)
    actions = s.submit(CallSpec("a1", "A"), 0.0) + s.submit(CallSpec("b1", "B"), 0.0)
    assert actions == [Dispatch("a1", None), Dispatch("b1", None)]


def test_program_fcfs_rank_is_program_arrival_order() -> None:
    s = sched(slots=8)
    ranks = {a.call_id: a.rank for a in s.submit(CallSpec("b1", "B"), 0.0)}
    ranks |= {a.call_id: a.rank for a in s.submit(CallSpec("a1", "A"), 1.0)}
    ranks |= {a.call_id: a.rank for a in s.submit(CallSpec("b2", "B"), 2.0)}
    assert ranks == {"b1": 0, "a1": 1, "b2": 0}


def test_ties_keep_submission_order() -> None:
    s = sched(slots=1)
    s.submit(CallSpec("x", "P"), 0.0)
    for i in range(5):
        s.submit(CallSpec(f"p{i}", "P"), 1.0)
    order = []
    current = "x"
    for t in range(5):
        (nxt,) = dispatched(s.finish(current, CallOutcome(), 2.0 + t))
        order.append(nxt)
        current = nxt
    assert order == [f"p{i}" for i in range(5)]


def test_admission_never_exceeds_slots_and_cancel_frees_them() -> None:
    s = sched(slots=2)
    for i in range(6):
        s.submit(CallSpec(f"c{i}", f"P{i}"), float(i))
    assert s.stats().inflight == 2 and s.stats().queued == 4
    assert dispatched(s.cancel("c0", 10.0)) == ["c2"]
    assert s.cancel("c4", 10.0) == []  # queued: removed, no slot freed
    assert s.stats().queued == 2 and s.stats().inflight == 2
    assert s.cancel("unknown", 10.0) == []
    assert s.programs.get("P4") is not None and s.programs.get("P4").queued == 0  # type: ignore[union-attr]


def test_tool_pause_is_measured_and_named() -> None:
    s = sched(slots=4)
    s.submit(CallSpec("c1", "P", agent="coder"), 0.0)
    s.finish("c1", CallOutcome(tool_calls=(ToolCall("call_1", "bash"),)), 1.0)
    assert s.programs.get("P").status is ProgramStatus.TOOL  # type: ignore[union-attr]
    actions = s.submit(CallSpec("c2", "P", returned_tool_calls=("call_1",)), 3.5)
    (obs,) = [a for a in actions if isinstance(a, PauseObserved)]
    assert obs.pause.tools == ("bash",) and obs.pause.duration_s == pytest.approx(2.5)
    graph = s.programs.get("P").graph.graph  # type: ignore[union-attr]
    assert list(graph.successors("call:c1")) == ["tool:1"]
    assert list(graph.successors("tool:1")) == ["call:c2"]


def test_unmatched_tool_result_is_not_a_pause() -> None:
    s = sched(slots=4)
    s.submit(CallSpec("c1", "P"), 0.0)
    s.finish("c1", CallOutcome(tool_calls=(ToolCall("call_1", "bash"),)), 1.0)
    actions = s.submit(CallSpec("c2", "P", returned_tool_calls=("other",)), 2.0)
    assert not [a for a in actions if isinstance(a, PauseObserved)]


def test_retry_is_not_a_new_step() -> None:
    s = sched(slots=4)
    s.submit(CallSpec("c1", "P"), 0.0)
    s.finish("c1", CallOutcome(ok=False), 1.0)
    s.submit(CallSpec("c1-retry", "P", retry=True), 1.5)
    program = s.programs.get("P")
    assert program is not None and program.calls == 1 and program.retries == 1
    assert program.graph.calls() == 1


def test_last_step_marks_program_done() -> None:
    s = sched(slots=4)
    s.submit(CallSpec("c1", "P", last_step=True), 0.0)
    s.finish("c1", CallOutcome(prompt_tokens=10, cached_tokens=4, completion_tokens=3), 2.0)
    program = s.programs.get("P")
    assert program is not None and program.status is ProgramStatus.DONE
    assert (program.prompt_tokens, program.cached_tokens, program.service_s) == (10, 4, 2.0)


def test_idle_programs_expire_but_busy_ones_stay() -> None:
    s = sched(slots=1, idle_ttl_s=10.0)
    s.submit(CallSpec("a", "A"), 0.0)
    s.finish("a", CallOutcome(), 1.0)
    s.submit(CallSpec("b", "B"), 2.0)  # B stays in flight
    assert s.next_deadline() == 11.0
    assert s.tick(10.9) == []
    assert s.tick(11.0) == [ProgramExpired("A")]
    assert s.tick(100.0) == [] and s.programs.get("B") is not None
    assert s.next_deadline() is None


def test_table_capacity_evicts_oldest_idle() -> None:
    s = sched(slots=8, programs_capacity=2)
    for i in range(3):
        s.submit(CallSpec(f"c{i}", f"P{i}"), float(i))
        s.finish(f"c{i}", CallOutcome(), float(i) + 0.5)
    assert s.tick(3.0) == [ProgramExpired("P0")]
    assert len(s.programs) == 2


def test_duplicate_submit_and_unknown_finish_are_errors() -> None:
    s = sched()
    s.submit(CallSpec("c", "P"), 0.0)
    with pytest.raises(ValueError):
        s.submit(CallSpec("c", "P"), 0.0)
    with pytest.raises(KeyError):
        s.finish("nope", CallOutcome(), 1.0)


def test_unknown_policy_lists_available() -> None:
    with pytest.raises(ValueError, match="baseline, program-fcfs"):
        make_policy("fastest")
