"""The in-flight limit follows the engine's load, so that the queue forms in the proxy."""

from __future__ import annotations

from kvbaton.middleware.core.actions import Dispatch
from kvbaton.middleware.core.inflight import EngineLoad, InflightLimit
from kvbaton.middleware.core.policies import make_policy
from kvbaton.middleware.core.scheduler import Scheduler, SchedulerConfig
from kvbaton.middleware.core.types import CallOutcome, CallSpec


def test_a_fixed_limit_ignores_the_load() -> None:
    limit = InflightLimit(256)
    assert not limit.observe(EngineLoad(running=8, waiting=40), inflight=48, queued=0)
    assert limit.value == 256


def test_the_limit_comes_down_to_what_a_saturated_engine_runs_and_probes_back_up() -> None:
    limit = InflightLimit(256, adaptive=True)
    assert not limit.observe(EngineLoad(running=8, waiting=40), inflight=48, queued=0)
    assert limit.value == 8
    # Queued in the proxy, nothing waiting at the engine: one more per observation.
    assert limit.observe(EngineLoad(running=8, waiting=0), inflight=8, queued=5)
    assert limit.value == 9
    # The engine makes the ninth wait: back to what it runs.
    limit.observe(EngineLoad(running=8, waiting=1), inflight=9, queued=4)
    assert limit.value == 8


def test_no_probe_without_queued_calls_or_below_the_limit() -> None:
    limit = InflightLimit(16, adaptive=True)
    limit.observe(EngineLoad(running=4, waiting=2), inflight=6, queued=0)
    assert not limit.observe(EngineLoad(running=4, waiting=0), inflight=4, queued=0)
    assert not limit.observe(EngineLoad(running=3, waiting=0), inflight=3, queued=2)
    assert limit.value == 4
    # Never above the ceiling, never below one.
    limit.observe(EngineLoad(running=0, waiting=3), inflight=0, queued=0)
    assert limit.value == 4  # an engine running nothing says nothing about its batch
    for _ in range(20):
        limit.observe(EngineLoad(running=4, waiting=0), inflight=limit.value, queued=1)
    assert limit.value == 16


def _dispatched(actions: list[object]) -> list[str]:
    return [a.call_id for a in actions if isinstance(a, Dispatch)]


def test_the_scheduler_holds_calls_past_the_learnt_limit_and_releases_them_as_it_rises() -> None:
    config = SchedulerConfig(max_inflight=64, adaptive_inflight=True)
    s = Scheduler(make_policy("program-fcfs"), config)
    assert _dispatched(s.submit(CallSpec("a1", "A"), 0.0)) == ["a1"]
    assert _dispatched(s.submit(CallSpec("b1", "B"), 0.0)) == ["b1"]
    # The engine runs one and holds one waiting (another client's, say): limit 1.
    assert s.engine_load(EngineLoad(running=1, waiting=1), 0.5) == []
    assert s.limit.value == 1
    assert _dispatched(s.submit(CallSpec("c1", "C"), 1.0)) == []  # held in the proxy
    assert _dispatched(s.finish("a1", CallOutcome(), 2.0)) == []  # b1 still holds the slot
    assert _dispatched(s.finish("b1", CallOutcome(), 3.0)) == ["c1"]
    s.submit(CallSpec("d1", "D"), 3.0)
    # Nothing waits at the engine while d1 waits in the proxy: the limit rises, d1 goes.
    assert _dispatched(s.engine_load(EngineLoad(running=1, waiting=0), 3.5)) == ["d1"]
    assert s.limit.value == 2
