"""Outbound webhooks: endpoints, a durable outbox, signed delivery (Standard Webhooks 1.0)."""
