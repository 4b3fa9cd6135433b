"""TLS for the connections Rubin opens: Redis (rediss://) and LocalAI (https://), certificates verified by default.

Every Redis client of the app — Rubin's own store (cache, limits, bus, relay) and Reflex's state and token
managers, health check and worker count (through rxconfig's `redis_url`) — is built from one URL,
`redis_url(settings)`: REDIS_CA_FILE, REDIS_CERT_FILE and REDIS_KEY_FILE travel in it as redis-py's URL
options, so no client can be made without them. redis-py verifies the server's certificate and host name for
rediss:// unless told otherwise, and config refuses URLs that say otherwise.

PostgreSQL needs nothing here: libpq options in DATABASE_URL (`sslmode=verify-full&sslrootcert=...`) reach
psycopg unchanged.
"""

from __future__ import annotations

import logging
import ssl
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from rubin_app.config import Settings

log = logging.getLogger(__name__)

# redis-py URL option <- setting (attribute of Settings).
REDIS_TLS_OPTIONS = {
    "ssl_ca_certs": "redis_ca_file",
    "ssl_certfile": "redis_cert_file",
    "ssl_keyfile": "redis_key_file",
}


def redis_url(settings: Settings) -> str:
    """REDIS_URL with the Redis TLS settings as URL options (unchanged for redis:// and unix://)."""
    url = settings.redis_url
    if not url.startswith("rediss://"):
        return url
    parts = urlsplit(url)
    ours = {option: str(path) for option, name in REDIS_TLS_OPTIONS.items() if (path := getattr(settings, name))}
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ours]
    return urlunsplit(parts._replace(query=urlencode(query + list(ours.items()))))


def localai_verify(settings: Settings) -> ssl.SSLContext | bool:
    """How httpx checks LocalAI's certificate: the system CAs, LOCALAI_CA_FILE's CA only, or (loudly) not at all."""
    if not settings.localai_url.startswith("https://"):
        return True
    if not settings.localai_tls_verify:
        log.warning(
            "LOCALAI_TLS_VERIFY=false: LocalAI's TLS certificate is NOT checked; anyone on the network path can read "
            "and change every prompt and answer. Set LOCALAI_CA_FILE to the CA that signed it instead."
        )
        return False
    if settings.localai_ca_file is not None:
        return ssl.create_default_context(cafile=str(settings.localai_ca_file))
    return True


def is_certificate_error(exc: BaseException) -> bool:
    """Whether a connection failed because the peer's certificate was not trusted (anywhere in the chain)."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        if isinstance(seen, ssl.SSLError) and "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
