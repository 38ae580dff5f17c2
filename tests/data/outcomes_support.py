"""A hand-made impression and event log for the outcome marts (fct_served_outcomes and the online
reports), shared by their dbt test and the MLflow logging test. T0 is the first list served; the
newest event of the log is at T0 + 40 h; the outcome window is the default 24 h.

Two model versions: MV1 served user 1 two lists (the second shows item 1 again), MV2 served user 2
one list on day 1 (items from two list sources) and one on day 2 (still immature at the log's end),
and an anonymous search list has no model version and no arm.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ml.db import connect

T0 = datetime(2026, 10, 10, 0, 0, 0)
DAY1, DAY2 = T0.date(), (T0 + timedelta(days=1)).date()
MODEL = "outcomes-test-reranker"
MV1, MV2 = f"{MODEL}/1", f"{MODEL}/2"
CATALOGUE = 10  # items 1..10


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


REC = "/recommendations"
# impression_id, request_id, user_id, item_id, rank, model_version, list_source, arm, endpoint, served_at
IMPRESSIONS = [
    (1, "r1", 1, 1, 1, MV1, "user_topn", "champion", REC, h(0)),
    (2, "r1", 1, 2, 2, MV1, "user_topn", "champion", REC, h(0)),
    (3, "r1", 1, 3, 11, MV1, "user_topn", "champion", REC, h(0)),  # below the top 10
    (4, "r2", 1, 1, 1, MV1, "user_topn", "champion", REC, h(2)),  # item 1 shown again
    (5, "r2", 1, 4, 2, MV1, "user_topn", "champion", REC, h(2)),
    (6, "r3", 2, 3, 1, MV2, "user_topn", "challenger", REC, h(1)),
    (9, "r3", 2, 6, 2, MV2, "popular", "challenger", REC, h(1)),  # same list, backfilled
    (7, "r4", 2, 5, 1, MV2, "user_topn", "challenger", REC, h(30)),  # immature at the log's end
    (8, "r5", None, 1, 1, None, "search:lexical", None, "/search", h(1)),  # anonymous
]
# user_id, item_id, session_id, behavior_type, ts
EVENTS = [
    (1, 2, "s0", "browse", h(-1)),  # before impression 2: not credited; makes it a repeat
    (1, 3, "s1", "browse", h(0.5)),  # -> impression 3 (rank 11) clicked
    (1, 1, "s1", "browse", h(1)),  # -> impression 1 clicked (impression 4 not served yet)
    (1, 1, "s2", "purchase", h(3)),  # -> impression 4 only (last touch), not impression 1
    (3, 4, "s3", "browse", h(3)),  # another user's: impression 5 stays unclicked
    (2, 3, "s4", "fav", h(1)),  # at impression 6's served_at: not after it, not before it
    (2, 3, "s4", "fav", h(5)),  # -> impression 6 carted (a fav counts as carted)
    (1, 2, "s5", "cart", h(24)),  # exactly at the end of impression 2's window -> carted
    (1, 2, "s6", "purchase", h(25)),  # after the window: not credited
    (2, 5, "s7", "browse", h(31)),  # -> impression 7 clicked, but it is immature
    (3, None, "s8", "search", h(40)),  # the log's newest event
]


def load_log(settings) -> None:
    """Empty the raw tables and load the catalogue, users, impressions and events above."""
    conn = connect(settings.raw_db, settings=settings)
    try:
        with conn.cursor() as cur:
            for t in ("user_behavior", "user_behavior_quarantine", "users", "items", "impressions"):
                cur.execute(f"TRUNCATE TABLE `{t}`")
            cur.executemany(
                "INSERT INTO users (user_id, gender, age) VALUES (%s, 'F', 30)", [(1,), (2,), (3,)]
            )
            cur.executemany(
                "INSERT INTO items (item_id, title, category_id, brand, price, in_stock, created_ts)"
                " VALUES (%s, 't', 1, 'b', 10, 1, '2026-09-01')",
                [(i,) for i in range(1, CATALOGUE + 1)],
            )
            cur.executemany(
                "INSERT INTO impressions (impression_id, request_id, user_id, item_id, `rank`, model_version,"
                " list_source, arm, endpoint, served_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                IMPRESSIONS,
            )
    finally:
        conn.close()
    insert_events(settings, EVENTS)


def insert_events(settings, events: list[tuple]) -> None:
    """Append raw events given as (user_id, item_id, session_id, behavior_type, ts)."""
    conn = connect(settings.raw_db, settings=settings)
    try:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO user_behavior (user_id, item_id, session_id, behavior_type, ts)"
                " VALUES (%s, %s, %s, %s, %s)",
                events,
            )
    finally:
        conn.close()


def build_outcomes(settings, vars: dict | None = None) -> None:
    """Build the outcome marts and what they read (with their tests)."""
    from ml.features.dbt import run_dbt

    run_dbt(
        ["build", "--select", "+tag:outcomes", "--indirect-selection", "cautious", "--full-refresh"],
        vars=vars,
        settings=settings,
    )
