"""Knowledge ingestion: extraction + chunking throughput (pages per second) per format, on documents the bench
writes itself (tests/knowledge/makers.py), against plain UTF-8 text of the same words (the baseline, same run).

A "page" is a PDF page or a slide; for formats without pages, 3,000 characters of extracted text (about one
printed page). Embedding is not included (see docs/embeddings.md for the embedder's own figures).
Usage: scripts/bench.sh ingest [--pages 200] [--runs 3]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rubin_app.knowledge.chunking import chunk  # noqa: E402
from rubin_app.knowledge.extract import extract  # noqa: E402
from tests.knowledge import makers  # noqa: E402


def _words(text: str) -> list[str]:
    return text.split()


PAGE_CHARS = 3000
LIMITS = {"max_bytes": 1 << 30, "max_expanded_bytes": 1 << 31}
EN = _words(
    "the a of to and in that is for it with as was on be by this are from or have an they which one you were "
    "all we can her has there been if more when will would who so no report budget system network customer "
    "policy engine river mountain library window market theory signal harbor office invoice contract delivery "
    "schedule quality review meeting project storage server memory request answer document section chapter "
    "figure table result method analysis design model process service control value number people company"
)
RU = _words(
    "и в не на что с по как это к из у за от о так для же бы все мы он она они был была отчёт бюджет система "
    "сеть клиент политика двигатель река гора библиотека окно рынок теория сигнал гавань офис счёт договор "
    "доставка расписание качество обзор встреча проект хранилище сервер память запрос ответ документ раздел "
    "глава рисунок таблица результат метод анализ модель процесс служба контроль значение число люди компания"
)


def _sentence(rng: random.Random) -> str:
    words = RU if rng.random() < 0.5 else EN
    return " ".join(rng.choice(words) for _ in range(rng.randint(8, 22))).capitalize() + "."


def _paragraph(rng: random.Random) -> str:
    return " ".join(_sentence(rng) for _ in range(rng.randint(3, 6)))


def _page_paragraphs(rng: random.Random) -> list[str]:
    """About PAGE_CHARS characters of paragraphs."""
    out: list[str] = []
    while sum(len(p) for p in out) < PAGE_CHARS:
        out.append(_paragraph(rng))
    return out


def _lines(paragraph: str, width: int = 90) -> list[str]:
    lines, line = [], ""
    for word in paragraph.split():
        if len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line]


def documents(pages: int) -> dict[str, tuple[str, bytes, list[str]]]:
    """{format: (filename, bytes, the text as paragraphs)} — each about `pages` pages long."""
    rng = random.Random(15)
    book = [_page_paragraphs(rng) for _ in range(pages)]
    flat = [p for page in book for p in page]
    docs: dict[str, tuple[str, bytes, list[str]]] = {}
    pdf_pages = [[line for p in page for line in _lines(p)] for page in book]
    docs["pdf"] = (
        "book.pdf",
        makers.make_pdf(pdf_pages, outline=[(f"Chapter {n}", n) for n in range(0, pages, 10)]),
        flat,
    )
    blocks: list[tuple[str, str]] = []
    for n, page in enumerate(book):
        if n % 3 == 0:
            blocks.append(("h1" if n % 12 == 0 else "h2", f"Section {n}"))
        blocks += [("p", p) for p in page]
    docs["docx"] = ("book.docx", makers.make_docx(blocks), flat)
    slides = [(f"Slide {n}", [s for p in page[:2] for s in p.split(". ")[:3]]) for n, page in enumerate(book)]
    docs["pptx"] = ("deck.pptx", makers.make_pptx(slides), [t for _, b in slides for t in b])
    rows = [["id", "name", "city", "note"]] + [
        [n, rng.choice(EN), rng.choice(RU), _sentence(rng)] for n in range(pages * 30)
    ]
    docs["xlsx"] = ("table.xlsx", makers.make_xlsx({"Data": rows}), [" ".join(map(str, r)) for r in rows])
    docs["csv"] = ("table.csv", makers.make_csv(rows), [" ".join(map(str, r)) for r in rows])
    md = "\n\n".join((f"## Section {n}\n\n" if n % 3 == 0 else "") + "\n\n".join(page) for n, page in enumerate(book))
    docs["markdown"] = ("book.md", md.encode(), flat)
    html = "".join(
        (f"<h2>Section {n}</h2>" if n % 3 == 0 else "") + "".join(f"<p>{p}</p>" for p in page)
        for n, page in enumerate(book)
    )
    docs["html"] = ("book.html", f"<html><head><title>Book</title></head><body>{html}</body></html>".encode(), flat)
    docs["text (cp1251)"] = ("book.txt", "\n\n".join(flat).encode("cp1251"), flat)
    code = "\n\n".join(
        f"def handler_{n}(request):\n    '''{_sentence(rng)}'''\n    return request.get('f{n}')\n"
        for n in range(pages * 25)
    )
    docs["code"] = ("handlers.py", code.encode(), code.split("\n\n"))
    return docs


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(files: dict[str, tuple[str, bytes]], runs: int) -> dict[str, dict[str, float]]:
    """Per file: extraction and chunking time (best of `runs`; the files take turns, so a busy moment on a
    shared machine does not fall on one format only), pages, chunks."""
    results: dict[str, dict[str, float]] = {}
    extracted = {}
    for name, (filename, data) in files.items():
        extracted[name] = extract(data, filename, **LIMITS)
        text_pages = len(extracted[name].text) / PAGE_CHARS
        results[name] = {"size": len(data), "chunks": len(chunk(extracted[name])), "text_pages": text_pages,
                         "pages": float(extracted[name].pages or text_pages), "extract": 1e9, "chunk": 1e9}  # fmt: skip
    for _ in range(runs):
        for name, (filename, data) in files.items():
            m = results[name]
            m["extract"] = min(m["extract"], _timed(lambda: extract(data, filename, **LIMITS)))  # noqa: B023
            m["chunk"] = min(m["chunk"], _timed(lambda: chunk(extracted[name])))  # noqa: B023
    return results


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """A Markdown table."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=200, help="pages per generated document")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (the best counts)")
    args = parser.parse_args()
    docs = documents(args.pages)
    baseline = "plain UTF-8 text (baseline)"
    files = {baseline: ("baseline.txt", "\n\n".join(docs["markdown"][2]).encode())}
    files.update({name: (filename, data) for name, (filename, data, _) in docs.items()})
    results = measure(files, args.runs)
    base = results[baseline]
    base_rate = base["text_pages"] / (base["extract"] + base["chunk"])
    rows = [_row(name, m, base_rate) for name, m in results.items()]
    print(f"\nExtraction + chunking (target 350 tokens, overlap 50), best of {args.runs}, one core\n")
    table(("format", "file", "pages", "chunks", "extract", "chunk", "pages/s", "text pages/s", "vs baseline"), rows)


def _row(name: str, m: dict[str, float], base_rate: float) -> tuple[str, ...]:
    total = m["extract"] + m["chunk"]
    rate, text_rate = m["pages"] / total, m["text_pages"] / total
    return (
        name, f"{m['size'] / 2**20:.2f} MB", f"{m['pages']:.0f}", f"{m['chunks']:.0f}", f"{m['extract'] * 1000:.0f} ms",
        f"{m['chunk'] * 1000:.0f} ms", f"{rate:.0f}", f"{text_rate:.0f}", f"{text_rate / base_rate:.2f}x",
    )  # fmt: skip


if __name__ == "__main__":
    main()
