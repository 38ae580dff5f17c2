"""The search marts (ml_query_item, ml_query_stats, ml_user_recent_queries) on a hand-made log,
checked against values computed by hand (real MariaDB); then new events (one in an old session after
an old search, one search that takes over later events, one new session) and an incremental build
that must equal a full refresh; and a point-in-time build that sees nothing at or after its cut.

Attribution (dbt vars): an item event belongs to the most recent earlier search of its session if at
most 30 minutes after it; weight = type weight (browse 1, fav 2, cart 3, purchase 4) x
exp(-minutes after the search / 10).
"""

from __future__ import annotations

import math
import os
from datetime import datetime, timedelta

import pandas as pd
import pytest

from ml.db import connect

T0 = datetime(2026, 10, 10, 12, 0, 0)
DECAY_MINUTES = 10
WEIGHT = {"browse": 1, "fav": 2, "cart": 3, "purchase": 4}
SEARCH_MODELS = {
    "ml_query_item": ["query_norm", "item_id"],
    "ml_query_stats": ["query_norm"],
    "ml_user_recent_queries": ["user_id", "rn"],
}


def _m(minutes: float) -> datetime:
    return T0 - timedelta(minutes=minutes)


def w(kind: str, minutes_after_search: float) -> float:
    return WEIGHT[kind] * math.exp(-minutes_after_search / DECAY_MINUTES)


ITEMS = [(1, 10), (2, 10), (3, 20), (4, 20), (5, 30)]  # item_id, category_id
OTHER_QUERIES = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
EVENTS = [  # user_id, item_id, session_id, behavior_type, query_text, ts
    # user 1, session a1: a search, engagements, one event past the 30-minute window, a second search
    (1, None, "a1", "search", "Running Shoes!", _m(120)),
    (1, 1, "a1", "browse", None, _m(118)),
    (1, 1, "a1", "cart", None, _m(115)),
    (1, 2, "a1", "browse", None, _m(110)),
    (1, 1, "a1", "purchase", None, _m(100)),
    (1, 3, "a1", "browse", None, _m(85)),  # 35 min after the search: attributed to nothing
    (1, None, "a1", "search", "trainers", _m(80)),
    (1, 3, "a1", "browse", None, _m(78)),
    (1, 2, "a1", "fav", None, _m(70)),
    # user 2, session b1: another spelling of the same query, then a search that normalises to ''
    (2, None, "b1", "search", "running  shoes", _m(60)),
    (2, 1, "b1", "browse", None, _m(57)),
    (2, 4, "b1", "browse", None, _m(55)),
    (2, None, "b1", "search", "!!!", _m(50)),
    (2, 4, "b1", "browse", None, _m(49)),  # after the '' search: attributed to nothing
    # user 2, session b2: no search in it (the search 20 min earlier was in b1)
    (2, 1, "b2", "browse", None, _m(40)),
    # user 3: a search with no engagement; two spellings the collation equates (accent)
    (3, None, "c1", "search", "Socks", _m(30)),
    (3, None, "c2", "search", "Crème", _m(5)),
    (1, None, "a2", "search", "creme", _m(3)),
    # user 4: six distinct queries, only the last five are recent queries; a browse after the last
    *[(4, None, "d1", "search", q, _m(200 - n)) for n, q in enumerate(OTHER_QUERIES)],
    (4, 5, "d1", "browse", None, _m(190)),
]
# added after the first build
NEW_EVENTS = [
    (1, 4, "a1", "browse", None, _m(108)),  # old session, 12 min after the old search
    (2, None, "b1", "search", "Trainers", _m(58)),  # takes user 2's browses at -57 and -55 over
    (3, None, "c3", "search", "socks", _m(1)),  # a new session: socks gets an engagement
    (3, 5, "c3", "cart", None, T0),
    (4, None, "d1", "search", "Sandals", _m(192)),  # takes zeta's only engagement: zeta loses its row
]

