"""Continuum's TTL: hand-computed optima, the Exp(1) default, strategies and registry."""

import math
import time

import numpy as np
import pytest

from kvbaton.middleware.core.retention import (
    RETENTIONS,
    NoRetention,
    RetentionContext,
    RetentionDeps,
    StaticTtl,
    ToolTtl,
    make_retention,
    reload_from_profile,
    ttl_default,
    ttl_for,
)
from kvbaton.middleware.core.toolstats import ToolStats
from kvbaton.middleware.engine.costs import DEFAULT_PROFILE, load_profile


@pytest.mark.parametrize(
    ("samples", "benefit", "expected"),
    [
        # F·B - τ at τ = 1, 2, 3, 10 with B = 5: 0.25, 0.5, 0.75, -5 (and 0 at τ = 0)
        ([1, 2, 3, 10], 5.0, 3.0),
        ([10, 3, 1, 2], 5.0, 3.0),  # order does not matter
        ([1, 2, 3, 10], 20.0, 3.0),  # 4, 8, 12, 10
        ([1, 2, 3, 10], 30.0, 10.0),  # 6.5, 13, 19.5, 20
        ([6, 7, 8], 5.0, 0.0),  # every pause outlasts the benefit
        ([1, 3], 4.0, 1.0),  # 1 vs 1: a tie goes to the shorter pin
        ([2, 2, 2, 10], 4.0, 2.0),  # duplicates: F(2) = 3/4, gain 1
        ([0, 0, 5, 5], 4.0, 0.0),  # instant returns: τ = 0 already wins
        ([], 5.0, 0.0),
        ([1, 2], 0.0, 0.0),
    ],
)
def test_ttl_matches_hand_computed_optimum(samples, benefit: float, expected: float) -> None:
    # benefit = T·η + reload; split it so that every term is exercised
    assert ttl_for(samples, t=benefit / 2, eta=1.0, reload_s=benefit / 2) == expected
    assert ttl_for(samples, t=0.0, eta=0.0, reload_s=benefit) == expected


def test_negative_eta_can_rule_out_pinning() -> None:
    assert ttl_for([0.5, 1.0], t=10.0, eta=-0.5, reload_s=2.0) == 0.0  # B = -3


@pytest.mark.parametrize(("mean", "benefit"), [(1.0, 10.0), (0.5, 3.0), (2.0, 30.0)])
def test_exponential_pauses_give_mu_ln_b_over_mu(mean: float, benefit: float) -> None:
    samples = np.random.default_rng(5).exponential(mean, 100_000)
    got = ttl_for(samples, t=0.0, eta=1.0, reload_s=benefit)
    expected = mean * math.log(benefit / mean)
    assert got == pytest.approx(expected, rel=0.1)

    def gain(tau: float) -> float:  # the true objective is flat at the top
        return (1 - math.exp(-tau / mean)) * benefit - tau

    assert gain(got) == pytest.approx(gain(expected), abs=0.01 * benefit)


@pytest.mark.parametrize(
    ("t", "reload_s", "expected"),
    [
        (0.0, math.e**2, 2.0),
        (math.e - 1.0, 1.0, 1.0),
        (0.0, 1.0, 0.0),  # B = 1: g'(0) = 0, no pin
        (0.3, 0.2, 0.0),
    ],
)
def test_default_rule_is_ln_b(t: float, reload_s: float, expected: float) -> None:
    assert ttl_default(t=t, reload_s=reload_s) == pytest.approx(expected)
    # the default ignores η: it assumes η = 1
    assert ttl_for(None, t=t, eta=0.0, reload_s=reload_s) == pytest.approx(expected)


def test_default_rule_agrees_with_exp1_samples() -> None:
    samples = np.random.default_rng(6).exponential(1.0, 200_000)
    got = ttl_for(samples, t=2.0, eta=1.0, reload_s=3.0)
    assert got == pytest.approx(ttl_default(t=2.0, reload_s=3.0), rel=0.1)


