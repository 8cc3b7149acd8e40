"""The SDK's own requests to the proxy (graph, program end), against a recording stand-in."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator

import pytest

import kvbaton.workflows as kw
from kvbaton.middleware.protocol import wire

from .conftest import Recorder


@pytest.fixture
def at(recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    monkeypatch.delenv("KVBATON_URL", raising=False)
    kw.configure(url=recorder.url)
    yield recorder
    kw.configure()


@kw.tool("lookup", expected_duration_s=0.5)
def lookup() -> None:
    pass


@kw.agent("asker", next=["answerer"], tools=["lookup"])
def asker() -> None:
    lookup()
    kw.headers()


@kw.agent("answerer")
def answerer() -> None:
    kw.headers()


def make_flow(name: str, fail: bool = False) -> object:
    @kw.workflow(name, entry="asker")
    def flow() -> str:
        asker()
        answerer()
        if fail:
            raise KeyError("boom")
        info = kw.current_program()
        assert info is not None
        return info.program_id

    return flow


def test_graph_once_per_workflow_and_end_per_program(at: Recorder) -> None:
    flow = make_flow("proxy-once")
    first, second = flow(), flow()  # type: ignore[operator]
    puts = at.of("PUT")
    assert puts == [
        (
            "/kvbaton/v1/workflows/proxy-once",
            {
                "name": "proxy-once",
                "entry": "asker",
                "agents": [
                    {"name": "asker", "next": ["answerer"], "tools": ["lookup"], "last": False},
                    {"name": "answerer", "next": [], "tools": [], "last": False},
                ],
                "tools": [{"name": "lookup", "expected_duration_s": 0.5}],
            },
        )
    ]
    ends = [path for path, _ in at.of("POST")]
    assert ends == [wire.PATH_PROGRAM_END.format(program_id=p) for p in (first, second)]


def test_the_program_ends_when_the_workflow_raises(at: Recorder) -> None:
    with pytest.raises(KeyError):
        make_flow("proxy-raises", fail=True)()  # type: ignore[operator]
    ((path, _),) = at.of("POST")
    assert path.startswith("/kvbaton/v1/programs/proxy-raises-") and path.endswith("/end")


def test_a_program_without_calls_sends_no_end(at: Recorder) -> None:
    @kw.workflow("proxy-silent", agents=())
    def silent() -> int:
        return 7

    assert silent() == 7
    assert at.of("POST") == []


def test_a_refused_graph_is_logged_with_the_proxy_message(
    at: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    at.status = 400
    with caplog.at_level(logging.WARNING, "kvbaton.workflows"):
        make_flow("proxy-refused")()  # type: ignore[operator]
    assert (
        "rejected PUT /kvbaton/v1/workflows/proxy-refused: agents[0].next names 'x'" in caplog.text
    )


def test_an_unreachable_proxy_never_breaks_the_program(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("KVBATON_URL", f"http://127.0.0.1:{port}")
    flow = make_flow("proxy-down")
    with caplog.at_level(logging.WARNING, "kvbaton.workflows"):
        results = [flow() for _ in range(3)]  # type: ignore[operator]
    assert len(set(results)) == 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    # once for the graph, once for program ends: not once per program
    assert len(warnings) == 2, caplog.text
    assert all(f"127.0.0.1:{port}" in r.getMessage() for r in warnings)


async def test_the_async_path_leaves_the_loop_free(at: Recorder) -> None:
    at.delay_s = 0.3

    @kw.agent("slow-ender")
    async def slow() -> None:
        kw.headers()

    @kw.workflow("proxy-async", agents=["slow-ender"])
    async def flow() -> None:
        await slow()

    order: list[str] = []

    async def flow_then_mark() -> None:
        await flow()
        order.append("workflow")

    async def ticker() -> None:
        await asyncio.sleep(0.05)
        order.append("ticker")

    await asyncio.gather(flow_then_mark(), ticker())
    assert order == ["ticker", "workflow"]  # the ticker ran while the proxy was slow
    assert [m for m, _, _ in at.requests] == ["PUT", "POST"]


def test_a_retried_request_keeps_its_step(at: Recorder) -> None:
    from openai import InternalServerError, OpenAI

    at.status = 500
    client = kw.wrap(OpenAI(base_url=f"{at.url}/v1", api_key="t", max_retries=1))

    @kw.workflow("proxy-retry", agents=())
    def flow() -> None:
        with pytest.raises(InternalServerError):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        kw.headers()  # the program's next call is a new step

    flow()
    client.close()
    sent = [h for (_, path, _), h in zip(at.requests, at.headers, strict=True) if "chat" in path]
    assert [h["x-stainless-retry-count"] for h in sent] == ["0", "1"]
    assert [h[wire.HEADER_STEP] for h in sent] == ["1", "1"]
    assert sent[0][wire.HEADER_PROGRAM_ID] == sent[1][wire.HEADER_PROGRAM_ID]
