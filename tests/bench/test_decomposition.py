"""Where the time went: the engine's queue times, the simulator's call-by-call spans, and the
``decomposition`` of a results entry."""

from __future__ import annotations

import pytest

from kvbaton.middleware.bench.records import (
    DECOMPOSITION_KEYS,
    Decomposition,
    ExtraRequests,
    ProgramRecord,
    decompose,
)
from kvbaton.middleware.bench.sim import SimResult, simulate
from kvbaton.middleware.bench.trace import Program
from kvbaton.middleware.engine import EngineModel, Finished, GenRequest, PrefillDone
from tests.bench.test_sim import TINY, call, chain_program, check_spans

ADMITTING = ("thunderagent", "kvbaton")  # the policies with program-level admission


def crowded() -> list[Program]:
    """Twenty-four six-turn agents within six seconds: far more context than an 8k pool."""
    return [chain_program(f"p{i}", 0.25 * i, turns=6) for i in range(24)]


def team(pid: str, arrival: float) -> Program:
    """Three agents of one workflow, each with its own system prompt (prefetch learns that
    the reviewer follows the coder)."""
    return Program(
        id=pid,
        arrival=arrival,
        calls=(
            call("plan", agent="planner", system="planner-v1", system_tokens=600, tool="search"),
            call(
                "code",
                "plan",
                agent="coder",
                context="fresh",
                system="coder-v1",
                system_tokens=900,
                tool="bash",
                tool_s=3.0,
            ),
            call("fix", "code", agent="coder", tool="bash", tool_s=1.0),
            call(
                "review",
                "fix",
                agent="reviewer",
                context="fresh",
                system="reviewer-v1",
                system_tokens=700,
            ),
        ),
    )


def run(programs: list[Program], policy: str, kv: int | None = None) -> SimResult:
    return simulate(programs, policy, TINY, kv_tokens=kv, check=True)


def latencies(programs: list[ProgramRecord]) -> list[float]:
    """Each call's time from the client's send to its last token."""
    return [
        c.finished_at - c.sent_at for p in programs for c in p.calls if c.finished_at is not None
    ]


# -- the engine ---------------------------------------------------------------------------


Timed = dict[str, tuple[float, PrefillDone | Finished]]  # rid -> (when, event)


def drain(engine: EngineModel) -> tuple[Timed, Timed]:
    """Run the engine dry from t=0; each request's PrefillDone and Finished, with when."""
    now, prefilled, finished = 0.0, {}, {}
    while (step := engine.step(now)) is not None:
        now += step.duration_s
        for event in step.events:
            if isinstance(event, PrefillDone):
                prefilled[event.rid] = (now, event)
            elif isinstance(event, Finished):
                finished[event.rid] = (now, event)
    return prefilled, finished


def test_a_request_waiting_for_a_slot_reports_its_queue_time() -> None:
    engine = EngineModel(TINY, max_running=1, token_events=False)
    for rid in "ab":
        engine.submit(GenRequest(rid, list(range(1, 200)), 5, 0.0), 0.0)
    prefilled, finished = drain(engine)
    a_done = finished["a"][0]
    assert prefilled["a"][1].queued_s == finished["a"][1].queued_s == 0
    # b is admitted by the step that starts when a's last step ends, and waits no more.
    assert prefilled["b"][1].queued_s == pytest.approx(a_done)
    assert finished["b"][1].queued_s == prefilled["b"][1].queued_s
    assert prefilled["b"][0] > a_done


def test_preempted_requests_wait_again() -> None:
    # Four long replies admitted together outgrow an 800-token pool as they decode.
    engine = EngineModel(TINY, kv_tokens=800, token_events=False)
    for rid in "abcd":
        engine.submit(GenRequest(rid, list(range(1, 100)), 300, 0.0), 0.0)
    prefilled, finished = drain(engine)
    assert engine.stats().preemptions_total > 0 and len(finished) == 4
    # All four were admitted at once, so every second queued follows a preemption.
    assert all(event.queued_s == 0 for _, event in prefilled.values())
    assert any(event.queued_s > 0 for _, event in finished.values())


# -- the simulator ------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["baseline", *ADMITTING])
def test_spans_add_up_to_each_calls_latency(policy: str) -> None:
    result = run(crowded(), policy, kv=8000)
    calls = [c for p in result.programs for c in p.calls]
    for rec in calls:
        check_spans(rec)
    d = result.decomposition()
    assert d.calls == len(calls) == 24 * 6
    spans = d.proxy_queue_s + d.engine_queue_s + d.prefill_s + d.decode_s
    assert spans == pytest.approx(sum(latencies(result.programs)))
    assert d.engine_queue_s == pytest.approx(sum(c.engine_queue_s for c in calls))


def test_eviction_and_program_admission_show_in_the_decomposition() -> None:
    runs = {policy: run(crowded(), policy, kv=8000).decomposition() for policy in ADMITTING}
    base = run(crowded(), "baseline", kv=8000).decomposition()
    assert base.proxy_queue_s == 0  # baseline sends every call on at once
    assert base.preemptions > 0 and base.recomputed_tokens > 0
    assert base.engine_queue_s > 0
    for policy, d in runs.items():
        assert d.proxy_queue_s > 0, policy  # programs parked while the pool is full
        assert d.recomputed_tokens > 0, policy
    roomy = run(crowded()[:2], "thunderagent").decomposition()
    assert roomy.proxy_queue_s == 0 and roomy.preemptions == 0


def test_token_figures_are_the_summarys() -> None:
    summary = run(crowded(), "kvbaton", kv=8000).summary()
    decomposition = summary["decomposition"]
    assert list(decomposition) == list(DECOMPOSITION_KEYS)
    for key in ("prompt_tokens", "cached_tokens", "recomputed_tokens", "preemptions"):
        assert decomposition[key] == summary[key]
    assert decomposition["calls"] == summary["calls"]


def test_warms_are_extra_requests_with_engine_time() -> None:
    programs = [team(f"p{i}", 8.0 * i) for i in range(10)]
    prefetching = run(programs, "kvflow")
    warms = prefetching.cache["warms"]
    sent = warms.get("agent_sent", 0) + warms.get("agent_touched", 0)
    d = prefetching.decomposition()
    assert sent > 0 and d.extra_requests == sent
    assert d.extra_engine_s > 0
    assert d.calls == 40  # warms are not calls
    base = run(programs, "baseline").decomposition()
    assert base.extra_requests == 0 and base.extra_engine_s == 0


def test_a_failed_call_is_not_counted() -> None:
    big = Program(id="big", arrival=0.0, calls=(call("c0", input_tokens=5000), call("c1", "c0")))
    d = simulate([big, chain_program("ok", 0.0, turns=2)], "baseline", TINY, kv_tokens=3000)
    assert d.decomposition().calls == 2


# -- the records --------------------------------------------------------------------------


def test_decomposition_json_has_its_keys_in_order() -> None:
    d = decompose([], ExtraRequests(3, 1.5), preemptions=2)
    assert d == Decomposition(0, 0.0, 0.0, 0.0, 0.0, 3, 1.5, 0, 0, 0, 2)
    assert list(d.to_json()) == list(DECOMPOSITION_KEYS)
    assert DECOMPOSITION_KEYS[:2] == ("calls", "proxy_queue_s")
