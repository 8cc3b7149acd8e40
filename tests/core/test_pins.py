"""The pin table: budget, latest-arrival-first displacement and relief, TTL expiry,
token·seconds, and counts; table-driven cases plus random operation sequences."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvbaton.middleware.core.pins import Pin, PinOutcome, PinTable

# capacity 200 at the default share: a budget of 100 tokens


def table(*pins: tuple[str, int, float], ttl: float = 10.0) -> PinTable:
    """A table holding ``(program, tokens, arrival)`` pins made at now=0."""
    t = PinTable(200)
    for program, tokens, arrival in pins:
        assert t.pin(program, tokens, 0.0, ttl, arrival).outcome is PinOutcome.GRANTED
    return t


def ids(pins: list[Pin] | tuple[Pin, ...]) -> list[str]:
    return [p.program_id for p in pins]


FULL = (("A", 60, 0.0), ("B", 30, 2.0), ("C", 10, 1.0))


@pytest.mark.parametrize(
    ("tokens", "arrival", "outcome", "displaced"),
    [
        (50, 0.5, PinOutcome.DENIED, []),  # B + C free only 40: displace nothing
        (35, 0.5, PinOutcome.GRANTED, ["B", "C"]),  # latest arrival first
        (25, 0.5, PinOutcome.GRANTED, ["B"]),  # only as many as needed
        (5, 5.0, PinOutcome.DENIED, []),  # everyone pinned arrived earlier
        (5, 2.0, PinOutcome.DENIED, []),  # a tie is not "later"
        (500, -1.0, PinOutcome.TRIMMED, ["B", "C", "A"]),  # trimmed to the whole budget
    ],
)
def test_full_table_displaces_only_later_programs(
    tokens: int, arrival: float, outcome: PinOutcome, displaced: list[str]
) -> None:
    t = table(*FULL)
    decision = t.pin("D", tokens, 1.0, 5.0, arrival)
    assert decision.outcome is outcome
    assert ids(decision.displaced) == displaced
    assert t.pinned_tokens <= t.budget_tokens
    assert ("D" in t) is decision.granted
    if decision.pin is not None:
        assert decision.pin.tokens == min(tokens, 100)
        assert decision.pin.expires_at == 6.0


def test_new_pin_replaces_the_programs_old_one() -> None:
    t = table(("A", 40, 0.0))
    decision = t.pin("A", 70, 3.0, 2.0, 0.0)
    assert decision.replaced is not None and decision.replaced.tokens == 40
    assert (len(t), t.pinned_tokens, t.next_expiry()) == (1, 70, 5.0)
    assert t.expire(4.0) == [] and ids(t.expire(5.0)) == ["A"]
    counts = t.stats(5.0)
    assert (counts.granted, counts.replaced, counts.expired, counts.ended) == (2, 1, 1, 2)


def test_expire_consume_release_and_next_expiry() -> None:
    t = table(("A", 10, 0.0), ("B", 10, 1.0), ("C", 10, 2.0), ttl=4.0)
    t.pin("B", 10, 1.0, 1.0, 1.0)  # B now expires at 2
    assert t.next_expiry() == 2.0
    pin = t.consume("C", 1.5)
    assert pin is not None and pin.program_id == "C"
    assert t.consume("C", 1.5) is None and t.release("nobody", 1.5) is None
    assert ids(t.expire(3.0)) == ["B"]
    assert t.next_expiry() == 4.0
    assert t.release("A", 3.5) is not None
    assert (len(t), t.pinned_tokens, t.next_expiry()) == (0, 0, None)


def test_relieve_frees_latest_arrivals_first() -> None:
    t = table(("A", 20, 0.0), ("B", 20, 3.0), ("C", 20, 1.0), ("D", 20, 2.0))
    assert ids(t.relieve(30, 1.0)) == ["B", "D"]
    assert ids(t.relieve(0, 1.0)) == []
    assert ids(t.relieve(1000, 1.0)) == ["C", "A"]


def test_token_seconds_and_per_program_counts() -> None:
    t = PinTable(200)
    t.pin("A", 10, 0.0, 5.0, 0.0)
    t.pin("B", 20, 2.0, 1.0, 1.0)
    t.expire(3.0)  # B: 20 tokens for 1 s
    assert t.stats(4.0).token_s == pytest.approx(10 * 4 + 20 * 1)
    t.expire(6.0)  # A: 10 tokens for 5 s, held until expire ran at 6
    assert t.stats(9.0).token_s == pytest.approx(10 * 6 + 20 * 1)
    a = t.program_stats("A")
    assert a is not None and (a.granted, a.expired, a.token_s) == (1, 1, 60.0)
    assert t.forget("A") is not None and t.program_stats("A") is None


def test_zero_budget_denies_and_bad_requests_raise() -> None:
    t = PinTable(1, max_share=0.5)
    assert t.pin("A", 1, 0.0, 1.0, 0.0).outcome is PinOutcome.DENIED
    for tokens, ttl in [(0, 1.0), (5, 0.0), (5, -1.0), (5, math.inf), (5, math.nan)]:
        with pytest.raises(ValueError):
            t.pin("A", tokens, 0.0, ttl, 0.0)
    with pytest.raises(ValueError):
        PinTable(100, max_share=1.5)


def test_stale_heap_entries_do_not_pile_up() -> None:
    t = PinTable(10_000)
    for i in range(10_000):
        t.pin(f"p{i % 7}", 10, float(i), 100.0, float(i % 7))
        if i % 3:
            t.consume(f"p{i % 5}", float(i))
    assert len(t._by_expiry) + len(t._by_arrival) <= 4 * len(t) + 64 + 2


# -- random operation sequences ---------------------------------------------------------

PROGRAMS = 8
ARRIVAL = [float(p // 2) for p in range(PROGRAMS)]  # pairs of programs tie on arrival

op = st.tuples(
    st.sampled_from(["pin", "pin", "pin", "consume", "release", "expire", "relieve"]),
    st.integers(0, PROGRAMS - 1),
    st.integers(1, 80),
    st.integers(0, 4).map(lambda n: n / 2),  # time step; halves, so deadlines are hit exactly
    st.integers(1, 12).map(lambda n: n / 2),  # TTL
)


def key(pin: Pin) -> tuple[float, int]:
    return (pin.arrival, pin.seq)


class Model:
    """A brute-force ledger to compare the table against."""

    def __init__(self) -> None:
        self.area = 0.0  # ∫ pinned tokens dt, step by step
        self.ended_area = 0.0  # Σ tokens·(end - start) of ended pins
        self.now = 0.0
        self.tokens = 0
        self.granted = self.denied = self.ended = 0

    def advance(self, now: float) -> None:
        self.area += self.tokens * (now - self.now)
        self.now = now

    def end(self, pins: list[Pin] | tuple[Pin, ...]) -> None:
        self.ended += len(pins)
        self.ended_area += sum(p.tokens * (self.now - p.pinned_at) for p in pins)


def check_pin(t: PinTable, m: Model, program: str, tokens: int, ttl: float) -> None:
    arrival = ARRIVAL[int(program[1:])]
    before = {p.program_id: p for p in t if p.program_id != program}
    decision = t.pin(program, tokens, m.now, ttl, arrival)
    m.end([decision.replaced] if decision.replaced else [])
    m.end(decision.displaced)
    want = min(tokens, t.budget_tokens)
    later = sum(p.tokens for p in before.values() if p.arrival > arrival)
    room = t.budget_tokens - sum(p.tokens for p in before.values())
    if decision.pin is None:
        m.denied += 1
        assert not decision.displaced
        assert want == 0 or want > room + later  # the denial was necessary
        return
    m.granted += 1
    assert decision.pin.tokens == want
    assert decision.pin.expires_at == pytest.approx(m.now + ttl)
    assert all(p.arrival > arrival for p in decision.displaced)
    kept = [p for p in t if p.program_id != program]
    if decision.displaced:  # the latest ones went, and no more than needed
        assert max(map(key, kept), default=(-1.0, -1)) < min(map(key, decision.displaced))
        assert room + sum(p.tokens for p in decision.displaced[:-1]) < want


def check_relieve(t: PinTable, m: Model, needed: int) -> None:
    freed = t.relieve(needed, m.now)
    m.end(freed)
    keys = [key(p) for p in freed]
    assert keys == sorted(keys, reverse=True)
    if freed:
        assert max(map(key, t), default=(-1.0, -1)) < keys[-1]
    assert sum(p.tokens for p in freed) >= needed or len(t) == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(op, max_size=60))
def test_random_sequences_keep_the_invariants(ops) -> None:
    t, m = PinTable(200), Model()
    for kind, p, tokens, dt, ttl in ops:
        m.advance(m.now + dt)
        program = f"p{p}"
        if kind == "pin":
            check_pin(t, m, program, tokens, ttl)
        elif kind in ("consume", "release"):
            pin = getattr(t, kind)(program, m.now)
            m.end([pin] if pin else [])
        elif kind == "expire":
            expired = t.expire(m.now)
            m.end(expired)
            assert all(p.expires_at <= m.now for p in expired)
            assert all(p.expires_at > m.now for p in t)  # nothing outlives its TTL
        else:
            check_relieve(t, m, tokens)
        m.tokens = t.pinned_tokens
        assert t.pinned_tokens == sum(p.tokens for p in t) <= t.budget_tokens
        assert t.next_expiry() == min((p.expires_at for p in t), default=None)

    counts = t.stats(m.now)
    assert counts.token_s == pytest.approx(m.area, abs=1e-6)
    live = sum(p.tokens * (m.now - p.pinned_at) for p in t)
    assert counts.token_s == pytest.approx(m.ended_area + live, abs=1e-6)
    assert (counts.granted, counts.denied, counts.ended) == (m.granted, m.denied, m.ended)
    assert counts.granted == counts.ended + len(t)
    per_program = [t.program_stats(f"p{i}") for i in range(PROGRAMS)]
    assert sum(c.granted for c in per_program if c) == counts.granted
    assert sum(c.ended for c in per_program if c) == counts.ended
    assert sum(c.token_s for c in per_program if c) == pytest.approx(m.ended_area, abs=1e-6)
