# Shared environment for Rubin AI scripts: source it, don't run it.
# Everything lives inside the checkout: .venv (Python), .tools (bun, Reflex's cache).
RUBIN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export RUBIN_ROOT
export PATH="$RUBIN_ROOT/.venv/bin:$RUBIN_ROOT/.tools/bun/node_modules/.bin:$PATH"
export NODE_EXTRA_CA_CERTS="${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}"
export REFLEX_TELEMETRY_ENABLED=false
export REFLEX_CHECK_LATEST_VERSION=false
export REFLEX_USE_SYSTEM_BUN=1
export REFLEX_DIR="$RUBIN_ROOT/.tools/reflex"
export BUN_INSTALL_CACHE_DIR="$RUBIN_ROOT/.tools/bun-cache"
export PYTHONUNBUFFERED=1
