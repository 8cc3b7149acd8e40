"""EngineModel: batching, chunked prefill, cache reuse, priorities, preemption, holds."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvbaton.middleware.engine import (
    EngineModel,
    Finished,
    GenRequest,
    Preempted,
    PrefillDone,
    RequestTooLongError,
    TokenOut,
    load_profile,
)

TINY = load_profile("demo-tiny")


def run(model: EngineModel, now: float = 0.0, until_idle: bool = True):
    """Step until idle; returns (events with their times, end time)."""
    log = []
    while (step := model.step(now)) is not None:
        assert model.used_tokens <= model.capacity
        now += step.duration_s
        log.extend((now, e) for e in step.events)
    return log, now


def finished(log):
    return {e.rid: e for _, e in log if isinstance(e, Finished)}


def test_single_request_timeline_and_cost():
    model = EngineModel(TINY)
    model.submit(GenRequest("a", list(range(1000)), 5, arrival=0.0), 0.0)
    log, end = run(model)
    kinds = [type(e).__name__ for _, e in log]
    assert kinds == ["PrefillDone"] + ["TokenOut"] * 5 + ["Finished"]
    assert [e.index for _, e in log if isinstance(e, TokenOut)] == [0, 1, 2, 3, 4]
    expected = TINY.prefill_s(1000) + sum(TINY.decode_step_s(1, 1000 + i) for i in range(1, 5))
    assert end == pytest.approx(expected)
    done = finished(log)["a"]
    assert (done.finish_reason, done.completion_tokens, done.cached_tokens) == ("length", 5, 0)


def test_second_turn_hits_prompt_and_reply():
    model = EngineModel(TINY)
    prompt = list(range(3000))
    reply = [90_001, 90_002, 90_003]
    model.submit(GenRequest("t1", prompt, 10, 0.0, output=reply), 0.0)
    log, now = run(model)
    assert finished(log)["t1"].finish_reason == "stop"
    model.submit(GenRequest("t2", prompt + reply + [5, 6], 4, now), now)
    log, _ = run(model, now)
    # SGLang caches prompt + output minus the last sampled token (it has no KV yet).
    assert finished(log)["t2"].cached_tokens == len(prompt) + len(reply) - 1


def test_chunked_prefill_splits_long_prompts():
    model = EngineModel(TINY)
    model.submit(GenRequest("long", list(range(5000)), 1, 0.0), 0.0)
    steps = []
    now = 0.0
    while (step := model.step(now)) is not None:
        steps.append(step)
        now += step.duration_s
    assert [s.prefill_tokens for s in steps] == [2048, 2048, 904]
    assert isinstance(steps[2].events[0], PrefillDone)


def test_prefill_only_warms_the_cache():
    model = EngineModel(TINY)
    model.submit(GenRequest("warm", list(range(2000)), 0, 0.0), 0.0)
    log, now = run(model)
    assert not [e for _, e in log if isinstance(e, TokenOut)]
    done = finished(log)["warm"]
    assert (done.completion_tokens, done.finish_reason) == (0, "length")
    model.submit(GenRequest("use", [*range(2000), 1], 1, now), now)
    log, _ = run(model, now)
    assert finished(log)["use"].cached_tokens == 2000


def order_of_finish(priority_scheduling: bool) -> list[str]:
    model = EngineModel(TINY, max_running=1, priority_scheduling=priority_scheduling)
    for i, prio in enumerate([0, 5, 1]):
        model.submit(GenRequest(f"r{i}", [i] * 50, 2, arrival=float(i), priority=prio), 2.0)
    log, _ = run(model, 2.0)
    return [e.rid for _, e in log if isinstance(e, Finished)]


def test_priority_scheduling_runs_higher_priority_first():
    assert order_of_finish(True) == ["r1", "r2", "r0"]
    assert order_of_finish(False) == ["r0", "r1", "r2"]


def test_decode_pressure_preempts_and_recomputes():
    model = EngineModel(TINY, kv_tokens=1200)
    model.submit(GenRequest("old", list(range(500)), 300, 0.0, priority=1), 0.0)
    model.submit(GenRequest("new", list(range(1000, 1500)), 300, 1.0), 1.0)
    log, _ = run(model)
    preempted = [e for _, e in log if isinstance(e, Preempted)]
    assert preempted and preempted[0].rid == "new"
    done = finished(log)
    assert done["old"].completion_tokens == done["new"].completion_tokens == 300
    stats = model.stats()
    assert stats.preemptions_total == len(preempted)
    assert stats.recomputed_tokens_total == sum(p.recomputed_tokens for p in preempted) > 0


def test_abort_frees_everything():
    model = EngineModel(TINY, max_running=1)
    model.submit(GenRequest("run", list(range(800)), 50, 0.0), 0.0)
    model.submit(GenRequest("wait", list(range(900, 1700)), 50, 0.0), 0.0)
    model.step(0.0)
    assert model.abort("run", 0.1) and model.abort("wait", 0.1)
    assert not model.abort("wait", 0.1)
    assert model.step(0.2) is None
    stats = model.stats()
    assert (stats.running, stats.waiting, stats.kv_used_tokens, stats.aborted_total) == (0, 0, 0, 2)


def test_holds_survive_pressure_and_expire():
    model = EngineModel(TINY, kv_tokens=3000)
    pinned = list(range(1000))
    model.submit(GenRequest("a", pinned, 1, 0.0, hold_key="prog", hold_ttl_s=100.0), 0.0)
    _, now = run(model)
    assert model.stats().kv_held_tokens == 1000 and model.next_deadline() is not None
    for i in range(3):  # enough new prompts to evict anything unpinned
        model.submit(GenRequest(f"x{i}", [10_000 * (i + 1) + j for j in range(1500)], 1, now), now)
        _, now = run(model, now)
    assert model.cache.match(pinned)[0] == 1000
    assert model.step(200.0) is None  # expiry happens on the next step
    assert model.stats().kv_held_tokens == 0
    assert model.hold("manual", pinned, until=300.0) == 1000
    assert model.release("manual") and not model.release("manual")


def test_flush_refused_while_busy_and_too_long_rejected():
    model = EngineModel(TINY)
    model.submit(GenRequest("a", [1, 2, 3], 3, 0.0), 0.0)
    assert not model.flush()
    run(model)
    assert model.flush() and model.stats().kv_cached_tokens == 0
    with pytest.raises(RequestTooLongError):
        model.submit(GenRequest("big", [1] * 24_000, 1, 0.0), 0.0)
    with pytest.raises(ValueError):
        model.submit(GenRequest("empty", [], 1, 0.0), 0.0)


requests = st.lists(
    st.tuples(
        st.integers(0, 3),  # shared prefix family
        st.integers(1, 900),  # prompt length
        st.integers(0, 120),  # max new tokens
        st.integers(0, 2),  # priority
        st.floats(0, 5),  # arrival
        st.booleans(),  # hold on finish
        st.integers(0, 30),  # abort after this many steps (30 = never)
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(requests, st.integers(1500, 4000), st.booleans())
def test_random_workloads_never_exceed_capacity(reqs, kv_tokens, prio):
    model = EngineModel(TINY, kv_tokens=kv_tokens, max_running=8, priority_scheduling=prio)
    reqs = sorted(reqs, key=lambda r: r[4])
    expected, aborts, done = {}, {}, {}
    now, i, steps = 0.0, 0, 0
    while i < len(reqs) or model.stats().running or model.stats().waiting:
        while i < len(reqs) and reqs[i][4] <= now:
            fam, n, new, p, arr, hold, abort_at = reqs[i]
            tokens = [fam * 100_000 + j for j in range(n)]
            model.submit(
                GenRequest(
                    f"r{i}", tokens, new, arr, p, hold_key=f"h{i}" if hold else None, hold_ttl_s=1.0
                ),
                now,
            )
            expected[f"r{i}"] = new
            if abort_at < 30:
                aborts[f"r{i}"] = steps + abort_at
            i += 1
        for rid, at in list(aborts.items()):
            if at <= steps:
                model.abort(rid, now)
                aborts.pop(rid)
                expected.pop(rid)
        step = model.step(now)
        steps += 1
        assert model.used_tokens <= model.capacity
        assert model.cache.locked_tokens <= model.cache.total_tokens
        if step is None:
            now = reqs[i][4] if i < len(reqs) else (model.next_deadline() or now + 1)
            continue
        now += step.duration_s
        done.update({e.rid: e for e in step.events if isinstance(e, Finished)})
        assert steps < 20_000
    for rid, new in expected.items():
        assert done[rid].completion_tokens == new
    stats = model.stats()
    assert stats.kv_used_tokens == stats.kv_cached_tokens  # nothing owned by requests
