"""The one settings object of Rubin AI: every environment variable is read here."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import ssl
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

PROJECT_DIR = Path(__file__).resolve().parent.parent


PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "changethis", "your-secret-key", "xxx"}
PROVIDER_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def _check_http_url(value: str, example: str) -> str:
    value = value.strip().rstrip("/")
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"must start with http:// or https:// (e.g. {example})")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ValueError(f"is not a valid URL ({exc})") from None
    if not parts.hostname or any(c.isspace() for c in parts.netloc):
        raise ValueError(f"must name a host, e.g. {example}")
    return value


class ProviderConfig(BaseModel):
    """One sign-in provider: generic OpenID Connect (by issuer URL) or GitHub (OAuth2)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    kind: Literal["oidc", "github"] = "oidc"
    name: str = ""
    issuer: str = ""
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    scopes: str = ""
    github_url: str = "https://github.com"
    github_api_url: str = "https://api.github.com"

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not PROVIDER_ID.match(value):
            raise ValueError("must be 1-32 lowercase letters, digits, '-' or '_' (it appears in the callback URL)")
        return value

    @field_validator("github_url", "github_api_url")
    @classmethod
    def _check_github_urls(cls, value: str) -> str:
        return _check_http_url(value, "https://github.com")

    @model_validator(mode="after")
    def _check_kind(self) -> ProviderConfig:
        if self.kind == "oidc":
            if not self.issuer:
                raise ValueError(f"provider {self.id!r}: an OpenID Connect provider needs an issuer URL")
            self.issuer = _check_http_url(self.issuer, "https://keycloak.example.com/realms/main")
            self.scopes = self.scopes or "openid email profile"
            if "openid" not in self.scopes.split():
                raise ValueError(f"provider {self.id!r}: scopes must include 'openid'")
        else:
            self.scopes = self.scopes or "read:user user:email"
        if not self.client_secret.get_secret_value().strip():
            raise ValueError(f"provider {self.id!r}: client_secret is empty")
        self.name = self.name.strip() or ("GitHub" if self.kind == "github" else self.id)
        return self


# TLS options a REDIS_URL may not carry: verification is switched off only by nobody (REDIS_CA_FILE instead).
INSECURE_REDIS_OPTIONS = {"ssl_cert_reqs": {"none", "optional"}, "ssl_check_hostname": {"false", "0", "no", "off"}}


