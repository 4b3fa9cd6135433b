"""Index terms for full-text search: lower-cased words, Russian and English Snowball stems (PyStemmer).

Both backends (SQLite FTS5, PostgreSQL tsvector with the 'simple' configuration) index the output of
`index_terms`, so a query finds the same passages on either: "файлы" finds "файл", "running" finds "run".
"""

from __future__ import annotations

import re
from functools import lru_cache

import Stemmer

WORD = re.compile(r"[^\W_]+", re.UNICODE)
CYRILLIC = re.compile(r"[а-я]")
MAX_WORD = 40  # longer "words" (hashes, base64) are kept whole, unstemmed

# Words too common to say anything about a passage: left out of queries (not of the index).
STOPWORDS = frozenset(
    """a an and are as at be but by can do does for from has have how i if in into is it its me my no not of on
    or our so than that the their them then there these they this to was we were what when where which who why
    will with you your about would should could did been being
    а без более бы был была были было быть в вам вас весь во вот все всего всех вы где да даже для до его ее
    её если есть еще ещё же за здесь и из или им их к как какой когда кто ли либо мне может мы на над надо не
    него нее неё нет ни них но ну о об однако он она они оно от очень по под при с со так также такой там те
    тем то того тоже той только том ты у уже хотя чего чей чем что чтобы чье чья эта эти это я""".split()  # noqa: SIM905
)


@lru_cache(maxsize=2)
def _stemmer(language: str) -> Stemmer.Stemmer:
    return Stemmer.Stemmer(language)


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The stem of one lower-cased word: Russian rules for Cyrillic words, English for the rest."""
    if len(word) > MAX_WORD or word.isdigit():
        return word
    language = "russian" if CYRILLIC.search(word) else "english"
    return str(_stemmer(language).stemWord(word))


def words(text: str) -> list[str]:
    """The lower-cased words of a text (letters and digits; 'ё' read as 'е')."""
    return WORD.findall(text.lower().replace("ё", "е"))


def index_terms(text: str) -> str:
    """The text as space-separated stems: what the full-text indexes store."""
    return " ".join(stem(word) for word in words(text))


def query_terms(text: str) -> list[str]:
    """The distinct stems of a query without stop words (all of them if nothing else is left)."""
    all_words = words(text)
    kept = [word for word in all_words if word not in STOPWORDS] or all_words
    return list(dict.fromkeys(stem(word) for word in kept))


def coverage(query: list[str], text: str) -> float:
    """Share of the query's stems that occur in a text (0..1): how much of the question a passage speaks to."""
    if not query:
        return 0.0
    present = {stem(word) for word in set(words(text))}
    return sum(1 for term in query if term in present) / len(query)
