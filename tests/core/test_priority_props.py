"""Scheduler-level properties of the priority strategies, on randomly generated runs.

A small discrete-event driver plays programs (steps of parallel calls with fixed engine
times, think time between steps) through the real :class:`Scheduler` with explicit
``now``, ticking it at its ``next_deadline``, and records when each call was queued and
dispatched.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvbaton.middleware.core.actions import Action, Dispatch
from kvbaton.middleware.core.fairness import FairShareConfig
from kvbaton.middleware.core.mlfq import MlfqConfig, MlfqPriority
from kvbaton.middleware.core.policies import Policy, make_policy
from kvbaton.middleware.core.priority import PriorityStrategy
from kvbaton.middleware.core.scheduler import Scheduler, SchedulerConfig
from kvbaton.middleware.core.srpt import FairSrpt, SrptConfig
from kvbaton.middleware.core.types import CallOutcome, CallSpec

# -- the driver -----------------------------------------------------------------------------


@dataclass
class Script:
    program_id: str
    arrival: float
    steps: list[list[float]]  # engine seconds of each step's parallel calls
    think_s: float = 0.0
    tenant: str = "default"
    deadline_s: float | None = None


@dataclass
class Rec:
    call_id: str
    program_id: str
    tenant: str
    queued_at: float
    duration: float
    dispatched_at: float | None = None
    rank: int | None = None


@dataclass
class Run:
    records: dict[str, Rec] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # dispatch order
    queued_at_dispatch: list[set[str]] = field(default_factory=list)  # tenants waiting then


_SUBMIT, _FINISH, _TICK = range(3)


def drive(strategy: PriorityStrategy, scripts: list[Script], slots: int = 1) -> Run:
    policy = Policy("test", strategy, admission=True, description="")
    sched = Scheduler(policy, SchedulerConfig(max_inflight=slots, idle_ttl_s=1e9))
    run = Run()
    events: list[tuple[float, int, int, object]] = []
    seq = 0
    left: dict[tuple[str, int], int] = {}
    by_id = {s.program_id: s for s in scripts}

    def push(t: float, kind: int, payload: object) -> None:
        nonlocal seq
        heapq.heappush(events, (t, seq, kind, payload))
        seq += 1

    def submit_step(script: Script, i: int, now: float) -> None:
        left[(script.program_id, i)] = len(script.steps[i])
        for j, duration in enumerate(script.steps[i]):
            push(now, _SUBMIT, (script, i, j, duration))

    waiting: Counter[str] = Counter()

    def apply(actions: list[Action], now: float) -> None:
        for a in actions:
            if isinstance(a, Dispatch):
                rec = run.records[a.call_id]
                rec.dispatched_at, rec.rank = now, a.rank
                run.order.append(a.call_id)
                run.queued_at_dispatch.append({t for t, n in waiting.items() if n})
                waiting[rec.tenant] -= 1
                push(now + rec.duration, _FINISH, a.call_id)

    for script in scripts:
        push(script.arrival, _SUBMIT, (script, 0, -1, 0.0))
    tick_at: float | None = None
    while events:
        now, _, kind, payload = heapq.heappop(events)
        if kind == _TICK:
            if payload != tick_at:
                continue
            tick_at = None
            apply(sched.tick(now), now)
        elif kind == _SUBMIT:
            script, i, j, duration = payload  # type: ignore[misc]
            if j < 0:
                submit_step(script, i, now)
                continue
            call_id = f"{script.program_id}/{i}/{j}"
            last = i == len(script.steps) - 1 and j == len(script.steps[i]) - 1
            spec = CallSpec(
                call_id,
                script.program_id,
                tenant=script.tenant,
                deadline_s=script.deadline_s,
                last_step=last,
            )
            rec = Rec(call_id, script.program_id, script.tenant, now, duration)
            run.records[call_id] = rec
            waiting[script.tenant] += 1
            apply(sched.submit(spec, now), now)
        else:
            call_id = str(payload)
            program_id, i = call_id.split("/")[0], int(call_id.split("/")[1])
            apply(sched.finish(call_id, CallOutcome(), now), now)
            left[(program_id, i)] -= 1
            script = by_id[program_id]
            if left[(program_id, i)] == 0 and i + 1 < len(script.steps):
                push(now + script.think_s, _SUBMIT, (script, i + 1, -1, 0.0))
        deadline = sched.next_deadline()
        if deadline is not None and (tick_at is None or deadline < tick_at):
            tick_at = max(deadline, now)
            push(tick_at, _TICK, tick_at)
    assert all(r.dispatched_at is not None for r in run.records.values())
    return run


@st.composite
def scripts(
    draw: st.DrawFn, *, tenants: int = 1, deadlines: bool = False, max_programs: int = 12
) -> list[Script]:
    out = []
    for p in range(draw(st.integers(1, max_programs))):
        steps = draw(
            st.lists(
                st.lists(st.sampled_from([0.1, 0.25, 0.5, 1.0, 2.0, 4.0]), min_size=1, max_size=3),
                min_size=1,
                max_size=5,
            )
        )
        out.append(
            Script(
                f"p{p}",
                draw(st.sampled_from([0.0, 0.5, 1.0, 3.0, 7.0, 15.0])),
                steps,
                think_s=draw(st.sampled_from([0.0, 0.5, 2.0])),
                tenant=f"t{draw(st.integers(0, tenants - 1))}",
                deadline_s=draw(st.sampled_from([None, 5.0, 30.0])) if deadlines else None,
            )
        )
    return out


# -- starvation ------------------------------------------------------------------------------


def overtaken_by_later(run: Run, horizon: dict[str, float], same_tenant: bool) -> list[str]:
    """Calls dispatched before some call c although queued after c's horizon."""
    bad = []
    pos = {cid: i for i, cid in enumerate(run.order)}
    for c in run.records.values():
        for d in run.order[: pos[c.call_id]]:
            rd = run.records[d]
            if same_tenant and rd.tenant != c.tenant:
                continue
            if rd.queued_at > horizon[c.call_id] + 1e-9:
                bad.append(f"{d} (queued {rd.queued_at}) before {c.call_id}")
    return bad


