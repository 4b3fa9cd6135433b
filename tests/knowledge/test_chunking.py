"""Chunk boundaries: by structure, never inside a word, headings and pages on every chunk, overlap between
neighbours, tiny sections merged, long paragraphs split; Russian and English."""

from __future__ import annotations

import random
import re
from itertools import pairwise

import pytest

from rubin_app.knowledge.chunking import Chunk, chunk
from rubin_app.knowledge.documents import Extracted, Section
from rubin_app.knowledge.extract import extract
from tests.knowledge.makers import make_docx, make_pdf

LIMITS = {"max_bytes": 2**24, "max_expanded_bytes": 2**26}
EN_WORDS = """river mountain budget policy engine customer invoice network library garden window planet signal
harbor lantern market theory spindle orchard compass ledger beacon quarry meadow""".split()  # noqa: SIM905
RU_WORDS = """река гора бюджет политика двигатель клиент счёт сеть библиотека сад окно планета сигнал гавань фонарь
рынок теория веретено компас журнал маяк карьер луг электрификация""".split()  # noqa: SIM905


def _sentences(words: list[str], count: int, seed: int) -> str:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        sentence = " ".join(rng.choice(words) for _ in range(rng.randint(6, 18)))
        out.append(sentence.capitalize() + rng.choice([".", ".", "!", "?"]))
    return " ".join(out)


def _paragraphs(words: list[str], count: int, seed: int, sentences: int = 4) -> str:
    return "\n\n".join(_sentences(words, sentences, seed * 1000 + n) for n in range(count))


def _check_invariants(doc: Extracted, chunks: list[Chunk], target: int) -> None:
    """Exact slices, whole words at both ends, within the target, in order, and nothing left out."""
    text = doc.text
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    covered = [False] * len(text)
    for c in chunks:
        assert c.text == text[c.start : c.end] and c.text == c.text.strip() and c.text
        assert c.start == 0 or text[c.start - 1].isspace(), f"chunk {c.ordinal} starts mid-word: {c.text[:30]!r}"
        assert c.end == len(text) or text[c.end].isspace(), f"chunk {c.ordinal} ends mid-word: {c.text[-30:]!r}"
        assert c.tokens <= target, f"chunk {c.ordinal} has {c.tokens} tokens"
        for i in range(c.start, c.end):
            covered[i] = True
    assert all(covered[i] for i in range(len(text)) if not text[i].isspace()), "some text is in no chunk"
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)


def _overlap(a: Chunk, b: Chunk) -> str:
    return a.text[b.start - a.start :] if b.start < a.end else ""


@pytest.mark.parametrize(("words", "lang"), [(EN_WORDS, "en"), (RU_WORDS, "ru")])
def test_a_long_section_is_cut_between_words_with_overlap(words: list[str], lang: str) -> None:
    doc = Extracted("text", [Section(_paragraphs(words, 30, seed=len(lang)))])
    chunks = chunk(doc, target_tokens=120, overlap_tokens=30)
    _check_invariants(doc, chunks, 120)
    assert len(chunks) > 5
    for a, b in pairwise(chunks):
        shared = _overlap(a, b)
        assert shared, f"no overlap between chunks {a.ordinal} and {b.ordinal}"
        assert b.text.startswith(shared) and len(shared.encode()) <= 30 * 4
        assert not re.match(r"\W", shared[0]), "the overlap starts at a word"


def test_pieces_are_even_no_tiny_tail() -> None:
    doc = Extracted("text", [Section(_paragraphs(EN_WORDS, 40, seed=3, sentences=2))])
    chunks = chunk(doc, target_tokens=200, overlap_tokens=0)
    _check_invariants(doc, chunks, 200)
    sizes = [c.tokens for c in chunks]
    assert min(sizes) >= 200 * 0.5, sizes


