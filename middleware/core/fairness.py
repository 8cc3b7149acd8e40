"""Weighted fair sharing of engine time between tenants (virtual-time fair queueing).

The queue serves tenants by :class:`TenantShares`: one lane per tenant, and the next call
comes from the backlogged tenant with the least virtual time. The strategy inside a lane
(SRPT, FCFS, ...) is the priority strategy's business; this module only decides *whose*
turn it is.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["FairShareConfig", "TenantShares"]


@dataclass(frozen=True, slots=True)
class FairShareConfig:
    """Tenant weights and the clamp on what one call is charged.

    ``min_charge_s`` keeps every dispatch advancing its tenant's virtual time (without it
    a tenant of zero-length calls could be served forever); ``max_charge_s`` keeps one
    runaway call from locking its tenant out for long. Both enter the starvation bound
    (:class:`TenantShares`) through their ratio.
    """

    weights: Mapping[str, float] = field(default_factory=dict)
    default_weight: float = 1.0
    min_charge_s: float = 0.01
    max_charge_s: float = 60.0
    initial_estimate_s: float = 1.0
    smoothing: float = 0.2  # weight of the newest call in a tenant's running estimate

    def __post_init__(self) -> None:
        if self.default_weight <= 0 or any(w <= 0 for w in self.weights.values()):
            raise ValueError("tenant weights must be positive")
        if not 0 < self.min_charge_s <= self.max_charge_s:
            raise ValueError("need 0 < min_charge_s <= max_charge_s")
        if not 0 < self.smoothing <= 1:
            raise ValueError("smoothing must be in (0, 1]")

    def weight(self, tenant: str) -> float:
        return self.weights.get(tenant, self.default_weight)

    def clamp(self, seconds: float) -> float:
        return min(max(seconds, self.min_charge_s), self.max_charge_s)


@dataclass(slots=True)
class _Tenant:
    weight: float
    order: int  # first-seen order: breaks ties between equal virtual times
    estimate_s: float
    vtime: float = 0.0
    charged_s: float = 0.0
    backlogged: bool = False
    version: int = 0  # the heap entry with this version is the live one


class TenantShares:
    """Per-tenant virtual time; :meth:`pick` names the backlogged tenant to serve next.

    NOTE on the accounting. A tenant's virtual time is the engine time charged to it over
    its weight, ``V_t = C_t / w_t``. A call is charged when it starts, by an estimate (its
    tenant's smoothed engine time per call, clamped to ``[c_min, c_max]``), and corrected
    to its clamped actual engine time when it ends: calls in flight count at once, so a
    tenant cannot grab every free slot before its first call finishes. A tenant that
    becomes backlogged again starts at the system virtual time ``v`` (the largest ``V``
    picked so far) if it is behind it: idling earns no credit (start-time fair queueing,
    Goyal, Vin and Cheng, SIGCOMM'96). Under backlog, charged service therefore tends to
    the weights' proportions.

    Starvation bound. While tenant ``t`` is backlogged, let ``S`` be the engine slots and
    ``rho = c_max / c_min``. Each dispatch of another tenant ``u`` raises ``V_u`` by at least
    ``c_min / w_u`` once settled; ``u`` is picked only while ``V_u <= V_t``; ``V_t`` is at most
    ``v + (S+1)·c_max/w_t`` (one charge plus corrections of its ``S`` calls in flight) and
    ``V_u`` at least ``v - S·c_max/w_u``. Hence between two dispatches of ``t``, ``u`` is
    dispatched at most ``rho·((2S+1)·w_u/w_t + 2S) + 1`` times: a finite number, independent of
    how long ``t`` waits or how many calls ``u`` sends.
    """

    def __init__(self, config: FairShareConfig | None = None) -> None:
        self.config = config or FairShareConfig()
        self._tenants: dict[str, _Tenant] = {}
        self._heap: list[tuple[float, int, int, str]] = []  # (vtime, order, version, name)
        self._backlogged = 0
        self._vclock = 0.0
        self._inflight: dict[str, tuple[str, float]] = {}  # call id -> (tenant, charge)

    # -- the queue's side -------------------------------------------------------------

    def set_backlogged(self, tenant: str, backlogged: bool) -> None:
        """The queue's lane for ``tenant`` became non-empty (True) or empty (False)."""
        t = self._tenant(tenant)
        if t.backlogged == backlogged:
            return
        t.backlogged = backlogged
        self._backlogged += 1 if backlogged else -1
        if backlogged:
            t.vtime = max(t.vtime, self._vclock)  # no credit for the idle spell
            self._push(t, tenant)
        else:
            t.version += 1  # its heap entry is dead

    def pick(self) -> str | None:
        """The backlogged tenant with the least virtual time (ties: first seen), or None."""
        heap = self._heap
        while heap:
            vtime, _, version, name = heap[0]
            t = self._tenants[name]
            if t.backlogged and t.version == version:
                self._vclock = max(self._vclock, vtime)
                return name
            heapq.heappop(heap)
        return None

    # -- the strategy's side ----------------------------------------------------------

    def started(self, call_id: str, tenant: str) -> None:
        """A call of ``tenant`` was dispatched: charge its estimate now."""
        charge = self.config.clamp(self._tenant(tenant).estimate_s)
        self._inflight[call_id] = (tenant, charge)
        self._charge(tenant, charge)

    def ended(self, call_id: str, service_s: float) -> None:
        """A dispatched call left after ``service_s`` at the engine: settle its charge."""
        entry = self._inflight.pop(call_id, None)
        if entry is None:
            return
        tenant, charged = entry
        actual = self.config.clamp(service_s)
        t = self._tenants[tenant]
        t.estimate_s += self.config.smoothing * (actual - t.estimate_s)
        self._charge(tenant, actual - charged)

    # -- views ------------------------------------------------------------------------

    def virtual_time(self, tenant: str) -> float:
        t = self._tenants.get(tenant)
        return t.vtime if t else 0.0

    def charged(self, tenant: str) -> float:
        """Engine seconds charged to ``tenant`` so far (estimates for calls in flight)."""
        t = self._tenants.get(tenant)
        return t.charged_s if t else 0.0

    # -- internals --------------------------------------------------------------------

    def _tenant(self, name: str) -> _Tenant:
        t = self._tenants.get(name)
        if t is None:
            cfg = self.config
            t = _Tenant(cfg.weight(name), len(self._tenants), cfg.initial_estimate_s)
            self._tenants[name] = t
        return t

    def _charge(self, tenant: str, seconds: float) -> None:
        t = self._tenants[tenant]
        t.charged_s += seconds
        t.vtime += seconds / t.weight
        if t.backlogged:
            t.version += 1
            self._push(t, tenant)

    def _push(self, t: _Tenant, name: str) -> None:
        heapq.heappush(self._heap, (t.vtime, t.order, t.version, name))
        if len(self._heap) > 4 * self._backlogged + 64:
            # Re-charges leave dead entries behind; rebuild once they dominate.
            self._heap = [
                (x.vtime, x.order, x.version, n) for n, x in self._tenants.items() if x.backlogged
            ]
            heapq.heapify(self._heap)
