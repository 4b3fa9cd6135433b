"""Embeddings from one model on one OpenAI-compatible server: batched, checked, L2-normalised.

`default_embedder(settings)` is the configured one: EMBEDDING_MODEL on LOCALAI_URL (or on the connection that serves
it), else the bundled embedding server (rubin_app/embed_server.py, model "rubin-embed" on EMBEDDING_PORT), or None
when EMBEDDINGS_ENABLED is off. Failures are `EmbeddingError`s with a code a caller can show or act on.
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Callable
from typing import Any, Literal

from rubin_app.config import Settings
from rubin_app.core.tls import localai_verify
from rubin_app.llm.client import LLMClient, LLMError

BUNDLED_MODEL = "rubin-embed"
EmbeddingErrorCode = Literal["unreachable", "wrong_dimension", "bad_response", "too_long", "not_configured"]
Kind = Literal["query", "document"]
# Models trained with an instruction prefix per side (matched on the lower-cased model name).
_PREFIXES: tuple[tuple[str, dict[str, str]], ...] = (
    ("e5", {"query": "query: ", "document": "passage: "}),
    ("nomic-embed", {"query": "search_query: ", "document": "search_document: "}),
)
_TOO_LONG_WORDS = ("too long", "maximum context", "context length", "too many tokens", "max_tokens", "exceeds")


class EmbeddingError(Exception):
    """Embeddings could not be had: `code` says why, `message` says it to a person."""

    def __init__(self, code: EmbeddingErrorCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code: EmbeddingErrorCode = code
        self.message = message


def _from_llm_error(exc: LLMError, model: str, url: str) -> EmbeddingError:
    """An LLMError of an embeddings call as an EmbeddingError."""
    if exc.code == "not_found":
        return EmbeddingError("not_configured", f"the embedding model {model!r} is not served by {url}")
    if exc.code == "auth":
        return EmbeddingError("not_configured", f"{url} refused the embeddings request (API key)")
    if exc.code == "bad_request":
        if any(word in exc.detail.lower() for word in _TOO_LONG_WORDS):
            return EmbeddingError("too_long", f"a text is too long for the embedding model {model!r}")
        return EmbeddingError("bad_response", f"the embedding server refused the request: {exc.detail[:200]}")
    if exc.code == "malformed":
        return EmbeddingError("bad_response", f"{url} sent a reply that is not an embedding list")
    return EmbeddingError("unreachable", f"the embedding server at {url} is not answering ({exc.code})")


def _vector(item: Any) -> list[float]:
    """One `data` item's embedding (floats or base64 of float32), checked."""
    raw = item.get("embedding") if isinstance(item, dict) else None
    if isinstance(raw, str):
        try:
            packed = base64.b64decode(raw, validate=True)
        except ValueError:
            raise EmbeddingError("bad_response", "an embedding is not valid base64") from None
        if not packed or len(packed) % 4:
            raise EmbeddingError("bad_response", "a base64 embedding is not a list of float32")
        return list(struct.unpack(f"<{len(packed) // 4}f", packed))
    if not isinstance(raw, list) or not raw:
        raise EmbeddingError("bad_response", "an item of the reply has no embedding")
    if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in raw):
        raise EmbeddingError("bad_response", "an embedding holds something that is not a number")
    return [float(x) for x in raw]


def normalise(vector: list[float]) -> list[float]:
    """The vector scaled to length 1 (cosine similarity is then a dot product)."""
    norm = math.sqrt(math.fsum(x * x for x in vector))
    if not math.isfinite(norm) or norm == 0.0:
        raise EmbeddingError("bad_response", "the embedding server returned a zero or non-finite vector")
    return [x / norm for x in vector]


