#!/usr/bin/env bash
# The test command: install, lint, type-check, run the whole suite against real peers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PYTHON="${PYTHON:-python3}"
"$PYTHON" -m ruff format --check src tests bench demo
"$PYTHON" -m ruff check src tests bench demo
"$PYTHON" -m mypy
"$PYTHON" -m pytest -q "$@"
