"""Text extraction from every supported format, judged by content, and a clear error for every bad file."""

from __future__ import annotations

import io
import random
import zipfile
from typing import Any

import docx
import pytest
from docx.enum.style import WD_STYLE_TYPE
from docx.oxml import OxmlElement
from docx.oxml.ns import qn

from rubin_app import i18n
from rubin_app.knowledge.documents import MESSAGES
from rubin_app.knowledge.extract import SUPPORTED_EXTENSIONS, ExtractError, detect_kind, extract
from tests.knowledge.makers import (
    ELF,
    PNG,
    encrypt_office,
    encrypt_pdf,
    make_csv,
    make_docx,
    make_pdf,
    make_pptx,
    make_xlsx,
    with_entity_bomb,
    with_huge_member,
    with_many_members,
)

MB = 2**20
LIMITS = {"max_bytes": 20 * MB, "max_expanded_bytes": 100 * MB}
RU = "Съешь же ещё этих мягких французских булок, да выпей чаю. Широкая электрификация южных губерний."
EN = "The quick brown fox jumps over the lazy dog while the committee reviews the quarterly budget."


def _fails(data: bytes, filename: str, code: str, **limits: int) -> ExtractError:
    with pytest.raises(ExtractError) as caught:
        extract(data, filename, **{**LIMITS, **limits})
    assert caught.value.code == code, caught.value.message
    return caught.value


# --------------------------------------------------------------------------- PDF


def test_a_pdf_gives_a_section_per_page_with_its_number_and_bookmark_heading() -> None:
    pdf = make_pdf(
        [["Introduction", EN], ["Глава вторая", RU], ["Appendix", "Tables and figures."]],
        outline=[("Introduction", 0), ("Глава вторая", 1)],
    )
    result = extract(pdf, "report.pdf", **LIMITS)
    assert (result.kind, result.pages) == ("pdf", 3)
    assert [s.page for s in result.sections] == [1, 2, 3]
    assert result.sections[0].text == f"Introduction\n{EN}"
    assert result.sections[1].text == f"Глава вторая\n{RU}"
    assert [s.heading for s in result.sections] == ["Introduction", "Глава вторая", "Глава вторая"]


def test_a_pdf_is_a_pdf_whatever_its_name() -> None:
    pdf = make_pdf([[EN]])
    assert detect_kind(pdf, "notes.txt") == "pdf"
    assert extract(pdf, "notes", **LIMITS).sections[0].text == EN


def test_a_pdf_after_some_junk_is_a_pdf_but_text_about_pdfs_is_text() -> None:
    assert detect_kind(b"garbage from a mail gateway\r\n" + make_pdf([[EN]]), "a.pdf") == "pdf"
    note = b"Every PDF file starts with %PDF-1.7 and ends with %%EOF.\n%PDF-1.4 is older.\n"
    assert detect_kind(note, "note.txt") == "text"


def test_a_pdf_with_only_an_owner_password_opens() -> None:
    pdf = encrypt_pdf(make_pdf([[EN], [RU]]), user_password="")
    assert [s.text for s in extract(pdf, "locked.pdf", **LIMITS).sections] == [EN, RU]


def test_a_pdf_that_needs_a_password_is_refused_as_encrypted() -> None:
    pdf = encrypt_pdf(make_pdf([[EN]]), user_password="secret")
    error = _fails(pdf, "locked.pdf", "encrypted")
    assert "password" in error.message


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_a_truncated_pdf_is_corrupt(cut: float) -> None:
    pdf = make_pdf([[EN], [RU]])
    _fails(pdf[: int(len(pdf) * cut)], "cut.pdf", "corrupt")


def test_a_pdf_header_over_garbage_is_corrupt() -> None:
    _fails(b"%PDF-1.7\n" + bytes(range(256)) * 40, "junk.pdf", "corrupt")


def test_a_pdf_without_text_says_it_may_be_scanned() -> None:
    error = _fails(make_pdf([[], []]), "scan.pdf", "empty")
    assert "scanned" in error.message


# --------------------------------------------------------------------------- Office


def test_docx_sections_follow_the_headings_and_keep_tables() -> None:
    data = make_docx(
        [("title", "Handbook"), ("p", "Welcome."), ("h1", "Leave"), ("p", EN), ("h2", "Sick leave"), ("p", RU),
         ("h1", "Pay"), ("p", "Paid monthly.")],
        table=[["Grade", "Salary"], ["A", "1000"], ["B", "2000"]],
    )  # fmt: skip
    result = extract(data, "handbook.docx", **LIMITS)
    assert result.kind == "docx"
    assert [s.heading for s in result.sections] == [
        "Handbook", "Handbook › Leave", "Handbook › Leave › Sick leave", "Handbook › Pay",
    ]  # fmt: skip
    assert result.sections[2].text == f"Sick leave\n\n{RU}"
    assert result.sections[3].text.endswith("Grade | Salary\nGrade: A; Salary: 1000\nGrade: B; Salary: 2000")


