"""Search lists for publishing: the :class:`SearchLists` protocol the publisher reads, and
:class:`BaselineSearchLists`, what is published while no search ranker is champion.

A provider answers two questions, both as ranked frames the publisher checks
(:func:`ml.quality.topn.check_search_frame`) and writes to the serving tables:

- ``query_lists(settings, queries, k)``: the top-k items of each normalised query (``query_topn``);
- ``user_lists(settings, user_ids, k)``: for each user, a list per query among their recent searches
  (``ml_user_recent_queries``), ranked for that user (``user_query_topn``).

The baseline ranks a query's items by how much shoppers engaged with them after searching it
(``ml_query_item.weighted``, in-stock items only), fills the list up to k with BM25 over the
in-stock catalogue (:class:`ml.search.lexical.LexicalIndex`), and personalises a user's lists by
moving the items of their current intent category (``serve_user_intent_category``) to the front.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Sequence
from typing import Protocol

import pandas as pd

from ml.config import Settings
from ml.contracts import QUERY_TOPN_COLUMNS, USER_QUERY_TOPN_COLUMNS
from ml.db import connect
from ml.search.text import normalize_query

log = logging.getLogger(__name__)

#: The marts the search serving tables are built from; without them search tables are left as they are.
SEARCH_MARTS: tuple[str, ...] = ("ml_query_stats", "ml_query_item", "ml_user_recent_queries")

#: Baseline scores are tiered so a list never rises with rank: behaviour rows 1 + weighted/max in
#: (1, 2], BM25 fill rows bm25/max in (0, 1]; an intent-category item of a user list gets + 2 on top.
INTENT_BOOST = 2.0
_SQL_BATCH = 500


class SearchLists(Protocol):
    """Anything that ranks items for search queries (docs/contracts.md, "Search serving")."""

    model_version: str

    def query_lists(self, settings: Settings, queries: Sequence[str], k: int) -> pd.DataFrame:
        """``QUERY_TOPN_COLUMNS`` rows: up to k items per query, rank 1..m, scores non-increasing."""
        ...

    def user_lists(self, settings: Settings, user_ids: Sequence[int], k: int) -> pd.DataFrame:
        """``USER_QUERY_TOPN_COLUMNS`` rows: a list per (user, recent query) for these users."""
        ...


def fold_key(query: str) -> str:
    """An approximation of the serving collation (``utf8mb4_unicode_ci``: case, width and accents
    compare equal) used to keep one of two queries that would collide in a table's primary key."""
    decomposed = unicodedata.normalize("NFKD", normalize_query(query))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def distinct_queries(queries: Sequence[str]) -> list[str]:
    """Normalised, non-empty queries in their first order, one per :func:`fold_key`."""
    seen: set[str] = set()
    out: list[str] = []
    for q in queries:
        norm = normalize_query(q)
        key = fold_key(norm)
        if norm and key not in seen:
            seen.add(key)
            out.append(norm)
    return out


def _rows(settings: Settings, sql: str, args: Sequence[object] = ()) -> list[tuple]:
    conn = connect(settings=settings)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, tuple(args))
            return list(cur.fetchall())
    finally:
        conn.close()


def _ids(values: Sequence[int]) -> str:
    return ",".join(str(int(v)) for v in values)


