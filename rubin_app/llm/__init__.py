"""Typed LLM requests and stream events, shared by the chat UI and the API."""
