#!/usr/bin/env bash
# Run a benchmark and print its table:
#   scripts/bench.sh [args]        streaming (bench/stream_bench.py; needs Chromium)
#   scripts/bench.sh redis [args]  Redis: cache/limit cost, cache-hit TTFT, many streams on several workers
#   scripts/bench.sh longchat [args]  a 2,000-message chat: open time, per-delta time, JS/CSS bytes (Chromium)
#   scripts/bench.sh gateway [args]   the OpenAI-compatible API vs LiteLLM's proxy (installs LiteLLM in its own venv)
#   scripts/bench.sh encryption [args]  encryption at rest on vs off (TTFT, long chat), key rotation per 100k messages
#   scripts/bench.sh cluster [args]   the cluster under faults (per fault, a soak) and users per core (haproxy)
#   scripts/bench.sh metrics [args]  Prometheus metrics: cost per streamed event, answer, HTTP request; a scrape
#   scripts/bench.sh backup [args]      backups: time and size vs a bare copy, restore, writers' latency during a backup
#   scripts/bench.sh container [args]   the container image: size, cold start vs scripts/run.sh, idle memory (podman)
#   scripts/bench.sh ingest [args]      knowledge ingestion: extraction + chunking pages/s per format vs plain text
#   scripts/bench.sh memory [args]      personalisation: the cost of instructions + relevant memories on the send path
#   scripts/bench.sh embedding [args]   the bundled embedding model: chunks/s by batch size, via its server, query latency
#   scripts/bench.sh knowledge-ttft     time to first token with a 10k-chunk knowledge base attached vs none
#   scripts/bench.sh retrieval [args]   knowledge retrieval latency p50/p95 at 10k/100k chunks, SQLite and PostgreSQL+pgvector
#   scripts/bench.sh crowd [args]       20 headless clients sending at once: first piece, all done vs one answer alone
#   scripts/bench.sh startup [args]     start to first 200, first-load bytes, idle PSS: run.sh now vs before #16 (Chromium)
#   scripts/bench.sh retrieval-quality [args]  recall@5/MRR on the Debian documentation set (RU+EN), pages/s
#   scripts/bench.sh peers [args]       side by side with Open WebUI: wire bytes, TTFT, first load, long chat, 20 clients,
#                                       start, idle memory, with ratios (installs Open WebUI in its own venv; Chromium)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$RUBIN_ROOT"
"$RUBIN_ROOT/scripts/bootstrap.sh" requirements-dev.txt
if [ "${1:-}" = "redis" ]; then
  shift
  command -v redis-server >/dev/null || { echo "redis-server is needed: run scripts/test.sh once, or apt-get install redis-server" >&2; exit 1; }
  exec python -m bench.redis_bench "$@"
fi
if [ "${1:-}" = "cluster" ]; then
  shift
  for tool in redis-server haproxy; do
    command -v "$tool" >/dev/null || { echo "$tool is needed: run scripts/test.sh once, or apt-get install $tool" >&2; exit 1; }
  done
  exec python -m bench.cluster_bench "$@"
fi
if [ "${1:-}" = "metrics" ]; then
  shift
  exec python -m bench.metrics_bench "$@"
fi
if [ "${1:-}" = "encryption" ]; then
  shift
  exec python -m bench.encryption_bench "$@"
fi
if [ "${1:-}" = "ingest" ]; then
  shift
  exec python -m bench.ingest_bench "$@"
fi
if [ "${1:-}" = "memory" ]; then
  shift
  exec python -m bench.memory_bench "$@"
fi
if [ "${1:-}" = "embedding" ]; then
  shift
  exec python -m bench.embedding_bench "$@"
fi
if [ "${1:-}" = "knowledge-ttft" ]; then
  shift
  exec python -m bench.knowledge_ttft "$@"
fi
if [ "${1:-}" = "retrieval" ]; then
  shift
  exec python -m bench.retrieval_latency "$@"
fi
if [ "${1:-}" = "backup" ]; then
  shift
  exec python -m bench.backup_bench "$@"
fi
if [ "${1:-}" = "retrieval-quality" ]; then
  shift
  for tool in apt-get dpkg man col; do
    command -v "$tool" >/dev/null || { echo "$tool is needed: apt-get install man-db bsdextrautils" >&2; exit 1; }
  done
  exec python -m bench.retrieval_quality "$@"
fi
if [ "${1:-}" = "container" ]; then
  shift
  for tool in podman runc mmdebstrap; do
    command -v "$tool" >/dev/null || { echo "$tool is needed: run scripts/test.sh once, or apt-get install podman runc mmdebstrap" >&2; exit 1; }
  done
  exec python -m bench.container_bench "$@"
fi
if [ "${1:-}" = "gateway" ]; then
  shift
  command -v redis-server >/dev/null || { echo "redis-server is needed: run scripts/test.sh once, or apt-get install redis-server" >&2; exit 1; }
  "$RUBIN_ROOT/bench/setup_litellm.sh"
  exec python -m bench.gateway_bench "$@"
fi
command -v chromium >/dev/null || { echo "Debian chromium is needed: run scripts/test.sh once, or apt-get install chromium" >&2; exit 1; }
if [ "${1:-}" = "crowd" ]; then
  shift
  exec python -m bench.crowd_bench "$@"
fi
if [ "${1:-}" = "startup" ]; then
  shift
  exec python -m bench.startup_bench "$@"
fi
if [ "${1:-}" = "peers" ]; then
  shift
  case " $* " in *" --no-owui "*) ;; *) "$RUBIN_ROOT/bench/setup_owui.sh" ;; esac
  exec python -m bench.peer_bench "$@"
fi
if [ "${1:-}" = "longchat" ]; then
  shift
  exec python -m bench.longchat_bench "$@"
fi
exec python -m bench.stream_bench "$@"