def test_thousand_samples_take_microseconds() -> None:
    samples = np.random.default_rng(7).exponential(1.0, 1000)
    start = time.perf_counter()
    for _ in range(1000):
        ttl_for(samples, t=1.0, eta=1.0, reload_s=3.0)
    assert (time.perf_counter() - start) / 1000 < 1e-3  # ~10 µs here; loose for CI


def deps(pauses: dict[str, list[float]], reload_s: float = 5.0) -> RetentionDeps:
    stats = ToolStats(min_samples=2)
    for tool, values in pauses.items():
        for x in values:
            stats.observe(tool, x)
    return RetentionDeps(lambda tokens: reload_s, tools=stats)


def ctx(*tools: str, last: bool = False, reload_s: float | None = None) -> RetentionContext:
    return RetentionContext(tools, 1000, now=0.0, last_step=last, reload_s=reload_s)


def test_tool_ttl_uses_each_tools_distribution_and_the_max() -> None:
    strategy = ToolTtl(deps({"ls": [0.5, 0.5, 0.5], "pytest": [3.0, 3.0, 3.0]}))
    assert strategy.ttl(ctx("ls")) == 0.5
    assert strategy.ttl(ctx("pytest")) == 3.0
    assert strategy.ttl(ctx("ls", "pytest")) == 3.0  # parallel: cover the slowest
    assert strategy.ttl(ctx("pytest", last=True)) == 0.0
    assert strategy.ttl(ctx("pytest", reload_s=1.0)) == 0.0  # B = 1 < 3


def test_tool_ttl_without_tools_uses_all_pauses_then_default() -> None:
    assert ToolTtl(deps({"ls": [1.0, 1.0, 1.0]})).ttl(ctx()) == 1.0
    cold = ToolTtl(RetentionDeps(lambda tokens: math.e**2))
    assert cold.ttl(ctx("ls")) == pytest.approx(2.0)  # T starts at 0: ln(reload)


def test_tool_ttl_reads_t_and_eta() -> None:
    d = deps({"ls": [4.0, 4.0, 4.0]}, reload_s=1.0)
    assert ToolTtl(d).ttl(ctx("ls")) == 0.0  # B = 1
    for _ in range(10):
        d.delay.observe(5.0)
    assert ToolTtl(d).ttl(ctx("ls")) == 4.0  # B = 5·1 + 1 with η = 1 by default
    for n in np.random.default_rng(8).geometric(0.1, 1000):
        d.lengths.observe_program(int(n))
    assert abs(d.lengths.eta()) < 0.1
    assert ToolTtl(d).ttl(ctx("ls")) == 0.0  # memoryless lengths: T no longer counts


@pytest.mark.parametrize(
    ("tools", "expected"),
    [
        (("ls",), 2.0),  # mean 1.5 s ≤ 2 s
        (("pytest",), 0.0),  # mean 5 s
        (("new",), 2.0),  # unseen
        ((), 2.0),  # no tool named
        (("ls", "pytest"), 0.0),
    ],
)
def test_static_ttl_follows_the_preview_rule(tools: tuple[str, ...], expected: float) -> None:
    strategy = StaticTtl(deps({"ls": [1.0, 2.0], "pytest": [5.0]}))
    assert strategy.ttl(ctx(*tools)) == expected
    assert strategy.ttl(ctx(*tools, last=True)) == 0.0


def test_registry_and_profile_reload() -> None:
    profile = load_profile(DEFAULT_PROFILE)
    d = RetentionDeps(reload_from_profile(profile))
    assert d.reload_for(ctx()) == profile.prefill_s(1000, 0) > 0
    assert sorted(RETENTIONS) == ["none", "static-ttl", "tool-ttl"]
    assert isinstance(make_retention("none", d), NoRetention)
    assert make_retention("none", d).ttl(ctx("ls")) == 0.0
    assert isinstance(make_retention("tool-ttl", d), ToolTtl)
    assert isinstance(make_retention("static-ttl", d), StaticTtl)
    with pytest.raises(ValueError, match="known: none"):
        make_retention("lru", d)
