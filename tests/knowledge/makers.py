"""Documents of every supported format, written in the test (no files from the internet): PDF by a small
writer below, Office files by python-docx / python-pptx / openpyxl, the rest as text."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Sequence

import docx
import openpyxl
import pptx
from msoffcrypto.format.ooxml import OOXMLFile
from pypdf import PdfReader, PdfWriter

# --------------------------------------------------------------------------- PDF


def make_pdf(pages: Sequence[Sequence[str]], *, outline: Sequence[tuple[str, int]] = ()) -> bytes:
    """A PDF whose page i shows the lines pages[i] (any Unicode: a Type0 font with a ToUnicode map, not embedded,
    so the text extracts exactly), with bookmarks (title, 0-based page)."""
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled in below
    pages_id = add(b"")
    used = {ord(ch) >> 8 for page in pages for line in page for ch in line} | {0}
    cmap = _to_unicode_cmap(sorted(used))
    to_unicode = add(_stream(cmap))
    descriptor = add(
        b"<< /Type /FontDescriptor /FontName /Helvetica /Flags 32 /FontBBox [0 -200 1000 900] /ItalicAngle 0 "
        b"/Ascent 900 /Descent -200 /CapHeight 700 /StemV 80 >>"
    )
    cid_font = add(
        b"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /Helvetica /CIDSystemInfo << /Registry (Adobe) "
        b"/Ordering (Identity) /Supplement 0 >> /FontDescriptor %d 0 R /DW 500 >>" % descriptor
    )
    font = add(
        b"<< /Type /Font /Subtype /Type0 /BaseFont /Helvetica /Encoding /Identity-H /DescendantFonts [%d 0 R] "
        b"/ToUnicode %d 0 R >>" % (cid_font, to_unicode)
    )
    page_ids = []
    for lines in pages:
        ops = [b"BT /F1 11 Tf 14 TL 50 800 Td"]
        ops += [b"(" + _literal(line.encode("utf-16-be")) + b") Tj T*" for line in lines]
        ops.append(b"ET")
        content = add(_stream(b"\n".join(ops)))
        page_ids.append(
            add(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 595 842] /Contents %d 0 R "
                b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (pages_id, content, font)
            )
        )
    kids = b" ".join(b"%d 0 R" % p for p in page_ids)
    objects[pages_id - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(page_ids))
    outlines = _outline(add, objects, outline, page_ids) if outline else b""
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R %s>>" % (pages_id, outlines)
    return _serialise(objects, catalog)


def _literal(data: bytes) -> bytes:
    """A PDF literal string's body: parentheses and backslashes escaped, other bytes as they are."""
    return data.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)").replace(b"\r", b"\\r")


def _stream(data: bytes) -> bytes:
    return b"<< /Length %d >>\nstream\n%s\nendstream" % (len(data), data)


def _to_unicode_cmap(high_bytes: list[int]) -> bytes:
    ranges = [b"<%02X00> <%02XFF> <%02X00>" % (h, h, h) for h in high_bytes]
    return b"\n".join(
        [
            b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap",
            b"/CMapName /Rubin-UCS def /CMapType 2 def",
            b"1 begincodespacerange <0000> <FFFF> endcodespacerange",
            b"%d beginbfrange" % len(ranges),
            *ranges,
            b"endbfrange endcmap CMapName currentdict /CMap defineresource pop end end",
        ]
    )


def _outline(add, objects: list[bytes], outline: Sequence[tuple[str, int]], page_ids: list[int]) -> bytes:  # type: ignore[no-untyped-def]
    root = add(b"")
    items = [add(b"") for _ in outline]
    for n, ((title, page), item) in enumerate(zip(outline, items, strict=True)):
        links = b""
        if n > 0:
            links += b"/Prev %d 0 R " % items[n - 1]
        if n + 1 < len(items):
            links += b"/Next %d 0 R " % items[n + 1]
        hex_title = ("\ufeff" + title).encode("utf-16-be").hex().encode()
        objects[item - 1] = b"<< /Title <%s> /Parent %d 0 R %s/Dest [%d 0 R /Fit] >>" % (
            hex_title,
            root,
            links,
            page_ids[page],
        )
    objects[root - 1] = b"<< /Type /Outlines /First %d 0 R /Last %d 0 R /Count %d >>" % (
        items[0],
        items[-1],
        len(items),
    )
    return b"/Outlines %d 0 R " % root


