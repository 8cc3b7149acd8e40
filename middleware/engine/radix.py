"""Token-level radix prefix cache, SGLang style.

Edges hold tuples of token ids; a lookup that ends inside an edge splits the node so that
every match ends on a node boundary and can be locked exactly. Running requests and holds
lock their path (reference counts up to the root); only unlocked leaves are evicted, lowest
``priority`` first, then least recently used (SGLang ``--radix-eviction-policy priority``; a
node keeps the max priority of the requests that inserted or used it, and never decays).

Token sequences are compared slice by slice (C speed); the first mismatch inside an edge is
found by binary search over slice equality, so a 70k-token prompt costs no per-token Python
loop. Evictable leaves sit in a heap with lazy invalidation: an entry is checked against the
node when popped, so updates are O(log n) pushes and eviction never scans the tree.

Times are explicit ``now`` arguments in seconds; the cache never reads a clock.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["RadixCache", "RadixNode", "common_prefix_len"]


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the common prefix of two token sequences (tuples or lists)."""
    hi = min(len(a), len(b))
    if a[:hi] == b[:hi]:
        return hi
    lo = 0  # invariant: a[:lo] == b[:lo] and a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


class RadixNode:
    """One edge of the tree: ``key`` holds the tokens between this node and its parent."""

    __slots__ = (
        "children",
        "hold_ref",
        "key",
        "last_access",
        "lock_ref",
        "parent",
        "priority",
        "removed",
    )

    def __init__(
        self, key: tuple[int, ...], parent: RadixNode | None, now: float, priority: int
    ) -> None:
        self.key = key
        self.parent = parent
        self.children: dict[int, RadixNode] = {}
        self.lock_ref = 0
        self.hold_ref = 0
        self.last_access = now
        self.priority = priority
        self.removed = False


@dataclass(slots=True)
class _Hold:
    node: RadixNode
    tokens: int
    until: float


