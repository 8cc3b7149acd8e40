"""Engine capabilities and priority conventions."""

from kvbaton.adapters.base import Capabilities
from kvbaton.adapters.detect import capabilities_from_server_info
from kvbaton.adapters.http import HttpBackend


async def test_priority_conventions() -> None:
    for caps, expected in (
        (Capabilities("sglang", priority=True, higher_first=True), -3),
        (Capabilities("vllm", priority=True, higher_first=False), 3),
    ):
        backend = HttpBackend("http://127.0.0.1:9", caps)
        body: dict[str, object] = {}
        backend.set_priority(body, 3)
        await backend.aclose()
        assert body == {"priority": expected}


async def test_no_priority_capability_sends_nothing() -> None:
    backend = HttpBackend("http://127.0.0.1:9", Capabilities("openai"))
    body: dict[str, object] = {}
    backend.set_priority(body, 3)
    await backend.aclose()
    assert body == {}


def test_sglang_server_info() -> None:
    caps = capabilities_from_server_info(
        {"enable_priority_scheduling": False, "internal_states": [{"max_total_num_tokens": 99}]}
    )
    assert (caps.kind, caps.priority, caps.kv_tokens) == ("sglang", False, 99)
    caps = capabilities_from_server_info(
        {"enable_priority_scheduling": True, "schedule_low_priority_values_first": True}
    )
    assert caps.priority and not caps.higher_first
    assert capabilities_from_server_info({"engine": "kvbaton-embedded"}).kind == "embedded"
    assert not capabilities_from_server_info({}, priority="off").priority
