"""The search serving tables (issue 15): ``query_topn``, ``user_query_topn`` and ``search_items``.

A full publish fills them as ``*_new`` from a :class:`ml.search.lists.SearchLists` provider (the
search champion, or the baseline) and they are swapped in the same ``RENAME`` as every other serving
table (:func:`ml.publish.tables.swap_tables`). ``query_topn`` holds a list for every normalised query
searched at least ``RECSYS_SEARCH_MIN_QUERY_COUNT`` times (``ml_query_stats.n_searches``);
``user_query_topn`` a list for each active user's recent queries; ``search_items`` the catalogue
text the read-only reader needs for BM25 over unseen queries and for the intent reorder.

A refresh replaces the ``user_query_topn`` rows of the users who acted (in their batch's transaction,
next to their ``user_topn`` rows) and the ``query_topn`` lists of the frequent queries searched
since the watermark (DELETE + INSERT per query, one transaction per chunk of queries).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import pymysql

from ml.config import Settings
from ml.contracts import QUERY_TOPN_COLUMNS, USER_QUERY_TOPN_COLUMNS
from ml.db import connect
from ml.publish.common import PublishError, ValidationFailed, batches, table_exists
from ml.quality.topn import check_search_frame, search_invariants_validator
from ml.search.lists import SEARCH_MARTS, BaselineSearchLists, SearchLists, distinct_queries

log = logging.getLogger(__name__)

#: The serving tables of search, rebuilt and swapped together by a full publish.
SEARCH_TABLES: tuple[str, ...] = ("query_topn", "user_query_topn", "search_items")
QUERY_CHUNK = 1000  # queries per provider call and per refresh transaction


def load_search_lists(settings: Settings) -> SearchLists:
    """The search champion (``ml.search.serve.load_search_champion``) when one is registered, else
    :class:`BaselineSearchLists` (search serving is never left without lists). Here, not in
    ``ml.search.lists``: the champion loader reads the registry, a layer above the search package."""
    try:
        from ml.search.serve import load_search_champion
    except ImportError as exc:
        log.info("no search ranker module (%s): publishing the search baseline", exc)
        return BaselineSearchLists()
    try:
        champion = load_search_champion(settings)
    except LookupError as exc:
        log.info("no search champion registered (%s): publishing the search baseline", exc)
        return BaselineSearchLists()
    if champion is None or not getattr(champion, "model_version", None):
        log.info("no search champion with a model_version: publishing the search baseline")
        return BaselineSearchLists()
    return champion


@dataclass(frozen=True)
class SearchCounts:
    """What a full publish wrote to the search tables."""

    queries: int
    query_rows: int
    user_query_rows: int
    items: int


def search_marts_ready(conn: pymysql.connections.Connection, s: Settings) -> bool:
    """True when the dbt search marts exist; otherwise the live search tables are left as they are."""
    missing = [t for t in SEARCH_MARTS if not table_exists(conn, s.marts_db, t)]
    if missing:
        log.warning(
            "search marts %s missing in %s: query_topn, user_query_topn and search_items left as they are",
            ", ".join(missing),
            s.marts_db,
        )
    return not missing


def frequent_queries(
    conn: pymysql.connections.Connection, s: Settings, among: Sequence[str] | None = None
) -> list[str]:
    """Normalised queries with ``n_searches >= search_min_query_count``, most searched first; with
    ``among``, only those of these (matched under the serving collation)."""
    sql = (
        f"SELECT query_norm FROM `{s.marts_db}`.ml_query_stats WHERE n_searches >= %s "
        "ORDER BY n_searches DESC, query_norm"
    )
    args: list[object] = [s.search_min_query_count]
    if among is not None:
        wanted = distinct_queries(among)
        if not wanted:
            return []
        sql = sql.replace("WHERE", f"WHERE query_norm IN ({', '.join(['%s'] * len(wanted))}) AND", 1)
        args = [*wanted, *args]
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return distinct_queries([str(r[0]) for r in cur.fetchall()])


def in_stock_items(conn: pymysql.connections.Connection, s: Settings) -> set[int]:
    with conn.cursor() as cur:
        cur.execute(f"SELECT item_id FROM `{s.raw_db}`.items WHERE in_stock = 1")
        return {int(r[0]) for r in cur.fetchall()}


def checked_query_lists(
    search: SearchLists, s: Settings, queries: list[str], k: int, in_stock: set[int]
) -> pd.DataFrame:
    try:
        return check_search_frame(search.query_lists(s, queries, k), k, queries=queries, in_stock=in_stock)
    except ValueError as exc:
        raise ValidationFailed(f"search provider's query lists rejected: {exc}") from exc


def checked_user_lists(
    search: SearchLists, s: Settings, users: list[int], k: int, in_stock: set[int]
) -> pd.DataFrame:
    try:
        return check_search_frame(search.user_lists(s, users, k), k, user_ids=users, in_stock=in_stock)
    except ValueError as exc:
        raise ValidationFailed(f"search provider's user lists rejected: {exc}") from exc


def _load(
    s: Settings, table: str, columns: Sequence[str], frame: pd.DataFrame, version: str, at: datetime
) -> None:
    """LOAD DATA a checked frame into ``<serving_db>.<table>`` on a loader connection of its own."""
    if frame.empty:
        return
    conn = connect(s.serving_db, settings=s, local_infile=True)
    try:
        with conn.cursor() as cur:
            load_frame(cur, s, table, columns, frame, version, at)
    finally:
        conn.close()


def load_frame(
    cur, s: Settings, table: str, columns: Sequence[str], frame: pd.DataFrame, version: str, at: datetime
) -> None:
    """LOAD DATA ``frame`` into ``<serving_db>.<table>`` through ``cur`` (its connection opened with
    ``local_infile``; inside the caller's transaction, if any); any server warning aborts with
    :class:`PublishError`. No per-value escaping in Python, as an ``executemany`` INSERT has (most of
    a refresh's time writing its users' search rows, ~100 per query)."""
    if frame.empty:
        return
    fd, path = tempfile.mkstemp(prefix=f"{table}_", suffix=".tsv")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            frame[list(columns)].to_csv(
                fh, sep="\t", header=False, index=False, lineterminator="\n", float_format="%.17g"
            )
        cols = ", ".join(f"`{c}`" for c in columns)
        cur.execute(
            f"LOAD DATA LOCAL INFILE %s INTO TABLE `{s.serving_db}`.`{table}` CHARACTER SET utf8mb4 "
            f"FIELDS TERMINATED BY '\\t' LINES TERMINATED BY '\\n' ({cols}) "
            "SET model_version = %s, generated_at = %s",
            (path, version, at),
        )
        cur.execute("SHOW WARNINGS LIMIT 3")
        warnings = cur.fetchall()
    finally:
        os.unlink(path)
    if warnings:
        raise PublishError(f"LOAD DATA into {table} warned (data would be altered): {warnings}")


def build_search(
    conn: pymysql.connections.Connection,
    s: Settings,
    search: SearchLists,
    users: list[int],
    generated_at: datetime,
    batch_size: int,
) -> SearchCounts:
    """Fill ``search_items_new``, ``query_topn_new`` and ``user_query_topn_new`` and check their
    invariants; raises :class:`ValidationFailed` (nothing is swapped) when a list breaks one."""
    k, version = s.search_k, search.model_version
    with conn.cursor() as cur:
        items = cur.execute(
            f"INSERT INTO `{s.serving_db}`.search_items_new (item_id, title, category, brand, category_id, in_stock) "
            f"SELECT item_id, title, category, brand, category_id, in_stock FROM `{s.raw_db}`.items"
        )
    stock = in_stock_items(conn, s)
    queries = frequent_queries(conn, s)
    query_rows = user_rows = 0
    for asked in batches(queries, QUERY_CHUNK):
        frame = checked_query_lists(search, s, asked, k, stock)
        _load(s, "query_topn_new", QUERY_TOPN_COLUMNS, frame, version, generated_at)
        query_rows += len(frame)
    for batch in batches(users, batch_size):
        frame = checked_user_lists(search, s, batch, k, stock)
        _load(s, "user_query_topn_new", USER_QUERY_TOPN_COLUMNS, frame, version, generated_at)
        user_rows += len(frame)
    check = search_invariants_validator(s)
    for table in ("query_topn_new", "user_query_topn_new"):
        ok, summary = check(f"{s.serving_db}.{table}")
        if not ok:
            raise ValidationFailed(f"{table} failed validation, nothing swapped: {summary}")
    return SearchCounts(len(queries), query_rows, user_rows, items)


def _tuples(frame: pd.DataFrame, columns: Sequence[str]) -> list[tuple]:
    """Rows as tuples of Python values (the driver does not escape numpy scalars)."""
    return list(zip(*(frame[c].tolist() for c in columns)))


def user_rows_for_refresh(
    search: SearchLists, s: Settings, users: list[int], stock: set[int]
) -> tuple[list[int], pd.DataFrame]:
    """The users with personalised search lists and their checked rows, ready for :func:`replace_user_rows`."""
    frame = checked_user_lists(search, s, users, s.search_k, stock)
    return sorted(set(frame["user_id"].tolist())), frame


def replace_user_rows(
    cur, s: Settings, users: list[int], rows: pd.DataFrame, version: str, generated_at: datetime
) -> None:
    """Inside the caller's transaction: these users' ``user_query_topn`` rows become ``rows``
    (LOAD DATA: ``cur``'s connection needs ``local_infile``)."""
    if not users:
        return
    ids = ",".join(str(int(u)) for u in users)
    cur.execute(f"DELETE FROM `{s.serving_db}`.user_query_topn WHERE user_id IN ({ids})")
    load_frame(cur, s, "user_query_topn", USER_QUERY_TOPN_COLUMNS, rows, version, generated_at)


def refresh_queries(
    conn: pymysql.connections.Connection, s: Settings, search: SearchLists, changed: str
) -> tuple[int, int]:
    """Replace the ``query_topn`` lists of the frequent queries searched in the ``changed`` events
    (an SQL condition on event_id). Each chunk of queries is one transaction of DELETE + INSERT per
    query, so a reader sees a query's old list or its new one. A query the provider returns no
    list for keeps its old one. Returns (queries replaced, rows)."""
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT DISTINCT query_text FROM `{s.raw_db}`.user_behavior "
            f"WHERE {changed} AND behavior_type = 'search' AND query_text IS NOT NULL"
        )
        searched = [str(r[0]) for r in cur.fetchall()]
    queries = frequent_queries(conn, s, searched)
    if not queries:
        return 0, 0
    stock = in_stock_items(conn, s)
    version = search.model_version
    replaced = rows = 0
    for asked in batches(queries, QUERY_CHUNK):
        frame = checked_query_lists(search, s, asked, s.search_k, stock)
        lists = {q: g for q, g in frame.groupby("query_norm", sort=False)}
        kept = [q for q in asked if q not in lists]
        if kept:
            log.warning(
                "search provider returned no list for %d query(ies) (e.g. %s): old lists kept",
                len(kept),
                kept[:3],
            )
        with conn.cursor() as cur:
            cur.execute("SELECT NOW(3)")
            generated_at = cur.fetchone()[0]
        conn.begin()
        try:
            with conn.cursor() as cur:
                for q, g in lists.items():
                    cur.execute(f"DELETE FROM `{s.serving_db}`.query_topn WHERE query_norm = %s", (q,))
                    cur.executemany(
                        f"INSERT INTO `{s.serving_db}`.query_topn "
                        "(query_norm, `rank`, item_id, score, source, model_version, generated_at) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                        [(*r, version, generated_at) for r in _tuples(g, QUERY_TOPN_COLUMNS)],
                    )
            conn.commit()
        except BaseException:
            with contextlib.suppress(pymysql.Error):
                conn.rollback()
            raise
        replaced += len(lists)
        rows += sum(len(g) for g in lists.values())
    return replaced, rows
