"""Observability: Prometheus metrics of answers, connections and dependencies (GET /metrics)."""
