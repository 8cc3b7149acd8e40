"""How well the workflow graphs predict: every bench workload through the simulator.

    .venv/bin/python benchmarks/prediction_accuracy.py          # about a minute here

At every call's arrival the scheduler's workflow registry predicts the program's next agent,
its remaining calls, engine seconds and wall seconds; when a call that asked for tools has
finished, it predicts the tool pause. After the run each prediction is set against what
happened. The graphs start warm, as in a proxy that has been running: a training run of
``--warmup`` programs of the same workload (another seed) goes first, and the scored run
keeps learning as it goes. Beside the remaining-calls error stands a naive baseline: the
mean length of the programs finished so far minus the calls made (floored at 0). Writes
``benchmarks/results/predictions.md``, which ``make_results.py`` puts in ``RESULTS.md``.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from kvbaton.middleware.bench.sim import Simulation
from kvbaton.middleware.bench.workloads import generate
from kvbaton.middleware.core.actions import Action, PauseObserved
from kvbaton.middleware.core.retention import reload_from_profile
from kvbaton.middleware.core.scheduler import Scheduler
from kvbaton.middleware.core.types import CallOutcome, CallSpec
from kvbaton.middleware.core.workflows import (
    END,
    PausePrediction,
    Prediction,
    WorkflowRegistry,
)
from kvbaton.middleware.engine import DEFAULT_PROFILE, load_profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_results import WORKLOADS  # the same sizes as RESULTS.md

HERE = Path(__file__).resolve().parent


@dataclass
class _Arrival:
    spec: CallSpec
    k: int
    at: float
    service_before: float
    prediction: Prediction | None
    naive_calls: float | None


@dataclass
class _Log:
    arrivals: list[_Arrival] = field(default_factory=list)
    pauses_predicted: dict[str, PausePrediction] = field(default_factory=dict)
    pauses_seen: dict[str, float] = field(default_factory=dict)
    service: dict[str, float] = field(default_factory=dict)  # program -> engine seconds
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    lengths: list[int] = field(default_factory=list)  # finished programs' calls, in order


class RecordingScheduler(Scheduler):
    """The scheduler, plus a log of its workflow predictions at each event."""

    log: _Log

    def submit(self, spec: CallSpec, now: float) -> list[Action]:
        before = self.programs.get(spec.program_id)
        service = before.service_s if before is not None else 0.0
        actions = super().submit(spec, now)
        self._note_pauses(actions)
        program = self.programs.get(spec.program_id)
        assert program is not None
        self.log.calls[spec.program_id] += 1
        k = self.log.calls[spec.program_id]
        lengths = self.log.lengths
        naive = max(0.0, float(np.mean(lengths)) - k) if lengths else None
        prediction = self.workflows.predict(program, now)
        self.log.arrivals.append(_Arrival(spec, k, now, service, prediction, naive))
        return actions

    def finish(self, call_id: str, outcome: CallOutcome, now: float) -> list[Action]:
        spec = self.spec(call_id)
        actions = super().finish(call_id, outcome, now)
        self._note_pauses(actions)
        assert spec is not None
        program = self.programs.get(spec.program_id)
        if program is not None:
            self.log.service[spec.program_id] = program.service_s
            if outcome.tool_calls:
                prediction = self.workflows.predict(program, now)
                if prediction is not None:
                    self.log.pauses_predicted[call_id] = prediction.tool_pause
            if spec.last_step:
                self.log.lengths.append(self.log.calls[spec.program_id])
        return actions

    def _note_pauses(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, PauseObserved):
                self.log.pauses_seen[action.pause.after_call] = action.pause.duration_s


def simulate_logged(
    w: Any,
    programs: int,
    policy: str,
    seed: int,
    workflows: WorkflowRegistry | None = None,
    lengths: list[int] | None = None,
) -> tuple[_Log, dict[str, float | None], WorkflowRegistry]:
    """One run of workload ``w``, its graphs starting from ``workflows`` (a warm proxy)."""
    trace = generate(w.kind, programs=programs, rate=w.rate, seed=seed)
    profile = load_profile(DEFAULT_PROFILE)
    sim = Simulation(trace, policy, profile, kv_tokens=w.kv_tokens)
    recorder = RecordingScheduler(
        sim.policy, sim.scheduler.config, reload_s=reload_from_profile(sim.engine.profile)
    )
    recorder.log = _Log(lengths=list(lengths or []))
    if workflows is not None:
        recorder.workflows = workflows
    sim.scheduler = recorder
    result = sim.run()
    ends = {r.program_id: r.finished_at for r in result.programs}
    return recorder.log, ends, recorder.workflows


def _actual_next(arrivals: list[_Arrival]) -> dict[str, str]:
    """Per call: the agent of the first later call that follows from it, else the end."""
    by_step: dict[tuple[str, str], str] = {}
    following: dict[str, str] = {}
    last: dict[str, str] = {}
    for a in arrivals:
        spec = a.spec
        parent = last.get(spec.program_id)
        if spec.parent_step is not None:
            parent = by_step.get((spec.program_id, spec.parent_step), parent)
        if parent is not None and parent not in following:
            following[parent] = spec.agent or "main"
        if spec.step is not None:
            by_step[(spec.program_id, spec.step)] = spec.call_id
        last[spec.program_id] = spec.call_id
    return {a.spec.call_id: following.get(a.spec.call_id, END) for a in arrivals}


def _rank_corr(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3:
        return float("nan")
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def evaluate(kind: str, log: _Log, ends: dict[str, float | None]) -> dict[str, Any]:
    nexts = _actual_next(log.arrivals)
    rows = log.arrivals
    hits = [
        a.prediction.next_agent == nexts[a.spec.call_id]
        for a in rows
        if a.prediction is not None and a.prediction.next_agents
    ]
    scored = [
        (a, a.prediction) for a in rows if a.prediction and a.prediction.remaining_calls.samples
    ]
    pid = [a.spec.program_id for a, _ in scored]
    calls = _pairs(
        [p.remaining_calls.mean for _, p in scored],
        [log.calls[i] - a.k for i, (a, _) in zip(pid, scored, strict=True)],
    )
    naive = _pairs([a.naive_calls or 0.0 for a, _ in scored], calls[1])
    service = _pairs(
        [p.remaining_service_s.mean for _, p in scored],
        [log.service.get(i, 0.0) - a.service_before for i, (a, _) in zip(pid, scored, strict=True)],
    )
    wall = _pairs(
        [p.remaining_time_s.mean for _, p in scored],
        [(ends[i] or a.at) - a.at for i, (a, _) in zip(pid, scored, strict=True)],
    )
    pauses = [
        (p, log.pauses_seen[c])
        for c, p in log.pauses_predicted.items()
        if c in log.pauses_seen and p.samples
    ]
    seen = np.array([s for _, s in pauses])
    return {
        "workload": kind,
        "calls": len(rows),
        "coverage": len(scored) / len(rows) if rows else 0.0,
        "next_top1": _mean(hits),
        "calls_mae": _mae(*calls),
        "calls_naive_mae": _mae(*naive),
        "calls_rel": _rel(*calls),
        "service_mae": _mae(*service),
        "service_rel": _rel(*service),
        "time_mae": _mae(*wall),
        "time_rel": _rel(*wall),
        "time_rank": _rank_corr(*wall),
        "pauses": len(pauses),
        "pause_mae": _mae(np.array([p.mean_s for p, _ in pauses]), seen),
        "pause_mean": _mean(seen),
        "pause_p90_cover": _mean([s <= p.p90_s for p, s in pauses]),
    }


def _pairs(pred: Any, true: Any) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(pred, dtype=float), np.asarray(true, dtype=float)


def _mean(values: Any) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def _mae(pred: np.ndarray, true: np.ndarray) -> float:
    return _mean(np.abs(pred - true))


def _rel(pred: np.ndarray, true: np.ndarray) -> float:
    """Median of |pred - true| / max(true, 1)."""
    if not len(true):
        return float("nan")
    return float(np.median(np.abs(pred - true) / np.maximum(true, 1.0)))


COLUMNS = [
    ("workload", "workload", "{}"),
    ("calls scored", "calls", "{:,}"),
    ("learned", "coverage", "{:.0%}"),
    ("next agent top-1", "next_top1", "{:.1%}"),
    ("calls left MAE", "calls_mae", "{:.2f}"),
    ("naive MAE", "calls_naive_mae", "{:.2f}"),
    ("calls left rel.", "calls_rel", "{:.0%}"),
    ("service left MAE s", "service_mae", "{:.2f}"),
    ("service rel.", "service_rel", "{:.0%}"),
    ("time left MAE s", "time_mae", "{:.1f}"),
    ("time rel.", "time_rel", "{:.0%}"),
    ("time rank corr.", "time_rank", "{:.2f}"),
    ("pauses", "pauses", "{:,}"),
    ("pause MAE s", "pause_mae", "{:.2f}"),
    ("mean pause s", "pause_mean", "{:.2f}"),
    ("pause <= p90", "pause_p90_cover", "{:.0%}"),
]


def _cell(fmt: str, value: Any) -> str:
    return "-" if isinstance(value, float) and math.isnan(value) else fmt.format(value)


def markdown(rows: list[dict[str, Any]], command: str, policy: str, warmup: int) -> str:
    head = "| " + " | ".join(c[0] for c in COLUMNS) + " |"
    rule = "|---" * len(COLUMNS) + "|"
    body = ["| " + " | ".join(_cell(f, r[k]) for _, k, f in COLUMNS) + " |" for r in rows]
    return f"""## Workflow-graph predictions