def _check_server_tls(s: Settings) -> None:
    """TLS_CERT_FILE and TLS_KEY_FILE come together, match, and the redirect port is another port."""
    if (s.tls_cert_file is None) != (s.tls_key_file is None):
        raise ValueError("TLS_CERT_FILE and TLS_KEY_FILE must be set together (the certificate and its private key)")
    if s.tls_cert_file is None or s.tls_key_file is None:
        if s.tls_redirect_port:
            raise ValueError("TLS_REDIRECT_PORT needs TLS_CERT_FILE and TLS_KEY_FILE (HTTPS to redirect to)")
        return
    if not s.public_url.startswith("https://"):
        raise ValueError(
            "TLS_CERT_FILE needs PUBLIC_URL=https://<a name in the certificate>[:FRONTEND_PORT] (the address browsers "
            "use: the websocket, redirects and cookies follow it)"
        )
    if s.tls_redirect_port == s.frontend_port:
        raise ValueError("TLS_REDIRECT_PORT must differ from FRONTEND_PORT (which serves HTTPS)")
    password = s.tls_key_password.get_secret_value() if s.tls_key_password else None
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(s.tls_cert_file, s.tls_key_file, password)
    except (ssl.SSLError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or str(exc)
        raise ValueError(
            f"TLS_CERT_FILE / TLS_KEY_FILE cannot be used ({reason}): PEM files, the key matching the certificate, "
            "TLS_KEY_PASSWORD if the key is encrypted"
        ) from None


def _check_client_tls(s: Settings) -> None:
    """CA and client-certificate settings only where the URL asks for TLS; no verification switched off in a URL."""
    redis_tls = s.redis_url.startswith("rediss://")
    if not redis_tls and (s.redis_ca_file or s.redis_cert_file or s.redis_key_file):
        raise ValueError("REDIS_CA_FILE / REDIS_CERT_FILE / REDIS_KEY_FILE need a rediss:// REDIS_URL (TLS)")
    if (s.redis_cert_file is None) != (s.redis_key_file is None):
        raise ValueError("REDIS_CERT_FILE and REDIS_KEY_FILE must be set together")
    for name, value in parse_qsl(urlsplit(s.redis_url).query):
        if value.strip().lower() in INSECURE_REDIS_OPTIONS.get(name.lower(), set()):
            raise ValueError(
                f"REDIS_URL must not switch certificate checks off ({name}={value}); "
                "set REDIS_CA_FILE to the CA that signed Redis's certificate"
            )
    if s.localai_ca_file and not s.localai_url.startswith("https://"):
        raise ValueError("LOCALAI_CA_FILE needs an https:// LOCALAI_URL")


class Settings(BaseSettings):
    """Validated settings, from the environment or a `.env` file."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False)

    # LocalAI / OpenAI-compatible server
    localai_url: str = Field(
        default="",
        description="Base URL of LocalAI (or any OpenAI-compatible server). Empty: the bundled engine.",
    )
    localai_api_key: SecretStr | None = Field(default=None, description="Bearer key for LocalAI.")
    default_model: str = Field(default="", description="Model picked for new chats; empty: the first listed.")
    system_prompt: str = Field(
        default="You are Rubin, a helpful assistant. Answer in the language of the question.",
        description="System prompt sent first in every chat.",
    )
    llm_connect_timeout: float = Field(default=5.0, gt=0, description="Seconds to connect to LocalAI.")
    llm_read_timeout: float = Field(default=120.0, gt=0, description="Seconds to wait for the next byte of an answer.")
    llm_retries: int = Field(default=2, ge=0, le=10, description="Retries before the first byte (5xx, 429, connect).")
    llm_retry_backoff: float = Field(default=0.5, ge=0, description="First retry delay in seconds (doubles).")
    llm_max_tokens: int = Field(default=0, ge=0, description="max_tokens per answer; 0: the server's default.")
    llm_temperature: float | None = Field(
        default=None, ge=0, le=2, description="Sampling temperature; empty: server default."
    )
    models_cache_ttl: float = Field(default=60.0, ge=0, description="Seconds the model list is cached.")

    # Chat behaviour
    max_message_chars: int = Field(default=32_000, ge=1, description="Longest message a user may send.")
    api_max_body_bytes: int = Field(
        default=8_000_000, ge=1024, description="Largest request body the APIs accept, in bytes (images included)."
    )
    api_max_messages: int = Field(default=1000, ge=1, description="Most messages one API chat request may carry.")
    context_token_budget: int = Field(
        default=3_000, ge=64, description="Token budget of the history sent to the model."
    )
    title_mode: str = Field(default="llm", description="'llm': model writes titles; 'first_message': no model call.")
    stream_coalesce_ms: int = Field(default=50, ge=0, le=1000, description="Websocket delta interval in ms.")
    db_flush_seconds: float = Field(default=2.0, gt=0, description="How often a streaming answer is saved.")
    resume_answers: Literal["continue", "retry"] = Field(
        default="continue",
        description="An answer left unfinished by a worker that died or stopped: 'continue' (another worker asks "
        "the model again with the partial answer as its prefix) or 'retry' (kept, marked interrupted, Retry offered).",
    )
    memory_token_budget: int = Field(
        default=400, ge=0, le=8000, description="Tokens of a user's long-term memories sent with a chat (0: none)."
    )
    memory_max_items: int = Field(default=200, ge=1, le=5000, description="Most memories one user may keep.")
    memory_auto: Literal["personal", "always", "off"] = Field(
        default="personal",
        description="When the chat's model is asked for new memories after an answer: 'personal' (the message "
        "states something about the user: my, I live, у меня...), 'always' (every answer: one more model call "
        "each), 'off'.",
    )
    knowledge_top_k: int = Field(
        default=5, ge=1, le=20, description="Passages of the chosen knowledge given to the model with a question."
    )

    # Storage
    database_url: str = Field(default="", description="SQLAlchemy URL; empty: SQLite in DATA_DIR.")
    auto_migrate: bool = Field(default=True, description="Apply alembic migrations when the app starts.")
    data_dir: Path = Field(default=PROJECT_DIR / "data", description="Where SQLite and the bundled model live.")

    # Bundled engine (used when LOCALAI_URL is empty)
    engine_port: int = Field(default=8081, ge=1, le=65535, description="Loopback port of the bundled engine.")
    engine_model_alias: str = Field(default="gemma-3-270m", description="Model name the bundled engine serves.")

    # Embeddings (knowledge bases, memory)
    embedding_model: str = Field(
        default="",
        description="Embedding model served by LOCALAI_URL (or a connection); empty: the bundled embedding server "
        "(all-MiniLM-L6-v2 on EMBEDDING_PORT).",
    )
    embedding_port: int = Field(
        default=8082, ge=1, le=65535, description="Loopback port of the bundled embedding server."
    )
    embedding_idle_seconds: float = Field(
        default=300,
        ge=0,
        description="Seconds the bundled embedding server keeps its model in memory after the last request (it "
        "loads it again at the next one, about a second); 0: keep it once loaded.",
    )
    embedding_languages: str = Field(
        default="",
        description="Languages EMBEDDING_MODEL embeds well, comma-separated (e.g. 'en'); questions in another "
        "language are searched by full-text only. Empty: any. The bundled model is English-only.",
    )
    embedding_batch: int = Field(default=32, ge=1, le=2048, description="Texts per embeddings request.")
    embeddings_enabled: bool = Field(
        default=True, description="Embeddings on; off: knowledge search is full-text only, no embedding server."
    )

    # Redis, cache and limits
    redis_url: str = Field(
        default="", description="redis://host:6379/0 — shared state for several workers, cache and limits; empty: none."
    )
    redis_timeout: float = Field(default=0.5, gt=0, le=10, description="Seconds a Redis call may take.")
    workers: int = Field(default=0, ge=0, le=64, description="Backend workers with Redis; 0: Reflex's default.")
    rate_limit_rpm: int = Field(default=20, ge=0, description="Chat requests per minute per user; 0: no limit.")
    rate_limit_ip_rpm: int = Field(default=60, ge=0, description="Chat requests per minute per IP; 0: no limit.")
    tokens_per_day: int = Field(default=0, ge=0, description="Answer tokens per user per UTC day; 0: no quota.")
    max_concurrent_answers: int = Field(default=3, ge=0, description="Answers one user may run at once; 0: no limit.")
    cache_ttl: float = Field(default=3600, ge=0, description="Seconds a cached answer lives; 0: no response cache.")
    cache_max_bytes: int = Field(default=256_000, ge=1024, description="Largest answer the cache keeps, in bytes.")
    cache_models: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated models cached at any temperature (else only temperature 0)."
    )
    cache_shared: bool = Field(
        default=False,
        description="Share cached answers across users (per model); false: each user's own. Shared, a fast answer "
        "tells a user that someone asked the same question before.",
    )

    # Accounts and sign-in
    auth_providers: list[ProviderConfig] = Field(
        default_factory=list,
        description='Sign-in providers, a JSON list: [{"id": "kc", "name": "Keycloak", "issuer": "https://…", '
        '"client_id": "…", "client_secret": "…"}, {"id": "github", "kind": "github", …}].',
    )
    local_login: bool | None = Field(
        default=None, description="Email + password accounts; empty: on when no provider is configured."
    )
    local_signup: bool | None = Field(default=None, description="Local sign-up; empty: same as LOCAL_LOGIN.")
    require_approval: bool = Field(default=False, description="New users wait for an admin's approval.")
    require_two_factor: Literal["nobody", "admins", "everyone"] = Field(
        default="nobody",
        description="Who must sign in with a second factor (local accounts): nobody, admins or everyone; "
        "admins can change it in the admin panel.",
    )
    admin_emails: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated emails that become admins when they sign in."
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Signs the sign-in flow and known-device cookies (32+ chars); empty: generated into DATA_DIR.",
    )
    session_lifetime_hours: float = Field(default=720, gt=0, description="How long a sign-in lasts, in hours.")
    password_min_length: int = Field(default=10, ge=8, le=128, description="Shortest password accepted.")
    login_max_failures: int = Field(
        default=5,
        ge=1,
        description="Failed logins per account and IP (or known device) before a lockout; past it, the account's "
        "sign-ins from elsewhere slow down.",
    )
    login_ip_max_failures: int = Field(
        default=20, ge=1, description="Failed logins per IP before its sign-ins slow down (doubling delays)."
    )
    login_lockout_minutes: float = Field(default=15, gt=0, description="Lockout window (and longest delay), minutes.")
    login_device_days: float = Field(
        default=180, gt=0, description="How long a browser that signed in stays a known device (rubin_device cookie)."
    )
    signup_ip_max_per_hour: int = Field(
        default=10, ge=0, description="Sign-ups per IP and hour that meet a taken email before sign-up pauses; 0: off."
    )
    public_url: str = Field(
        default="", description="Public base URL (for OAuth callbacks behind a proxy); empty: from the request."
    )
    cookie_secure: bool | None = Field(
        default=None, description="Secure cookies; empty: when the request came over HTTPS."
    )
    session_idle_minutes: float = Field(
        default=0, ge=0, description="Sign a session out after this many minutes without use; 0: never."
    )

    # Encryption at rest (docs/data-protection.md)
    encryption_key: SecretStr | None = Field(
        default=None,
        description="Key-encryption key(s): comma-separated base64 32-byte keys, the first current, the others only "
        "decrypt (after a rotation); empty: ENCRYPTION_KEY_COMMAND, else DATA_DIR/encryption.key (created on first "
        "start). Losing it loses every user's chats.",
    )
    encryption_key_command: str = Field(
        default="",
        description="A command that prints the key-encryption key(s) (an external KMS or Vault); used when "
        "ENCRYPTION_KEY is empty.",
    )
    encryption_at_rest: bool = Field(
        default=True,
        description="Encrypt chats (messages, titles) in the database and what Redis keeps; false only for "
        "measurements (values already encrypted still open).",
    )

    # Security (README "Security")
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated IPs/CIDRs of reverse proxies whose X-Forwarded-For/-Proto are believed; "
        "empty: none (the peer address is the client).",
    )
    ws_events_per_second: float = Field(
        default=20, ge=0, description="Websocket events per second one tab may send (burst 5x); 0: no limit."
    )
    ws_connections_per_ip: int = Field(
        default=200, ge=0, description="Websocket connections one IP may hold (and open per minute, x3); 0: no limit."
    )
    anonymous_state_minutes: float = Field(
        default=10, gt=0, description="How long a signed-out tab's state is kept (in memory only)."
    )
    # Monitoring (docs/deployment.md, "Metrics")
    metrics_token: SecretStr | None = Field(
        default=None,
        description="Bearer token Prometheus must send to GET /metrics (16+ characters); empty: /metrics is off (404).",
    )

    # Encryption in transit (docs/tls.md)
    tls_cert_file: Path | None = Field(
        default=None,
        description="PEM certificate (chain) to serve HTTPS directly on FRONTEND_PORT; empty: plain HTTP (or TLS at a "
        "proxy).",
    )
    tls_key_file: Path | None = Field(default=None, description="PEM private key of TLS_CERT_FILE.")
    tls_key_password: SecretStr | None = Field(default=None, description="Password of TLS_KEY_FILE, if encrypted.")
    tls_min_version: Literal["1.2", "1.3"] = Field(default="1.2", description="Oldest TLS version served: 1.2 or 1.3.")
    tls_redirect_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="With TLS_CERT_FILE: a plain-HTTP port whose requests are redirected to HTTPS (e.g. 80); 0: none.",
    )
    hsts_max_age: int = Field(
        default=31_536_000,
        ge=0,
        description="Strict-Transport-Security max-age in seconds, sent only over HTTPS; 0: no HSTS header.",
    )
    redis_ca_file: Path | None = Field(
        default=None, description="PEM CA bundle that signs Redis's certificate (rediss:// only); empty: system CAs."
    )
    redis_cert_file: Path | None = Field(
        default=None, description="PEM client certificate for Redis (rediss://, tls-auth-clients); with REDIS_KEY_FILE."
    )
    redis_key_file: Path | None = Field(default=None, description="PEM private key of REDIS_CERT_FILE.")
    localai_ca_file: Path | None = Field(
        default=None, description="PEM CA bundle that signs LocalAI's certificate (https://); empty: system CAs."
    )
    localai_tls_verify: bool = Field(
        default=True,
        description="Verify LocalAI's certificate. false: any certificate is accepted (a warning at every start; "
        "prefer LOCALAI_CA_FILE).",
    )

    # Model connections (docs/connections.md)
    connections_allow_private: bool = Field(
        default=True,
        description="Let admin-added model connections point at loopback, private and other non-public addresses "
        "(LocalAI usually runs on the LAN). false: only public addresses (a hosted instance whose admins must not "
        "reach its internal network).",
    )

    # Webhooks (docs/webhooks.md)
    webhook_allow_private: bool = Field(
        default=False,
        description="Let webhooks reach loopback, private, link-local and other non-public addresses (a trusted "
        "LAN only: any user could then make the server call its internal services).",
    )
    webhook_allowed_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated IPs/CIDRs webhooks may reach even though they are private (e.g. one "
        "automation server on the LAN: 10.0.5.7/32); narrower than WEBHOOK_ALLOW_PRIVATE.",
    )
    webhook_retry_schedule: str = Field(
        default="0,5,300,1800,7200,18000,36000,36000",
        description="Webhook delivery attempts: comma-separated seconds, one per attempt, each the wait after the "
        "previous one failed (the first attempt goes at once), jittered ±20 %; when the last fails, it has failed.",
    )
    webhook_timeout_seconds: float = Field(
        default=15, gt=0, le=120, description="Seconds one delivery attempt may take, redirects included."
    )
    webhook_secret_overlap_hours: float = Field(
        default=24, ge=0, le=720, description="After a secret rotation, hours the old secret still signs too."
    )
    webhook_poll_seconds: float = Field(
        default=5, gt=0, le=300, description="How often the delivery worker looks for due webhook deliveries."
    )

    # Retention (README "Privacy and retention")
    chat_retention_days: int = Field(
        default=0,
        ge=0,
        le=36500,
        description="Delete chats this many days after their last activity (the admin page can change it; users "
        "may choose shorter); 0: keep forever.",
    )
    audit_retention_days: int = Field(
        default=365, ge=0, le=36500, description="Delete audit log rows older than this many days; 0: keep forever."
    )
    usage_retention_days: int = Field(
        default=400, ge=0, le=36500, description="Delete usage rows older than this many days; 0: keep forever."
    )
    webhook_delivery_retention_days: int = Field(
        default=30,
        ge=0,
        le=36500,
        description="Delete finished webhook deliveries (sent, failed, disabled) older than this many days; "
        "0: keep forever.",
    )
    retention_interval_minutes: float = Field(
        default=60,
        ge=1,
        le=10080,
        description="How often the retention job runs (one worker at a time; `python -m rubin_app retention run` "
        "runs it by hand).",
    )

    # Backups (docs/backup.md)
    backup_key: SecretStr | None = Field(
        default=None,
        description="Encrypts backups: base64 of 32 random bytes (`python -m rubin_app backup new-key`); needed to "
        "back up and to restore. Keep it apart from the backups.",
    )
    backup_destination: str = Field(
        default="",
        description="Where backups go: a folder or s3://bucket/prefix; empty: DATA_DIR/backups.",
    )
    backup_interval_hours: float = Field(
        default=0,
        ge=0,
        le=8760,
        description="Make a scheduled backup this often (one worker at a time); 0: no scheduled backups.",
    )
    backup_keep: int = Field(
        default=7,
        ge=1,
        le=10000,
        description="Scheduled backups kept at the destination; older ones the schedule made are deleted.",
    )
    backup_s3_endpoint_url: str = Field(
        default="", description="S3 endpoint for s3:// destinations (MinIO or any S3); empty: AWS."
    )
    backup_s3_region: str = Field(default="", description="S3 region; empty: the SDK's default.")
    backup_s3_access_key_id: str = Field(
        default="", description="S3 access key id; empty: the SDK's usual sources (environment, instance role)."
    )
    backup_s3_secret_access_key: SecretStr | None = Field(default=None, description="S3 secret access key.")

    # Knowledge (docs/knowledge.md)
    knowledge_max_file_mb: int = Field(
        default=50,
        ge=1,
        le=2048,
        description="Largest document a user may upload to a knowledge base, in MB (the UI and the REST API refuse "
        "bigger ones, per file).",
    )
    # Knowledge retrieval (docs/retrieval.md)
    knowledge_min_relevance: float = Field(
        default=0.3,
        ge=0,
        le=1,
        description="Relevance floor of retrieved passages (0..1: the better of the query's vector similarity and "
        "the share of its words the passage holds); below it a passage is not used.",
    )
    knowledge_exact_search_limit: int = Field(
        default=20_000,
        ge=0,
        description="SQLite: up to this many vectors in the searched knowledge bases, vector search is exact; "
        "above it, one-bit vectors pick candidates that are then ranked exactly (faster, may miss some).",
    )
    knowledge_rerank_model: str = Field(
        default="", description="Model that reranks retrieved passages via /v1/rerank; empty: no reranking."
    )

    # Web
    frontend_port: int = Field(default=3000, ge=1, le=65535, description="Port the app serves.")
    api_url: str = Field(default="", description="Public URL of the backend when not on localhost.")
    log_level: str = Field(default="INFO", description="Python log level.")

    @field_validator("localai_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        value = _check_http_url(value, "http://localhost:8080") if value.strip() else ""
        return value.removesuffix("/v1")

    @field_validator("admin_emails", mode="before")
    @classmethod
    def _split_emails(cls, value: object) -> object:
        if isinstance(value, str):
            return [e.strip().lower() for e in value.split(",") if e.strip()]
        return value

    @field_validator("cache_models", mode="before")
    @classmethod
    def _split_models(cls, value: object) -> object:
        if isinstance(value, str):
            return [m.strip() for m in value.split(",") if m.strip()]
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            value = [p.strip() for p in value.split(",") if p.strip()]
        if isinstance(value, list):
            for item in value:
                try:
                    ipaddress.ip_network(str(item), strict=False)
                except ValueError:
                    raise ValueError(f"{item!r} is not an IP address or CIDR (e.g. 10.0.0.0/8, 127.0.0.1)") from None
        return value

    @field_validator("webhook_allowed_networks", mode="before")
    @classmethod
    def _split_webhook_networks(cls, value: object) -> object:
        if isinstance(value, str):
            value = [p.strip() for p in value.split(",") if p.strip()]
        if isinstance(value, list):
            for item in value:
                try:
                    ipaddress.ip_network(str(item), strict=False)
                except ValueError:
                    raise ValueError(f"{item!r} is not an IP address or CIDR (e.g. 10.0.5.7/32)") from None
        return value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _check_retry_schedule(cls, value: str) -> str:
        try:
            delays = [float(d) for d in value.split(",") if d.strip()]
        except ValueError:
            raise ValueError("must be comma-separated seconds, e.g. 0,5,300,1800") from None
        if not 1 <= len(delays) <= 20 or not all(0 <= d <= 7 * 86_400 for d in delays):  # also refuses nan, inf
            raise ValueError("must list 1 to 20 delays of 0 to 604800 seconds (7 days), e.g. 0,5,300,1800")
        return ",".join(d.strip() for d in value.split(",") if d.strip())

    @field_validator("redis_url")
    @classmethod
    def _check_redis(cls, value: str) -> str:
        value = value.strip()
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL (e.g. redis://localhost:6379/0)")
        return value

    @field_validator(
        "tls_cert_file",
        "tls_key_file",
        "redis_ca_file",
        "redis_cert_file",
        "redis_key_file",
        "localai_ca_file",
        mode="before",
    )
    @classmethod
    def _empty_path(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator(
        "tls_cert_file", "tls_key_file", "redis_ca_file", "redis_cert_file", "redis_key_file", "localai_ca_file"
    )
    @classmethod
    def _readable_file(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        value = value.expanduser().resolve()
        if not value.is_file():
            raise ValueError(f"{value} is not a file")
        try:
            value.read_bytes()
        except OSError as exc:
            raise ValueError(f"{value} cannot be read ({exc.strerror})") from None
        return value

    @field_validator("backup_key")
    @classmethod
    def _check_backup_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        try:
            raw = base64.b64decode(value.get_secret_value().strip(), validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32:
            raise ValueError("must be base64 of 32 random bytes (`python -m rubin_app backup new-key` prints one)")
        return value

    @field_validator("backup_destination")
    @classmethod
    def _check_backup_destination(cls, value: str) -> str:
        value = value.strip()
        if "://" in value and not re.match(r"^s3://[a-z0-9][a-z0-9.-]{1,62}(/|$)", value):
            raise ValueError("must be a folder path or s3://bucket/prefix (bucket: lowercase letters, digits, . -)")
        return value

    @field_validator("backup_s3_endpoint_url")
    @classmethod
    def _check_s3_endpoint(cls, value: str) -> str:
        return _check_http_url(value, "http://minio:9000") if value.strip() else ""

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str) -> str:
        return _check_http_url(value, "https://chat.example.com") if value.strip() else ""

    @field_validator("secret_key")
    @classmethod
    def _check_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        raw = value.get_secret_value()
        if raw.strip().lower() in PLACEHOLDER_SECRETS or len(raw) < 32:
            raise ValueError("must be a random string of at least 32 characters (e.g. `openssl rand -hex 32`)")
        return value

    @field_validator("metrics_token")
    @classmethod
    def _check_metrics_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        raw = value.get_secret_value()
        if raw.strip().lower() in PLACEHOLDER_SECRETS or len(raw) < 16 or raw != raw.strip():
            raise ValueError("must be a random string of at least 16 characters (e.g. `openssl rand -hex 24`)")
        return value

    @field_validator("auth_providers")
    @classmethod
    def _unique_providers(cls, value: list[ProviderConfig]) -> list[ProviderConfig]:
        ids = [p.id for p in value]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"provider ids must be unique; repeated: {', '.join(dupes)}")
        if "local" in ids:
            raise ValueError("'local' is reserved for email + password accounts")
        return value

    @field_validator("llm_temperature", mode="before")
    @classmethod
    def _empty_temperature(cls, value: object) -> object:
        # Documented as "empty: server default": LLM_TEMPERATURE= (set but empty) means None, not an error.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("title_mode")
    @classmethod
    def _check_title_mode(cls, value: str) -> str:
        if value not in {"llm", "first_message"}:
            raise ValueError("must be 'llm' or 'first_message'")
        return value

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        value = value.upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return value

    @model_validator(mode="after")
    def _check_database(self) -> Settings:
        url = self.database_url
        if url and not url.startswith(("sqlite", "postgresql", "postgres://")):
            raise ValueError("DATABASE_URL must be a sqlite:// or postgresql:// URL")
        return self

    @model_validator(mode="after")
    def _check_workers(self) -> Settings:
        if self.workers > 1 and not self.redis_url:
            raise ValueError(
                "WORKERS above 1 needs REDIS_URL: without Redis the workers would not share tab states, limits, "
                "live answers or the recovery of unfinished answers (set REDIS_URL, or WORKERS=1)"
            )
        return self

    @model_validator(mode="after")
    def _check_backups(self) -> Settings:
        if self.backup_interval_hours and self.backup_key is None:
            raise ValueError(
                "BACKUP_INTERVAL_HOURS needs BACKUP_KEY (backups are always encrypted; "
                "`python -m rubin_app backup new-key` prints one)"
            )
        return self

    @model_validator(mode="after")
    def _check_tls(self) -> Settings:
        _check_server_tls(self)
        _check_client_tls(self)
        return self

    @property
    def local_login_default(self) -> bool:
        """Whether local accounts are on unless an admin says otherwise."""
        return self.local_login if self.local_login is not None else not self.auth_providers

    @property
    def local_signup_default(self) -> bool:
        """Whether local sign-up is on unless an admin says otherwise."""
        return self.local_signup if self.local_signup is not None else self.local_login_default

    @property
    def llm_base_url(self) -> str:
        """LocalAI URL, or the bundled engine's loopback URL."""
        return self.localai_url or f"http://127.0.0.1:{self.engine_port}"

    @property
    def webhook_retry_delays(self) -> tuple[float, ...]:
        """WEBHOOK_RETRY_SCHEDULE as seconds: one entry per attempt, the delay before it."""
        return tuple(float(d) for d in self.webhook_retry_schedule.split(","))

    @property
    def sync_database_url(self) -> str:
        """Database URL for synchronous drivers (alembic)."""
        url = self.database_url or f"sqlite:///{self.data_dir / 'rubin.db'}"
        if url.startswith("postgres://"):
            url = "postgresql://" + url[len("postgres://") :]
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        return url.replace("sqlite+aiosqlite://", "sqlite://")

    @property
    def async_database_url(self) -> str:
        """Database URL for the async engine of the app."""
        url = self.sync_database_url
        if url.startswith("sqlite://"):
            return "sqlite+aiosqlite://" + url[len("sqlite://") :]
        return url


class SettingsError(SystemExit):
    """Raised at start when settings are invalid: a readable message, no traceback."""


def _format_error(exc: ValidationError) -> str:
    lines = ["Rubin AI cannot start: invalid settings"]
    for err in exc.errors():
        name = ".".join(str(p) for p in err["loc"]).upper() or "settings"
        lines.append(f"  {name}: {err['msg']}")
    return "\n".join(lines)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Load and validate settings once; exit with a clear message when invalid."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(_format_error(exc)) from None
    except SourceError as exc:  # a complex setting (a JSON list) that is not JSON at all
        found = re.search(r'field "([a-z_]+)"', str(exc))
        name = found.group(1).upper() if found else "settings"
        raise SettingsError(f"Rubin AI cannot start: invalid settings\n  {name}: must be valid JSON") from None
