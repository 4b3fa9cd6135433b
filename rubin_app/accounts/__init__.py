"""Accounts domain: API keys (the older account services live in rubin_app/services for now)."""
