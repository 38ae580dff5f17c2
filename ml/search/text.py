"""Query understanding: one normalisation shared by Python and SQL, and a tokeniser for Chinese,
English and mixed text.

``normalize_query`` is the key of every query table (``ml_query_item``, ``query_topn``): NFKC, lower
case, every run of characters that are not letters or digits becomes one space, trimmed, at most
``MAX_QUERY_CHARS`` characters. The dbt macro ``normalize_query`` computes the same in MariaDB
(``lower`` + ``regexp_replace('[^\\p{L}\\p{N}]+', ' ')``); MariaDB has no NFKC, but the serving
tables use a ``utf8mb4_unicode_ci`` collation, under which width variants ("ｐｈｏｎｅ") and case
compare equal, so a lookup finds the key either way.

``tokenize`` splits the normalised text on spaces, then cuts every run of Han characters with jieba
(its dictionary ships inside the package: nothing is downloaded) and keeps Latin/digit runs whole,
so "iphone手机壳" → ["iphone", "手机", "壳"].
"""

from __future__ import annotations

import logging
import re
import unicodedata
from functools import lru_cache

MAX_QUERY_CHARS = 100

_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)
_HAN_RUNS = re.compile(r"([\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+)")


def fold_text(text: str | None) -> str:
    """NFKC, lower case, non-word runs → one space, trimmed; no length cap (item titles)."""
    if not text:
        return ""
    folded = unicodedata.normalize("NFKC", str(text)).lower()
    return _NOT_WORD.sub(" ", folded).strip()


def normalize_query(text: str | None) -> str:
    """The canonical form of a query ("" for None, blank or punctuation-only text)."""
    return fold_text(text)[:MAX_QUERY_CHARS].strip()


@lru_cache(maxsize=1)
def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


@lru_cache(maxsize=65536)
def _cut_han(run: str) -> tuple[str, ...]:
    return tuple(w for w in _jieba().lcut(run, HMM=False) if w.strip())


def tokenize(text: str | None, max_chars: int | None = MAX_QUERY_CHARS) -> list[str]:
    """Tokens of the normalised text: Latin/digit words whole, Han runs segmented by jieba.

    A query is cut at ``MAX_QUERY_CHARS`` like its key; item text (title + category + brand) passes
    ``max_chars=None`` so a long title never loses the brand at its end.
    """
    folded = fold_text(text)
    if max_chars is not None:
        folded = folded[:max_chars]
    out: list[str] = []
    for word in folded.split():
        for part in _HAN_RUNS.split(word):
            if not part:
                continue
            if _HAN_RUNS.fullmatch(part):
                out.extend(_cut_han(part))
            else:
                out.append(part)
    return out