class Embedder:
    """One embedding model on one OpenAI-compatible server."""

    def __init__(
        self,
        client: LLMClient,
        model: str,
        *,
        batch_size: int = 32,
        dimension: int | None = None,
        owns_client: bool = False,
        languages: frozenset[str] | None = None,
    ) -> None:
        self.client = client
        self.model = model
        self.languages = languages  # the scripts' languages the model embeds well (None: any)
        self.batch_size = max(1, batch_size)
        self._dimension = dimension
        self._owns_client = owns_client
        lowered = model.lower()
        self._prefixes = next((p for key, p in _PREFIXES if key in lowered), None)

    @property
    def dimension(self) -> int | None:
        """The vectors' length: as given, or known after the first call."""
        return self._dimension

    async def embed(self, texts: list[str], *, kind: Kind = "document") -> list[list[float]]:
        """L2-normalised vectors of `texts`, in order, asked for in batches of `batch_size`."""
        if self._prefixes:
            texts = [self._prefixes[kind] + t for t in texts]
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            vectors.extend(await self._batch(texts[start : start + self.batch_size]))
        return vectors

    async def _batch(self, texts: list[str]) -> list[list[float]]:
        """One request; the reply's items put back in input order and checked."""
        body = {"model": self.model, "input": texts, "encoding_format": "float"}
        try:
            reply = await self.client.embeddings(body)
        except LLMError as exc:
            raise _from_llm_error(exc, self.model, self.client.base_url) from exc
        items = reply["data"]
        if len(items) != len(texts):
            raise EmbeddingError("bad_response", f"asked for {len(texts)} embeddings, got {len(items)}")
        indexed = [(item.get("index", i) if isinstance(item, dict) else i, item) for i, item in enumerate(items)]
        if sorted(index for index, _ in indexed) != list(range(len(texts))):
            raise EmbeddingError("bad_response", "the reply's indexes do not match the inputs")
        vectors = [_vector(item) for _, item in sorted(indexed, key=lambda pair: pair[0])]
        self._check_dimension(vectors)
        return [normalise(v) for v in vectors]

    def _check_dimension(self, vectors: list[list[float]]) -> None:
        """Every vector as long as the first one ever seen (or the given dimension)."""
        for vector in vectors:
            if self._dimension is None:
                self._dimension = len(vector)
            elif len(vector) != self._dimension:
                raise EmbeddingError(
                    "wrong_dimension",
                    f"the embedding model {self.model!r} returned {len(vector)} dimensions, expected {self._dimension}",
                )

    async def aclose(self) -> None:
        """Close the client when this embedder made it."""
        if self._owns_client:
            await self.client.aclose()


def bundled_url(settings: Settings) -> str:
    """The bundled embedding server's loopback URL."""
    return f"http://127.0.0.1:{settings.embedding_port}"


def default_embedder(
    settings: Settings, client_for: Callable[[str], tuple[LLMClient, str]] | None = None
) -> Embedder | None:
    """The configured embedder: EMBEDDING_MODEL on its connection (`client_for`) or LOCALAI_URL, else the bundled
    server; None when EMBEDDINGS_ENABLED is off."""
    if not settings.embeddings_enabled:
        return None
    batch = settings.embedding_batch
    languages = frozenset(c.strip() for c in settings.embedding_languages.split(",") if c.strip()) or None
    if settings.embedding_model and client_for is not None:
        client, upstream = client_for(settings.embedding_model)
        return Embedder(client, upstream, batch_size=batch, languages=languages)
    if settings.embedding_model:
        key = settings.localai_api_key.get_secret_value() if settings.localai_api_key else None
        client = _client(settings, settings.llm_base_url, api_key=key, verify=localai_verify(settings))
        return Embedder(client, settings.embedding_model, batch_size=batch, owns_client=True, languages=languages)
    # The bundled all-MiniLM-L6-v2 is an English model: it is not asked to rank questions in other languages.
    bundled = _client(settings, bundled_url(settings))
    return Embedder(bundled, BUNDLED_MODEL, batch_size=batch, owns_client=True, languages=frozenset({"en"}))


def _client(settings: Settings, url: str, *, api_key: str | None = None, verify: Any = True) -> LLMClient:
    """A client with the LLM_* timeouts and retries."""
    return LLMClient(
        url,
        api_key=api_key,
        connect_timeout=settings.llm_connect_timeout,
        read_timeout=settings.llm_read_timeout,
        retries=settings.llm_retries,
        backoff=settings.llm_retry_backoff,
        verify=verify,
    )
