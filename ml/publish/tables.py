"""The serving tables a full publish rebuilds: ``*_new`` staging, fills from the dbt serving marts,
and the one atomic ``RENAME TABLE`` that swaps all of them (a reader sees old or new, never none).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

import pymysql

from ml.config import Settings
from ml.publish.common import (
    AB_TABLES,
    LOCK_WAIT_TIMEOUT_S,
    SWAPPED_TABLES,
    WATERMARK_NAME,
    PublishError,
    table_exists,
)
from ml.publish.locking import lock_name, named_lock
from ml.publish.search import SEARCH_TABLES, search_marts_ready

log = logging.getLogger(__name__)


def drop_staging(conn: pymysql.connections.Connection, s: Settings) -> None:
    """Drop ``*_new``/``*_old`` leftovers of an earlier crashed publish."""
    wanted = [f"{t}_{suffix}" for t in (*SWAPPED_TABLES, *AB_TABLES) for suffix in ("new", "old")]
    with conn.cursor() as cur:
        cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_name IN %s",
            (s.serving_db, wanted),
        )
        found = [r[0] for r in cur.fetchall()]
        if found:  # DROP IF EXISTS of absent tables still costs a DDL round (~10 ms each)
            cur.execute("DROP TABLE IF EXISTS " + ", ".join(f"`{s.serving_db}`.`{t}`" for t in found))


def rebuilt_tables(conn: pymysql.connections.Connection, s: Settings) -> list[str]:
    """The tables this publish rebuilds: item_similar only when its dbt mart exists, the search
    tables only when the dbt search marts exist."""
    skip: set[str] = set()
    if not table_exists(conn, s.marts_db, "ml_covisitation"):
        log.warning("%s.ml_covisitation does not exist yet: item_similar left as it is", s.marts_db)
        skip.add("item_similar")
    if not search_marts_ready(conn, s):
        skip.update(SEARCH_TABLES)
    return [t for t in SWAPPED_TABLES if t not in skip]


def create_staging(conn: pymysql.connections.Connection, s: Settings, tables: Sequence[str]) -> None:
    with conn.cursor() as cur:
        for t in tables:
            if not table_exists(conn, s.serving_db, t):
                raise PublishError(f"serving table {s.serving_db}.{t} is missing: run `recsys db init`")
            cur.execute(f"CREATE TABLE `{s.serving_db}`.`{t}_new` LIKE `{s.serving_db}`.`{t}`")


def _require_mart(conn: pymysql.connections.Connection, s: Settings, table: str) -> None:
    if not table_exists(conn, s.marts_db, table):
        raise PublishError(
            f"dbt serving mart {s.marts_db}.{table} is missing: run the dbt build (`scripts/dbt.sh build`) first"
        )


def build_popular(conn: pymysql.connections.Connection, s: Settings, k: int) -> int:
    """Popular in-stock items, globally and per category, from the dbt mart ``serve_popular_topn``
    (``dim_items.popularity_score``: the one definition of "popular", shared with the baselines)."""
    _require_mart(conn, s, "serve_popular_topn")
    with conn.cursor() as cur:
        return cur.execute(
            f"INSERT INTO `{s.serving_db}`.popular_topn_new (scope, `rank`, item_id, score) "
            f"SELECT scope, `rank`, item_id, score FROM `{s.marts_db}`.serve_popular_topn WHERE `rank` <= %s",
            (k,),
        )


def _intent_select(s: Settings) -> str:
    """user_id, category_id, strength, last_event_ts and the category's name (for the reader's
    "popular in <name>" fallback reason; '' when the catalogue has none) of the intent mart."""
    return (
        "SELECT u.user_id, u.category_id, u.strength, u.last_event_ts, COALESCE(LEFT(n.category, 64), '') "
        f"FROM `{s.marts_db}`.serve_user_intent_category u LEFT JOIN (SELECT category_id, MAX(category) AS category "
        f"FROM `{s.raw_db}`.items GROUP BY category_id) n ON n.category_id = u.category_id"
    )


def build_intent(conn: pymysql.connections.Connection, s: Settings) -> int:
    """Every user's current intent category (the cold-start fallback) from the dbt view
    ``serve_user_intent_category`` over ``fct_session_intent``, with the category's name."""
    _require_mart(conn, s, "serve_user_intent_category")
    with conn.cursor() as cur:
        return cur.execute(
            f"INSERT INTO `{s.serving_db}`.user_intent_category_new (user_id, category_id, strength, last_event_ts, "
            f"category) {_intent_select(s)}"
        )


