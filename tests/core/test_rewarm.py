"""Resume prefetch with explicit ``now``: when a paused program's context is re-warmed."""

from kvbaton.middleware.core.actions import Warm
from kvbaton.middleware.core.rewarm import Rewarmer
from kvbaton.middleware.core.toolstats import ToolStats


def warmer(pauses: list[float]) -> Rewarmer:
    tools = ToolStats(min_samples=2)
    for p in pauses:
        tools.observe("tests", p)
    return Rewarmer(tools, reload_s=lambda tokens: tokens / 1000)  # 1 s per 1k tokens


def test_warms_a_reload_time_before_the_conditional_median_return() -> None:
    w = warmer([1.0, 2.0, 4.0, 8.0, 16.0])
    # Paused at 0 and 3 s in: pauses longer than 3 s are 4, 8, 16: median 8 s; reload 2 s.
    w.pin_lost("p", ("tests",), paused_at=0.0, tokens=2000, now=3.0)
    assert w.next_deadline() == 6.0
    assert w.tick(5.9) == []
    assert w.tick(6.0) == [Warm("resume", "p", 2000)]
    assert w.next_deadline() is None


def test_a_program_back_first_is_not_warmed_and_unknown_pauses_are_not_guessed() -> None:
    w = warmer([1.0, 2.0, 4.0])
    w.pin_lost("p", ("tests",), paused_at=0.0, tokens=500, now=0.5)
    w.returned("p")
    assert w.tick(100.0) == []
    w.pin_lost("q", ("tests",), paused_at=0.0, tokens=500, now=5.0)  # longer than any seen
    w.pin_lost("r", ("other",), paused_at=0.0, tokens=500, now=0.5)  # cold tool: falls back
    assert [x.program_id for x in w.tick(100.0)] == ["r"]


def test_cold_start_plans_nothing() -> None:
    w = warmer([])
    w.pin_lost("p", ("tests",), paused_at=0.0, tokens=500, now=0.0)
    assert len(w) == 0 and w.next_deadline() is None
