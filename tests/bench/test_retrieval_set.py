"""The retrieval quality set: its questions file, the passage matcher, the scorer and the documents it needs."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

import pytest

from bench.retrieval_baseline import BM25, fixed_chunks
from bench.retrieval_set import QUESTIONS, Question, SetError, hit_rank, load_questions, missing_passages, score
from bench.retrieval_text import document_text, html_text, is_hit, normalise, overlap

PASSAGE = "The kernel maintains the system hostname. This file should contain only the system hostname."


def test_the_set_has_200_questions_half_russian_half_english_over_many_documents() -> None:
    questions = load_questions()
    langs = {lang: sum(q.lang == lang for q in questions) for lang in ("ru", "en")}
    assert len(questions) >= 200
    assert min(langs.values()) >= 0.4 * len(questions), langs
    assert len({q.doc for q in questions}) >= 80
    assert len({q.doc.split("/")[0] for q in questions}) == 4  # every source package is asked about


def test_questions_are_paraphrased_not_copies_of_their_passage() -> None:
    for q in load_questions():
        assert normalise(q.question) not in normalise(q.passage), q.id
        assert overlap(q.passage, q.question) < 0.5, q.id  # the question does not quote its answer


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not JSON"),
        ('{"id": "x", "lang": "ru", "question": "q", "doc": "d"}', "needs non-empty"),
        ('{"id": "x", "lang": "de", "question": "q", "doc": "d", "passage": "p"}', "lang must be"),
    ],
)
def test_a_malformed_line_is_named(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": "a", "lang": "en", "question": "q", "doc": "d", "passage": "p"}\n' + line + "\n")
    with pytest.raises(SetError, match=rf"q\.jsonl:2: {message}"):
        load_questions(path)


def test_a_duplicate_id_is_refused(tmp_path: Path) -> None:
    row = {"id": "a", "lang": "en", "question": "q", "doc": "d", "passage": "p"}
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(SetError, match="duplicate id 'a'"):
        load_questions(path)


def test_normalise_folds_case_punctuation_quotes_and_yo() -> None:
    assert normalise('Don\'t  "ls"!\n«Ёлка» — apt-get') == "don t ls елка apt get"


def test_html_text_keeps_visible_text_only() -> None:
    text = html_text("<html><style>p{}</style><p>A&amp;B <b>bold</b></p><script>x()</script><p>next</p></html>")
    assert normalise(text) == "a b bold next"
    assert "\n" in text.strip()  # paragraphs stay apart


def test_a_chunk_holding_the_passage_is_a_hit_whatever_the_layout() -> None:
    chunk = "Intro.\n  The  kernel maintains the\nsystem hostname.  This file should contain ONLY the system hostname!"
    assert overlap(PASSAGE, chunk) == 1.0
    assert is_hit(PASSAGE, chunk)


def test_a_chunk_boundary_through_the_passage_counts_from_half_of_it() -> None:
    words = PASSAGE.split()
    head = " ".join(words[: len(words) // 2 + 1])  # just over half, as when a chunk ends mid-passage
    tail = " ".join(words[-(len(words) // 2 - 2) :])  # under half
    assert is_hit(PASSAGE, f"earlier text {head}")
    assert not is_hit(PASSAGE, f"{tail} later text")


def test_the_same_words_scattered_are_not_a_hit() -> None:
    scattered = "hostname system the kernel file maintains contain should only this"
    assert overlap(PASSAGE, scattered) < 0.3
    assert not is_hit(PASSAGE, scattered)


def test_russian_passages_match_across_line_breaks() -> None:
    passage = "Сортирует записи в алфавитном порядке, если не указан ни --sort"
    man = "ОПИСАНИЕ Выводит информацию.\n  Сортирует записи в алфавитном\n  порядке, если не указан ни --sort, ни"
    assert is_hit(passage, man)
    assert not is_hit(passage, "Сортирует файлы по размеру")


def _q(qid: str, lang: str, passage: str) -> Question:
    return Question(id=qid, lang=lang, question="?", doc="d", passage=passage)


def test_recall_and_mrr_per_language_and_overall() -> None:
    questions = [_q("r1", "ru", "альфа бета"), _q("r2", "ru", "гамма дельта"), _q("e1", "en", "one two")]
    retrieved = {
        "r1": ["альфа бета вот"],  # rank 1
        "r2": ["x", "y", "гамма дельта", "z"],  # rank 3
        "e1": ["x", "y", "z", "w", "v", "one two"],  # rank 6: outside the top 5
    }
    scores = score(questions, retrieved, k=5)
    assert scores["ru"].recall == 1.0 and scores["ru"].mrr == pytest.approx((1 + 1 / 3) / 2)
    assert scores["en"].recall == 0.0 and scores["en"].mrr == 0.0
    assert scores["all"].questions == 3
    assert scores["all"].recall == pytest.approx(2 / 3) and scores["all"].mrr == pytest.approx((1 + 1 / 3) / 3)
    assert hit_rank("one two", retrieved["e1"], 6) == 6
    assert score(questions, {}, k=5)["all"].recall == 0.0  # a retriever that returns nothing scores zero


def test_missing_documents_and_passages_are_reported(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("The quick brown fox jumps over the lazy dog.")
    questions = [
        Question("ok", "en", "?", "a.txt", "quick  brown FOX"),
        Question("gone", "en", "?", "b.txt", "anything"),
        Question("wrong", "en", "?", "a.txt", "a slow red fox"),
    ]
    problems = missing_passages(questions, tmp_path)
    assert [p.split(":")[0] for p in problems] == ["gone", "wrong"]


def test_fixed_chunks_overlap_and_cover_the_text() -> None:
    text = " ".join(f"word{i}" for i in range(600))
    chunks = fixed_chunks(text, size=200, overlap=40)
    assert all(len(c) <= 200 for c in chunks)
    assert chunks[0].startswith("word0") and chunks[-1].endswith("word599")
    assert all(a.split()[-1] in b for a, b in itertools.pairwise(chunks))  # neighbours overlap


def test_bm25_ranks_the_matching_text_first() -> None:
    texts = ["apt pinning priorities explained", "the kernel hostname file", "tcp sockets and listen backlog"]
    found = asyncio.run(BM25(texts).search("how do I set the hostname", 2))
    assert found[0] == "the kernel hostname file"


@pytest.mark.slow
def test_every_passage_occurs_in_its_fetched_document() -> None:
    """Downloads the Debian packages (apt-get download, about 5 MB) into .tools/retrieval-docs once."""
    from bench.retrieval_docs import CHARS_PER_PAGE, documents, fetch

    cache = fetch()
    assert missing_passages(load_questions(QUESTIONS), cache) == []
    pages = {"ru": 0.0, "en": 0.0}
    for doc in documents(cache):
        lang = "ru" if doc.relative_to(cache).parts[0] in ("manpages-ru", "debian-faq-ru") else "en"
        pages[lang] += len(document_text(doc)) / CHARS_PER_PAGE
    assert sum(pages.values()) >= 300 and min(pages.values()) >= 100, pages


def test_the_table_shows_a_language_without_questions_as_a_dash(capsys: pytest.CaptureFixture[str]) -> None:
    from bench.retrieval_quality import print_table

    english = {"questions": 2, "recall": 0.5, "mrr": 0.25}
    rows = [
        {"mode": "base", "p50_ms": 1.0, "all": english, "en": english},
        {"mode": "better", "p50_ms": 2.0, "all": {**english, "recall": 1.0}, "en": {**english, "recall": 1.0}},
    ]
    print_table(rows, 5, "base")
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == "| base | 0.500 | - | 0.500 | 0.250 | - | 0.250 | x1.00 | 1.0 |"
    assert lines[3].startswith("| better | 1.000 | - | 1.000 |") and "| x2.00 |" in lines[3]
