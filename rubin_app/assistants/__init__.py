"""Assistants: a base model with a name, a system prompt, parameters, knowledge and starters (issue #15)."""
