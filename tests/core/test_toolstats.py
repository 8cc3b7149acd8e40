"""Pause reservoirs and cold start, η for fixed and geometric lengths, the T window."""

import numpy as np
import pytest

from kvbaton.middleware.core.toolstats import (
    ProgramLengths,
    QueueingDelay,
    Reservoir,
    SampleSource,
    ToolStats,
)


def fed(counts: dict[str, int], value: float = 1.0, **kw: int) -> ToolStats:
    stats = ToolStats(**kw)
    for tool, n in counts.items():
        for _ in range(n):
            stats.observe(tool, value)
    return stats


@pytest.mark.parametrize(
    ("counts", "ask", "source"),
    [
        ({}, "ls", SampleSource.DEFAULT),
        ({"ls": 100}, "ls", SampleSource.DEFAULT),  # |S| = K is not enough
        ({"ls": 101}, "ls", SampleSource.TOOL),
        ({"ls": 101}, "grep", SampleSource.GLOBAL),  # unseen tool, enough overall
        ({"ls": 60, "grep": 41}, "ls", SampleSource.GLOBAL),
        ({"ls": 50, "grep": 50}, "ls", SampleSource.DEFAULT),
        ({"ls": 101}, None, SampleSource.GLOBAL),  # the call named no tool
    ],
)
def test_cold_start_falls_back_at_k(counts: dict[str, int], ask: str | None, source) -> None:
    values, got = fed(counts).samples(ask)
    assert got is source
    assert (values is None) == (source is SampleSource.DEFAULT)


def test_samples_come_sorted_and_read_only() -> None:
    stats = ToolStats(min_samples=2)
    for x in [3.0, 1.0, 2.0]:
        stats.observe("ls", x)
    values, source = stats.samples("ls")
    assert source is SampleSource.TOOL and values is not None
    assert values.tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError):
        values[0] = 9.0


def test_parallel_pause_counts_once_globally_and_once_per_tool() -> None:
    stats = ToolStats()
    stats.observe_pause(("ls", "grep", "ls"), 4.0)
    stats.observe_pause((), 2.0)  # a pause with no named tool only feeds the global sample
    assert (stats.count(), stats.count("ls"), stats.count("grep")) == (2, 1, 1)
    assert stats.mean("ls") == 4.0 and stats.mean("cat") is None


def test_durations_are_clamped_and_checked() -> None:
    stats = ToolStats()
    stats.observe("ls", -0.01)  # drivers' clocks can disagree by a hair
    assert stats.mean("ls") == 0.0
    with pytest.raises(ValueError):
        stats.observe("ls", float("nan"))


def test_memory_stays_bounded_over_many_observations() -> None:
    stats = ToolStats(capacity_per_tool=50, max_tools=100)
    rng = np.random.default_rng(1)
    for i, x in enumerate(rng.exponential(1.0, 100_000)):
        stats.observe(f"tool{i % 5000}", float(x))
    assert len(stats) == 100
    assert stats.count() == 100_000
    assert len(stats._global) == 50
    assert all(len(r) <= 50 for r in stats._tools.values())
    assert stats.mean("tool0") is None  # forgotten: least recently observed


def test_reservoir_is_uniform_and_deterministic() -> None:
    import random

    a, b = Reservoir(1000, random.Random(7)), Reservoir(1000, random.Random(7))
    for i in range(100_000):
        a.add(float(i))
        b.add(float(i))
    assert len(a) == 1000 and a.count == 100_000
    assert np.array_equal(a.sorted(), b.sorted())
    assert abs(a.sorted().mean() - 50_000) < 2_500  # a uniform sample, not the prefix


@pytest.mark.parametrize(
    ("lengths", "low", "high"),
    [
        ([10] * 200, 1.0, 1.0),  # fixed N: N-k is a function of k
        ([1] * 50, 1.0, 1.0),  # degenerate, still fixed
        ([5, 10] * 5, 1.0, 1.0),  # too few programs: the default
    ],
)
def test_eta_fixed_lengths(lengths: list[int], low: float, high: float) -> None:
    pl = ProgramLengths()
    for n in lengths:
        pl.observe_program(n)
    assert low <= pl.eta() <= high


def test_eta_geometric_lengths_is_near_zero() -> None:
    pl = ProgramLengths(capacity=5000)
    for n in np.random.default_rng(3).geometric(0.1, 5000):
        pl.observe_program(int(n))
    assert abs(pl.eta()) < 0.05


def test_eta_matches_brute_force_correlation() -> None:
    lengths = np.random.default_rng(4).integers(1, 15, 60)
    pl = ProgramLengths()
    for n in lengths:
        pl.observe_program(int(n))
    pairs = np.array([(k, n - k) for n in lengths for k in range(1, n + 1)], dtype=float)
    expected = -np.corrcoef(pairs[:, 0], pairs[:, 1])[0, 1]
    assert pl.eta() == pytest.approx(expected, abs=1e-9)


def test_program_lengths_are_bounded() -> None:
    pl = ProgramLengths(capacity=100)
    for i in range(100_000):
        pl.observe_program(1 + i % 30)
    assert len(pl) == 100 and pl.count == 100_000
    with pytest.raises(ValueError):
        pl.observe_program(0)


def test_queueing_delay_starts_at_zero_and_slides() -> None:
    t = QueueingDelay(window=200)
    assert t.mean() == 0.0
    for i in range(300):
        t.observe(float(i))
    assert len(t) == 200
    assert t.mean() == pytest.approx(sum(range(100, 300)) / 200)
