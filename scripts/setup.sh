#!/usr/bin/env bash
# Installs what sigscope's tests and demo need on a fresh Debian 12 machine (idempotent), and the project with
# its test extra into its own virtual environment (.venv, or $SIGSCOPE_VENV): no system site-packages, so a
# dependency that pyproject.toml does not declare fails here and in CI, not on a user's machine.
# Prints nothing on success but what the installers had to say; `bash scripts/setup.sh --print-python` prints
# the environment's interpreter path last.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(docker-registry skopeo gnupg openssl osslsigncode openjdk-17-jdk-headless xmlsec1 apksigner softhsm2 opensc jq postgresql chromium)
APT_PACKAGES+=(redis-server)  # the webhook's shared verdict cache, started by its tests
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# `python3 -m venv` needs Debian's python3-venv when python3 is the system interpreter.
BASE_PYTHON="${PYTHON:-python3}"
"$BASE_PYTHON" -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # debconf's "delaying package configuration" notice is noise to a user who ran the demo.
  $SUDO apt-get install -y -qq "${missing[@]}" 2>&1 >/dev/null | grep -v -e '^debconf: ' >&2 || true
  for pkg in "${missing[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
      || { echo "setup: apt-get could not install $pkg" >&2; exit 2; }
  done
fi

VENV="${SIGSCOPE_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  "$BASE_PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]' 2>&1 \
  | grep -v -e "Running pip as the 'root' user" -e "is ignored: it is neither" -e '^\[notice\]' >&2 || true
"$VENV/bin/python" -c 'import sigscope' || { echo "setup: the project did not install into $VENV" >&2; exit 2; }
bash scripts/install-peers.sh  # cosign, notation, oras, registry v3, regctl (scripts/peers.txt); fails only with SIGSCOPE_PEERS_STRICT=1
if [ "${1:-}" = "--print-python" ]; then
  echo "$VENV/bin/python"
fi
