"""Documents for the retrieval quality set: Debian documentation packages, downloaded and unpacked without root.

`python -m bench.retrieval_docs [--cache DIR]` fills the cache (idempotent) and prints what it holds. Layout under
the cache dir (question `doc` paths are relative to it):
  manpages-ru/man7/tcp.7.txt          Russian man pages (manpages-ru), rendered to plain text by man-db
  debian-faq-ru/basic-defs.ru.html    Debian FAQ in Russian (debian-faq-ru), HTML as shipped
  debian-faq-en/basic-defs.en.html    Debian FAQ in English (debian-faq), HTML as shipped
  debian-reference-en/ch02.en.html    Debian Reference in English (debian-reference-en), HTML as shipped
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.retrieval_text import document_text

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = ROOT / ".tools" / "retrieval-docs"
CHARS_PER_PAGE = 3000  # a "page" of extracted text, for the page count and pages/s (PDF-like density)


@dataclass(frozen=True)
class Source:
    """One Debian package: which of its files become documents, and where."""

    package: str
    version: str  # pinned so the passages stay valid; bookworm (Debian 12) main
    member_dir: str  # directory inside the package
    pattern: str  # glob of the files taken from member_dir
    target: str  # directory under the cache


SOURCES = (
    Source("manpages-ru", "4.18.1-1", "usr/share/man/ru", "man[1578]/*.gz", "manpages-ru"),
    Source("debian-faq-ru", "11.1", "usr/share/doc/debian/FAQ/ru", "*.ru.html", "debian-faq-ru"),
    Source("debian-faq", "11.1", "usr/share/doc/debian/FAQ", "*.en.html", "debian-faq-en"),
    Source("debian-reference-en", "2.100", "usr/share/debian-reference", "*.en.html", "debian-reference-en"),
)
# Man pages that are tables of characters or one-line redirects (".so other.7") carry no prose to ask about.
MAN_SKIP_PREFIXES = ("iso_8859", "iso-8859", "latin", "cp125", "koi8", "armscii", "tis-620", "ascii", "charsets")
MIN_MAN_SOURCE_BYTES = 1500


class FetchError(RuntimeError):
    """A package could not be downloaded or unpacked."""


def _download(source: Source, into: Path) -> Path:
    """`apt-get download` the pinned version (no root needed); returns the .deb."""
    spec = f"{source.package}={source.version}"
    result = subprocess.run(
        ["apt-get", "download", spec], cwd=into, capture_output=True, text=True, check=False, timeout=600
    )
    debs = sorted(into.glob(f"{source.package}_*.deb"))
    if result.returncode != 0 or not debs:
        hint = " (run apt-get update first)" if "Unable to locate" in result.stderr else ""
        raise FetchError(f"apt-get download {spec} failed{hint}: {result.stderr.strip()[-400:]}")
    return debs[0]


def _render_man(page: Path, out: Path) -> bool:
    """Render a man page to plain text (no hyphenation or justification, so sentences stay whole)."""
    env = {**os.environ, "LC_ALL": "C.UTF-8", "MANWIDTH": "80", "MAN_KEEP_FORMATTING": ""}
    man = subprocess.run(
        ["man", "--nh", "--nj", "-l", str(page)], capture_output=True, env=env, check=False, timeout=60
    )
    if man.returncode != 0 or not man.stdout.strip():
        return False
    text = subprocess.run(["col", "-b"], input=man.stdout, capture_output=True, check=True, timeout=60).stdout
    out.write_bytes(text)
    return True


def _wanted_man(page: Path) -> bool:
    """True for a man page with prose (not a character table or a .so redirect)."""
    if page.name.startswith(MAN_SKIP_PREFIXES) or page.is_symlink():
        return False
    return page.stat().st_size >= MIN_MAN_SOURCE_BYTES


def _install(source: Source, deb: Path, cache: Path, work: Path) -> int:
    """Unpack the .deb with `dpkg -x` and copy (or render) its documents into the cache; returns the count."""
    unpacked = work / source.package
    subprocess.run(["dpkg", "-x", str(deb), str(unpacked)], check=True, timeout=600)
    target = cache / source.target
    staging = cache / f".{source.target}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    count = 0
    for path in sorted((unpacked / source.member_dir).glob(source.pattern)):
        if source.package == "manpages-ru":
            if not _wanted_man(path):
                continue
            dest = staging / path.parent.name / (path.name.removesuffix(".gz") + ".txt")
            dest.parent.mkdir(parents=True, exist_ok=True)
            count += _render_man(path, dest)
        else:
            staging.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, staging / path.name)
            count += 1
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)  # complete or absent: an interrupted run starts this package again
    return count


def fetch(cache: Path = DEFAULT_CACHE) -> Path:
    """Make sure every source is unpacked under `cache` (downloads only what is missing); returns the cache."""
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise FetchError("apt-get and dpkg are needed (Debian or Ubuntu)")
    if shutil.which("man") is None or shutil.which("col") is None:
        raise FetchError("man and col are needed to render the man pages: apt-get install man-db bsdextrautils")
    cache.mkdir(parents=True, exist_ok=True)
    for source in SOURCES:
        if (cache / source.target).is_dir():
            continue
        with tempfile.TemporaryDirectory(prefix="rubin-docs-") as tmp:
            work = Path(tmp)
            os.chmod(work, 0o755)  # apt's _apt user writes the download here when run as root
            deb = _download(source, work)
            count = _install(source, deb, cache, work)
        print(f"{source.package} {source.version}: {count} documents", file=sys.stderr)
    return cache


def documents(cache: Path = DEFAULT_CACHE) -> list[Path]:
    """Every document in the cache, sorted (paths, not read)."""
    found = [p for s in SOURCES for p in (cache / s.target).rglob("*") if p.is_file()]
    return sorted(found)


def main() -> None:
    """Fetch the documents and print how many there are and how many pages of text they hold."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args()
    cache = fetch(args.cache)
    for source in SOURCES:
        docs = [p for p in documents(cache) if p.is_relative_to(cache / source.target)]
        chars = sum(len(document_text(p)) for p in docs)
        print(f"{source.target:22} {len(docs):4} documents {chars:>10,} chars {chars / CHARS_PER_PAGE:7.0f} pages")


if __name__ == "__main__":
    main()
