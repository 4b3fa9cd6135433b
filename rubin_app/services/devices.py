"""A sign-in's device as people name it ("Chrome 131 on Windows"), read from its stored user agent."""

from __future__ import annotations

from functools import lru_cache

UNKNOWN = "Other"  # ua-parser's family for what it does not recognise


@lru_cache(maxsize=512)
def describe(user_agent: str) -> str:
    """Browser, major version and system of a user agent ("" when nothing is recognised)."""
    if not user_agent.strip():
        return ""
    from ua_parser import parse  # with its YAML loader: imported at the first sign-in's device, not at start

    result = parse(user_agent)
    browser = result.user_agent
    system = result.os
    device = result.device
    name = ""
    if browser is not None and browser.family != UNKNOWN:
        name = f"{browser.family} {browser.major}" if browser.major else browser.family
    if system is not None and system.family != UNKNOWN:
        name = f"{name} · {system.family}" if name else system.family
    if device is not None and device.family not in (UNKNOWN, "Mac", "") and device.family not in name:
        name = f"{name} · {device.family}" if name else device.family
    return name