class BaselineSearchLists:
    """Query popularity (``ml_query_item``) filled with BM25; user lists reordered by intent category."""

    model_version = "baseline:query_pop+bm25"

    def __init__(self) -> None:
        self._index = None  # LexicalIndex over the in-stock catalogue, built on first use

    def _lexical(self, settings: Settings):
        if self._index is None:
            from ml.search.lexical import LexicalIndex

            items = pd.DataFrame(
                _rows(
                    settings,
                    f"SELECT item_id, title, category, brand FROM `{settings.raw_db}`.items "
                    "WHERE in_stock = 1 ORDER BY item_id",
                ),
                columns=["item_id", "title", "category", "brand"],
            )
            self._index = LexicalIndex.build(items)
        return self._index

    def _popular(self, settings: Settings, queries: list[str], k: int) -> dict[str, list[tuple[int, float]]]:
        """(item_id, weighted) of each query, best first, in-stock items only. The asked queries are
        joined as a derived table so MariaDB matches them to the mart's keys under its own collation."""
        out: dict[str, list[tuple[int, float]]] = {q: [] for q in queries}
        for start in range(0, len(queries), _SQL_BATCH):
            chunk = queries[start : start + _SQL_BATCH]
            asked = " UNION ALL ".join("SELECT %s AS ix, %s AS q" for _ in chunk)
            args: list[object] = [v for i, q in enumerate(chunk) for v in (start + i, q)]
            rows = _rows(
                settings,
                f"""SELECT ix, item_id, weighted FROM (
                  SELECT a.ix, m.item_id, m.weighted,
                         ROW_NUMBER() OVER (PARTITION BY a.ix ORDER BY m.weighted DESC, m.item_id) AS rn
                  FROM ({asked}) a
                  JOIN `{settings.marts_db}`.ml_query_item m ON m.query_norm = a.q
                  JOIN `{settings.raw_db}`.items i ON i.item_id = m.item_id AND i.in_stock = 1
                  WHERE m.weighted > 0
                ) x WHERE rn <= %s ORDER BY ix, rn""",
                [*args, k],
            )
            for ix, item_id, weighted in rows:
                out[queries[int(ix)]].append((int(item_id), float(weighted)))
        return out

    def query_lists(self, settings: Settings, queries: Sequence[str], k: int) -> pd.DataFrame:
        asked = distinct_queries(queries)
        popular = self._popular(settings, asked, k)
        index = self._lexical(settings)
        rows: list[tuple] = []
        for q in asked:
            pop = popular[q]
            top_w = max((w for _, w in pop), default=1.0)
            ranked = [(item, 1.0 + w / top_w, "query_pop") for item, w in pop]
            if len(ranked) < k:
                seen = {item for item, _, _ in ranked}
                hits = [(i, s) for i, s in index.top(q, k + len(ranked)) if s > 0 and i not in seen]
                top_s = max((s for _, s in hits), default=1.0)
                ranked += [(i, s / top_s, "bm25") for i, s in hits[: k - len(ranked)]]
            rows += [(q, r + 1, item, score, src) for r, (item, score, src) in enumerate(ranked)]
        return pd.DataFrame(rows, columns=list(QUERY_TOPN_COLUMNS))

    def user_lists(self, settings: Settings, user_ids: Sequence[int], k: int) -> pd.DataFrame:
        empty = pd.DataFrame([], columns=list(USER_QUERY_TOPN_COLUMNS))
        if not user_ids:
            return empty
        recent = _rows(
            settings,
            f"SELECT user_id, query_norm FROM `{settings.marts_db}`.ml_user_recent_queries "
            f"WHERE user_id IN ({_ids(user_ids)}) ORDER BY user_id, rn",
        )
        per_user: dict[int, list[str]] = {}
        for user, q in recent:
            per_user.setdefault(int(user), []).append(str(q))
        per_user = {u: distinct_queries(qs) for u, qs in per_user.items()}
        lists = self.query_lists(settings, [q for qs in per_user.values() for q in qs], k)
        if lists.empty:
            return empty
        intent = self._intent(settings, list(per_user))
        category = dict(
            _rows(
                settings,
                f"SELECT item_id, category_id FROM `{settings.raw_db}`.items "
                f"WHERE item_id IN ({_ids(lists['item_id'].unique().tolist())})",
            )
        )
        by_query = {q: g for q, g in lists.groupby("query_norm", sort=False)}
        rows: list[tuple] = []
        for user, queries in per_user.items():
            cat = intent.get(user)
            for q in queries:
                if q not in by_query:
                    continue
                ranked = list(by_query[q][["item_id", "score", "source"]].itertuples(index=False, name=None))
                if cat is not None:
                    mine = [
                        (i, s + INTENT_BOOST, f"{src}+intent")
                        for i, s, src in ranked
                        if category.get(i) == cat
                    ]
                    rest = [(i, s, f"{src}+intent") for i, s, src in ranked if category.get(i) != cat]
                    ranked = mine + rest
                rows += [(user, q, r + 1, int(i), float(s), src) for r, (i, s, src) in enumerate(ranked)]
        return pd.DataFrame(rows, columns=list(USER_QUERY_TOPN_COLUMNS))

    @staticmethod
    def _intent(settings: Settings, user_ids: list[int]) -> dict[int, int]:
        """Each user's current intent category (the dbt view over ``fct_session_intent``), if built."""
        found = _rows(
            settings,
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
            (settings.marts_db, "serve_user_intent_category"),
        )
        if not found[0][0]:
            log.warning(
                "%s.serve_user_intent_category missing: user search lists not reordered by intent",
                settings.marts_db,
            )
            return {}
        rows = _rows(
            settings,
            f"SELECT user_id, category_id FROM `{settings.marts_db}`.serve_user_intent_category "
            f"WHERE user_id IN ({_ids(user_ids)})",
        )
        return {int(u): int(c) for u, c in rows}