def _serialise(objects: list[bytes], root: int) -> bytes:
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (n, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, root, xref))
    return out.getvalue()


def encrypt_pdf(data: bytes, *, user_password: str, owner_password: str = "owner") -> bytes:
    """The same PDF encrypted with pypdf's writer (AES-128); user_password "" = opens without a password."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=user_password, owner_password=owner_password, algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# --------------------------------------------------------------------------- Office


def encrypt_office(data: bytes, password: str) -> bytes:
    """A DOCX/XLSX/PPTX protected by a password, as Office writes it (msoffcrypto-tool)."""
    out = io.BytesIO()
    OOXMLFile(io.BytesIO(data)).encrypt(password, out)
    return out.getvalue()


def make_docx(blocks: Sequence[tuple[str, str]], *, table: Sequence[Sequence[str]] = ()) -> bytes:
    """A DOCX of ("h1".."h3" | "title" | "p", text) blocks, then an optional table."""
    document = docx.Document()
    for style, text in blocks:
        if style == "p":
            document.add_paragraph(text)
        elif style == "title":
            document.add_heading(text, level=0)
        else:
            document.add_heading(text, level=int(style[1:]))
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_pptx(slides: Sequence[tuple[str, Sequence[str]]], *, notes: Sequence[str] = ()) -> bytes:
    """A PPTX with one title-and-content slide per (title, bullet lines), optional speaker notes per slide."""
    deck = pptx.Presentation()
    layout = deck.slide_layouts[1]
    for n, (title, bullets) in enumerate(slides):
        slide = deck.slides.add_slide(layout)
        slide.shapes.title.text = title
        slide.placeholders[1].text_frame.text = "\n".join(bullets)
        if n < len(notes):
            slide.notes_slide.notes_text_frame.text = notes[n]
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def make_xlsx(sheets: dict[str, Sequence[Sequence[object]]]) -> bytes:
    """An XLSX with one worksheet per name, rows as given."""
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def make_csv(rows: Sequence[Sequence[object]], *, delimiter: str = ",", encoding: str = "utf-8") -> bytes:
    """CSV text of the rows."""
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return out.getvalue().encode(encoding)


# --------------------------------------------------------------------------- bad input


def with_huge_member(container: bytes, *, size: int, name: str = "word/media/filler.bin") -> bytes:
    """The zip container plus one member of `size` zero bytes (packs to about size/1000): a zip bomb."""
    out = io.BytesIO(container)
    with (
        zipfile.ZipFile(out, "a", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
        archive.open(name, "w", force_zip64=True) as member,
    ):
        block = bytes(1 << 20)
        for _ in range(size >> 20):
            member.write(block)
    return out.getvalue()


def with_many_members(container: bytes, *, count: int) -> bytes:
    """The zip container plus `count` tiny members."""
    out = io.BytesIO(container)
    with zipfile.ZipFile(out, "a") as archive:
        for n in range(count):
            archive.writestr(f"extra/part{n}.xml", b"<a/>")
    return out.getvalue()


# "Billion laughs": nine levels of ten references, 10^9 copies of "lol" if a parser expanded them.
ENTITY_BOMB = (
    '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY lol0 "lol">'
    + "".join(f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10))
    + "]>"
)


def with_entity_bomb(container: bytes, member: str, text: str) -> bytes:
    """The zip container with `text` in `member` replaced by a reference to an entity bomb declared in it."""
    source = zipfile.ZipFile(io.BytesIO(container))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for info in source.infolist():
            body = source.read(info)
            if info.filename == member:
                xml = re.sub(r"^<\?xml[^>]*\?>\s*", "", body.decode())
                assert text in xml, f"{text!r} is not in {member}"
                body = (ENTITY_BOMB + xml.replace(text, "&lol9;", 1)).encode()
            archive.writestr(info, body)
    return out.getvalue()


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(8) + b"\x02\x00>\x00\x01\x00\x00\x00" + bytes(200)
