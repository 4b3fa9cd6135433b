#!/usr/bin/env bash
# LiteLLM's proxy in a virtualenv of its own (.tools/litellm-venv), for bench/gateway_bench.py.
# Never in .venv: litellm[proxy] pins its own fastapi/starlette/pydantic/httpx/... and would move the app's pins.
# Idempotent: does nothing when the pinned version is already there.
#   bench/setup_litellm.sh                          install (or check) the pinned version
#   LITELLM_VERSION=1.x.y bench/setup_litellm.sh    another version (same venv, replaced)
# 1.108.7 is the newest litellm[proxy] that installs from this machine's PyPI mirror: 1.109.x needs
# litellm-proxy-extras 0.4.113 and 1.110.x a `litellm-proxy` package, which the mirror does not have.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="${LITELLM_VERSION:-1.108.7}"
VENV="$ROOT/.tools/litellm-venv"
PY="${PYTHON:-python3}"

installed() {
  "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))' 2>/dev/null || true
}

if [ -x "$VENV/bin/litellm" ] && [ "$(installed)" = "$VERSION" ]; then
  echo "litellm[proxy]==$VERSION already in $VENV"
  exit 0
fi
mkdir -p "$ROOT/.tools"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# pip's warnings about this machine's absent local index folders are noise: filtered, errors kept.
"$VENV/bin/python" -m pip install --quiet --upgrade pip 2>&1 | { grep -v "^WARNING: Location" || true; }
"$VENV/bin/python" -m pip install --quiet "litellm[proxy]==$VERSION" 2>&1 | { grep -v "^WARNING: Location" || true; }
[ "$(installed)" = "$VERSION" ] || { echo "litellm[proxy]==$VERSION did not install in $VENV" >&2; exit 1; }
echo "installed litellm[proxy]==$VERSION in $VENV"
