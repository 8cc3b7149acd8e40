"""CallQueue against a brute-force model: re-keys, removals, wake-ups and tenant lanes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvbaton.middleware.core.fairness import TenantShares
from kvbaton.middleware.core.priority import QueuedCall
from kvbaton.middleware.core.queue import CallQueue
from kvbaton.middleware.core.types import CallSpec


def qc(i: int, program: str = "P", tenant: str = "default") -> QueuedCall:
    return QueuedCall(CallSpec(f"c{i}", program, tenant=tenant), i, float(i))


Wake = float | None
keys = st.tuples(st.integers(0, 3).map(float), st.integers(0, 5).map(float))
wakes = st.none() | st.integers(0, 20).map(float)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.integers(0, 3), keys, wakes),
        st.tuples(st.just("rekey"), st.integers(0, 40), keys, wakes),
        st.tuples(st.just("remove"), st.integers(0, 40), keys, wakes),
        st.tuples(st.just("pop"), st.integers(0, 0), keys, wakes),
        st.tuples(st.just("due"), st.integers(0, 20), keys, wakes),
    ),
    max_size=120,
)


@settings(max_examples=200, deadline=None)
@given(ops)
def test_queue_pops_in_brute_force_order(script: list[tuple[str, int, tuple, Wake]]) -> None:
    q = CallQueue()
    model: dict[str, tuple[tuple[float, ...], int, QueuedCall]] = {}
    timers: dict[str, float] = {}
    n = 0
    for op, arg, key, wake in script:
        if op == "push":
            call = qc(n, program=f"P{arg}")
            n += 1
            q.push(call, key, wake)
            model[call.spec.call_id] = (key, call.seq, call)
            if wake is not None:
                timers[call.spec.call_id] = wake
        elif op == "rekey":
            cid = f"c{arg}"
            q.rekey(cid, key, wake)
            if cid in model:
                model[cid] = (key, *model[cid][1:])
                timers.pop(cid, None)
                if wake is not None:
                    timers[cid] = wake
        elif op == "remove":
            cid = f"c{arg}"
            got = q.remove(cid)
            expected = model.pop(cid, None)
            timers.pop(cid, None)
            assert got == (expected[2] if expected else None)
        elif op == "pop":
            got = q.pop()
            if not model:
                assert got is None
                continue
            best = min(model, key=lambda c: model[c][:2])
            assert got is not None and got.spec.call_id == best
            del model[best]
            timers.pop(best, None)
        else:
            due = {c.spec.call_id for c in q.due(float(arg))}
            assert due == {c for c, t in timers.items() if t <= arg}
            for c in due:
                del timers[c]
        assert len(q) == len(model)
        assert q.next_wake() == min(timers.values(), default=None)
        for program in {m[2].spec.program_id for m in model.values()}:
            expected_ids = sorted(
                (c for c in model if model[c][2].spec.program_id == program),
                key=lambda c: model[c][1],
            )
            assert [c.spec.call_id for c in q.of_program(program)] == expected_ids


def test_rekey_moves_a_call_and_unknown_ids_are_ignored() -> None:
    q = CallQueue()
    for i in range(3):
        q.push(qc(i), (float(i),))
    q.rekey("c2", (-1.0,))
    q.rekey("nope", (0.0,))
    assert [q.pop().spec.call_id for _ in range(3)] == ["c2", "c0", "c1"]  # type: ignore[union-attr]
    assert q.pop() is None


def test_duplicate_push_is_an_error() -> None:
    q = CallQueue()
    q.push(qc(0), (0.0,))
    with pytest.raises(ValueError):
        q.push(qc(0), (1.0,))


def test_many_rekeys_keep_the_heap_small() -> None:
    q = CallQueue()
    for i in range(10):
        q.push(qc(i), (0.0,), wake_at=1.0)
    for r in range(1000):
        q.rekey(f"c{r % 10}", (float(r),), wake_at=float(r))
    assert max(len(h) for h in q._lanes.values()) <= 2 * 10 + 64
    assert len(q._timers) <= 2 * 10 + 64
    assert [c.spec.call_id for c in (q.pop() for _ in range(10)) if c] == [
        f"c{i}" for i in range(10)
    ]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 5)), max_size=40))
def test_tenant_lanes_serve_tenants_in_turn_and_keys_within(
    pushes: list[tuple[str, int]],
) -> None:
    # No charges: every tenant has virtual time 0, so lanes go by first sight, keys within.
    q = CallQueue(TenantShares())
    seen: list[str] = []
    model: dict[str, list[tuple[int, int]]] = {}
    for i, (tenant, key) in enumerate(pushes):
        q.push(qc(i, tenant=tenant), (float(key),))
        if tenant not in seen:
            seen.append(tenant)
        model.setdefault(tenant, []).append((key, i))
    for _ in pushes:
        tenant = next(t for t in seen if model.get(t))
        expected = min(model[tenant])
        model[tenant].remove(expected)
        got = q.pop()
        assert got is not None and got.spec.call_id == f"c{expected[1]}"
    assert q.pop() is None and len(q) == 0
