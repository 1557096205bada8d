#!/usr/bin/env bash
# The main job: install what is needed, start a local registry, fill it with images, and show what sigscope sees.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$(bash scripts/setup.sh --print-python)"
exec "$PY" demo/demo.py "$@"