# ml_query_item by hand: (query_norm, item_id) -> n_browse, n_cart, n_fav, n_purchase, n_searches,
# n_users, weighted, first_ts, last_ts
QUERY_ITEM = {
    ("running shoes", 1): (
        2,
        1,
        0,
        1,
        2,
        2,
        w("browse", 2) + w("cart", 5) + w("purchase", 20) + w("browse", 3),
        _m(118),
        _m(57),
    ),
    ("running shoes", 2): (1, 0, 0, 0, 1, 1, w("browse", 10), _m(110), _m(110)),
    ("running shoes", 4): (1, 0, 0, 0, 1, 1, w("browse", 5), _m(55), _m(55)),
    ("trainers", 3): (1, 0, 0, 0, 1, 1, w("browse", 2), _m(78), _m(78)),
    ("trainers", 2): (0, 0, 1, 0, 1, 1, w("fav", 10), _m(70), _m(70)),
    ("zeta", 5): (1, 0, 0, 0, 1, 1, w("browse", 5), _m(190), _m(190)),
}
# ml_query_stats by hand: query_norm -> n_searches, n_users, n_sessions_engaged, last_ts
QUERY_STATS = {
    "running shoes": (2, 2, 2, _m(60)),
    "trainers": (1, 1, 1, _m(80)),
    "socks": (1, 1, 0, _m(30)),
    "creme": (2, 2, 0, _m(3)),  # 'crème' and 'creme': one query, its smallest binary spelling
    **{q: (1, 1, 0, _m(200 - n)) for n, q in enumerate(OTHER_QUERIES)},
    "zeta": (1, 1, 1, _m(195)),
}
# ml_user_recent_queries by hand: (user_id, rn) -> query_norm, last_ts, n_searches
RECENT = {
    (1, 1): ("creme", _m(3), 1),
    (1, 2): ("trainers", _m(80), 1),
    (1, 3): ("running shoes", _m(120), 1),
    (2, 1): ("running shoes", _m(60), 1),
    (3, 1): ("crème", _m(5), 1),  # the user's own spelling (equal to 'creme' under the collation)
    (3, 2): ("socks", _m(30), 1),
    **{(4, n + 1): (q, _m(200 - 5 + n), 1) for n, q in enumerate(reversed(OTHER_QUERIES[1:]))},
}


@pytest.fixture(scope="module")
def dbt_isolated(tmp_path_factory: pytest.TempPathFactory):
    """Own dbt target/log folders: other dbt processes in this checkout must not race with ours."""
    base = tmp_path_factory.mktemp("dbt_search")
    old = {k: os.environ.get(k) for k in ("DBT_TARGET_PATH", "DBT_LOG_PATH")}
    os.environ["DBT_TARGET_PATH"] = str(base / "target")
    os.environ["DBT_LOG_PATH"] = str(base / "logs")
    yield base
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _insert(settings, events: list[tuple]) -> None:
    conn = connect(settings.raw_db, settings=settings)
    try:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO user_behavior (user_id, item_id, session_id, behavior_type, query_text, ts)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                events,
            )
    finally:
        conn.close()


@pytest.fixture(scope="module")
def shop(settings, dbt_isolated):
    """The hand-made log in emptied raw tables, every mart built with --full-refresh."""
    from ml.features.dbt import run_dbt

    conn = connect(settings.raw_db, settings=settings)
    try:
        with conn.cursor() as cur:
            for t in ("user_behavior", "user_behavior_quarantine", "users", "items"):
                cur.execute(f"TRUNCATE TABLE `{t}`")
            cur.executemany(
                "INSERT INTO users (user_id, gender, age) VALUES (%s, 'F', 30)", [(u,) for u in range(1, 5)]
            )
            cur.executemany(
                "INSERT INTO items (item_id, title, category_id, brand, price, in_stock, created_ts)"
                " VALUES (%s, 't', %s, 'b', 10, 1, '2026-10-01')",
                ITEMS,
            )
    finally:
        conn.close()
    _insert(settings, EVENTS)
    run_dbt(["build", "--full-refresh"], settings=settings)
    return settings


