"""The retrieval quality set: questions with their source passage, the passage check, and the scorer.

`python -m bench.retrieval_set` fetches the documents (bench/retrieval_docs.py) and checks that every passage
occurs in its document; it exits non-zero and names the questions whose passage is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.retrieval_text import document_text, is_hit, normalise

QUESTIONS = Path(__file__).resolve().parent / "data" / "retrieval" / "questions.jsonl"
LANGS = ("ru", "en")
_FIELDS = ("id", "lang", "question", "doc", "passage")


@dataclass(frozen=True)
class Question:
    """One question, the document (relative to the docs cache) and the passage there that answers it."""

    id: str
    lang: str
    question: str
    doc: str
    passage: str


class SetError(ValueError):
    """The questions file is malformed (the message names the line)."""


def load_questions(path: Path = QUESTIONS) -> list[Question]:
    """Read and validate the JSONL file: every field present and non-empty, known language, unique ids."""
    questions: list[Question] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SetError(f"{path.name}:{number}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict) or any(not isinstance(row.get(f), str) or not row[f].strip() for f in _FIELDS):
            raise SetError(f"{path.name}:{number}: needs non-empty string fields {', '.join(_FIELDS)}")
        if row["lang"] not in LANGS:
            raise SetError(f"{path.name}:{number}: lang must be one of {LANGS}, not {row['lang']!r}")
        if row["id"] in seen:
            raise SetError(f"{path.name}:{number}: duplicate id {row['id']!r}")
        seen.add(row["id"])
        questions.append(Question(**{f: row[f] for f in _FIELDS}))
    return questions


def missing_passages(questions: Iterable[Question], cache: Path) -> list[str]:
    """Problems found: a document that is not in the cache, or a passage that does not occur in its document."""
    problems: list[str] = []
    texts: dict[str, str] = {}
    for q in questions:
        path = cache / q.doc
        if q.doc not in texts:
            texts[q.doc] = normalise(document_text(path)) if path.is_file() else ""
        if not texts[q.doc]:
            problems.append(f"{q.id}: document {q.doc} is missing or empty")
        elif normalise(q.passage) not in texts[q.doc]:
            problems.append(f"{q.id}: passage not found in {q.doc}: {q.passage[:60]!r}")
    return problems


def hit_rank(passage: str, retrieved: Sequence[str], k: int) -> int | None:
    """1-based rank of the first of the top `k` retrieved texts that holds the passage (or half of it)."""
    for rank, text in enumerate(retrieved[:k], start=1):
        if is_hit(passage, text):
            return rank
    return None


@dataclass(frozen=True)
class Score:
    """Recall@k and MRR@k over a group of questions."""

    questions: int
    recall: float
    mrr: float


def score(questions: Sequence[Question], retrieved: dict[str, list[str]], *, k: int = 5) -> dict[str, Score]:
    """Scores per language and "all"; `retrieved` maps a question id to its retrieved texts, best first."""
    groups: dict[str, list[int | None]] = {"all": []}
    for q in questions:
        rank = hit_rank(q.passage, retrieved.get(q.id, []), k)
        groups.setdefault(q.lang, []).append(rank)
        groups["all"].append(rank)
    return {
        name: Score(
            questions=len(ranks),
            recall=sum(r is not None for r in ranks) / len(ranks) if ranks else 0.0,
            mrr=sum(1 / r for r in ranks if r is not None) / len(ranks) if ranks else 0.0,
        )
        for name, ranks in groups.items()
    }


def main() -> None:
    """Fetch the documents and check every passage; print the problems and exit 1 if there are any."""
    from bench.retrieval_docs import DEFAULT_CACHE, fetch

    parser = argparse.ArgumentParser(description="Check the retrieval quality set against its documents.")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--questions", type=Path, default=QUESTIONS)
    args = parser.parse_args()
    questions = load_questions(args.questions)
    problems = missing_passages(questions, fetch(args.cache))
    langs = {lang: sum(q.lang == lang for q in questions) for lang in LANGS}
    docs = len({q.doc for q in questions})
    print(f"{len(questions)} questions ({', '.join(f'{n} {lang}' for lang, n in langs.items())}) over {docs} documents")
    for problem in problems:
        print(problem)
    if problems:
        sys.exit(1)
    print("every passage occurs in its document")


if __name__ == "__main__":
    main()
