"""Lexical query→item relevance: BM25 over each item's title + category + brand.

The scorer is the maintained library ``bm25s`` (its default "lucene" variant: idf
``ln(1 + (N - df + 0.5) / (df + 0.5))``, term part ``tf / (tf + k1 * (1 - b + b * len / avg_len))``),
fed with our own tokens (``ml.search.text.tokenize``: jieba for Han runs, Latin/digit words whole),
so a Chinese title and a Chinese query are cut the same way. bm25s precomputes every (term, item)
score at build time, so scoring a query is a sum over the posting lists of its few tokens: about a
millisecond for a 10k-item catalogue, cheap enough to run inside the ``/search`` reader for
queries that have no published list.

A query token repeated ("case case") counts once per occurrence, as bm25s does; a token absent
from the catalogue contributes nothing.
"""

from __future__ import annotations

import bm25s
import numpy as np
import pandas as pd

from ml.search.text import tokenize

#: The item columns whose words make up the searchable text, in this order.
ITEM_TEXT_COLUMNS = ("title", "category", "brand")


def _require_columns(items: pd.DataFrame) -> None:
    missing = sorted({"item_id", *ITEM_TEXT_COLUMNS} - set(items.columns))
    if missing:
        raise ValueError(f"items lacks column(s) {missing}; needs item_id, {', '.join(ITEM_TEXT_COLUMNS)}")


def item_ids_of(items: pd.DataFrame) -> np.ndarray:
    """The frame's item ids as int64, in frame order; NULL, fractional or repeated ids are errors."""
    _require_columns(items)
    ids = pd.to_numeric(items["item_id"], errors="coerce")
    bad = items.loc[ids.isna() | (ids != ids.round()), "item_id"]
    if len(bad):
        raise ValueError(
            f"items has {len(bad)} row(s) without an integer item_id, e.g. {bad.head(3).tolist()}"
        )
    out = ids.to_numpy(dtype=np.int64)
    uniq, counts = np.unique(out, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"items repeats item_id(s) {uniq[counts > 1][:5].tolist()}: one row per item")
    return out


def item_text(items: pd.DataFrame) -> pd.Series:
    """Searchable text per item: "title category brand", NULLs skipped, "phone_cases" → "phone cases".

    Indexed like ``items``; the same text feeds BM25 and the semantic embedder.
    """
    _require_columns(items)
    parts = [
        items[col].astype("string").fillna("").str.replace(r"[_\s]+", " ", regex=True).str.strip()
        for col in ITEM_TEXT_COLUMNS
    ]
    text = parts[0].str.cat(parts[1:], sep=" ").str.replace(r"\s+", " ", regex=True).str.strip()
    return text.astype(object).rename("item_text")


def top_positive(item_ids: np.ndarray, scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The ``k`` best (item_id, score) with score > 0, highest first, ties by the smaller item_id."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    hits = np.flatnonzero(scores > 0)
    order = hits[np.lexsort((item_ids[hits], -scores[hits]))][:k]
    return [(int(item_ids[i]), float(scores[i])) for i in order]


class LexicalIndex:
    """BM25 over a catalogue; ``scores`` is aligned with ``item_ids`` (the order of the frame given)."""

    def __init__(self, item_ids: np.ndarray, retriever: bm25s.BM25 | None) -> None:
        self.item_ids = item_ids
        # None when no item has a single token: every query then scores 0 everywhere.
        self._retriever = retriever

    @classmethod
    def build(cls, items: pd.DataFrame, k1: float = 1.5, b: float = 0.75) -> LexicalIndex:
        """Index ``items`` (item_id, title, category, brand; NULL text allowed)."""
        item_ids = item_ids_of(items)
        corpus = [tokenize(text, max_chars=None) for text in item_text(items)]
        if not any(corpus):
            return cls(item_ids, None)
        retriever = bm25s.BM25(k1=k1, b=b)
        retriever.index(corpus, show_progress=False)
        return cls(item_ids, retriever)

    def __len__(self) -> int:
        return len(self.item_ids)

    def scores(self, query: str) -> np.ndarray:
        """float32 BM25 of ``query`` for every item (0 where no query token occurs)."""
        tokens = tokenize(query)
        if self._retriever is None or not tokens:
            return np.zeros(len(self.item_ids), dtype=np.float32)
        return self._retriever.get_scores(tokens).astype(np.float32, copy=False)

    def top(self, query: str, k: int) -> list[tuple[int, float]]:
        """The ``k`` items with the highest positive BM25, ties by the smaller item_id."""
        return top_positive(self.item_ids, self.scores(query), k)
