"""Helpers for the search serving tests: the tiny shop of ``publish_support`` with searchable titles,
search events with their own query text, and hand-made stand-ins for the dbt search marts.

Not collected by pytest (no ``test_`` prefix). The marts carry exactly the contract columns of
``ml_query_item``, ``ml_query_stats`` and ``ml_user_recent_queries`` (docs/contracts.md); dbt's own
tests check how the real ones are computed, the publisher only reads them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from publish_support import T0, seed_shop

from ml.db import connect

#: item_id → title; category (i - 1) % 3 + 1 as in ``seed_shop``; item 30 is out of stock.
TITLES = {
    1: "running trainers",  # category 1
    2: "trail trainers",  # category 2
    3: "kids trainers",  # category 3
    4: "phone case",  # category 1
    5: "mobile phone",  # category 2
    30: "deluxe trainers",  # category 3, out of stock
}
#: (query_norm, item_id, weighted) engagement after a query (item 30 is out of stock: never served)
QUERY_ITEMS = [
    ("trainers", 2, 5.0),
    ("trainers", 1, 3.0),
    ("trainers", 30, 9.0),
    ("trainers", 7, 1.0),
    ("phone", 5, 4.0),
]
#: (query_norm, n_searches): "rare" stays under RECSYS_SEARCH_MIN_QUERY_COUNT (3)
QUERY_STATS = [("trainers", 5), ("phone", 3), ("rare", 2)]
#: (user_id, query_norm, rn): rn 1 is the user's newest query
RECENT = [(1, "trainers", 1), (1, "phone", 2), (4, "phone", 1)]


def seed_search_shop(settings) -> None:
    """``seed_shop`` (10 users, intents category (u - 1) % 3 + 1) with :data:`TITLES` and search marts."""
    seed_shop(settings)
    conn = connect(settings.raw_db, settings=settings)
    with conn.cursor() as cur:
        cur.executemany("UPDATE items SET title = %s WHERE item_id = %s", [(t, i) for i, t in TITLES.items()])
    conn.close()
    seed_search_marts(settings, QUERY_ITEMS, QUERY_STATS, RECENT)


def seed_search_marts(
    settings,
    query_items: Iterable[tuple[str, int, float]],
    stats: Iterable[tuple[str, int]],
    recent: Iterable[tuple[int, str, int]],
) -> None:
    """(Re)create the three search marts with these rows (what a dbt run would have written)."""
    marts = settings.marts_db
    conn = connect(marts, settings=settings)
    with conn.cursor() as cur:
        for t in ("ml_query_item", "ml_query_stats", "ml_user_recent_queries"):
            cur.execute(f"DROP TABLE IF EXISTS {t}")
        cur.execute(
            "CREATE TABLE ml_query_item (query_norm VARCHAR(100), item_id BIGINT, n_browse BIGINT, n_cart BIGINT, "
            "n_fav BIGINT, n_purchase BIGINT, n_searches BIGINT, n_users BIGINT, weighted DOUBLE, "
            "first_ts DATETIME(3), last_ts DATETIME(3), PRIMARY KEY (query_norm, item_id))"
        )
        cur.executemany(
            "INSERT INTO ml_query_item VALUES (%s, %s, 1, 0, 0, 0, 1, 1, %s, %s, %s)",
            [(q, i, w, T0, T0) for q, i, w in query_items],
        )
        cur.execute(
            "CREATE TABLE ml_query_stats (query_norm VARCHAR(100) PRIMARY KEY, n_searches BIGINT, n_users BIGINT, "
            "n_sessions_engaged BIGINT, last_ts DATETIME(3))"
        )
        cur.executemany(
            "INSERT INTO ml_query_stats VALUES (%s, %s, %s, 1, %s)", [(q, n, n, T0) for q, n in stats]
        )
        cur.execute(
            "CREATE TABLE ml_user_recent_queries (user_id BIGINT, query_norm VARCHAR(100), rn INT, "
            "last_ts DATETIME(3), PRIMARY KEY (user_id, rn))"
        )
        cur.executemany(
            "INSERT INTO ml_user_recent_queries VALUES (%s, %s, %s, %s)", [(*r, T0) for r in recent]
        )
    conn.close()


def drop_search_marts(settings) -> None:
    conn = connect(settings.marts_db, settings=settings)
    with conn.cursor() as cur:
        for t in ("ml_query_item", "ml_query_stats", "ml_user_recent_queries"):
            cur.execute(f"DROP TABLE IF EXISTS {t}")
    conn.close()


def add_searches(settings, searches: Iterable[tuple[int, str, datetime]]) -> None:
    """Search events (user_id, query_text, ts), ingested a minute ago (settled)."""
    conn = connect(settings.raw_db, settings=settings)
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO user_behavior (user_id, item_id, session_id, behavior_type, query_text, ts, ingested_at) "
            "VALUES (%s, NULL, %s, 'search', %s, %s, NOW(3) - INTERVAL 60 SECOND)",
            [(u, f"s{u}-{ts:%Y%m%d}", q, ts) for u, q, ts in searches],
        )
    conn.close()


def rows(settings, table: str, where: str = "") -> list[tuple]:
    """A search table's rows, ordered by its key (user_query_topn: user_id first)."""
    cols = {
        "query_topn": "query_norm, `rank`, item_id, score, source, model_version",
        "user_query_topn": "user_id, query_norm, `rank`, item_id, score, source, model_version",
    }[table]
    order = "query_norm, `rank`" if table == "query_topn" else "user_id, query_norm, `rank`"
    conn = connect(settings.serving_db, settings=settings)
    with conn.cursor() as cur:
        cur.execute(f"SELECT {cols} FROM {table} {where} ORDER BY {order}")
        out = list(cur.fetchall())
    conn.close()
    return out
