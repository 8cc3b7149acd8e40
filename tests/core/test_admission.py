"""Program-level admission with explicit ``now``: the pool, parking, best fit, shedding."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvbaton.middleware.core.actions import Dispatch
from kvbaton.middleware.core.admission import Admission, AdmissionConfig
from kvbaton.middleware.core.policies import make_policy
from kvbaton.middleware.core.scheduler import Scheduler, SchedulerConfig
from kvbaton.middleware.core.types import CallOutcome, CallSpec, ToolCall


def dispatched(actions: list) -> list[str]:
    return [a.call_id for a in actions if isinstance(a, Dispatch)]


def sched(policy: str, kv: int = 1000, **kw: float) -> Scheduler:
    # admit_share 1: the pool is the engine's KV, so token figures below read directly.
    # min_batch 1: only an idle engine takes a parked program over the pool (the last
    # tests vary it).
    kw.setdefault("min_batch", 1)
    config = SchedulerConfig(max_inflight=64, kv_tokens=kv, admit_share=1.0, **kw)  # type: ignore[arg-type]
    return Scheduler(make_policy(policy), config)


# -- the pool on its own ----------------------------------------------------------------


def test_pool_counts_headroom_and_frees_on_leave() -> None:
    a = Admission(AdmissionConfig(1000, headroom_tokens=100))
    assert a.fits(900) and a.fits(5000)  # an empty pool takes anything, else it would stall
    a.activate("p", 400)
    assert a.used_tokens == 500
    assert a.fits(400) and not a.fits(401)
    a.grow("p", 300)  # contexts only grow while active
    assert a.used_tokens == 500
    a.grow("p", 450)
    assert a.used_tokens == 550
    assert a.leave("p") and a.used_tokens == 0 and not a.leave("p")


def test_best_fit_passes_a_large_head_until_it_has_waited_long_enough() -> None:
    a = Admission(AdmissionConfig(1000, headroom_tokens=0, max_bypass_s=10.0))
    a.activate("running", 600)
    a.park("big", (0.0,), 500, now=0.0)
    a.park("small", (1.0,), 300, now=0.0)
    assert a.admit(now=1.0) == ["small"]  # big does not fit; small behind it does
    a.leave("small")
    a.park("small2", (2.0,), 300, now=1.0)
    assert a.admit(now=11.0) == []  # big has waited 11 s: the room is kept for it
    a.leave("running")
    assert a.admit(now=12.0) == ["big", "small2"]


def test_a_failed_pass_is_not_repeated_until_room_grows_or_a_program_that_fits_parks() -> None:
    a = Admission(AdmissionConfig(1000, headroom_tokens=0))
    a.activate("running", 700)
    a.park("big", (0.0,), 500, now=0.0)
    assert a.admit(now=0.0) == []
    scans = 0
    head = a.parked.head

    def counting(n: int) -> list:  # type: ignore[type-arg]
        nonlocal scans
        scans += 1
        return head(n)

    a.parked.head = counting  # type: ignore[method-assign]
    a.park("big2", (1.0,), 400, now=0.0)  # does not fit the 300 left either
    assert a.admit(now=1.0) == [] and scans == 0
    a.park("small", (2.0,), 300, now=0.0)  # fits: the next pass looks again
    # One scan admits it, the next finds nothing more at 0 tokens left ...
    assert a.admit(now=2.0) == ["small"] and scans == 2
    assert a.admit(now=3.0) == [] and scans == 2  # ... so this pass is skipped
    a.leave("running")
    assert a.admit(now=4.0) == ["big"]  # 700 left: big fits, then big2 does not


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 400), st.booleans()), min_size=1, max_size=40))
def test_admitted_footprints_never_exceed_the_pool(ops: list[tuple[int, bool]]) -> None:
    a = Admission(AdmissionConfig(1000, headroom_tokens=50))
    for i, (tokens, leave) in enumerate(ops):
        a.park(f"p{i}", (float(i),), tokens, now=float(i))
        a.admit(now=float(i))
        if leave and i:
            a.leave(f"p{i - 1}")
        assert a.active_programs <= 1 or a.used_tokens <= 1000


# -- the scheduler with it ------------------------------------------------------------


def keep_busy(s: Scheduler) -> None:
    """A small call that stays at the engine: an idle engine would take a parked program
    over the pool (see the last tests), so these tests keep it busy."""
    assert dispatched(s.submit(CallSpec("z1", "Z", prompt_tokens=10), 0.0)) == ["z1"]


def test_kvbaton_parks_a_program_that_does_not_fit_until_room_frees() -> None:
    s = sched("kvbaton")
    keep_busy(s)
    assert dispatched(s.submit(CallSpec("a1", "A", prompt_tokens=700), 0.0)) == ["a1"]
    # B's context would not fit beside A's: it waits in the proxy, not at the engine.
    assert dispatched(s.submit(CallSpec("b1", "B", prompt_tokens=500), 1.0)) == []
    assert s.admission is not None and "B" in s.admission.parked
    done = CallOutcome(prompt_tokens=700, completion_tokens=10)
    assert dispatched(s.finish("a1", done, 2.0)) == []  # A may come back: it keeps its room
    s.submit(CallSpec("a2", "A", prompt_tokens=720, last_step=True), 3.0)
    assert dispatched(s.finish("a2", CallOutcome(prompt_tokens=720), 4.0)) == ["b1"]


def test_a_paused_program_keeps_its_room_until_its_pin_ends() -> None:
    # Reloading 6000 tokens costs 60 s here: the cold-start TTL (ln 60 s) pins the pause.
    config = SchedulerConfig(kv_tokens=20_000, admit_share=1.0, min_batch=1)
    s = Scheduler(make_policy("kvbaton"), config, reload_s=lambda tokens: tokens / 100)
    keep_busy(s)
    s.submit(CallSpec("a1", "A", prompt_tokens=6000), 0.0)
    tool = CallOutcome(prompt_tokens=6000, completion_tokens=10, tool_calls=(ToolCall("t", "x"),))
    s.finish("a1", tool, 1.0)
    pin = s.keeper.pins.get("A")
    assert pin is not None
    assert dispatched(s.submit(CallSpec("b1", "B", prompt_tokens=14_000), 1.5)) == []
    assert s.admission is not None and s.admission.is_active("A")
    assert dispatched(s.tick(pin.expires_at - 0.001)) == []
    assert dispatched(s.tick(pin.expires_at)) == ["b1"]  # the pin ran out: B takes the room
    assert not s.admission.is_active("A")


def test_idle_program_gives_way_after_the_grace() -> None:
    s = sched("kvbaton", idle_grace_s=2.0)
    keep_busy(s)
    s.submit(CallSpec("a1", "A", prompt_tokens=700), 0.0)
    s.finish("a1", CallOutcome(prompt_tokens=700, completion_tokens=10), 1.0)  # no tool: idle
    assert dispatched(s.submit(CallSpec("b1", "B", prompt_tokens=500), 1.5)) == []
    assert dispatched(s.submit(CallSpec("c1", "C", prompt_tokens=150), 1.9)) == []  # in grace
    assert dispatched(s.tick(3.5)) == ["b1", "c1"]
    assert s.admission is not None and not s.admission.is_active("A")
    assert s.admission.is_active("B")


@pytest.mark.parametrize("policy", ["kvbaton", "thunderagent"])
def test_a_program_that_says_it_ended_gives_its_room_at_once(policy: str) -> None:
    s = sched(policy, idle_grace_s=30.0)
    keep_busy(s)
    s.submit(CallSpec("a1", "A", prompt_tokens=700), 0.0)
    s.finish("a1", CallOutcome(prompt_tokens=700, completion_tokens=10), 1.0)
    assert dispatched(s.submit(CallSpec("b1", "B", prompt_tokens=500), 1.5)) == []
    assert dispatched(s.end_program("A", 2.0)) == ["b1"]  # not after the 30 s grace
    assert s.admission is not None and not s.admission.is_active("A")


def test_cancelling_a_parked_call_unparks_its_program() -> None:
    s = sched("kvbaton")
    s.submit(CallSpec("a1", "A", prompt_tokens=900), 0.0)
    s.submit(CallSpec("b1", "B", prompt_tokens=500), 1.0)
    s.cancel("b1", 2.0)
    assert s.admission is not None and "B" not in s.admission.parked
    assert s.stats().queued == 0


def test_thunderagent_sheds_tool_running_programs_smallest_first_when_over() -> None:
    s = sched("thunderagent", kv=1800)
    tool = (ToolCall("t", "x"),)
    for pid, tokens in (("A", 400), ("B", 300), ("C", 500)):
        s.submit(CallSpec(f"{pid}1", pid, prompt_tokens=tokens), 0.0)
        s.finish(f"{pid}1", CallOutcome(prompt_tokens=tokens, tool_calls=tool), 1.0)
    # C comes back much larger: over the pool, the smallest idle program (B) leaves.
    s.submit(CallSpec("C2", "C", prompt_tokens=850), 2.0)
    assert s.admission is not None
    s.finish("C2", CallOutcome(prompt_tokens=850, tool_calls=tool), 3.0)
    assert not s.admission.is_active("B")
    assert s.admission.is_active("A") and s.admission.is_active("C")


@pytest.mark.parametrize("policy", ["baseline", "continuum", "autellix", "kvflow"])
def test_policies_without_program_admission_never_park(policy: str) -> None:
    s = sched(policy, kv=100)
    assert s.admission is None
    assert dispatched(s.submit(CallSpec("a1", "A", prompt_tokens=5000), 0.0)) == ["a1"]


def test_guard_pins_turns_admission_on_for_retaining_policies_only() -> None:
    assert sched("continuum", guard_pins=True).admission is not None
    assert sched("program-fcfs", guard_pins=True).admission is None


def test_an_unpinned_tool_pause_gives_way_after_its_grace_and_the_core_wakes_for_it() -> None:
    s = sched("kvbaton", tool_grace_s=30.0)
    keep_busy(s)
    s.submit(CallSpec("a1", "A", prompt_tokens=700), 0.0)
    tool = CallOutcome(prompt_tokens=700, completion_tokens=10, tool_calls=(ToolCall("t", "x"),))
    s.finish("a1", tool, 1.0)
    assert "A" not in s.keeper.pins  # reloading 710 tokens is too cheap to pin for
    assert dispatched(s.submit(CallSpec("b1", "B", prompt_tokens=500), 2.0)) == []
    assert s.next_deadline() == 31.0  # A's grace ends: the driver ticks then
    assert dispatched(s.tick(30.9)) == []
    assert dispatched(s.tick(31.0)) == ["b1"]


def test_an_idle_engine_takes_the_first_parked_program_over_the_pool() -> None:
    s = sched("kvbaton")
    s.submit(CallSpec("a1", "A", prompt_tokens=700), 0.0)
    assert dispatched(s.submit(CallSpec("b1", "B", prompt_tokens=500), 1.0)) == []
    # A pauses (it may come back and keeps its room), and nothing else runs: B goes anyway.
    tool = CallOutcome(prompt_tokens=700, completion_tokens=10, tool_calls=(ToolCall("t", "x"),))
    assert dispatched(s.finish("a1", tool, 2.0)) == ["b1"]
    assert s.admission is not None and s.admission.is_active("A")
    assert s.admission.used_tokens > 1000  # over the pool, by the engine's idleness


def test_an_underused_engine_takes_parked_programs_over_the_pool_one_at_a_time() -> None:
    s = sched("kvbaton", min_batch=3)
    s.submit(CallSpec("a1", "A", prompt_tokens=900), 0.0)
    # One call at the engine, fewer than 3: B is admitted over the pool, and then C, as
    # the engine still has fewer than 3 calls; D finds 3 there and waits.
    assert dispatched(s.submit(CallSpec("b1", "B", prompt_tokens=800), 1.0)) == ["b1"]
    assert dispatched(s.submit(CallSpec("c1", "C", prompt_tokens=800), 1.0)) == ["c1"]
    assert dispatched(s.submit(CallSpec("d1", "D", prompt_tokens=800), 1.0)) == []
    assert s.admission is not None and "D" in s.admission.parked
    with pytest.raises(ValueError):
        SchedulerConfig(min_batch=0)