def test_docx_headings_in_russian_styles_or_by_outline_level() -> None:
    document = docx.Document()
    document.styles.add_style("Заголовок 1", WD_STYLE_TYPE.PARAGRAPH)  # a Russian LibreOffice file's name
    chapter = document.styles.add_style("Chapter", WD_STYLE_TYPE.PARAGRAPH)
    level = OxmlElement("w:outlineLvl")
    level.set(qn("w:val"), "1")  # level 2
    chapter.element.get_or_add_pPr().append(level)
    for text, style in [("Введение", "Заголовок 1"), (RU, None), ("Part A", "Chapter"), (EN, None)]:
        document.add_paragraph(text, style=style)
    out = io.BytesIO()
    document.save(out)
    result = extract(out.getvalue(), "custom.docx", **LIMITS)
    assert [s.heading for s in result.sections] == ["Введение", "Введение › Part A"]


def test_a_docx_named_pdf_is_read_as_docx() -> None:
    data = make_docx([("p", EN)])
    assert detect_kind(data, "scan.pdf") == "docx"
    assert extract(data, "scan.pdf", **LIMITS).sections[0].text == EN


def test_pptx_gives_a_section_per_slide_with_title_bullets_and_notes() -> None:
    data = make_pptx([("Roadmap", ["Q1: search", "Q2: memory"]), ("Дорожная карта", [RU])], notes=["Say hello."])
    result = extract(data, "deck.pptx", **LIMITS)
    assert (result.kind, result.pages) == ("pptx", 2)
    first, second = result.sections
    assert (first.page, first.heading, first.text) == (1, "Roadmap", "Roadmap\n\nQ1: search\nQ2: memory\n\nSay hello.")
    assert (second.page, second.heading, second.text) == (2, "Дорожная карта", f"Дорожная карта\n\n{RU}")


def test_xlsx_gives_a_section_per_sheet_with_columns_named() -> None:
    data = make_xlsx({"Staff": [["Name", "Age"], ["Anna", 31], [None, None], ["Борис", 45.0]], "Raw": [[1, 2], [3, 4]]})
    result = extract(data, "book.xlsx", **LIMITS)
    assert result.kind == "xlsx"
    assert [(s.heading, s.text) for s in result.sections] == [
        ("Staff", "Name | Age\nName: Anna; Age: 31\nName: Борис; Age: 45"),
        ("Raw", "1 | 2\n3 | 4"),
    ]


@pytest.mark.parametrize("name", ["a.docx", "a.xlsx"])
def test_a_password_protected_office_file_is_refused_as_encrypted(name: str) -> None:
    data = make_docx([("p", EN)]) if name.endswith("docx") else make_xlsx({"S": [["a", "b"]]})
    error = _fails(encrypt_office(data, "secret"), name, "encrypted")
    assert "password" in error.message


def test_a_damaged_docx_is_corrupt() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document><unclosed>")
    _fails(out.getvalue(), "broken.docx", "corrupt")


