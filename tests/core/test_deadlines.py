"""Keyed deadlines: earliest first, one per key, replaced and discarded entries skipped."""

from kvbaton.middleware.core.deadlines import Deadlines


def test_earliest_first_one_per_key() -> None:
    d: Deadlines[int] = Deadlines()
    d.set("a", 5.0, 1)
    d.set("b", 3.0, 2)
    d.set("a", 1.0, 3)  # replaces a's 5.0
    assert len(d) == 2 and d.first() == 1.0
    assert d.pop_due(0.5) is None
    assert d.pop_due(10.0) == ("a", 3)
    assert d.pop_due(10.0) == ("b", 2)
    assert d.pop_due(10.0) is None and d.first() is None


def test_discarded_and_replaced_entries_never_surface_and_are_swept() -> None:
    d: Deadlines[None] = Deadlines()
    for i in range(1000):
        d.set("k", float(i), None)  # 999 stale entries behind one live one
    d.discard("k")
    d.set("x", 7.0, None)
    assert d.first() == 7.0 and "k" not in d
    assert len(d._heap) <= 2 * len(d) + 64
