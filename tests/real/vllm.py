"""The real engine the tests in this folder talk to: vLLM on loopback.

``scripts/real_engine.sh`` starts one and sets ``KVBATON_REAL_ENGINE_URL`` (and the venv's
python and the model, so a test can start a second engine of its own); without it every
test here is skipped.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

URL = os.environ.get("KVBATON_REAL_ENGINE_URL", "")
PYTHON = os.environ.get("KVBATON_REAL_ENGINE_PYTHON", "")
MODEL = os.environ.get("KVBATON_REAL_ENGINE_MODEL", "")

needs_real_engine = pytest.mark.skipif(
    not URL, reason="no real engine: run scripts/real_engine.sh (sets KVBATON_REAL_ENGINE_URL)"
)

BLOCK = 128  # vLLM's KV block on CPU: cached_tokens come in whole blocks
KV_TOKENS = 64 * BLOCK  # --num-gpu-blocks-override 64, as scripts/real_engine.sh starts it

_ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
    "VLLM_HOST_IP": "127.0.0.1",
    "VLLM_LOOPBACK_IP": "127.0.0.1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def metric(url: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus series on vLLM's /metrics whose labels include ``labels``."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as r:
        text = r.read().decode()
    total = 0.0
    for match in re.finditer(rf"^{re.escape(name)}\{{([^}}]*)\}} (\S+)$", text, re.MULTILINE):
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(2))
    return total


@dataclass
class OwnEngine:
    """A vLLM engine a test starts, kills and restarts itself (the shared one must stay up)."""

    port: int
    args: tuple[str, ...]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 240) -> None:
        command = [PYTHON, "-m", "vllm.entrypoints.openai.api_server", "--model", MODEL]
        command += ["--port", str(self.port), *self.args]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, **_ENV}, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while not healthy(self.url):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"vLLM on port {self.port} did not start; see {self.log}")
            time.sleep(0.5)

    def kill(self) -> None:
        """SIGKILL the whole engine (API server, EngineCore, worker): a crash, not a shutdown."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
            self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()  # the API server takes its children down on SIGTERM
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(20)
        self.kill()


@contextlib.contextmanager
def own_engine(log_dir: Path, *extra: str) -> Iterator[OwnEngine]:
    """A second engine like the shared one (small KV cache, priority scheduler), started
    with ``extra`` flags and always stopped by its PID."""
    args = (
        "--served-model-name", "tiny", "--host", "127.0.0.1", "--max-model-len", "4096",
        "--num-gpu-blocks-override", "64", "--max-num-batched-tokens", "2048",
        "--enforce-eager", "--enable-prefix-caching", "--enable-prompt-tokens-details",
        "--scheduling-policy", "priority", *extra,
    )  # fmt: skip
    engine = OwnEngine(free_port(), args, log_dir / "own-engine.log")
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()