def intent_rows(conn: pymysql.connections.Connection, s: Settings, user_ids: Sequence[int]) -> list[tuple]:
    """(user_id, category_id, strength, last_event_ts, category name) of these users, for a refresh batch."""
    if not user_ids:
        return []
    _require_mart(conn, s, "serve_user_intent_category")
    ids = ",".join(str(int(u)) for u in user_ids)
    with conn.cursor() as cur:
        cur.execute(f"{_intent_select(s)} WHERE u.user_id IN ({ids})")
        return [tuple(r) for r in cur.fetchall()]


def build_similar(conn: pymysql.connections.Connection, s: Settings, k: int) -> int:
    """Top-k in-stock co-visited items per item from the dbt mart ``ml_covisitation``."""
    with conn.cursor() as cur:
        return cur.execute(
            f"""INSERT INTO `{s.serving_db}`.item_similar_new (item_id, `rank`, similar_item_id, score)
            SELECT item_id, rk, similar_item_id, score FROM (
              SELECT c.item_id, c.similar_item_id, c.score,
                     ROW_NUMBER() OVER (PARTITION BY c.item_id ORDER BY c.score DESC, c.similar_item_id) AS rk
              FROM `{s.marts_db}`.ml_covisitation c JOIN `{s.raw_db}`.items i ON i.item_id = c.similar_item_id
              WHERE i.in_stock = 1 AND c.similar_item_id <> c.item_id AND c.score IS NOT NULL
            ) x WHERE rk <= %s""",
            (k,),
        )


def swap_tables(
    conn: pymysql.connections.Connection,
    s: Settings,
    tables: Sequence[str],
    upper: int,
    max_ts: datetime | None,
    lock_timeout: float,
) -> None:
    """Under the publish lock: rewind the watermark, then one atomic RENAME of every rebuilt table."""
    db = s.serving_db
    renames = ", ".join(f"`{db}`.`{t}` TO `{db}`.`{t}_old`, `{db}`.`{t}_new` TO `{db}`.`{t}`" for t in tables)
    with named_lock(conn, lock_name(s, "publish"), lock_timeout, "full publish swap"), conn.cursor() as cur:
        # rewind first: if the RENAME then fails, the only cost is rescoring a few users again
        cur.execute(
            f"INSERT INTO `{db}`.publish_watermark (name, event_id, max_event_ts, updated_at) VALUES (%s, %s, %s, NOW(3)) "
            "ON DUPLICATE KEY UPDATE max_event_ts = IF(VALUES(event_id) < event_id, VALUES(max_event_ts), max_event_ts), "
            "event_id = LEAST(event_id, VALUES(event_id)), updated_at = NOW(3)",
            (WATERMARK_NAME, upper, max_ts),
        )
        for attempt in range(3):
            try:
                cur.execute(f"RENAME TABLE {renames}")
                break
            except pymysql.err.OperationalError as exc:  # 1205: lock wait timeout behind a long reader
                if exc.args[0] != 1205 or attempt == 2:
                    raise
                log.warning("RENAME waited %ss for a metadata lock; retrying", LOCK_WAIT_TIMEOUT_S)
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS " + ", ".join(f"`{db}`.`{t}_old`" for t in tables))
