"""Baselines the quality benchmark measures in the same run, with no Rubin code: fixed-size chunks and BM25.

Fixed 1,000-character chunks with 100 characters of overlap are Open WebUI's defaults (it then retrieves the top 3
by vectors only); BM25 over them, without stemming, is the plain full-text baseline.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from bench.retrieval_text import normalise


def fixed_chunks(text: str, *, size: int = 1000, overlap: int = 100) -> list[str]:
    """Split text into `size`-character windows overlapping by `overlap` (cut at a space when one is near)."""
    chunks: list[str] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            space = text.rfind(" ", start + size // 2, end)
            end = space if space > 0 else end
        piece = text[start:end].strip()
        if piece:
            chunks.append(piece)
        if end >= len(text):
            break
        start = max(end - overlap, start + 1)
    return chunks


class BM25:
    """Okapi BM25 over a fixed list of texts (lower-cased words, no stemming)."""

    name = "BM25 (baseline)"

    def __init__(self, texts: Sequence[str], *, k1: float = 1.2, b: float = 0.75) -> None:
        self.texts = list(texts)
        self.k1, self.b = k1, b
        self.docs = [Counter(normalise(t).split()) for t in self.texts]
        self.lengths = [sum(d.values()) for d in self.docs]
        self.avg = sum(self.lengths) / len(self.lengths) if self.lengths else 0.0
        df: Counter[str] = Counter()
        for doc in self.docs:
            df.update(doc.keys())
        n = len(self.docs)
        self.idf = {term: math.log(1 + (n - f + 0.5) / (f + 0.5)) for term, f in df.items()}
        self.postings: dict[str, list[int]] = {}
        for i, doc in enumerate(self.docs):
            for term in doc:
                self.postings.setdefault(term, []).append(i)

    async def search(self, query: str, k: int) -> list[str]:
        """The `k` best texts for the query, best first."""
        scores: dict[int, float] = {}
        for term in set(normalise(query).split()):
            idf = self.idf.get(term)
            if idf is None:
                continue
            for i in self.postings[term]:
                tf = self.docs[i][term]
                norm = tf + self.k1 * (1 - self.b + self.b * self.lengths[i] / self.avg)
                scores[i] = scores.get(i, 0.0) + idf * tf * (self.k1 + 1) / norm
        best = sorted(scores, key=lambda i: -scores[i])[:k]
        return [self.texts[i] for i in best]