@settings(max_examples=60, deadline=None)
@given(scripts(tenants=2, deadlines=True), st.integers(1, 3))
def test_srpt_no_call_is_overtaken_by_calls_queued_after_its_bound(
    plays: list[Script], slots: int
) -> None:
    config = SrptConfig(aging=1.0, grace_s=1.0, max_remaining_s=5.0, min_samples=2)
    run = drive(FairSrpt(config), plays, slots)
    bound = config.max_remaining_s / config.aging + config.grace_s
    horizon = {cid: r.queued_at + bound for cid, r in run.records.items()}
    assert overtaken_by_later(run, horizon, same_tenant=True) == []


@settings(max_examples=60, deadline=None)
@given(scripts(), st.integers(1, 3), st.booleans())
def test_mlfq_no_call_is_overtaken_by_calls_queued_after_its_bound(
    plays: list[Script], slots: int, critical_path: bool
) -> None:
    config = MlfqConfig(levels=4, first_s=0.5, growth=2.0, beta=2.0, critical_path=critical_path)
    run = drive(MlfqPriority(config), plays, slots)
    # beta times the program's service by the time c is dispatched bounds c's promotion.
    service: dict[str, float] = {}
    horizon = {}
    for cid in run.order:
        r = run.records[cid]
        finished = [
            x
            for x in run.records.values()
            if x.program_id == r.program_id
            and x.dispatched_at is not None
            and x.dispatched_at + x.duration <= (r.dispatched_at or 0.0)
        ]
        service[cid] = sum(x.duration for x in finished)
        horizon[cid] = r.queued_at + config.beta * service[cid]
    assert overtaken_by_later(run, horizon, same_tenant=False) == []


def test_mlfq_promotes_a_waiting_program_after_beta_times_its_service() -> None:
    # The old program's call waits behind a stream of newcomers only until W >= beta*T.
    old = Script("old", 0.0, [[4.0], [1.0]])
    stream = [Script(f"n{i}", 4.0 + 0.5 * i, [[1.0]]) for i in range(40)]
    run = drive(MlfqPriority(MlfqConfig(beta=2.0)), [old, *stream])
    waited = run.records["old/1/0"].dispatched_at - run.records["old/1/0"].queued_at  # type: ignore[operator]
    assert 2.0 * 4.0 - 1.0 <= waited <= 2.0 * 4.0 + 1.0  # promoted at 8 s, next free slot


# -- tenants ----------------------------------------------------------------------------------


def backlog(tenants: dict[str, float], durations: list[float], calls: int) -> list[Script]:
    """Every tenant keeps ``calls`` one-call programs queued from time 0."""
    out = []
    for t in tenants:
        for i in range(calls):
            d = durations[(i + len(t)) % len(durations)]
            out.append(Script(f"{t}-{i}", 0.0, [[d]], tenant=t))
    return out


@settings(max_examples=25, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["a", "b", "c"]), st.sampled_from([1.0, 2.0, 3.0]), min_size=2),
    st.lists(st.sampled_from([0.2, 0.5, 1.0, 2.0]), min_size=1, max_size=4),
    st.integers(1, 4),
)
def test_tenants_share_engine_time_by_weight_under_backlog(
    weights: dict[str, float], durations: list[float], slots: int
) -> None:
    fair = FairShareConfig(weights=weights, initial_estimate_s=1.0)
    plays = backlog(weights, durations, calls=300)
    run = drive(FairSrpt(SrptConfig(fair=fair, grace_s=1e9)), plays, slots)
    # Look at the stretch where every tenant still has calls waiting.
    end = min(
        max(r.dispatched_at or 0.0 for r in run.records.values() if r.tenant == t) for t in weights
    )
    got = {t: 0.0 for t in weights}
    for r in run.records.values():
        if r.dispatched_at is not None and r.dispatched_at < end:
            got[r.tenant] += r.duration
    total, wsum = sum(got.values()), sum(weights.values())
    for t, w in weights.items():
        assert got[t] / total == pytest.approx(w / wsum, abs=0.05), (got, weights)


