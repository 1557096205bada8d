#!/usr/bin/env bash
# The test command: install (into .venv, see setup.sh), lint, type-check, run the whole suite against real peers.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$(bash scripts/setup.sh --print-python)"
"$PY" -m ruff format --check src tests bench demo
"$PY" -m ruff check src tests bench demo
"$PY" -m mypy
"$PY" -m pytest -q "$@"
