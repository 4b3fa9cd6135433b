#!/usr/bin/env bash
# Install what the app needs into the checkout: a venv with pinned packages and bun (from npm).
# Idempotent: a second run only checks stamps. Usage: scripts/bootstrap.sh [requirements-file ...]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$RUBIN_ROOT"

BUN_VERSION=1.4.4
PYTHON="${PYTHON:-python3}"
step() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

if [ ! -x .venv/bin/python ]; then
  step "creating the Python virtual environment (.venv)"
  "$PYTHON" -m venv .venv
fi

reqs=("${@:-requirements.txt}")
stamp=".venv/.rubin-$(cat "${reqs[@]}" requirements.txt | sha256sum | cut -c1-16)-$(echo "${reqs[*]}" | sha256sum | cut -c1-8)"
if [ ! -f "$stamp" ]; then
  step "installing Python packages: ${reqs[*]}"
  args=()
  for r in "${reqs[@]}"; do args+=(-r "$r"); done
  .venv/bin/pip install --disable-pip-version-check -q "${args[@]}"
  touch "$stamp"
fi

if [ "$(.tools/bun/node_modules/.bin/bun --version 2>/dev/null || true)" != "$BUN_VERSION" ]; then
  step "installing bun $BUN_VERSION from the npm registry (Reflex's JS runtime)"
  command -v npm >/dev/null || { echo "npm is required (apt-get install -y nodejs npm)" >&2; exit 1; }
  mkdir -p .tools/bun
  npm install --prefix .tools/bun "bun@$BUN_VERSION" --no-audit --no-fund --loglevel=error >/dev/null
fi
