#!/usr/bin/env bash
# Open WebUI in a virtualenv of its own (.tools/owui-venv), for bench/peer_bench.py (scripts/bench.sh peers).
# Never in .venv: open-webui pins its own fastapi/starlette/pydantic/sqlalchemy/... and would move the app's pins.
# torch goes in first from the CPU build (open-webui's sentence-transformers would otherwise pull the CUDA wheels,
# gigabytes); `pip install torch==2.13.0` resolves to the local CPU build on this machine, elsewhere the PyTorch
# CPU index is used (TORCH_INDEX_URL).
# Idempotent: does nothing when the pinned version is already there.
#   bench/setup_owui.sh                        install (or check) the pinned version
#   OWUI_VERSION=0.x.y bench/setup_owui.sh     another version (same venv, replaced)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="${OWUI_VERSION:-0.12.4}"
TORCH="${TORCH_VERSION:-2.13.0}"
VENV="$ROOT/.tools/owui-venv"
PY="${PYTHON:-python3}"

installed() {
  "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("open-webui"))' 2>/dev/null || true
}

if [ -x "$VENV/bin/open-webui" ] && [ "$(installed)" = "$VERSION" ]; then
  echo "open-webui==$VERSION already in $VENV"
  exit 0
fi
mkdir -p "$ROOT/.tools"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pipi() {
  # pip's warnings about this machine's absent local index folders are noise: filtered, errors kept.
  "$VENV/bin/python" -m pip install --quiet "$@" 2>&1 | { grep -v "^WARNING: Location" || true; }
  return "${PIPESTATUS[0]}"
}
pipi --upgrade pip
if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    pipi "torch==$TORCH" --index-url "$TORCH_INDEX_URL"
  else
    pipi "torch==$TORCH"
  fi
fi
pipi "open-webui==$VERSION"
[ "$(installed)" = "$VERSION" ] || { echo "open-webui==$VERSION did not install in $VENV" >&2; exit 1; }
echo "installed open-webui==$VERSION in $VENV (torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)'))"
