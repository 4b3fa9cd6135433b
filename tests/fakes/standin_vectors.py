"""The LocalAI stand-in's meaning-ish text functions: embeddings, reranking and the context-echo answer.

Deterministic and dependency-free, so tests can predict them: an embedding is a hashed bag of word stems (the first
five letters of each word, lower-cased, Russian and English alike) and of character trigrams, in 64 dimensions,
L2-normalised; texts that share words are close, unrelated texts are nearly orthogonal. The rerank score is the
share of the query's stems found in a document.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

EMBED_DIM = 64
_WORD = re.compile(r"\w+", re.UNICODE)
_STEM = 5
_TRIGRAM_WEIGHT = 0.35
_PASSAGE = re.compile(r"(?m)^\s*\[(\d{1,3})\]")  # a numbered context passage: a line that starts with [n]
STOP = frozenset({"the", "a", "an", "of", "and", "or", "to", "in", "is", "are", "what", "how", "и", "в", "на", "что"})


def stems(text: str) -> list[str]:
    """Lower-cased word stems (first five letters), stop words left out."""
    return [w[:_STEM] for w in _WORD.findall(text.lower()) if w not in STOP]


def _bucket(feature: str, dim: int) -> tuple[int, float]:
    """A feature's dimension and sign (feature hashing with a stable hash)."""
    digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
    return int.from_bytes(digest[:4], "little") % dim, (1.0 if digest[4] & 1 else -1.0)


def embedding_of(text: str, dim: int = EMBED_DIM) -> list[float]:
    """The stand-in's embedding of a text: `dim` numbers, length 1 (an empty text gets a fixed unit vector)."""
    vector = [0.0] * dim
    for stem in stems(text):
        index, sign = _bucket("w:" + stem, dim)
        vector[index] += sign
        padded = f"#{stem}#"
        for i in range(len(padded) - 2):
            index, sign = _bucket("t:" + padded[i : i + 3], dim)
            vector[index] += sign * _TRIGRAM_WEIGHT
    norm = math.sqrt(sum(x * x for x in vector))
    if norm == 0.0:
        return [1.0] + [0.0] * (dim - 1)
    return [round(x / norm, 6) for x in vector]


def cosine(a: list[float], b: list[float]) -> float:
    """Cosine similarity of two vectors."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)) or 1.0)


def rerank_score(query: str, document: str) -> float:
    """The share of the query's stems that the document has (0..1)."""
    wanted = set(stems(query))
    return round(len(wanted & set(stems(document))) / len(wanted), 6) if wanted else 0.0


def document_text(document: Any) -> str:
    """A rerank document: a string, or {"text": ...} (Jina / LocalAI)."""
    if isinstance(document, dict):
        return str(document.get("text", ""))
    return str(document)


def passage_numbers(texts: list[str]) -> list[int]:
    """The numbers of the context passages in these texts (lines that start with [n]), in order, once each."""
    seen: list[int] = []
    for text in texts:
        for found in _PASSAGE.finditer(text):
            number = int(found.group(1))
            if number not in seen:
                seen.append(number)
    return seen


def context_reply(texts: list[str]) -> str:
    """The context-echo answer: which passages the request carried, as citations ("See [1] and [2].")."""
    numbers = passage_numbers(texts)
    if not numbers:
        return "The documents do not contain the answer."
    cited = [f"[{n}]" for n in numbers]
    listed = cited[0] if len(cited) == 1 else ", ".join(cited[:-1]) + " and " + cited[-1]
    return f"See {listed}."
