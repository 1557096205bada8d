#!/usr/bin/env bash
# The main job: install what is needed, start a local registry, fill it with images, and show what sigscope sees.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${PYTHON:-python3}" demo/demo.py "$@"