def test_a_very_long_paragraph_is_split_at_sentences_then_words() -> None:
    sentences = _sentences(EN_WORDS, 200, seed=5)
    one_sentence = " ".join(EN_WORDS * 40)  # no punctuation, no newline: only words to cut at
    doc = Extracted("text", [Section(sentences), Section(one_sentence)])
    chunks = chunk(doc, target_tokens=100, overlap_tokens=20)
    _check_invariants(doc, chunks, 100)
    in_first = [c for c in chunks if c.end <= len(sentences)]
    ends = [c.text[-1] for c in in_first[:-1]]
    assert sum(e in ".!?" for e in ends) >= len(ends) * 0.8, "cuts fall at sentence ends where they can"
    assert len([c for c in chunks if c.start > len(sentences)]) >= 5


def test_a_word_longer_than_a_chunk_is_cut_by_bytes_as_a_last_resort() -> None:
    blob = "QUJD" * 600  # 2,400 characters without a space (a hash, a data URL)
    doc = Extracted("text", [Section(f"Key: {blob} end.")])
    chunks = chunk(doc, target_tokens=100, overlap_tokens=10)
    assert len(chunks) >= 6 and all(c.tokens <= 100 for c in chunks)
    assert chunks[0].text.startswith("Key: QUJD") and chunks[-1].text.endswith("QUJD end.")
    assert "".join(doc.text[c.start : c.end] for c in chunks) == doc.text  # cut, nothing repeated or lost


def test_every_chunk_keeps_its_heading_path_and_sections_do_not_share_overlap() -> None:
    md = (
        f"# Guide\n\n## Install\n\n{_paragraphs(EN_WORDS, 8, seed=7)}\n\n"
        f"## Настройка\n\n{_paragraphs(RU_WORDS, 8, seed=8)}\n"
    )
    doc = extract(md.encode(), "guide.md", **LIMITS)
    chunks = chunk(doc, target_tokens=120, overlap_tokens=30)
    _check_invariants(doc, chunks, 120)
    install = [c for c in chunks if c.heading == "Guide › Install"]
    setup = [c for c in chunks if c.heading == "Guide › Настройка"]
    assert len(install) >= 3 and len(setup) >= 3 and len(install) + len(setup) == len(chunks)
    assert install[0].text.startswith("# Guide\n\n## Install\n\n"), "a lone heading runs on into its subsection"
    assert setup[0].text.startswith("## Настройка"), "a new section starts a chunk, without overlap"
    assert all(c.indexed_text.startswith(c.heading + "\n") for c in chunks)


def test_tiny_sections_are_merged() -> None:
    md = "\n\n".join(f"## Term {n}\n\nDefinition number {n}." for n in range(12))
    doc = extract(md.encode(), "glossary.md", **LIMITS)
    assert len(doc.sections) == 12
    chunks = chunk(doc, target_tokens=100, overlap_tokens=20)
    _check_invariants(doc, chunks, 100)
    assert 2 <= len(chunks) <= 4
    assert "## Term 0\n\nDefinition number 0.\n\n## Term 1" in chunks[0].text
    assert all(_overlap(a, b) == "" for a, b in pairwise(chunks))


def test_pages_are_kept_and_never_mixed() -> None:
    pages = [[f"Page {n} heading", *_sentences(EN_WORDS, 30, seed=n).split(". ")] for n in range(1, 4)]
    pages.append(["A short last page."])
    doc = extract(make_pdf(pages, outline=[("Part one", 0), ("Part two", 2)]), "book.pdf", **LIMITS)
    chunks = chunk(doc, target_tokens=150, overlap_tokens=30)
    _check_invariants(doc, chunks, 150)
    for c in chunks:
        section = doc.sections[c.page - 1]  # one section per page here
        assert c.text in section.text, f"chunk {c.ordinal} is not all on page {c.page}"
        assert c.heading == ("Part one" if c.page < 3 else "Part two")
    assert chunks[-1].text == "A short last page." and chunks[-1].page == 4
    assert {c.page for c in chunks} == {1, 2, 3, 4}


def test_a_pdf_page_of_wrapped_lines_is_cut_at_sentence_ends_not_line_ends() -> None:
    prose = _sentences(EN_WORDS + RU_WORDS, 60, seed=11)
    lines, line = [], ""
    for word in prose.split():  # the page's layout wraps at 70 characters, wherever a sentence is
        if len(line) + len(word) >= 70:
            lines.append(line)
            line = ""
        line = f"{line} {word}".strip()
    doc = extract(make_pdf([[*lines, line]]), "wrapped.pdf", **LIMITS)
    chunks = chunk(doc, target_tokens=120, overlap_tokens=20)
    _check_invariants(doc, chunks, 120)
    assert len(chunks) >= 5 and all(c.text[-1] in ".!?" for c in chunks)