Each workload of the sections above (trace seed 0, rate x1) under the `{policy}` policy,
with graphs warmed by a training run of {warmup} programs of the same workload (seed 1);
every call's arrival in the scored run is scored, and the graphs keep learning during it.
*learned*: share of arrivals whose remaining-work tables had data; *next agent top-1*: the
most likely next agent is the agent of the first call that followed from this one (or the
program's end); *calls left MAE*: mean
absolute error of the remaining calls, next to the *naive* mean-length-minus-calls-made
predictor; *rel.*: median of |error| / max(actual, 1); *time rank corr.*: Spearman
correlation of predicted and actual remaining wall time (what shortest-remaining-first
ordering needs); *pause*: predicted when a call that asked for tools finishes, set against the
pause that followed (*pause <= p90*: share of pauses at most the predicted 90th percentile).

{chr(10).join([head, rule, *body])}

```bash
{command}
```
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--policy", default="kvbaton")
    parser.add_argument(
        "--warmup", type=int, default=200, help="programs of a training run (seed 1) first"
    )
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of each workload")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "predictions.md")
    args = parser.parse_args(argv)
    console = Console(width=200)  # the table is wide; a pipe would get 80 columns
    rows = []
    for w in WORKLOADS:
        programs = max(10, int(w.programs * args.scale))
        label = getattr(w, "label", w.kind)
        console.print(f"{label}: {args.warmup} programs to train, {programs} scored ...")
        workflows, lengths = None, None
        if args.warmup:
            train, _, workflows = simulate_logged(w, args.warmup, args.policy, seed=1)
            lengths = train.lengths
        log, ends, _ = simulate_logged(w, programs, args.policy, 0, workflows, lengths)
        rows.append(evaluate(label, log, ends))
    table = Table(title=f"workflow-graph predictions ({args.policy}, warm-up {args.warmup})")
    for name, _, _ in COLUMNS:
        table.add_column(name, justify="right")
    for r in rows:
        table.add_row(*(_cell(f, r[k]) for _, k, f in COLUMNS))
    console.print(table)
    command = ".venv/bin/python benchmarks/prediction_accuracy.py"
    if args.policy != "kvbaton" or args.warmup != 200 or args.scale != 1.0:
        command += f" --policy {args.policy} --warmup {args.warmup} --scale {args.scale:g}"
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(markdown(rows, command, args.policy, args.warmup), encoding="utf-8")
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
