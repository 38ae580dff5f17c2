"""Tiny, hand-written mart tables (contract columns of docs/contracts.md) for the quality-gate tests,
built in a database of their own (``<marts_db>_gx``) so the tests never race dbt's models."""

from __future__ import annotations

from dataclasses import replace

from ml.config import Settings
from ml.db import connect

USERS = [1, 2, 3, 4, 5, 6]
ITEMS = [(101, 1, 10.0), (102, 1, 25.0), (103, 2, 99.0), (104, 2, 5.0), (105, 3, 42.0), (106, 3, 18.0)]

DDL = {
    "dim_users": """(user_id BIGINT PRIMARY KEY, n_browse_1d INT, n_browse_7d INT, n_browse_30d INT, n_cart_7d INT,
        n_cart_30d INT, n_fav_30d INT, n_purchase_30d INT, n_search_7d INT, purchase_rate DOUBLE,
        avg_price_viewed DOUBLE, hours_since_last_event DOUBLE, n_sessions_30d INT, top_category_id INT)""",
    "dim_items": """(item_id BIGINT PRIMARY KEY, category_id INT, brand VARCHAR(32), price DECIMAL(10,2), in_stock TINYINT,
        pop_browse_1d INT, pop_browse_7d INT, pop_cart_7d INT, pop_purchase_7d INT, trend_1d_7d DOUBLE,
        view_to_cart_rate DOUBLE, cart_to_purchase_rate DOUBLE, price_pct_in_category DOUBLE, age_days DOUBLE,
        trend_short_1d DOUBLE, trend_purchase_short_1d DOUBLE, trend_purchase_1d_7d DOUBLE, repeat_buyer_rate DOUBLE)""",
    "fct_session_intent": """(user_id BIGINT PRIMARY KEY, session_id VARCHAR(64), last_event_ts DATETIME(3),
        intent_category_id INT, intent_strength DOUBLE, query_terms VARCHAR(255), last_items TEXT,
        last_categories TEXT, carted_not_bought TEXT)""",
    "ml_candidates": """(user_id BIGINT, item_id BIGINT, repeat_score DOUBLE, covisit_score DOUBLE,
        intent_pop_score DOUBLE, global_pop_score DOUBLE, sources VARCHAR(64), covisit_view_view DOUBLE,
        covisit_cart_cart DOUBLE, covisit_buy_buy DOUBLE, PRIMARY KEY (user_id, item_id))""",
    "ml_covisitation": """(item_id BIGINT, similar_item_id BIGINT, `rank` INT, score DOUBLE, score_browse DOUBLE,
        score_cart DOUBLE, score_purchase DOUBLE, score_cart_cart DOUBLE, score_buy_buy DOUBLE,
        PRIMARY KEY (item_id, similar_item_id))""",
    "ml_training_set": """(user_id BIGINT, item_id BIGINT, covisit_score DOUBLE, n_browse_30d INT, clicked TINYINT,
        carted TINYINT, purchased TINYINT, label TINYINT, PRIMARY KEY (user_id, item_id))""",
}


def _rows() -> dict[str, list[tuple]]:
    users = [
        (u, u % 3, 2 * u, 5 * u, u % 2, u, 1, u % 2, u, (u % 2) / (5 * u), 20.0 + u, 1.5 * u, u, 1 + u % 3)
        for u in USERS
    ]
    items = [
        (i, c, "acme", p, 1, k, 3 * k + 1, k, k % 2, 0.2 * k, 0.1 * k, 0.05 * k, k / len(ITEMS), 10.0 + k)
        + (1.0 + 0.1 * k, 1.0, 0.5 * k, 0.1 * (k % 3))
        for k, (i, c, p) in enumerate(ITEMS)
    ]
    intent = [
        (
            u,
            f"s{u}",
            f"2026-10-0{1 + u % 7} 12:00:00",
            1 + u % 3,
            0.3 + 0.1 * u,
            "red shoes",
            "101,102",
            "1,1",
            "",
        )
        for u in USERS
    ]
    cand = [
        (u, i, 0.5 * (u % 2), 0.1 * k, 0.2, 0.01 * k, "covisit,global_pop", 0.1 * k, 0.05 * k, 0.0)
        for u in USERS
        for k, (i, _, _) in enumerate(ITEMS)
    ]
    covis = [
        (a, b, r + 1, 1.0 / (r + 1), 0.5, 0.3, 0.2, 0.2, 0.1)
        for a, _, _ in ITEMS
        for r, (b, _, _) in enumerate([x for x in ITEMS if x[0] != a][:3])
    ]
    training = [
        (
            u,
            i,
            0.1 * k,
            5 * u,
            int(k == u % 6),
            int(k == u % 6 and u % 2 == 0),
            0,
            int(k == u % 6) + int(k == u % 6 and u % 2 == 0),
        )
        for u in USERS
        for k, (i, _, _) in enumerate(ITEMS)
    ]
    return {
        "dim_users": users,
        "dim_items": items,
        "fct_session_intent": intent,
        "ml_candidates": cand,
        "ml_covisitation": covis,
        "ml_training_set": training,
    }


def mart_settings(settings: Settings) -> Settings:
    """The test settings with the marts database swapped for the tests' own."""
    return replace(settings, marts_db=f"{settings.marts_db}_gx")


def build_marts(
    settings: Settings, database: str | None = None, tables: tuple[str, ...] = tuple(DDL)
) -> None:
    """(Re)create the tiny clean mart tables in ``database`` (default: ``settings.marts_db``)."""
    db = database or settings.marts_db
    rows = _rows()
    conn = connect(settings=settings)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{db}`")
            for t in tables:
                cur.execute(f"DROP TABLE IF EXISTS `{db}`.`{t}`")
                cur.execute(f"CREATE TABLE `{db}`.`{t}` {DDL[t]}")
                marks = ",".join(["%s"] * len(rows[t][0]))
                cur.executemany(f"INSERT INTO `{db}`.`{t}` VALUES ({marks})", rows[t])
    finally:
        conn.close()


def execute(settings: Settings, *statements: str) -> None:
    conn = connect(settings=settings)
    try:
        with conn.cursor() as cur:
            for st in statements:
                cur.execute(st)
    finally:
        conn.close()