def test_a_truncated_xlsx_is_corrupt() -> None:
    data = make_xlsx({"S": [["a", "b"]] * 50})
    _fails(data[: len(data) // 2], "cut.xlsx", "corrupt")


# --------------------------------------------------------------------------- text formats


@pytest.mark.parametrize(("delimiter", "name"), [(",", "a.csv"), (";", "b.csv"), ("\t", "c.tsv")])
def test_csv_rows_become_lines_with_their_column_names(delimiter: str, name: str) -> None:
    data = make_csv([["city", "population"], ["Москва", "13010112"], ["Paris", "2102650"]], delimiter=delimiter)
    result = extract(data, name, **LIMITS)
    assert result.kind == "csv"
    assert result.sections[0].text.split("\n") == [
        "city | population", "city: Москва; population: 13010112", "city: Paris; population: 2102650",
    ]  # fmt: skip


def test_csv_in_cp1251_is_decoded() -> None:
    data = make_csv([["Город", "Река"], ["Нижний Новгород", "Волга"], ["Санкт-Петербург", "Нева"]], encoding="cp1251")
    assert "Город: Нижний Новгород; Река: Волга" in extract(data, "cities.csv", **LIMITS).sections[0].text


def test_markdown_sections_follow_headings_outside_code_fences() -> None:
    fence = "```sh\n# not a heading\npip install rubin\n```"
    text = f"Preface.\n\n# Guide\n\n{EN}\n\n## Install\n\n{fence}\n\nUsage\n-----\n\n{RU}\n"
    result = extract(text.encode(), "guide.md", **LIMITS)
    assert result.kind == "markdown"
    assert [s.heading for s in result.sections] == ["", "Guide", "Guide › Install", "Guide › Usage"]
    assert result.sections[2].text == f"## Install\n\n{fence}"
    assert result.sections[3].text == f"Usage\n-----\n\n{RU}"


def test_html_keeps_visible_text_by_heading_and_drops_scripts_styles_and_navigation() -> None:
    page = f"""<!doctype html><html><head><title>Docs</title><style>p {{color: red}}</style></head>
    <body><nav><a href="/">Home</a></nav><p>Intro   text
    here.</p><h1>Setup <small>v2</small></h1><p>{EN}</p><ul><li>one</li><li>two</li></ul>
    <script>alert("x")</script><h2>Таблица</h2><table><tr><th>k</th><th>v</th></tr><tr><td>a</td><td>1</td></tr></table>
    <div hidden>secret</div></body></html>"""
    result = extract(page.encode(), "page.html", **LIMITS)
    assert result.kind == "html"
    assert [(s.heading, s.text) for s in result.sections] == [
        ("Docs", "Intro text here."),
        ("Docs › Setup v2", f"Setup v2\n\n{EN}\n\none\ntwo"),
        ("Docs › Setup v2 › Таблица", "Таблица\n\nk | v\na | 1"),
    ]


def test_html_in_cp1251_with_no_extension_is_found_by_content() -> None:
    page = f"<html><head><meta charset='windows-1251'></head><body><h1>Заголовок</h1><p>{RU}</p></body></html>"
    data = page.encode("cp1251")
    assert detect_kind(data, "download") == "html"
    assert extract(data, "download", **LIMITS).sections[0].text == f"Заголовок\n\n{RU}"


def test_xhtml_with_an_xml_declaration_is_read() -> None:
    page = f'<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml"><body><p>{RU}</p></body></html>'
    assert extract(page.encode(), "page.xhtml", **LIMITS).sections[0].text == RU


def test_an_html_file_of_only_markup_is_empty() -> None:
    _fails(b"<html><head><script>x()</script></head><body><!-- nothing --></body></html>", "blank.html", "empty")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1251", "utf-16"])
def test_russian_text_is_decoded_in_any_common_encoding(encoding: str) -> None:
    text = "\n\n".join([RU, "Ещё один абзац о погоде в Москве и в Санкт-Петербурге.", EN])
    result = extract(text.encode(encoding), "notes.txt", **LIMITS)
    assert (result.kind, result.sections[0].text) == ("text", text)


def test_windows_newlines_and_stray_control_characters_are_cleaned() -> None:
    result = extract(f"{EN}\r\n{EN}\x07\r\n\x0c{RU}\r\n".encode(), "a.txt", **LIMITS)
    assert result.sections[0].text == f"{EN}\n{EN}\n{RU}"


def test_a_text_file_with_nul_bytes_is_binary() -> None:
    _fails(f"{EN}\x00{EN}".encode(), "a.txt", "unsupported_type")


def test_the_upload_form_can_offer_every_format() -> None:
    assert {".pdf", ".docx", ".pptx", ".xlsx", ".csv", ".md", ".html", ".txt", ".py"} <= SUPPORTED_EXTENSIONS
    assert {".doc", ".xls", ".png", ".zip", ".odt"}.isdisjoint(SUPPORTED_EXTENSIONS)


def test_source_code_is_kept_as_written() -> None:
    code = 'def greet(name: str) -> str:\n    """Say hello."""\n    return f"Hello, {name}"\n'
    result = extract(code.encode(), "greet.py", **LIMITS)
    assert (result.kind, result.sections[0].text) == ("code", code.strip())
    assert detect_kind(b"all:\n\techo hi\n", "Makefile") == "code"


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("data", "name", "what"), [(PNG, "photo.pdf", "PNG"), (ELF, "readme.txt", "ELF")])
def test_a_renamed_binary_is_refused_by_content(data: bytes, name: str, what: str) -> None:
    error = _fails(data, name, "unsupported_type")
    assert what in error.message


def test_random_bytes_are_not_text() -> None:
    data = bytes((n * 7919 + 13) % 256 for n in range(4096))
    _fails(data, "data.txt", "unsupported_type")


@pytest.mark.parametrize(
    ("members", "hint"),
    [({"a.txt": "x", "b.txt": "y"}, "zip archive"), ({"mimetype": "x", "content.xml": "y"}, "OpenDocument")],
)
def test_other_zip_files_are_unsupported(members: dict[str, str], hint: str) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, body in members.items():
            archive.writestr(name, body)
    assert hint in _fails(out.getvalue(), "file.docx", "unsupported_type").message


def test_an_old_office_file_is_unsupported_with_advice() -> None:
    error = _fails(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600), "old.doc", "unsupported_type")
    assert ".docx" in error.message


