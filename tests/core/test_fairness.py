"""TenantShares: virtual time, weights, no credit for idling, charge settlement."""

from __future__ import annotations

import pytest

from kvbaton.middleware.core.fairness import FairShareConfig, TenantShares


def test_nothing_backlogged_picks_nobody() -> None:
    shares = TenantShares()
    assert shares.pick() is None
    shares.set_backlogged("a", True)
    shares.set_backlogged("a", False)
    assert shares.pick() is None


def test_least_virtual_time_first_ties_by_first_sight() -> None:
    shares = TenantShares(FairShareConfig(initial_estimate_s=1.0))
    for t in ("b", "a"):
        shares.set_backlogged(t, True)
    assert shares.pick() == "b"
    shares.started("b1", "b")  # b is charged its estimate: a goes next
    assert shares.pick() == "a"
    shares.started("a1", "a")
    assert shares.pick() == "b"


def test_weights_scale_virtual_time() -> None:
    shares = TenantShares(FairShareConfig(weights={"big": 2.0}))
    for t in ("big", "small"):
        shares.set_backlogged(t, True)
    picks = []
    for i in range(9):
        t = shares.pick()
        assert t is not None
        picks.append(t)
        shares.started(f"c{i}", t)
    assert picks.count("big") == 6 and picks.count("small") == 3


def test_charges_settle_to_the_clamped_actual_time() -> None:
    shares = TenantShares(FairShareConfig(initial_estimate_s=1.0, max_charge_s=10.0))
    shares.started("c", "a")
    assert shares.charged("a") == 1.0
    shares.ended("c", 25.0)  # clamped to 10
    assert shares.charged("a") == 10.0 and shares.virtual_time("a") == 10.0
    shares.ended("c", 3.0)  # settled already: ignored
    shares.ended("unknown", 3.0)
    assert shares.charged("a") == 10.0


def test_the_estimate_follows_actual_times() -> None:
    shares = TenantShares(FairShareConfig(initial_estimate_s=1.0, smoothing=0.5))
    shares.started("c1", "a")
    shares.ended("c1", 3.0)  # estimate 1 -> 2
    shares.started("c2", "a")
    assert shares.charged("a") == pytest.approx(3.0 + 2.0)


def test_an_idle_tenant_earns_no_credit() -> None:
    shares = TenantShares()
    shares.set_backlogged("a", True)
    shares.set_backlogged("b", True)
    for i in range(10):  # only a is served for a while; b has nothing queued
        if i == 1:
            shares.set_backlogged("b", False)
        assert shares.pick() == "a"
        shares.started(f"a{i}", "a")
        shares.ended(f"a{i}", 1.0)
    shares.set_backlogged("b", True)  # back: starts at the system virtual time
    assert shares.virtual_time("b") >= 8.0
    picks = []
    for i in range(4):
        t = shares.pick()
        assert t is not None
        picks.append(t)
        shares.started(f"x{i}", t)
        shares.ended(f"x{i}", 1.0)
    assert picks.count("a") >= 1  # b does not get the next ten turns in a row


@pytest.mark.parametrize(
    "kw",
    [
        {"default_weight": 0.0},
        {"weights": {"a": -1.0}},
        {"min_charge_s": 0.0},
        {"min_charge_s": 2.0, "max_charge_s": 1.0},
        {"smoothing": 0.0},
    ],
)
def test_config_is_validated(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FairShareConfig(**kw)  # type: ignore[arg-type]


def test_the_tenant_heap_stays_small_under_many_charges() -> None:
    shares = TenantShares()
    for t in "abc":
        shares.set_backlogged(t, True)
    for i in range(5000):
        shares.started(f"c{i}", "abc"[i % 3])
    assert len(shares._heap) <= 4 * 3 + 64
    assert shares.pick() in {"a", "b", "c"}
