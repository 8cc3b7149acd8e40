"""``kvbaton profile`` end to end: real processes, against the embedded engine, whose cost
model is known, so the measured profile can be checked against it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvbaton.middleware.engine import load_profile
from tests.test_cli import free_port, kvbaton

SCALE = 1.0  # engine seconds per model second: steps long enough to time over loopback


@pytest.fixture(scope="module")
def engine_url() -> Iterator[str]:
    port = free_port()
    args = ["engine", "--port", str(port), "--profile", "demo-tiny", "--time-scale", str(SCALE)]
    with kvbaton(*args):
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/health", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield url


def _profile(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "kvbaton", "profile", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_profile_of_the_embedded_engine_matches_its_cost_model(
    engine_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "measured.json"
    done = _profile(
        "--engine", engine_url, "--name", "measured", "-o", str(out),
        "--prompt-tokens", "128,512,1024,1536", "--batches", "1,2,4",
        "--decode-contexts", "128,1024", "--decode-tokens", "12", "--repeats", "1",
        "--kv-bytes-per-token", "131072",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "wrote profile 'measured'" in done.stdout
    measured, truth = load_profile(str(out)), load_profile("demo-tiny")
    # What the engine reports comes from /server_info; what was given is marked chosen.
    assert (measured.kv_tokens, measured.max_running) == (truth.kv_tokens, truth.max_running)
    kinds = {s.figure: s.kind for s in measured.sources}
    assert kinds == {
        "prefill": "measured", "decode": "measured", "kv_bytes_per_token": "chosen",
        "kv_tokens": "measured", "max_running": "measured", "chunk_tokens": "measured",
        "page_size": "measured",
    }  # fmt: skip
    # The fitted model predicts the engine's own, in its time scale (the prefill step makes
    # a one-token reply's only token). Loopback and a busy CPU only ever add time, so the
    # bounds are lopsided: never 25% fast, at most 60% slow.
    checks = [(measured.prefill_s(n), truth.prefill_s(n)) for n in (256, 1024)]
    checks += [
        (measured.decode_step_s(b, ctx), truth.decode_step_s(b, ctx))
        for b, ctx in ((1, 200), (4, 2000))
    ]
    for fitted, model in checks:
        assert 0.75 * SCALE * model <= fitted <= 1.6 * SCALE * model, (fitted, SCALE * model)
    assert json.loads(out.read_text())["name"] == "measured"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "profile.txt"], "must end in .json"),
        (["--repeats", "0"], "repeats >= 1"),
        (["--batches", "1,x"], "invalid literal"),
    ],
)
def test_profile_refuses_bad_arguments(
    engine_url: str, tmp_path: Path, args: list[str], message: str
) -> None:
    done = _profile("--engine", engine_url, "--name", "x", *args)
    assert done.returncode == 2 and message in done.stderr


def test_profile_of_a_dead_engine_fails_cleanly() -> None:
    done = _profile("--engine", f"http://127.0.0.1:{free_port()}", "--name", "x")
    assert done.returncode == 1 and "kvbaton profile:" in done.stderr
    assert "Traceback" not in done.stderr
