"""Rubin AI: a self-hosted chat for LocalAI."""