class RadixCache:
    """Prefix cache over token ids; capacity and counters are in tokens.

    ``capacity`` bounds only what `insert` adds (it evicts to make room, then truncates);
    the engine model passes ``None`` and accounts for the KV pool itself.
    """

    def __init__(self, capacity: int | None = None) -> None:
        self.capacity = capacity
        self.root = RadixNode((), None, -math.inf, 0)
        self.root.lock_ref = 1  # the root is never evicted
        self.total_tokens = 0
        self.locked_tokens = 0
        self.held_tokens = 0
        self.evicted_tokens_total = 0
        self._nodes = 0
        self._seq = itertools.count()
        self._leaves: list[tuple[int, float, int, RadixNode]] = []
        self._holds: dict[str, _Hold] = {}
        self._deadlines: list[tuple[float, int, str, _Hold]] = []

    # -- queries ---------------------------------------------------------------------------

    @property
    def evictable_tokens(self) -> int:
        """Tokens in unlocked nodes (freed by `evict` if asked for enough)."""
        return self.total_tokens - self.locked_tokens

    def match(
        self, tokens: Sequence[int], now: float | None = None, priority: int | None = None
    ) -> tuple[int, RadixNode]:
        """Longest cached prefix of ``tokens``: ``(matched_len, node)``.

        ``node`` ends exactly at ``matched_len`` (an edge is split if needed). With ``now``,
        the path's last access is refreshed; with ``priority``, the path takes the max.
        """
        matched, node = self._descend(tuple(tokens))
        if now is not None or priority is not None:
            self._touch_path(node, now, priority)
        return matched, node

    # -- updates ---------------------------------------------------------------------------

    def insert(self, tokens: Sequence[int], now: float, priority: int = 0) -> int:
        """Cache ``tokens``; returns how many tokens were new (added to the tree)."""
        key = tuple(tokens)
        matched, node = self._descend(key)
        self._touch_path(node, now, priority)
        room = len(key) - matched
        if room and self.capacity is not None:
            room = self._make_room(room, node)
        if room <= 0:
            self._offer(node)
            return 0
        leaf = RadixNode(key[matched : matched + room], node, now, priority)
        node.children[leaf.key[0]] = leaf
        self.total_tokens += room
        self._nodes += 1
        self._offer(leaf)
        return room

    def lock(self, node: RadixNode, *, held: bool = False) -> None:
        """Protect the path from ``node`` to the root from eviction (reference counted)."""
        n: RadixNode | None = node
        while n is not None and n is not self.root:
            if n.lock_ref == 0:
                self.locked_tokens += len(n.key)
            n.lock_ref += 1
            if held:
                if n.hold_ref == 0:
                    self.held_tokens += len(n.key)
                n.hold_ref += 1
            n = n.parent

    def unlock(self, node: RadixNode, *, held: bool = False) -> None:
        """Undo one `lock` of the same node."""
        n: RadixNode | None = node
        while n is not None and n is not self.root:
            n.lock_ref -= 1
            if n.lock_ref == 0:
                self.locked_tokens -= len(n.key)
                self._offer(n)
            if held:
                n.hold_ref -= 1
                if n.hold_ref == 0:
                    self.held_tokens -= len(n.key)
            n = n.parent

    def evict(self, n_tokens: int) -> int:
        """Evict unlocked leaves, lowest (priority, last access) first, until ``n_tokens``
        are freed or nothing is evictable; returns the tokens freed (whole nodes, so it may
        exceed the request)."""
        freed = 0
        while freed < n_tokens and self._leaves:
            priority, access, _, node = heapq.heappop(self._leaves)
            if not self._is_evictable(node) or (priority, access) != (
                node.priority,
                node.last_access,
            ):
                continue  # stale entry: the node changed since it was offered
            freed += self._remove(node)
        self.evicted_tokens_total += freed
        return freed

    # -- holds (pinned prefixes with expiry) -----------------------------------------------

    def hold(self, key: str, tokens: Sequence[int], until: float, now: float | None = None) -> int:
        """Pin the cached prefix of ``tokens`` under ``key`` until ``until`` (seconds).

        Replaces an earlier hold with the same key. Returns the tokens held (the cached part
        of ``tokens``; uncached tokens cannot be pinned).
        """
        matched, node = self.match(tokens, now)
        old = self._holds.pop(key, None)
        if matched:
            self.lock(node, held=True)
            hold = _Hold(node, matched, until)
            self._holds[key] = hold
            heapq.heappush(self._deadlines, (until, next(self._seq), key, hold))
        if old is not None:
            self.unlock(old.node, held=True)
        return matched

    def retime(self, key: str, until: float) -> int:
        """Move hold ``key``'s expiry to ``until``; returns its tokens (0: no such hold)."""
        old = self._holds.get(key)
        if old is None:
            return 0
        hold = _Hold(old.node, old.tokens, until)
        self._holds[key] = hold
        heapq.heappush(self._deadlines, (until, next(self._seq), key, hold))
        return hold.tokens

    def release(self, key: str) -> bool:
        """Drop the hold ``key``; False if there was none."""
        hold = self._holds.pop(key, None)
        if hold is None:
            return False
        self.unlock(hold.node, held=True)
        return True

    def expire(self, now: float) -> list[str]:
        """Release every hold whose ``until`` is at or before ``now``; returns their keys."""
        expired = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, _, key, hold = heapq.heappop(self._deadlines)
            if self._holds.get(key) is hold:
                self.release(key)
                expired.append(key)
        return expired

    def next_expiry(self) -> float | None:
        """The earliest ``until`` among live holds, or None."""
        while self._deadlines:
            _, _, key, hold = self._deadlines[0]
            if self._holds.get(key) is hold:
                break
            heapq.heappop(self._deadlines)
        return self._deadlines[0][0] if self._deadlines else None

    def holds(self) -> dict[str, int]:
        """Live holds: key -> tokens held."""
        return {key: hold.tokens for key, hold in self._holds.items()}

    # -- internals -------------------------------------------------------------------------

    def _descend(self, key: tuple[int, ...]) -> tuple[int, RadixNode]:
        node, pos, n = self.root, 0, len(key)
        while pos < n:
            child = node.children.get(key[pos])
            if child is None:
                break
            edge = child.key
            if key[pos : pos + len(edge)] == edge:
                node, pos = child, pos + len(edge)
                continue
            common = common_prefix_len(edge, key[pos : pos + len(edge)])
            return pos + common, self._split(child, common)
        return pos, node

    def _split(self, child: RadixNode, at: int) -> RadixNode:
        parent = child.parent
        assert parent is not None and 0 < at < len(child.key)
        upper = RadixNode(child.key[:at], parent, child.last_access, child.priority)
        # The upper part inherits the locks: every lock of child passed through it.
        upper.lock_ref, upper.hold_ref = child.lock_ref, child.hold_ref
        child.key = child.key[at:]
        child.parent = upper
        upper.children[child.key[0]] = child
        parent.children[upper.key[0]] = upper
        self._nodes += 1
        return upper

    def _touch_path(self, node: RadixNode, now: float | None, priority: int | None) -> None:
        n: RadixNode | None = node
        while n is not None and n is not self.root:
            if now is not None and now > n.last_access:
                n.last_access = now
            if priority is not None and priority > n.priority:
                n.priority = priority
            n = n.parent
        self._offer(node)

    def _make_room(self, need: int, keep: RadixNode) -> int:
        free = self.capacity - self.total_tokens if self.capacity is not None else need
        if free < need:
            self.lock(keep)  # the attach point must survive its own eviction pass
            self.evict(need - free)
            self.unlock(keep)
            free = self.capacity - self.total_tokens if self.capacity is not None else need
        return min(need, free)

    def _is_evictable(self, node: RadixNode) -> bool:
        return not node.removed and not node.children and node.lock_ref == 0

    def _offer(self, node: RadixNode) -> None:
        if node is self.root or not self._is_evictable(node):
            return
        entry = (node.priority, node.last_access, next(self._seq), node)
        heapq.heappush(self._leaves, entry)
        if len(self._leaves) > 4 * self._nodes + 64:
            self._compact()

    def _compact(self) -> None:
        # Every evictable leaf has at least one entry, so fresh entries for the unique live
        # nodes lose nothing.
        live = {id(e[3]): e[3] for e in self._leaves if self._is_evictable(e[3])}
        self._leaves = [(n.priority, n.last_access, next(self._seq), n) for n in live.values()]
        heapq.heapify(self._leaves)

    def _remove(self, node: RadixNode) -> int:
        parent = node.parent
        assert parent is not None
        del parent.children[node.key[0]]
        node.removed = True
        self.total_tokens -= len(node.key)
        self._nodes -= 1
        self._offer(parent)
        return len(node.key)