def test_a_docx_keeps_headings_on_chunks_and_tables_whole_rows() -> None:
    rows = [["Item", "Price"]] + [[f"Товар {n}", f"{n * 10}"] for n in range(60)]
    data = make_docx([("h1", "Catalogue"), ("p", _sentences(EN_WORDS, 3, seed=1))], table=rows)
    doc = extract(data, "catalogue.docx", **LIMITS)
    chunks = chunk(doc, target_tokens=100, overlap_tokens=15)
    _check_invariants(doc, chunks, 100)
    assert len(chunks) >= 4 and all(c.heading == "Catalogue" for c in chunks)
    for c in chunks[1:]:
        for line in c.text.split("\n")[1:]:
            assert re.fullmatch(r"Item: Товар \d+; Price: \d+", line), line


def test_source_code_is_cut_between_lines() -> None:
    functions = "\n\n".join(
        f"def handler_{n}(request):\n    value = request.get('field_{n}')\n    return value * {n}\n" for n in range(40)
    )
    doc = extract(functions.encode(), "handlers.py", **LIMITS)
    chunks = chunk(doc, target_tokens=80, overlap_tokens=0)
    _check_invariants(doc, chunks, 80)
    assert all(c.text.startswith("def handler_") and re.search(r"return value \* \d+$", c.text) for c in chunks)


def test_no_overlap_when_asked_and_a_tiny_target_is_refused() -> None:
    doc = Extracted("text", [Section(_paragraphs(EN_WORDS, 10, seed=2))])
    chunks = chunk(doc, target_tokens=60, overlap_tokens=0)
    _check_invariants(doc, chunks, 60)
    assert all(b.start > a.end for a, b in pairwise(chunks))
    assert chunk(doc, target_tokens=60, overlap_tokens=0) == chunks  # deterministic
    with pytest.raises(ValueError):
        chunk(doc, target_tokens=4)


def test_default_sizes_fit_the_spec() -> None:
    doc = Extracted("text", [Section(_paragraphs(RU_WORDS, 60, seed=9))])
    chunks = chunk(doc)
    _check_invariants(doc, chunks, 350)
    assert all(c.tokens >= 100 for c in chunks)
    assert chunk(Extracted("text", [])) == []


@pytest.mark.parametrize("seed", range(6))
def test_invariants_hold_on_random_documents_and_sizes(seed: int) -> None:
    """Random sections (pages, headings, blank lines, long and short pieces, both languages) at tiny to default
    targets: exact slices, nothing lost, within the target; whole words wherever a word fits in a chunk."""
    rng = random.Random(seed)
    sections = []
    for n in range(rng.randint(1, 12)):
        words = rng.choice([EN_WORDS, RU_WORDS])
        parts = [_sentences(words, rng.randint(0, 12), seed * 100 + n + k) for k in range(rng.randint(1, 5))]
        text = rng.choice(["\n\n", "\n", " ", "\n\n\n  "]).join(p for p in parts if p)
        if text:
            sections.append(Section(text, page=n // 3 if seed % 2 else None, heading=rng.choice(["", "A", "A › B"])))
    doc = Extracted("code" if seed % 3 == 0 else "text", sections)  # lines first, or sentences first
    for target, overlap in [(8, 50), (12, 2), (30, 10), (100, 0), (100, 40), (350, 50)]:
        chunks = chunk(doc, target_tokens=target, overlap_tokens=overlap)
        text = doc.text
        assert chunks
        covered = set()
        for c in chunks:
            assert c.text == text[c.start : c.end] and c.text.strip() == c.text and c.tokens <= target
            covered.update(range(c.start, c.end))
        assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())
        longest_word = max(len(w.encode()) for w in text.split())
        if longest_word <= (target - 4) * 4 // 2:
            _check_invariants(doc, chunks, target)
