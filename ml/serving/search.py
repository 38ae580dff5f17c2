"""``GET /search?q=&user_id=&n=`` of the serving reader (issue 15).

``q`` is normalised (:func:`ml.search.text.normalize_query`), then answered from the user's own list
for that query (``user_query_topn``, source ``user``), else from the query's published list
(``query_topn``) with the items of the user's intent category (``user_intent_category``) moved up at
read time, stable otherwise (source ``query+intent``; ``query`` without a user or intent), else with
BM25 over the titles of the in-stock catalogue (``search_items``, source ``lexical``). A query that
normalises to nothing ("!!!") gets an empty list (source ``empty``); a missing, empty or over-long
one (> :data:`MAX_QUERY_CHARS_IN`) and ``n`` outside 1..``RECSYS_SEARCH_K`` are 422. The reads follow
:mod:`ml.serving.app`'s rules (one autocommit statement each, 1412 retried, 503 on database trouble,
the API-key guard, the thread pool).

The BM25 index lives in the reader process (:class:`LexicalCache`): the read-only account reads
``search_items``, never ``recsys_raw``; a full publish that replaced ``search_items`` shows up as a
newer full ``publish_log`` id, and the index is rebuilt in the background while the old one serves.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

from fastapi import Depends, FastAPI, Query
from fastapi.responses import Response
from pydantic import BaseModel

from ml.search.text import normalize_query
from ml.serving.impressions import ImpressionLogger, request_id_header, served_response

MAX_ID = 2**63 - 1  # BIGINT, as for the other endpoints
MAX_QUERY_CHARS_IN = 200  # a longer q is a client error (422); normalisation keeps 100 characters
LEXICAL_CHECK_S = 5.0  # how often the reader asks whether a full publish replaced search_items
log = logging.getLogger(__name__)


class _Reads(Protocol):
    """What the search reads need of :class:`ml.serving.app.ServingStore`."""

    def query(self, sql: str, args: tuple = ()) -> list[tuple]: ...


class SearchItem(BaseModel):
    item_id: int
    rank: int
    score: float


class SearchResults(BaseModel):
    query: str
    query_norm: str
    user_id: int | None
    source: str  # user | query+intent | query | lexical | empty
    model_version: str | None
    items: list[SearchItem]


#: The user's list for the query (part 1), then the query's list (part 2) with the items of the user's
#: intent category first (stable: by rank inside each group; the intent is NULL without a user or
#: an intent row), each cut at n, in answer order. Parameters: user_id, query_norm, n, twice.
_LISTS_SQL = """
SELECT part, item_id, score, model_version, intent FROM (
  (SELECT 1 AS part, `rank` AS pos, item_id, score, model_version, NULL AS intent
   FROM user_query_topn WHERE user_id = %s AND query_norm = %s ORDER BY `rank` LIMIT %s)
  UNION ALL
  (SELECT 2, ROW_NUMBER() OVER (ORDER BY COALESCE(si.category_id = u.cat, 0) DESC, q.`rank`),
          q.item_id, q.score, q.model_version, u.cat
   FROM query_topn q
   LEFT JOIN search_items si ON si.item_id = q.item_id
   CROSS JOIN (SELECT (SELECT category_id FROM user_intent_category WHERE user_id = %s) AS cat) u
   WHERE q.query_norm = %s ORDER BY 2 LIMIT %s)
) lists ORDER BY part, pos
"""


def _ranked(rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """``[{item_id, rank, score}]`` from rows starting (item_id, score, ...), in their order."""
    return [{"item_id": int(r[0]), "rank": k, "score": float(r[1])} for k, r in enumerate(rows, 1)]


class LexicalCache:
    """The reader's BM25 index (:class:`ml.search.lexical.LexicalIndex`) over the in-stock rows of
    ``search_items``. Built at startup (in the background) or by the first request that needs it;
    rebuilt in a background thread when a newer full publish shows up in ``publish_log`` (checked at
    most every :data:`LEXICAL_CHECK_S` seconds), while requests keep using the previous index."""

    def __init__(self, store: _Reads, check_s: float = LEXICAL_CHECK_S):
        self._store, self._check_s = store, check_s
        self._lock = threading.Lock()  # one build at a time
        self._index: Any = None
        self._generation: int | None = None
        self._built = False
        self._checked_at = 0.0
        self._rebuilding = False
        self.builds = 0  # tests and /health read it

    def _generation_now(self) -> int:
        rows = self._store.query("SELECT COALESCE(MAX(id), 0) FROM publish_log WHERE kind = 'full'")
        return int(rows[0][0])

    def _build(self) -> None:
        with self._lock:
            generation = self._generation_now()
            if self._built and generation == self._generation:
                return
            rows = self._store.query(
                "SELECT item_id, title, category, brand FROM search_items WHERE in_stock = 1 ORDER BY item_id"
            )
            index = None
            if rows:
                import pandas as pd

                from ml.search.lexical import LexicalIndex

                index = LexicalIndex.build(
                    pd.DataFrame(rows, columns=["item_id", "title", "category", "brand"])
                )
            self._index, self._generation, self._built = index, generation, True
            self._checked_at = time.monotonic()
            self.builds += 1
            log.info("lexical index built over %d in-stock items (full publish %d)", len(rows), generation)

    def _rebuild_in_background(self) -> None:
        try:
            self._build()
        except Exception as exc:  # noqa: BLE001 - the old index keeps serving; the next check retries
            log.warning("lexical index rebuild failed, the previous one keeps serving: %s", exc)
        finally:
            self._rebuilding = False

    def warm(self) -> None:
        """Start building in the background (app startup); a database that is down is not fatal."""
        self._rebuilding = True
        threading.Thread(target=self._rebuild_in_background, name="lexical-index", daemon=True).start()

    def get(self) -> Any:
        """The current index (None when ``search_items`` has no in-stock item)."""
        if not self._built:
            self._build()  # waits for a startup build in flight, then finds it done
            return self._index
        now = time.monotonic()
        if now - self._checked_at >= self._check_s and not self._rebuilding:
            self._checked_at = now
            if self._generation_now() != self._generation:
                self._rebuilding = True
                threading.Thread(
                    target=self._rebuild_in_background, name="lexical-index", daemon=True
                ).start()
        return self._index


class SearchReader:
    """The three answers of ``/search``, in order; each is one autocommit read of the serving tables."""

    def __init__(self, store: _Reads, lexical: LexicalCache | None = None):
        self.store = store
        self.lexical = lexical or LexicalCache(store)

    def search(self, query_norm: str, user_id: int | None, n: int) -> dict[str, Any]:
        """The user's list for the query, else the query's list reordered by the user's intent
        category, else BM25 over the in-stock titles. Returns source, model_version and items.

        Both published answers come back from one statement (:data:`_LISTS_SQL`), so a known query
        costs one round trip; MariaDB does the intent reorder and the cut at n."""
        rows = self.store.query(_LISTS_SQL, (user_id, query_norm, n, user_id, query_norm, n))
        if rows:
            part, intent, version = rows[0][0], rows[0][4], rows[0][3]
            source = "user" if part == 1 else ("query" if intent is None else "query+intent")
            return {
                "source": source,
                "model_version": version,
                "items": _ranked([r[1:3] for r in rows if r[0] == part]),
            }
        index = self.lexical.get()
        hits = [(i, s) for i, s in index.top(query_norm, n) if s > 0] if index is not None else []
        return {"source": "lexical", "model_version": None, "items": _ranked(hits[:n])}

    def answer(self, q: str, user_id: int | None, n: int) -> dict[str, Any]:
        """The whole ``/search`` body for the raw query text."""
        query_norm = normalize_query(q)
        body: dict[str, Any] = {"query": q, "query_norm": query_norm, "user_id": user_id}
        if not query_norm:
            return {**body, "source": "empty", "model_version": None, "items": []}
        return {**body, **self.search(query_norm, user_id, n)}


def add_search_route(
    app: FastAPI, store: _Reads, guarded: list, max_n: int, impressions: ImpressionLogger | None = None
) -> SearchReader:
    """Register ``GET /search`` over ``store`` and return its reader (whose index the app warms up).
    Guarded like the other data endpoints; a plain ``def``, so FastAPI runs it, driver calls and BM25
    included, in its thread pool. The body is serialized directly, as in :mod:`ml.serving.app`;
    ``response_model`` documents it. With ``impressions`` the items served are logged (``list_source``
    ``search:<source>``, the user's id or NULL) and the response carries ``X-Request-ID``."""
    searcher = SearchReader(store)

    @app.get("/search", response_model=SearchResults, dependencies=guarded)
    def search(
        q: str = Query(min_length=1, max_length=MAX_QUERY_CHARS_IN, description="the shopper's query text"),
        user_id: int | None = Query(default=None, ge=0, le=MAX_ID),
        n: int = Query(default=min(10, max_n), ge=1, le=max_n),
        request_id: str = Depends(request_id_header),
    ) -> Response:
        """Items for a search query: the user's own list, else the query's list reordered by the user's
        intent category, else BM25 over titles. A query with no letters or digits gets no items."""
        body = searcher.answer(q, user_id, n)
        source = f"search:{body['source']}"
        return served_response(impressions, body, request_id, user_id, lambda _: source, "/search")

    return searcher
