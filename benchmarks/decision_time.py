"""Decision time of the core scheduler, per policy: microseconds per submit, finish, tick.

    .venv/bin/python benchmarks/decision_time.py [--programs 10000] [--calls 5] [--ops 5000]

The scheduler is filled with ``--programs`` live programs (8 tenants, one call each run
to completion so that services differ, a tenth flagged done to feed the predictors, a
tenth with deadlines), then ``--calls`` more calls per program with ``--slots`` engine
slots, so that almost all of them wait in the proxy queue. Then it times ``--ops`` of
each decision: a submit (queued behind the full slots), a finish (which frees a slot and
dispatches the next queued call: the dispatch decision), and a tick. ``baseline`` holds
nothing back, so its queue stays empty: its numbers are the floor of the table.
"""

from __future__ import annotations

import argparse
import random
import time

from kvbaton.middleware.core.actions import Dispatch
from kvbaton.middleware.core.policies import POLICIES, make_policy
from kvbaton.middleware.core.scheduler import Scheduler, SchedulerConfig
from kvbaton.middleware.core.types import CallOutcome, CallSpec

TENANTS = 8


class Bench:
    def __init__(self, policy: str, programs: int, slots: int, seed: int = 0) -> None:
        config = SchedulerConfig(max_inflight=slots, idle_ttl_s=1e9, programs_capacity=10**7)
        self.sched = Scheduler(make_policy(policy), config)
        self.programs = programs
        self.rng = random.Random(seed)
        self.now = 0.0
        self.inflight: list[str] = []
        self.n = 0

    def spec(self, p: int, *, last: bool = False) -> CallSpec:
        self.n += 1
        return CallSpec(
            f"c{self.n}",
            f"p{p}",
            tenant=f"t{p % TENANTS}",
            workflow=f"w{p % 4}",
            last_step=last,
            deadline_s=600.0 if p % 10 == 3 else None,
        )

    def submit(self, spec: CallSpec) -> None:
        self.now += 1e-4
        for a in self.sched.submit(spec, self.now):
            if isinstance(a, Dispatch):
                self.inflight.append(a.call_id)

    def finish_one(self) -> None:
        self.now += self.rng.uniform(0.0, 2e-3)
        call_id = self.inflight.pop(self.rng.randrange(len(self.inflight)))
        for a in self.sched.finish(call_id, CallOutcome(), self.now):
            if isinstance(a, Dispatch):
                self.inflight.append(a.call_id)

    def fill(self, calls: int) -> None:
        for p in range(self.programs):  # one call each, run to completion: varied services
            self.submit(self.spec(p, last=p % 10 == 7))
            while len(self.inflight) >= 64 or (p == self.programs - 1 and self.inflight):
                self.now += self.rng.uniform(0.0, 0.05)
                self.finish_one()
        for _ in range(calls):
            for p in range(self.programs):
                self.submit(self.spec(p))

    def time_ops(self, ops: int) -> dict[str, float]:
        out = {}
        started = time.perf_counter()
        for i in range(ops):
            self.submit(self.spec(i % self.programs))
        out["submit"] = (time.perf_counter() - started) / ops * 1e6
        started = time.perf_counter()
        for _ in range(ops):
            self.finish_one()
        out["finish + dispatch"] = (time.perf_counter() - started) / ops * 1e6
        started = time.perf_counter()
        for _ in range(ops):
            self.now += 1e-3
            self.sched.tick(self.now)
        out["tick"] = (time.perf_counter() - started) / ops * 1e6
        return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=5, help="queued calls per program")
    parser.add_argument("--slots", type=int, default=1024)
    parser.add_argument("--ops", type=int, default=5_000)
    parser.add_argument("--policies", default=",".join(POLICIES))
    args = parser.parse_args()
    print(f"{args.programs:,} live programs, {args.calls} queued calls each, {args.slots} slots\n")
    print("| policy | queued | submit µs | finish + dispatch µs | tick µs |")
    print("|---|---|---|---|---|")
    for name in args.policies.split(","):
        bench = Bench(name, args.programs, args.slots)
        bench.fill(args.calls)
        queued = bench.sched.stats().queued
        t = bench.time_ops(args.ops)
        print(
            f"| {name} | {queued:,} | {t['submit']:.1f} | {t['finish + dispatch']:.1f} "
            f"| {t['tick']:.1f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