@pytest.mark.parametrize("data", [b"", b"   \n\t\n"])
def test_an_empty_file_is_refused(data: bytes) -> None:
    _fails(data, "empty.txt", "empty")


def test_a_docx_of_only_empty_paragraphs_is_empty() -> None:
    _fails(make_docx([("p", ""), ("p", "   ")]), "blank.docx", "empty")


def test_a_file_over_the_size_limit_is_refused_before_reading() -> None:
    error = _fails(EN.encode() * 1000, "big.txt", "too_large", max_bytes=50_000)
    assert "limit" in error.message and "MB" in error.message


def test_a_docx_with_a_huge_compressed_member_is_a_zip_bomb() -> None:
    bomb = with_huge_member(make_docx([("p", EN)]), size=64 * MB)
    assert len(bomb) < MB  # small on disk, 64 MB unpacked
    error = _fails(bomb, "bomb.docx", "zip_bomb")
    assert "times" in error.message


def test_an_xlsx_that_unpacks_past_the_limit_is_a_zip_bomb() -> None:
    bomb = with_huge_member(make_xlsx({"S": [["a", 1]]}), size=8 * MB, name="xl/media/filler.bin")
    error = _fails(bomb, "bomb.xlsx", "zip_bomb", max_expanded_bytes=4 * MB)
    assert "unpacks to 8 MB" in error.message


def test_a_docx_with_too_many_members_is_a_zip_bomb() -> None:
    _fails(with_many_members(make_docx([("p", EN)]), count=10_001), "many.docx", "zip_bomb")


@pytest.mark.parametrize(
    ("name", "container", "member"),
    [
        ("bomb.docx", lambda: make_docx([("p", "hello")]), "word/document.xml"),
        ("bomb.pptx", lambda: make_pptx([("hello", ["x"])]), "ppt/slides/slide1.xml"),
        ("bomb.xlsx", lambda: make_xlsx({"S": [["hello", "x"]]}), "xl/worksheets/sheet1.xml"),
    ],
)
def test_an_xml_entity_bomb_inside_an_office_file_is_refused(name: str, container: Any, member: str) -> None:
    bomb = with_entity_bomb(container(), member, "hello")
    _fails(bomb, name, "corrupt")


def test_every_error_code_has_a_message_in_every_language() -> None:
    for code, message in MESSAGES.items():
        error = ExtractError(code, "Details.")
        assert (error.i18n_key, error.message) == (f"knowledge_error_{code}", f"{message} Details.")
        assert i18n.t(error.i18n_key, "en") == message
        assert i18n.t(error.i18n_key, "ru") != message
    assert set(MESSAGES) == {"unsupported_type", "encrypted", "corrupt", "empty", "too_large", "zip_bomb"}
    with pytest.raises(ValueError, match="unknown"):
        ExtractError("nope")


@pytest.mark.parametrize("kind", ["pdf", "docx", "pptx", "xlsx", "csv", "html", "text"])
def test_damaged_files_give_an_extract_error_or_text_never_a_crash(kind: str) -> None:
    """Truncated at random points or with random bytes overwritten: a clear error or whatever text survives."""
    original, name = {
        "pdf": (lambda: make_pdf([[EN], [RU]], outline=[("One", 0)]), "a.pdf"),
        "docx": (lambda: make_docx([("h1", "Head"), ("p", EN)], table=[["a", "b"], ["1", "2"]]), "a.docx"),
        "pptx": (lambda: make_pptx([("Title", [EN, RU])], notes=["note"]), "a.pptx"),
        "xlsx": (lambda: make_xlsx({"S": [["name", "age"], ["Ann", 3]]}), "a.xlsx"),
        "csv": (lambda: make_csv([["name", "city"], ["Ann", "Москва"]], encoding="cp1251"), "a.csv"),
        "html": (lambda: f"<html><body><h1>T</h1><p>{RU}</p></body></html>".encode(), "a.html"),
        "text": (lambda: f"{EN}\n\n{RU}".encode("cp1251"), "a.txt"),
    }[kind]
    data = original()
    rng = random.Random(kind)
    outcomes = set()
    for n in range(24):
        damaged = bytearray(data[: rng.randint(1, len(data))] if n % 2 else data)
        for _ in range(rng.randint(1, 8)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        try:
            result = extract(bytes(damaged), name, **LIMITS)
        except ExtractError as exc:
            outcomes.add(exc.code)
        else:
            assert result.sections and all(s.text.strip() for s in result.sections)
            outcomes.add("read")
    assert outcomes <= {"read", "corrupt", "unsupported_type", "empty", "encrypted"}
