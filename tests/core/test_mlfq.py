"""Autellix's PLAS/ATLAS levels, the promotion rule, and re-keying in the scheduler."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvbaton.middleware.core.actions import Dispatch
from kvbaton.middleware.core.mlfq import Levels, MlfqConfig, MlfqPriority, promote_at
from kvbaton.middleware.core.policies import Policy, make_policy
from kvbaton.middleware.core.scheduler import Scheduler, SchedulerConfig
from kvbaton.middleware.core.types import CallOutcome, CallSpec


def sched(strategy: MlfqPriority, slots: int = 1) -> Scheduler:
    policy = Policy("mlfq", strategy, admission=True, description="")
    return Scheduler(policy, SchedulerConfig(max_inflight=slots, idle_ttl_s=100.0))


def dispatched(actions: list) -> list[str]:
    return [a.call_id for a in actions if isinstance(a, Dispatch)]


@pytest.mark.parametrize(
    ("service", "level"),
    [(0.0, 0), (0.999, 0), (1.0, 1), (1.5, 1), (2.0, 2), (3.99, 2), (4.0, 3), (1e9, 3)],
)
def test_level_boundaries_are_half_open_and_the_last_is_open(service: float, level: int) -> None:
    levels = Levels(4, 1.0, 2.0)
    assert levels.bounds == [1.0, 2.0, 4.0] and len(levels) == 4
    assert levels.level_of(service) == level


@pytest.mark.parametrize("kw", [{"levels": 0}, {"first_s": 0.0}, {"growth": 1.0}, {"beta": 0.0}])
def test_config_rejects_degenerate_ladders(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        MlfqConfig(**kw)  # type: ignore[arg-type]


def test_promotion_time_solves_the_ratio_rule() -> None:
    # (W_p + W_c) / (T_p + T_c) >= beta with T_c = 0, W_c = t - a  =>  t = a + beta*T_p - W_p
    at = promote_at(queued_at=10.0, wait_s=1.0, service_s=3.0, beta=2.0)
    assert at == 15.0
    assert (1.0 + (at - 10.0)) / 3.0 == pytest.approx(2.0)


def test_a_program_moves_down_as_its_service_grows_and_its_queued_calls_follow() -> None:
    s = sched(MlfqPriority(MlfqConfig(critical_path=False)), slots=2)
    s.submit(CallSpec("x", "X"), 0.0)
    s.submit(CallSpec("a1", "A"), 0.0)
    s.submit(CallSpec("a2", "A"), 0.5)  # queued at level 0 (A has no service yet)
    s.submit(CallSpec("b1", "B"), 1.0)  # queued at level 0, behind a2
    # a1 ends after 5 s: A is now at level 3, and a2 is re-keyed there with it.
    assert dispatched(s.finish("a1", CallOutcome(), 5.0)) == ["b1"]
    assert dispatched(s.finish("x", CallOutcome(), 6.0)) == ["a2"]


def test_anti_starvation_promotes_at_its_time_and_next_deadline_says_when() -> None:
    strategy = MlfqPriority(MlfqConfig(critical_path=False, beta=2.0))
    s = sched(strategy)
    s.submit(CallSpec("a1", "A"), 0.0)
    s.finish("a1", CallOutcome(), 3.0)  # A: T_p = 3, W_p = 0
    s.submit(CallSpec("x", "X"), 3.0)  # holds the slot
    s.submit(CallSpec("a2", "A"), 4.0)  # level 2; promoted at 4 + 2*3 - 0 = 10
    assert s.next_deadline() == 10.0
    order, current, now = [], "x", 4.0
    while current != "a2":  # a newcomer at level 0 every second, half a second early
        s.submit(CallSpec(f"n{len(order)}", f"N{len(order)}"), now + 0.5)
        now += 1.0
        (current,) = dispatched(s.finish(current, CallOutcome(), now))
        order.append(current)
    assert now == 10.0  # the first slot at or after the promotion time
    assert order == ["n0", "n1", "n2", "n3", "n4", "a2"]


def test_the_rank_is_the_level_at_dispatch() -> None:
    s = sched(MlfqPriority(MlfqConfig(critical_path=False)), slots=4)
    assert s.submit(CallSpec("a1", "A"), 0.0) == [Dispatch("a1", 0)]
    s.finish("a1", CallOutcome(), 2.5)
    assert s.submit(CallSpec("a2", "A"), 3.0) == [Dispatch("a2", 2)]


def test_atlas_takes_the_critical_path_where_plas_sums() -> None:
    ranks = {}
    for critical_path in (False, True):
        s = sched(MlfqPriority(MlfqConfig(critical_path=critical_path)), slots=4)
        s.submit(CallSpec("a", "P"), 0.0)
        s.submit(CallSpec("b", "P"), 0.0)  # parallel to a
        s.finish("a", CallOutcome(), 2.0)
        s.finish("b", CallOutcome(), 2.0)
        (d,) = s.submit(CallSpec("c", "P"), 3.0)
        assert isinstance(d, Dispatch)
        ranks[critical_path] = d.rank
    assert ranks == {False: 3, True: 2}  # PLAS: 4 s of service; ATLAS: a 2 s path


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from([0.3, 0.7, 1.0, 2.5, 6.0]), min_size=1, max_size=8))
def test_atlas_equals_plas_on_a_chain(durations: list[float]) -> None:
    plas = sched(MlfqPriority(MlfqConfig(critical_path=False)))
    atlas = sched(MlfqPriority(MlfqConfig(critical_path=True)))
    now = 0.0
    for i, d in enumerate(durations):
        ranks = [s.submit(CallSpec(f"c{i}", "P"), now) for s in (plas, atlas)]
        assert ranks[0] == ranks[1]
        now += d
        for s in (plas, atlas):
            s.finish(f"c{i}", CallOutcome(), now)
    assert atlas.policy.priority._programs["P"].svc == pytest.approx(sum(durations))  # type: ignore[attr-defined]


def test_expired_programs_are_forgotten() -> None:
    strategy = MlfqPriority()
    s = sched(strategy)
    s.submit(CallSpec("a", "A"), 0.0)
    s.finish("a", CallOutcome(), 1.0)
    assert "A" in strategy._programs
    s.tick(200.0)
    assert "A" not in strategy._programs and not strategy._inherited


def test_autellix_policy_is_atlas_with_admission() -> None:
    policy = make_policy("autellix")
    assert isinstance(policy.priority, MlfqPriority)
    assert policy.priority.config.critical_path and policy.admission
