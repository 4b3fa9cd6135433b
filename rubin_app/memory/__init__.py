"""Personalisation: custom instructions and long-term memory (issue #15)."""
