#!/usr/bin/env bash
# SGLang's frontend language (sglang 0.5.23) for tests/integrations/test_sglang_frontend.py,
# in its own venv: build/sglang-frontend/venv (about 2.3 GB: CPU torch and triton, which
# `import sglang` needs, and sglang without its serving dependencies).
#
#   bash scripts/sglang_frontend.sh        # install, or reuse when it already imports
#
# Skips (exit 0) where it cannot be installed (no package index, not Linux x86-64); the test
# then skips too. KVBATON_SGLANG_FRONTEND=skip skips on purpose.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=build/sglang-frontend/venv
PY=${PYTHON:-python3.11}
skip() { echo "sglang frontend: SKIPPED: $*"; exit 0; }

[ "${KVBATON_SGLANG_FRONTEND:-}" = "skip" ] && skip "KVBATON_SGLANG_FRONTEND=skip"
[ "$(uname -sm)" = "Linux x86_64" ] || skip "the CPU torch wheel is for Linux x86-64 only"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c \
  'import importlib.metadata as m, sys; sys.exit(m.version("sglang") != "0.5.23")' 2>/dev/null
then
  echo "sglang frontend: reusing $VENV"
  exit 0
fi
start=$(date +%s)
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
"$PY" -m venv "$VENV"
{
  "$VENV/bin/pip" install -q --upgrade pip &&
  "$VENV/bin/pip" install -q torch==2.13.0 triton==3.9.0 numpy orjson psutil pybase64 requests \
    packaging pillow starlette msgspec pydantic pyzmq tqdm ipython aiohttp &&
  "$VENV/bin/pip" install -q --no-deps sglang==0.5.23
} >build/sglang-frontend/install.log 2>&1 || {
  rm -rf "$VENV"
  skip "install failed (see build/sglang-frontend/install.log)"
}
"$VENV/bin/python" -c 'import sglang' || { rm -rf "$VENV"; skip "import sglang failed"; }
echo "sglang frontend: installed in $VENV in $(( $(date +%s) - start )) s"