def rows(settings, sql: str, database: str | None = None) -> list[dict]:
    conn = connect(database or settings.marts_db, settings=settings, dict_cursor=True)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())
    finally:
        conn.close()


def _table(settings, name: str, database: str | None = None) -> pd.DataFrame:
    df = pd.DataFrame(rows(settings, f"SELECT * FROM `{name}`", database))
    return df.sort_values(SEARCH_MODELS[name], ignore_index=True)


def _query_item(settings, database: str | None = None) -> dict:
    return {
        (r["query_norm"], r["item_id"]): (
            r["n_browse"],
            r["n_cart"],
            r["n_fav"],
            r["n_purchase"],
            r["n_searches"],
            r["n_users"],
            r["weighted"],
            r["first_ts"],
            r["last_ts"],
        )
        for r in rows(settings, "SELECT * FROM ml_query_item", database)
    }


def _query_stats(settings, database: str | None = None) -> dict:
    return {
        r["query_norm"]: (r["n_searches"], r["n_users"], r["n_sessions_engaged"], r["last_ts"])
        for r in rows(settings, "SELECT * FROM ml_query_stats", database)
    }


def _assert_query_item(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for key, values in want.items():
        assert got[key][:6] == values[:6], key
        assert got[key][6] == pytest.approx(values[6], rel=1e-12), key
        assert got[key][7:] == values[7:], key


def test_query_item_counts_weights_and_times(shop):
    _assert_query_item(_query_item(shop), QUERY_ITEM)


def test_query_stats(shop):
    assert _query_stats(shop) == QUERY_STATS


def test_user_recent_queries_are_the_last_five_distinct(shop):
    got = {
        (r["user_id"], r["rn"]): (r["query_norm"], r["last_ts"], r["n_searches"])
        for r in rows(shop, "SELECT * FROM ml_user_recent_queries")
    }
    assert got == RECENT


def test_query_norm_column_is_a_100_char_varchar_under_the_serving_collation(shop):
    cols = rows(
        shop,
        "SELECT table_name AS t, column_type AS type, collation_name AS coll FROM information_schema.columns"
        f" WHERE table_schema = '{shop.marts_db}' AND column_name = 'query_norm'"
        " AND table_name IN ('ml_query_item', 'ml_query_stats', 'ml_user_recent_queries')",
    )
    assert {(c["t"], c["type"], c["coll"]) for c in cols} == {
        (t, "varchar(100)", "utf8mb4_unicode_ci") for t in SEARCH_MODELS
    }


def test_point_in_time_build_excludes_events_at_and_after_the_cut(shop):
    """Cut at T0-56m: user 2's browse of item 4 (T0-55m) and every later search are not seen."""
    from ml.features.dbt import pit_database, run_dbt

    run_dbt(
        ["run", "--select", "+ml_query_item", "+ml_query_stats", "+ml_user_recent_queries", "--full-refresh"],
        vars={"cut_ts": (_m(56)).strftime("%Y-%m-%d %H:%M:%S")},
        settings=shop,
    )
    pit = pit_database(shop)
    want_items = {k: v for k, v in QUERY_ITEM.items() if k != ("running shoes", 4)}
    _assert_query_item(_query_item(shop, pit), want_items)
    want_stats = {q: v for q, v in QUERY_STATS.items() if v[3] < _m(56)}
    assert set(want_stats) == {"running shoes", "trainers", *OTHER_QUERIES}
    assert _query_stats(shop, pit) == want_stats
    recent = {
        (r["user_id"], r["rn"]): r["query_norm"]
        for r in rows(shop, "SELECT * FROM ml_user_recent_queries", pit)
    }
    assert recent[1, 1] == "trainers" and (3, 1) not in recent
    # the serving marts are untouched
    assert _query_stats(shop) == QUERY_STATS


def test_incremental_run_equals_full_refresh(shop):
    """New events: one in an old session after an old search, a search that takes later events of its
    session over from the search before it, a new session. The incremental run recomputes exactly the
    queries of the changed sessions and must leave the tables equal to a full refresh."""
    from ml.features.dbt import run_dbt

    before = {m: _table(shop, m) for m in SEARCH_MODELS}
    _insert(shop, NEW_EVENTS)
    run_dbt(["build", "--select", "tag:realtime"], settings=shop)
    recomputed = rows(
        shop, "SELECT DISTINCT query_norm FROM int_search_session_events WHERE recompute_query = 1"
    )
    changed = {"running shoes", "trainers", "socks", "sandals", *OTHER_QUERIES}
    assert {r["query_norm"] for r in recomputed} == changed
    incremental = {m: _table(shop, m) for m in SEARCH_MODELS}

    # by hand: user 2's browses at -57 and -55 now belong to 'trainers' (searched at -58)
    want = {k: v for k, v in QUERY_ITEM.items() if k not in {("running shoes", 4), ("zeta", 5)}}
    want["running shoes", 1] = (
        1,
        1,
        0,
        1,
        1,
        1,
        w("browse", 2) + w("cart", 5) + w("purchase", 20),
        _m(118),
        _m(100),
    )
    want["running shoes", 4] = (1, 0, 0, 0, 1, 1, w("browse", 12), _m(108), _m(108))
    want["trainers", 1] = (1, 0, 0, 0, 1, 1, w("browse", 1), _m(57), _m(57))
    want["trainers", 4] = (1, 0, 0, 0, 1, 1, w("browse", 3), _m(55), _m(55))
    want["socks", 5] = (0, 1, 0, 0, 1, 1, w("cart", 1), T0, T0)
    want["sandals", 5] = (1, 0, 0, 0, 1, 1, w("browse", 2), _m(190), _m(190))
    _assert_query_item(_query_item(shop), want)
    assert _query_stats(shop) == {
        **QUERY_STATS,
        "running shoes": (2, 2, 1, _m(60)),
        "trainers": (2, 2, 2, _m(58)),
        "socks": (2, 1, 1, _m(1)),
        "zeta": (1, 1, 0, _m(195)),
        "sandals": (1, 1, 1, _m(192)),
    }

    run_dbt(["build", "--select", "tag:realtime", "--full-refresh"], settings=shop)
    for model in SEARCH_MODELS:
        full = _table(shop, model)
        pd.testing.assert_frame_equal(incremental[model], full, check_exact=False, rtol=1e-12)
    # rows of queries not recomputed were not touched
    stats = before["ml_query_stats"]
    untouched = stats[~stats["query_norm"].isin(changed)]
    assert list(untouched["query_norm"]) == ["creme"]
    pd.testing.assert_frame_equal(
        untouched.reset_index(drop=True),
        incremental["ml_query_stats"][
            incremental["ml_query_stats"]["query_norm"].isin(untouched["query_norm"])
        ].reset_index(drop=True),
    )
    recent = incremental["ml_user_recent_queries"].set_index(["user_id", "rn"])["query_norm"]
    assert (recent.loc[2, 1], recent.loc[2, 2], recent.loc[3, 1]) == ("trainers", "running shoes", "socks")
    assert list(recent.loc[4]) == ["sandals", "zeta", "epsilon", "delta", "gamma"]

    # nothing new: the next incremental run recomputes no query and changes nothing
    run_dbt(["build", "--select", "tag:realtime"], settings=shop)
    assert rows(shop, "SELECT COUNT(*) AS n FROM int_search_session_events")[0]["n"] == 0
    for model in SEARCH_MODELS:
        pd.testing.assert_frame_equal(incremental[model], _table(shop, model), check_exact=False, rtol=1e-12)
