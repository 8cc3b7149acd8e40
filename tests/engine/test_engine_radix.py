"""Radix prefix cache: matching, splitting, locking, priority/LRU eviction, holds."""

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from kvbaton.middleware.engine.radix import RadixCache, RadixNode, common_prefix_len


def walk(node: RadixNode) -> list[RadixNode]:
    out = []
    for child in node.children.values():
        out.append(child)
        out.extend(walk(child))
    return out


def check_invariants(cache: RadixCache) -> None:
    nodes = walk(cache.root)
    assert cache.total_tokens == sum(len(n.key) for n in nodes)
    assert cache.locked_tokens == sum(len(n.key) for n in nodes if n.lock_ref > 0)
    assert cache.held_tokens == sum(len(n.key) for n in nodes if n.hold_ref > 0)
    for n in nodes:
        assert n.key and n.parent is not None and n.parent.children[n.key[0]] is n
        assert n.lock_ref >= n.hold_ref >= 0
        # A locked node's ancestors are locked at least as often.
        if n.parent is not cache.root:
            assert n.parent.lock_ref >= n.lock_ref


def naive_prefix(a, b) -> int:
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    return i


@given(st.lists(st.integers(0, 3), max_size=40), st.lists(st.integers(0, 3), max_size=40))
def test_common_prefix_len_matches_naive(a, b):
    assert common_prefix_len(tuple(a), tuple(b)) == naive_prefix(a, b)


def test_match_splits_edge_and_counts_tokens():
    cache = RadixCache()
    assert cache.insert([1, 2, 3, 4], now=0.0) == 4
    matched, node = cache.match([1, 2, 3, 9])
    assert matched == 3 and node.key == (1, 2, 3)
    assert cache.insert([1, 2, 3, 9, 9], now=1.0) == 2
    assert cache.insert([1, 2], now=2.0) == 0
    assert cache.total_tokens == 6
    check_invariants(cache)


def test_lock_protects_path_and_evict_frees_whole_leaves():
    cache = RadixCache()
    cache.insert([1, 2, 3], now=0.0)
    cache.insert([1, 2, 7, 8], now=1.0)
    _, node = cache.match([1, 2, 3])
    cache.lock(node)
    assert cache.locked_tokens == 3  # (1, 2) and (3,)
    assert cache.evict(100) == 2  # only the (7, 8) leaf is free
    assert cache.match([1, 2, 7, 8])[0] == 2
    cache.unlock(node)
    assert cache.evict(1) == 1  # leaf (3,), then (1, 2) became a leaf
    assert cache.evict(10) == 2
    assert cache.total_tokens == 0 and cache.evicted_tokens_total == 5
    check_invariants(cache)


def test_eviction_order_is_priority_then_lru():
    cache = RadixCache()
    cache.insert([1, 1], now=0.0, priority=5)
    cache.insert([2, 2], now=1.0, priority=0)
    cache.insert([3, 3], now=2.0, priority=0)
    cache.match([2, 2], now=3.0)  # touched: now newer than [3, 3]
    cache.evict(1)
    assert cache.match([3, 3])[0] == 0
    cache.evict(1)
    assert cache.match([2, 2])[0] == 0
    assert cache.match([1, 1])[0] == 2  # high priority survives longest


def test_priority_takes_max_of_users():
    cache = RadixCache()
    cache.insert([1, 2], now=0.0, priority=0)
    cache.insert([3, 4], now=1.0, priority=0)
    cache.match([1, 2], now=0.5, priority=9)
    cache.evict(1)
    assert cache.match([1, 2])[0] == 2 and cache.match([3, 4])[0] == 0


def test_hold_release_expire():
    cache = RadixCache()
    cache.insert([1, 2, 3, 4], now=0.0)
    assert cache.hold("s1", [1, 2, 3, 9], until=10.0) == 3
    assert cache.held_tokens == 3 and cache.holds() == {"s1": 3}
    assert cache.evict(100) == 1  # only the unheld (4,) goes
    assert cache.next_expiry() == 10.0
    assert cache.expire(9.9) == []
    assert cache.expire(10.0) == ["s1"]
    assert cache.held_tokens == 0 and cache.locked_tokens == 0
    assert cache.next_expiry() is None
    assert cache.hold("s2", [7], until=1.0) == 0  # nothing cached, nothing held
    check_invariants(cache)


def test_rehold_same_key_replaces_and_release():
    cache = RadixCache()
    cache.insert([1, 2, 3, 4], now=0.0)
    cache.hold("s", [1, 2], until=5.0)
    cache.hold("s", [1, 2, 3, 4], until=50.0)
    assert cache.expire(6.0) == []  # the old deadline is stale
    assert cache.held_tokens == 4
    assert cache.release("s") and not cache.release("s")
    assert cache.locked_tokens == 0
    check_invariants(cache)


def test_capacity_bounded_insert_evicts_then_truncates():
    cache = RadixCache(capacity=5)
    cache.insert([1, 2, 3], now=0.0)
    cache.insert([4, 5, 6], now=1.0)  # evicts [1, 2, 3]
    assert cache.total_tokens == 3 and cache.match([1])[0] == 0
    _, node = cache.match([4, 5, 6])
    cache.lock(node)
    assert cache.insert([7, 8, 9, 10], now=2.0) == 2  # only 2 tokens of room
    check_invariants(cache)


ops = st.lists(
    st.tuples(
        st.sampled_from(["insert", "lock", "unlock", "evict", "hold", "release", "expire"]),
        st.lists(st.integers(0, 4), min_size=1, max_size=12),
        st.integers(0, 3),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_random_operations_keep_invariants(ops):
    cache = RadixCache()
    locked: list[RadixNode] = []
    inserted: list[tuple[int, ...]] = []
    evicted_any = False
    for i, (op, toks, k) in enumerate(ops):
        now = float(i)
        if op == "insert":
            cache.insert(toks, now, priority=k)
            inserted.append(tuple(toks))
        elif op == "lock":
            locked.append(cache.match(toks, now)[1])
            cache.lock(locked[-1])
        elif op == "unlock" and locked:
            cache.unlock(locked.pop(k % len(locked)))
        elif op == "evict":
            evicted_any |= cache.evict(k * 3) > 0
        elif op == "hold":
            cache.hold(f"h{k}", toks, until=now + k)
        elif op == "release":
            cache.release(f"h{k}")
        elif op == "expire":
            cache.expire(now)
        check_invariants(cache)
        if not evicted_any:
            probe = tuple(toks)
            best = max((naive_prefix(probe, s) for s in inserted), default=0)
            assert cache.match(probe)[0] == best


def test_long_prompts_match_without_per_token_loops():
    cache = RadixCache()
    base = list(range(70_000))
    for i in range(20):
        cache.insert([*base, i, i + 1], now=float(i))
    start = time.perf_counter()
    for i in range(200):
        probe = [*base[:69_000], -1] if i % 2 else [*base, i % 20, 99]
        cache.match(probe, now=100.0 + i)
    assert time.perf_counter() - start < 2.0
