#!/usr/bin/env bash
# Run the streaming benchmark (bench/stream_bench.py) and print its table.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$RUBIN_ROOT"
"$RUBIN_ROOT/scripts/bootstrap.sh" requirements-dev.txt
command -v chromium >/dev/null || { echo "Debian chromium is needed: run scripts/test.sh once, or apt-get install chromium" >&2; exit 1; }
python -m bench.stream_bench "$@"
