"""Keep credentials out of the logs: session cookies, tab tokens, session hashes and API keys typed into a form
are masked.

Reflex logs whole events in some errors (an unknown handler name, a failed event), and those carry the
tab's client token and, before `state/socket.py` dropped them, the connection's headers. A filter on the
root handlers and on Reflex's loggers rewrites every record before it is written.
"""

from __future__ import annotations

import logging
import re

MASK = "[redacted]"
PATTERNS = [
    # rubin_session=..., rubin_device=..., rubin_flow=... in a Cookie header or a URL
    (re.compile(r"(rubin_(?:session|device|flow)=)[^;,'\"\s]+"), r"\1" + MASK),
    # 'cookie': '...', "authorization": "...", the session hash header
    (
        re.compile(
            r"""(['"](?:cookie|authorization|proxy-authorization|x-rubin-session)['"]\s*:\s*)(['"]).*?\2""", re.I
        ),
        r"\1\2" + MASK + r"\2",
    ),
    # 'token': '...' (router data), 'api_key': '...' (the admin's model-connection form), token=... (websocket URL)
    (re.compile(r"""(['"](?:token|client_token|api_key)['"]\s*:\s*)(['"])[^'"]*\2"""), r"\1\2" + MASK + r"\2"),
    (re.compile(r"([?&]token=)[^&\s'\"]+"), r"\1" + MASK),
    # tab keys (state/socket.py:tab_key) wherever they appear
    (re.compile(r"\bt[0-9a-f]{32}-(?:[0-9a-f]{16}|anon)\b"), MASK),
]


def redact(text: str) -> str:
    """The text with every credential-like value masked."""
    for pattern, repl in PATTERNS:
        text = pattern.sub(repl, text)
    return text


class RedactSecrets(logging.Filter):
    """Rewrites a record's message (and exception text) with `redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Always keep the record; only its text changes."""
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_FILTER = RedactSecrets()
LOGGERS = ("", "reflex", "reflex_base", "reflex_base.event.processor.event_processor", "socketio", "engineio")


def install() -> None:
    """Attach the filter to the root handlers and to Reflex's and Socket.IO's loggers (idempotent)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
        for handler in logger.handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
