"""Rubin's own REST API (/api/v1): conversations, messages, usage, API keys, webhooks."""
