"""kvbaton's program-srpt strategy: the remaining-work predictor, keys, wake-ups and ranks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvbaton.middleware.core.actions import Dispatch
from kvbaton.middleware.core.policies import make_policy
from kvbaton.middleware.core.priority import PRIORITIES, QueuedCall, make_priority
from kvbaton.middleware.core.programs import ProgramState
from kvbaton.middleware.core.scheduler import Scheduler, SchedulerConfig
from kvbaton.middleware.core.srpt import FairSrpt, ResidualWork, SrptConfig, _Pool
from kvbaton.middleware.core.types import CallOutcome, CallSpec


def program(calls: int = 1, service_s: float = 0.0, **kw: object) -> ProgramState:
    p = ProgramState("P", 0, kw.pop("arrival", 0.0), calls=calls, service_s=service_s)  # type: ignore[arg-type]
    for k, v in kw.items():
        setattr(p, k, v)
    return p


def call(queued_at: float = 0.0, seq: int = 0) -> QueuedCall:
    return QueuedCall(CallSpec(f"c{seq}", "P"), seq, queued_at)


# -- the predictor ----------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 30), min_size=1, max_size=60), st.integers(1, 8), st.integers(0, 35))
def test_pool_matches_brute_force_over_its_window(totals: list[int], window: int, k: int) -> None:
    pool = _Pool(window)
    for n in totals:
        pool.add(n, 2.0 * n)
    kept = totals[-window:]
    longer = [n for n in kept if n >= k]
    expected = sum(n - k for n in longer) / len(longer) if longer else 0.0
    assert pool.calls_left(k) == pytest.approx(expected)
    assert pool.seconds_per_call() == pytest.approx(2.0)
    assert len(pool) == len(kept)


def test_cold_start_orders_by_attained_service() -> None:
    work = ResidualWork(min_samples=3)
    assert work.remaining(program(calls=4, service_s=7.5)) == 7.5


def test_residual_shrinks_for_regular_lengths() -> None:
    work = ResidualWork(min_samples=3)
    for _ in range(5):
        work.observe(None, 10, 20.0)  # every program: 10 calls, 2 s each
    early = work.remaining(program(calls=1, queued=1))
    late = work.remaining(program(calls=9, queued=1))
    assert early == pytest.approx((9 + 1) * 2.0)
    assert late == pytest.approx((1 + 1) * 2.0)
    past = work.remaining(program(calls=12, inflight=1))  # outlived every sample
    assert past == pytest.approx(1 * 2.0)


def test_a_workflow_uses_its_own_history_once_it_has_enough() -> None:
    work = ResidualWork(min_samples=2)
    for _ in range(4):
        work.observe("short", 2, 2.0)
        work.observe("long", 20, 20.0)
    assert work.remaining(program(calls=1, workflow="short")) == pytest.approx(1.0)
    assert work.remaining(program(calls=1, workflow="long")) == pytest.approx(19.0)
    assert work.remaining(program(calls=1, workflow="unseen")) == pytest.approx(10.0)


# -- keys ---------------------------------------------------------------------------------------


def strategy(**kw: float) -> FairSrpt:
    return FairSrpt(SrptConfig(**kw))  # type: ignore[arg-type]


def test_key_classes_due_deadline_and_plain() -> None:
    s = strategy(aging=1.0, grace_s=2.0)
    p = program(calls=1, service_s=3.0, arrival=1.0)  # cold: R = 3
    c = call(queued_at=4.0)  # due at 4 + 3 + 2 = 9
    assert s.key(c, p, 5.0) == (1.0, 1.0 + 3.0)
    assert s.wake_at(c, p, 5.0) == 9.0
    assert s.key(c, p, 9.0) == (0.0, 9.0)
    assert s.wake_at(c, p, 9.0) is None
    p.deadline_at = 10.0  # feasible until 10 - 3 = 7
    assert s.key(c, p, 5.0) == (0.0, 10.0)
    assert s.wake_at(c, p, 5.0) == 7.0
    assert s.key(c, p, 7.0) == (1.0, 4.0)  # slack gone: back with the rest


def test_due_calls_come_before_deadline_calls_which_come_before_the_rest() -> None:
    s = strategy(grace_s=1.0)
    due = s.key(call(queued_at=0.0), program(), 4.5)
    deadline = s.key(call(queued_at=4.0), program(deadline_at=20.0), 4.5)
    plain = s.key(call(queued_at=4.0), program(), 4.5)
    assert due < deadline < plain


def test_ranks_are_small_shorter_and_older_first() -> None:
    s = strategy()
    young, old = program(arrival=90.0, service_s=1.0), program(arrival=0.0, service_s=1.0)
    long_ = program(arrival=0.0, service_s=50.0)
    programs = {"young": young, "old": old, "long": long_}
    r = {n: s.rank(call(queued_at=100.0), p, 100.0) for n, p in programs.items()}
    assert r["old"] < r["young"] < r["long"]  # type: ignore[operator]
    assert all(0 < v <= 1601 for v in r.values())  # type: ignore[operator]
    assert s.rank(call(queued_at=0.0), old, 1000.0) == 0  # due


def test_finished_programs_feed_the_predictor_once() -> None:
    sched = Scheduler(make_policy("kvbaton"), SchedulerConfig(max_inflight=4))
    srpt = sched.policy.priority
    assert isinstance(srpt, FairSrpt)
    sched.submit(CallSpec("a1", "A"), 0.0)
    sched.submit(CallSpec("a2", "A", last_step=True), 0.0)
    sched.finish("a2", CallOutcome(), 2.0)  # the last step ends first
    sched.finish("a1", CallOutcome(), 3.0)
    assert len(srpt.work._all) == 1
    assert srpt.work._all.calls == 2 and srpt.work._all.service_s == 2.0


def test_a_queued_call_is_rekeyed_when_its_program_learns_more() -> None:
    sched = Scheduler(make_policy("kvbaton"), SchedulerConfig(max_inflight=2))
    sched.submit(CallSpec("x", "X"), 0.0)
    sched.submit(CallSpec("a1", "A"), 0.0)
    sched.submit(CallSpec("a2", "A"), 0.1)  # cold start: R = A's service = 0
    sched.submit(CallSpec("b1", "B"), 0.2)  # R = 0 too, later arrival
    # a1 ran 30 s: A's predicted work (its service, cold) is now 30 s, B's still 0.
    actions = sched.finish("a1", CallOutcome(), 30.0)
    assert [a.call_id for a in actions if isinstance(a, Dispatch)] == ["b1"]


def test_registry_and_policy() -> None:
    assert {"arrival", "program-fcfs", "plas", "atlas", "program-srpt"} <= set(PRIORITIES)
    assert isinstance(make_priority("program-srpt"), FairSrpt)
    policy = make_policy("kvbaton")
    assert isinstance(policy.priority, FairSrpt) and policy.admission
    with pytest.raises(ValueError, match="program-srpt"):
        make_priority("nope")


@pytest.mark.parametrize(
    "kw", [{"aging": 0.0}, {"grace_s": -1.0}, {"max_remaining_s": 0.0}, {"window": 0}]
)
def test_config_is_validated(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        SrptConfig(**kw)  # type: ignore[arg-type]
