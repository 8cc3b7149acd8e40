"""The headers each LLM call would carry, read through ``headers()`` with no proxy at all."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import kvbaton.workflows as kw
from kvbaton.middleware.protocol import wire

PROGRAM, AGENT, STEP, PARENT = (
    wire.HEADER_PROGRAM_ID,
    wire.HEADER_AGENT,
    wire.HEADER_STEP,
    wire.HEADER_PARENT_STEP,
)


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KVBATON_URL", raising=False)


@kw.tool
def grep(pattern: str) -> str:
    return pattern.upper()


@kw.tool("fetch", expected_duration_s=1.0)
async def fetch(url: str) -> str:
    await asyncio.sleep(0)
    return url


@kw.agent(next=["critic"], tools=[grep])
def coder() -> list[dict[str, str]]:
    first = kw.headers()
    grep("x")
    second = kw.headers()
    return [first, second, critic()]


@kw.agent("critic")
def critic() -> dict[str, str]:
    return kw.headers()


@kw.workflow("ctx-sync", entry="coder", tenant="acme")
def sync_flow() -> list[dict[str, str]]:
    before = kw.headers()
    calls = coder()
    return [before, *calls, kw.headers()]


def test_sync_steps_agents_and_parents() -> None:
    root, first, second, nested, after = sync_flow()
    program = root[PROGRAM]
    assert program.startswith("ctx-sync-") and len(program) == len("ctx-sync-") + 12
    assert {h[PROGRAM] for h in (first, second, nested, after)} == {program}
    assert [h[STEP] for h in (root, first, second, nested, after)] == ["1", "2", "3", "4", "5"]
    assert AGENT not in root and PARENT not in root
    assert (first[AGENT], first[PARENT]) == ("coder", "1")
    assert (second[AGENT], second[PARENT]) == ("coder", "2")
    assert (nested[AGENT], nested[PARENT]) == ("critic", "3")
    # Back in the workflow body: the call follows the last step its agents took.
    assert AGENT not in after and after[PARENT] == "4"
    assert all(h[wire.HEADER_WORKFLOW] == "ctx-sync" for h in (root, after))
    assert all(h[wire.HEADER_TENANT] == "acme" for h in (root, after))


def test_tool_named_on_the_next_call_only() -> None:
    _, first, second, nested, _ = sync_flow()
    assert wire.HEADER_TOOL not in first
    assert second[wire.HEADER_TOOL] == "grep"
    assert wire.HEADER_TOOL not in nested


def test_each_call_is_a_new_program() -> None:
    assert sync_flow()[0][PROGRAM] != sync_flow()[0][PROGRAM]


def test_outside_a_workflow_nothing_is_added() -> None:
    assert kw.headers() == {}
    assert kw.current_program() is None
    assert grep("plain") == "PLAIN"  # a tool outside a workflow just runs


def test_agent_outside_a_workflow_says_what_to_do() -> None:
    with pytest.raises(
        kw.OutsideWorkflowError, match=r"agent 'critic'.*@kvbaton.workflows.workflow"
    ):
        critic()


@kw.agent("researcher", fan_out=3)
async def researcher(topic: str) -> dict[str, str]:
    await fetch(topic)
    await asyncio.sleep(0.01 if topic == "a" else 0.05)
    return kw.headers()


@kw.agent("planner", next=["researcher", "writer"])
async def planner() -> dict[str, str]:
    return kw.headers()


@kw.agent("writer", last=True)
async def writer() -> dict[str, str]:
    with kw.last_step():
        return kw.headers()


@kw.workflow("ctx-async", entry="planner", deadline_s=30)
async def async_flow() -> tuple[list[dict[str, str]], kw.ProgramInfo | None]:
    plan = await planner()
    found = await asyncio.gather(researcher("a"), researcher("b"))
    done = await writer()
    return [plan, *found, done], kw.current_program()


async def test_fork_and_join_across_tasks() -> None:
    (plan, a, b, done), info = await async_flow()
    assert a[PARENT] == b[PARENT] == plan[STEP]  # both branches fork from the planner
    assert {a[AGENT], b[AGENT]} == {"researcher"}
    assert done[PARENT] == b[STEP]  # the join follows the branch that returned last
    assert done[wire.HEADER_LAST_STEP] == "true" and wire.HEADER_LAST_STEP not in a
    assert 29 < float(done[wire.HEADER_DEADLINE]) <= 30
    assert a[wire.HEADER_TOOL] == b[wire.HEADER_TOOL] == "fetch"  # each branch its own run
    assert info is not None and info.steps == 4
    assert info.agents == ("planner", "researcher", "writer")
    assert [(r.name, r.agent, r.ok) for r in info.tool_runs] == [("fetch", "researcher", True)] * 2


@kw.agent("threaded")
def threaded() -> dict[str, str]:
    return kw.headers()


@kw.workflow("ctx-threads", agents=[threaded])
async def thread_flow() -> list[dict[str, str]]:
    off_loop = await kw.to_thread(threaded)
    with ThreadPoolExecutor(2) as pool:
        bound = kw.in_context(threaded)
        pooled = list(pool.map(lambda _: bound(), range(4)))
    return [off_loop, *pooled]


async def test_threads_carry_the_program() -> None:
    calls = await thread_flow()
    assert len({h[PROGRAM] for h in calls}) == 1
    assert {h[AGENT] for h in calls} == {"threaded"}
    assert sorted(int(h[STEP]) for h in calls) == [1, 2, 3, 4, 5]


def test_a_plain_thread_does_not_see_the_program() -> None:
    seen: list[dict[str, str]] = []

    @kw.workflow("ctx-plain-thread", agents=())
    def flow() -> None:
        worker = threading.Thread(target=lambda: seen.append(kw.headers()))
        worker.start()
        worker.join()

    flow()
    assert seen == [{}]


@kw.workflow("ctx-retry", agents=())
def retry_flow() -> list[dict[str, str]]:
    return [kw.headers(), kw.headers(retry=True), kw.headers()]


def test_a_retry_repeats_the_step() -> None:
    first, again, nxt = retry_flow()
    assert again == first
    assert nxt[STEP] == "2"


@kw.tool("broken")
def broken() -> None:
    raise OSError("disk")


@kw.workflow("ctx-failing-tool", agents=())
def failing_tool_flow() -> kw.ProgramInfo | None:
    with pytest.raises(OSError):
        broken()
    return kw.current_program()


def test_a_failing_tool_is_recorded_as_failed() -> None:
    info = failing_tool_flow()
    assert info is not None
    assert [(r.name, r.ok) for r in info.tool_runs] == [("broken", False)]
    assert info.tool_runs[0].duration_s >= 0


def test_decorated_functions_keep_their_names_and_docs() -> None:
    assert coder.__name__ == "coder" and sync_flow.__name__ == "sync_flow"
    assert asyncio.iscoroutinefunction(async_flow) and asyncio.iscoroutinefunction(researcher)
