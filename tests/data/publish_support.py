"""Helpers for the publish tests: hand-made raw rows and a small real recommender over raw events.

Not collected by pytest (no ``test_`` prefix); imported by tests/data/test_publish*.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime, timedelta

import pandas as pd

from ml.db import connect

T0 = datetime(2026, 10, 1, 12, 0, 0)
WEIGHT = {"browse": 1.0, "fav": 2.0, "cart": 3.0, "purchase": 4.0}


def seed_catalog(settings, items: int = 30, categories: int = 3, out_of_stock: Iterable[int] = (30,)) -> None:
    """Items 1..items, category (id-1) % categories + 1; the given ids out of stock."""
    oos = set(out_of_stock)
    # the hand-made shop has no dbt marts: drop a co-visitation mart other tests built in this database
    conn = connect(settings=settings)
    with conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS `{settings.marts_db}`.ml_covisitation")
    conn.close()
    rows = [
        (
            i,
            f"item {i}",
            (i - 1) % categories + 1,
            f"cat{(i - 1) % categories + 1}",
            "brand",
            9.99,
            0 if i in oos else 1,
        )
        for i in range(1, items + 1)
    ]
    conn = connect(settings.raw_db, settings=settings)
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO items (item_id, title, category_id, category, brand, price, in_stock) VALUES (%s,%s,%s,%s,%s,%s,%s)",
            rows,
        )
    conn.close()


def add_events(
    settings, events: Iterable[tuple[int, int | None, str, datetime]], ingested_ago_s: float = 60.0
) -> None:
    """Insert (user_id, item_id, behavior, ts) rows, ingested ``ingested_ago_s`` seconds ago."""
    rows = [
        (u, i, f"s{u}-{ts:%Y%m%d}", b, None if i is not None else "query", ts, ingested_ago_s)
        for u, i, b, ts in events
    ]
    conn = connect(settings.raw_db, settings=settings)
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO user_behavior (user_id, item_id, session_id, behavior_type, query_text, ts, ingested_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, NOW(3) - INTERVAL %s SECOND)",
            rows,
        )
    conn.close()


def seed_shop(settings, users: int = 10) -> None:
    """A tiny shop: 30 items in 3 categories (item 30 out of stock); user u browses items of
    category ((u - 1) % 3 + 1) and carts one; item 30 is very popular but out of stock."""
    seed_catalog(settings)
    events = []
    for u in range(1, users + 1):
        cat = (u - 1) % 3 + 1
        mine = [i for i in range(1, 30) if (i - 1) % 3 + 1 == cat][:4]
        for k, item in enumerate(mine):
            events.append((u, item, "browse", T0 + timedelta(minutes=10 * u + k)))
        events.append((u, mine[0], "cart", T0 + timedelta(minutes=10 * u + 5)))
        events.append((u, 30, "browse", T0 + timedelta(minutes=10 * u + 6)))
        events.append((u, None, "search", T0 + timedelta(minutes=10 * u + 7)))
    add_events(settings, events)
    seed_serving_marts(settings)


def seed_serving_marts(settings) -> None:
    """Stand-ins for the dbt serving marts of the hand-made shop (``serve_popular_topn``,
    ``serve_user_intent_category``), computed from its raw rows with :data:`WEIGHT`.

    The publisher only copies these marts (dbt's own tests check how the real ones are computed);
    call again after adding events, as the realtime dbt run does before a refresh.
    """
    case = (
        "CASE e.behavior_type " + " ".join(f"WHEN '{b}' THEN {w}" for b, w in WEIGHT.items()) + " ELSE 0 END"
    )
    raw, marts = settings.raw_db, settings.marts_db
    conn = connect(settings=settings)
    with conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS `{marts}`.serve_popular_topn")
        cur.execute(f"DROP VIEW IF EXISTS `{marts}`.serve_user_intent_category")
        cur.execute(f"DROP TABLE IF EXISTS `{marts}`.serve_user_intent_category")
        cur.execute(
            f"CREATE TABLE `{marts}`.serve_popular_topn (scope VARCHAR(64), `rank` INT, item_id BIGINT, score DOUBLE, "
            "PRIMARY KEY (scope, `rank`))"
        )
        cur.execute(
            f"""INSERT INTO `{marts}`.serve_popular_topn
            WITH s AS (
              SELECT e.item_id, i.category_id, SUM({case}) AS score
              FROM `{raw}`.user_behavior e JOIN `{raw}`.items i ON i.item_id = e.item_id
              WHERE i.in_stock = 1 GROUP BY e.item_id, i.category_id
            )
            SELECT 'global', ROW_NUMBER() OVER (ORDER BY score DESC, item_id), item_id, score FROM s
            UNION ALL
            SELECT CONCAT('category:', category_id),
                   ROW_NUMBER() OVER (PARTITION BY category_id ORDER BY score DESC, item_id), item_id, score FROM s"""
        )
        cur.execute(
            f"CREATE TABLE `{marts}`.serve_user_intent_category (user_id BIGINT PRIMARY KEY, category_id BIGINT, "
            "strength DOUBLE, last_event_ts DATETIME(3))"
        )
        cur.execute(
            f"""INSERT INTO `{marts}`.serve_user_intent_category
            WITH per_cat AS (
              SELECT e.user_id, i.category_id, SUM({case}) AS w, MAX(e.ts) AS last_ts
              FROM `{raw}`.user_behavior e JOIN `{raw}`.items i ON i.item_id = e.item_id
              GROUP BY e.user_id, i.category_id
            ), ranked AS (
              SELECT user_id, category_id, w, SUM(w) OVER (PARTITION BY user_id) AS tot,
                     MAX(last_ts) OVER (PARTITION BY user_id) AS user_last,
                     ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY w DESC, last_ts DESC, category_id) AS rn
              FROM per_cat
            )
            SELECT user_id, category_id, w / tot, user_last FROM ranked WHERE rn = 1"""
        )
    conn.close()


class RawEventsRecommender:
    """Real (if simple) recommender over raw events: the user's own in-stock items (``repeat``),
    scored by behaviour weight, then in-stock global popularity (``global_pop``).

    ``block`` (optional threading.Event pair) lets a test pause it mid-scoring.
    """

    def __init__(
        self,
        settings,
        skip_users: Iterable[int] = (),
        pause: tuple[threading.Event, threading.Event] | None = None,
        fail_on_call: int | None = None,
    ):
        self.settings = settings
        self.skip_users = set(skip_users)
        self.pause = pause
        self.fail_on_call = fail_on_call
        self.calls = 0

    def _rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        conn = connect(self.settings.raw_db, settings=self.settings)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return list(cur.fetchall())
        finally:
            conn.close()

    def recommend(self, user_ids: list[int], n: int) -> pd.DataFrame:
        self.calls += 1
        if self.fail_on_call is not None and self.calls >= self.fail_on_call:
            raise RuntimeError("injected crash while scoring")
        if self.pause is not None:
            reached, resume = self.pause
            reached.set()
            assert resume.wait(30), "test never resumed the recommender"
        case = (
            "CASE e.behavior_type "
            + " ".join(f"WHEN '{b}' THEN {w}" for b, w in WEIGHT.items())
            + " ELSE 0 END"
        )
        popular = self._rows(
            f"SELECT e.item_id, SUM({case}) s FROM user_behavior e JOIN items i ON i.item_id = e.item_id "
            "WHERE i.in_stock = 1 GROUP BY e.item_id ORDER BY s DESC, e.item_id"
        )
        ids = ",".join(str(int(u)) for u in user_ids)
        own = self._rows(
            f"SELECT e.user_id, e.item_id, SUM({case}) s FROM user_behavior e JOIN items i ON i.item_id = e.item_id "
            f"WHERE i.in_stock = 1 AND e.user_id IN ({ids}) GROUP BY e.user_id, e.item_id ORDER BY e.user_id, s DESC, e.item_id"
        )
        offset = max(
            100.0, float(popular[0][1]) + 1 if popular else 0.0
        )  # own items rank above any popular one
        mine: dict[int, list[tuple[int, float]]] = {}
        for u, i, s in own:
            mine.setdefault(int(u), []).append((int(i), float(s)))
        out = []
        for u in user_ids:
            if u in self.skip_users:
                continue
            items = [(i, offset + s, "repeat") for i, s in mine.get(u, [])][:n]
            seen = {i for i, _, _ in items}
            for i, s in popular:
                if len(items) >= n:
                    break
                if int(i) not in seen:
                    items.append((int(i), float(s), "global_pop"))
            out += [(u, r + 1, i, s, src) for r, (i, s, src) in enumerate(items)]
        return pd.DataFrame(out, columns=["user_id", "rank", "item_id", "score", "source"])


def topn(settings, user_id: int | None = None) -> list[tuple]:
    """user_topn rows (user_id, rank, item_id, score, source, model_version), all or one user's."""
    conn = connect(settings.serving_db, settings=settings)
    with conn.cursor() as cur:
        where = "" if user_id is None else f"WHERE user_id = {int(user_id)}"
        cur.execute(
            f"SELECT user_id, `rank`, item_id, score, source, model_version FROM user_topn {where} ORDER BY user_id, `rank`"
        )
        rows = list(cur.fetchall())
    conn.close()
    return rows


def serving_tables(settings) -> set[str]:
    conn = connect(settings=settings)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (settings.serving_db,)
        )
        names = {r[0] for r in cur.fetchall()}
    conn.close()
    return names


def scalar(settings, sql: str, args: tuple = ()):
    conn = connect(settings=settings)
    with conn.cursor() as cur:
        cur.execute(sql, args)
        row = cur.fetchone()
    conn.close()
    return row[0] if row else None