@settings(max_examples=25, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["a", "b", "c"]), st.sampled_from([1.0, 2.0, 4.0]), min_size=2),
    st.lists(st.sampled_from([0.05, 0.5, 3.0]), min_size=1, max_size=3),
    st.integers(1, 3),
)
def test_other_tenants_get_a_bounded_number_of_turns_between_two_of_a_tenant(
    weights: dict[str, float], durations: list[float], slots: int
) -> None:
    fair = FairShareConfig(weights=weights, min_charge_s=0.05, max_charge_s=3.0)
    strategy = FairSrpt(SrptConfig(fair=fair, grace_s=1e9))
    run = drive(strategy, backlog(weights, durations, 60), slots)
    rho = fair.max_charge_s / fair.min_charge_s
    for t, wt in weights.items():
        bound = sum(
            math.ceil(rho * ((2 * slots + 1) * wu / wt + 2 * slots)) + 1
            for u, wu in weights.items()
            if u != t
        )
        others = 0
        for cid, waiting in zip(run.order, run.queued_at_dispatch, strict=True):
            if run.records[cid].tenant == t:
                others = 0
            elif t in waiting:
                others += 1
                assert others <= bound


# -- deadlines --------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.1, 0.5, 1.0, 2.0]), st.integers(0, 6)), max_size=12))
def test_feasible_deadlines_are_all_met(jobs: list[tuple[float, int]]) -> None:
    # One slot, busy until t=1 with a blocker; then jobs with deadlines that EDF meets.
    order = sorted(range(len(jobs)), key=lambda i: jobs[i][1])
    deadline, t = {}, 1.0
    for i in order:
        t += jobs[i][0]
        deadline[i] = t + 0.5 * jobs[i][1]  # slack grows with the drawn integer
    plays = [Script("blocker", 0.0, [[1.0]])]
    plays += [
        Script(f"j{i}", 0.5, [[d]], deadline_s=deadline[i] - 0.5) for i, (d, _) in enumerate(jobs)
    ]
    run = drive(FairSrpt(SrptConfig(grace_s=1e9)), plays)
    for i in range(len(jobs)):
        rec = run.records[f"j{i}/0/0"]
        assert rec.dispatched_at is not None
        assert rec.dispatched_at + rec.duration <= deadline[i] + 1e-9


def test_deadline_calls_go_first_then_lose_their_place_once_infeasible() -> None:
    plays = [
        Script("busy", 0.0, [[10.0]]),
        Script("plain", 1.0, [[1.0]]),
        Script("late", 2.0, [[1.0]], deadline_s=5.0),  # infeasible once t > 7 (slot free at 10)
        Script("ok", 3.0, [[1.0]], deadline_s=20.0),
    ]
    run = drive(FairSrpt(SrptConfig(grace_s=1e9)), plays)
    assert run.order == ["busy/0/0", "ok/0/0", "plain/0/0", "late/0/0"]


# -- determinism --------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(scripts(tenants=3, deadlines=True), st.sampled_from(["autellix", "kvbaton", "program-fcfs"]))
def test_runs_are_deterministic(plays: list[Script], name: str) -> None:
    first = drive(make_policy(name).priority, plays, slots=2)
    again = drive(make_policy(name).priority, plays, slots=2)
    assert first.order == again.order
    assert [r.rank for r in first.records.values()] == [r.rank for r in again.records.values()]


@pytest.mark.parametrize("name", ["autellix", "kvbaton", "program-fcfs", "baseline"])
def test_ties_go_in_submission_order(name: str) -> None:
    plays = [Script("blocker", 0.0, [[1.0]])] + [Script(f"p{i}", 0.5, [[1.0]]) for i in range(6)]
    run = drive(make_policy(name).priority, plays)
    assert run.order == ["blocker/0/0"] + [f"p{i}/0/0" for i in range(6)]


@pytest.mark.parametrize("name", ["autellix", "kvbaton"])
def test_engine_ranks_stay_bounded(name: str) -> None:
    plays = [Script(f"p{i}", 2.0 * i, [[1.0]] * 3, think_s=1.0) for i in range(200)]
    run = drive(make_policy(name).priority, plays, slots=4)
    ranks = [r.rank for r in run.records.values()]
    assert all(r is not None and 0 <= r <= 1601 for r in ranks)
