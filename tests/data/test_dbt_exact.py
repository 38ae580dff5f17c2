"""dbt marts on a tiny hand-made shop, checked against values computed by hand (real MariaDB).

Two users, five items, 14 raw events (one a replayed copy). T0 is the newest event, so it is the
reference time of the windowed features.
"""

from __future__ import annotations

import math
import os
from datetime import datetime, timedelta

import pytest

from ml.db import connect
from tests.data.marts_support import rows

T0 = datetime(2026, 10, 10, 12, 0, 0)
HALF_LIFE_COVIS_H = 7 * 24
HALF_LIFE_REPEAT_H = 72
HALF_LIFE_POP_H = 24  # dbt vars popularity_half_life_hours; popularity_days = 7 covers every event


def _m(minutes: float) -> datetime:
    return T0 - timedelta(minutes=minutes)


ITEMS = [  # item_id, category_id, brand, price, in_stock
    (1, 10, "acme", 10, 1),
    (2, 10, "acme", 20, 1),
    (3, 20, "zeta", 30, 1),
    (4, 20, "zeta", 40, 1),
    (5, 20, "zeta", 50, 0),
]
EVENTS = [  # user_id, item_id, session_id, behavior_type, query_text, ts
    (1, None, "s0", "search", "Red Shoes", _m(48 * 60)),
    (1, 1, "s0", "browse", None, _m(48 * 60 - 1)),
    (1, 1, "s1", "browse", None, _m(10)),
    (1, 2, "s1", "browse", None, _m(9)),
    (1, 2, "s1", "cart", None, _m(8)),
    (1, 3, "s1", "browse", None, _m(7)),
    (1, None, "s1", "search", " Blue HAT", _m(6)),
    (1, 2, "s1", "browse", None, _m(5)),
    (1, 2, "s1", "browse", None, _m(5)),  # replayed copy: staging must drop it
    (2, 3, "s2", "browse", None, _m(30)),
    (2, 4, "s2", "browse", None, _m(29)),
    (2, 4, "s2", "cart", None, _m(28)),
    (2, 4, "s2", "purchase", None, _m(27)),
    (2, 1, "s2", "browse", None, T0),
]


def decay(age_minutes: float, half_life_hours: float) -> float:
    return math.exp(-math.log(2) * (age_minutes / 60) / half_life_hours)


def _pop(*events: tuple[float, float]) -> float:
    """Popularity of (type weight, minutes before T0) events: weights browse 1, fav 2, cart 3, purchase 4."""
    return sum(w * decay(m, HALF_LIFE_POP_H) for w, m in events)


# dim_items.popularity_score by hand (item 5 has no event)
POP = {
    1: _pop((1, 48 * 60 - 1), (1, 10), (1, 0)),
    2: _pop((1, 9), (3, 8), (1, 5)),  # the replayed browse at 5 min counts once
    3: _pop((1, 7), (1, 30)),
    4: _pop((1, 29), (3, 28), (4, 27)),
    5: 0.0,
}


@pytest.fixture(scope="module")
def dbt_isolated(tmp_path_factory: pytest.TempPathFactory):
    """Own dbt target/log folders: other dbt processes in this checkout must not race with ours."""
    base = tmp_path_factory.mktemp("dbt_exact")
    old = {k: os.environ.get(k) for k in ("DBT_TARGET_PATH", "DBT_LOG_PATH")}
    os.environ["DBT_TARGET_PATH"] = str(base / "target")
    os.environ["DBT_LOG_PATH"] = str(base / "logs")
    yield base
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def tiny(settings, dbt_isolated):
    """Load the tiny shop into emptied raw tables and build all marts with --full-refresh."""
    from ml.features.dbt import run_dbt

    conn = connect(settings.raw_db, settings=settings)
    try:
        with conn.cursor() as cur:
            for t in ("user_behavior", "user_behavior_quarantine", "users", "items"):
                cur.execute(f"TRUNCATE TABLE `{t}`")
            cur.executemany(
                "INSERT INTO users (user_id, gender, age) VALUES (%s, 'F', 30)", [(1,), (2,), (3,)]
            )
            cur.executemany(
                "INSERT INTO items (item_id, title, category_id, brand, price, in_stock, created_ts)"
                " VALUES (%s, 't', %s, %s, %s, %s, '2026-10-01')",
                ITEMS,
            )
            cur.executemany(
                "INSERT INTO user_behavior (user_id, item_id, session_id, behavior_type, query_text, ts)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                EVENTS,
            )
    finally:
        conn.close()
    run_dbt(["build", "--full-refresh"], settings=settings)
    return settings


def test_staging_drops_the_replayed_copy(tiny):
    assert rows(tiny, "SELECT COUNT(*) AS n FROM stg_recsys__user_behavior")[0]["n"] == len(EVENTS) - 1
    assert rows(tiny, "SELECT COUNT(*) AS n FROM int_events_enriched")[0]["n"] == len(EVENTS) - 1


def test_dim_users_counts_windows_and_price(tiny):
    u = {r["user_id"]: r for r in rows(tiny, "SELECT * FROM dim_users")}
    assert set(u) == {1, 2}  # user 3 has no event
    one = u[1]
    assert (one["n_browse_1d"], one["n_browse_7d"], one["n_cart_7d"], one["n_search_7d"]) == (4, 5, 1, 2)
    assert (one["n_events_total"], one["n_sessions_30d"], one["n_purchase_30d"]) == (8, 2, 0)
    assert one["avg_price_viewed"] == pytest.approx((10 + 10 + 20 + 30 + 20) / 5)
    assert one["hours_since_last_event"] == pytest.approx(5 / 60)
    assert one["top_category_id"] == 10
    two = u[2]
    assert (two["n_browse_1d"], two["n_purchase_30d"]) == (3, 1)
    assert two["purchase_rate"] == pytest.approx(1 / 3)
    assert two["hours_since_last_event"] == 0


def test_dim_items_rates_trend_and_price_percentile(tiny):
    i = {r["item_id"]: r for r in rows(tiny, "SELECT * FROM dim_items")}
    assert set(i) == {1, 2, 3, 4, 5}
    assert i[1]["trend_1d_7d"] == pytest.approx((2 + 1) / (3 / 7 + 1))
    assert i[2]["view_to_cart_rate"] == pytest.approx(1 / (2 + 1))
    assert i[4]["cart_to_purchase_rate"] == pytest.approx(1 / (1 + 1))
    assert [i[k]["price_pct_in_category"] for k in (3, 4, 5)] == pytest.approx([0, 0.5, 1])
    assert [i[k]["popularity_score"] for k in (1, 2, 3, 4, 5)] == pytest.approx(
        [POP[k] for k in (1, 2, 3, 4, 5)]
    )


def test_user_items_hours_since_each_behaviour(tiny):
    """Hours from the pair's last event of each type to T0 (NULL when never); one purchase: no rhythm."""
    ui = {(r["user_id"], r["item_id"]): r for r in rows(tiny, "SELECT * FROM int_user_items_aggregated")}
    one = ui[1, 2]
    assert (one["hours_since_last_browse"], one["hours_since_last_cart"]) == pytest.approx((5 / 60, 8 / 60))
    assert one["hours_since_last_fav"] is None and one["hours_since_last_purchase"] is None
    assert (one["n_purchase_sessions"], one["purchase_gap_hours_mean"], one["purchase_due_ratio"]) == (
        0,
        None,
        None,
    )
    two = ui[2, 4]
    assert two["hours_since_last_purchase"] == pytest.approx(27 / 60)
    assert (two["n_purchase_sessions"], two["n_purchase_days"], two["purchase_gap_hours_mean"]) == (
        1,
        1,
        None,
    )
    assert ui[2, 1]["hours_since_last_browse"] == 0


def test_dim_items_short_trends_and_repeat_buyers(tiny):
    """trend_short_hours = 1; the log spans 48 h, so the day is 24 h long."""
    i = {r["item_id"]: r for r in rows(tiny, "SELECT * FROM dim_items")}
    assert (i[1]["pop_browse_short"], i[1]["pop_browse_1d"]) == (2, 2)  # views 10 and 0 min ago
    assert i[1]["trend_short_1d"] == pytest.approx(3 / (2 / 24 + 1))
    assert i[4]["trend_purchase_short_1d"] == pytest.approx(2 / (1 / 24 + 1))
    assert i[4]["trend_purchase_1d_7d"] == pytest.approx(2 / (1 / 7 + 1))
    assert i[2]["trend_purchase_short_1d"] == pytest.approx(1.0)
    assert [i[k]["repeat_buyer_rate"] for k in (1, 2, 3, 4, 5)] == [0, 0, 0, 0, 0]


def test_session_intent_of_the_last_session(tiny):
    f = {r["user_id"]: r for r in rows(tiny, "SELECT * FROM fct_session_intent")}
    one = f[1]
    assert (one["session_id"], one["last_event_ts"], one["session_events"]) == ("s1", _m(5), 6)
    # last session, newest first: browse2 .8^0, browse3 .8^2, cart2 3*.8^3, browse2 .8^4, browse1 .8^5
    cat10 = 1 + 3 * 0.8**3 + 0.8**4 + 0.8**5
    cat20 = 0.8**2
    assert one["intent_category_id"] == 10
    assert one["intent_strength"] == pytest.approx(cat10 / (cat10 + cat20))
    assert one["query_terms"] == "blue hat"
    assert (one["last_items"], one["last_categories"], one["carted_not_bought"]) == ("2,3,1", "10,20", "2")
    two = f[2]
    cat20 = 2 * 0.8 + 3 * 0.8**2 + 0.8**3 + 0.8**4
    assert two["intent_category_id"] == 20
    assert two["intent_strength"] == pytest.approx(cat20 / (cat20 + 1))
    assert (two["last_items"], two["carted_not_bought"], two["query_terms"]) == ("1,4,3", "", "")


def test_covisitation_scores_are_decayed_and_typed(tiny):
    c = {(r["item_id"], r["similar_item_id"]): r for r in rows(tiny, "SELECT * FROM ml_covisitation")}
    d5, d7, d27 = (decay(m, HALF_LIFE_COVIS_H) for m in (5, 7, 27))
    # 1 -> 2 only in s1 (2 was carted): browse and cart co-occurrence, 1*b + 3*c
    assert (c[1, 2]["score_browse"], c[1, 2]["score_cart"], c[1, 2]["score_purchase"]) == pytest.approx(
        (d5, d5, 0)
    )
    assert c[1, 2]["score"] == pytest.approx(4 * d5)
    # 3 -> 4 only in s2, 4 carted and bought; the reverse direction only saw a view of 3
    assert c[3, 4]["score"] == pytest.approx(10 * d27)
    assert c[4, 3]["score"] == pytest.approx(d27)
    # 3 -> 1 in two sessions: s1 (newest of the pair 7 min ago) and s2 (item 1 at T0)
    assert c[3, 1]["score_browse"] == pytest.approx(d7 + 1)
    ranked = [
        r["similar_item_id"] for r in sorted((v for k, v in c.items() if k[0] == 3), key=lambda r: r["rank"])
    ]
    assert ranked == [4, 2, 1]
    assert (5, 1) not in c and (1, 1) not in c


def test_candidates_sources_and_scores(tiny):
    cand = {(r["user_id"], r["item_id"]): r for r in rows(tiny, "SELECT * FROM ml_candidates")}
    assert {k[1] for k in cand if k[0] == 1} == {1, 2, 3, 4}  # item 5 is out of stock, never touched
    # repeat of item 2 for user 1 (last event 5 min before T0): browse 1 + cart 3 + browse 1, carted
    # and never bought: + 4 x decay of the cart
    r = lambda m: decay(m - 5, HALF_LIFE_REPEAT_H)  # noqa: E731  age relative to the user's last event
    assert cand[1, 2]["repeat_score"] == pytest.approx(r(9) + 3 * r(8) + r(5) + 4 * r(8))
    assert cand[1, 1]["repeat_score"] == pytest.approx(r(48 * 60 - 1) + r(10))
    assert cand[1, 2]["intent_pop_score"] == pytest.approx(1.0)  # most popular of category 10
    assert cand[1, 1]["intent_pop_score"] == pytest.approx(POP[1] / POP[2])
    assert cand[1, 3]["global_pop_score"] == pytest.approx(POP[3] / POP[4])
    assert cand[1, 4]["global_pop_score"] == pytest.approx(1.0)
    assert cand[1, 4]["sources"] == "covisit,global_pop"
    assert cand[1, 2]["sources"] == "repeat,covisit,intent_pop,global_pop"
    assert cand[1, 2]["n_sources"] == 4
    assert cand[2, 4]["last_event_ts"] == T0


def test_candidates_are_the_union_of_the_generators(tiny):
    """ml_candidates = one row per (user, item) over int_candidates__<source>, their scores side by side."""
    cand = {(r["user_id"], r["item_id"]): r for r in rows(tiny, "SELECT * FROM ml_candidates")}
    union = {}
    for source in ("repeat", "covisit", "intent_pop", "global_pop"):
        for r in rows(tiny, f"SELECT * FROM int_candidates__{source}"):
            union.setdefault((r["user_id"], r["item_id"]), {})[source] = r["score"]
            assert r["last_event_ts"] == cand[r["user_id"], r["item_id"]]["last_event_ts"]
    assert set(union) == set(cand)
    for key, scores in union.items():
        assert cand[key]["sources"] == ",".join(scores)
        for source, score in scores.items():
            assert cand[key][f"{source}_score"] == pytest.approx(score)


def test_serve_popular_topn_ranks_in_stock_items_by_popularity(tiny):
    top = rows(tiny, "SELECT scope, `rank`, item_id, score FROM serve_popular_topn ORDER BY scope, `rank`")
    lists = {}
    for r in top:
        lists.setdefault(r["scope"], []).append(r["item_id"])
        assert r["score"] == pytest.approx(POP[r["item_id"]])
    # item 5 is out of stock; popularity 4 > 2 > 1 > 3
    assert lists == {"global": [4, 2, 1, 3], "category:10": [2, 1], "category:20": [4, 3]}
    assert [r["rank"] for r in top if r["scope"] == "global"] == [1, 2, 3, 4]


def test_serve_user_intent_category_is_the_session_intent(tiny):
    got = {r["user_id"]: r for r in rows(tiny, "SELECT * FROM serve_user_intent_category")}
    intent = {r["user_id"]: r for r in rows(tiny, "SELECT * FROM fct_session_intent")}
    assert set(got) == {1, 2}
    for user, r in got.items():
        assert (r["category_id"], r["last_event_ts"]) == (
            intent[user]["intent_category_id"],
            intent[user]["last_event_ts"],
        )
        assert r["strength"] == pytest.approx(intent[user]["intent_strength"])
    assert (got[1]["category_id"], got[2]["category_id"]) == (10, 20)


def test_realtime_watermarks_are_recorded_in_the_state_table(tiny):
    """After a full build: each realtime mart's newest event_id, and NULL (every user, every query) for
    the events the marts read."""
    state = {
        r["model_name"]: r["watermark_event_id"] for r in rows(tiny, "SELECT * FROM realtime_watermarks")
    }
    newest = rows(tiny, "SELECT MAX(event_id) AS id FROM user_behavior", tiny.raw_db)[0]["id"]
    marts = (
        "fct_session_intent",
        "ml_candidates",
        "ml_query_item",
        "ml_query_stats",
        "ml_user_recent_queries",
    )
    assert state == {
        "int_realtime_user_events": None,
        "int_search_session_events": None,
        **{mart: newest for mart in marts},
    }


def test_point_in_time_build_sees_only_the_past_and_labels_the_window(tiny):
    from ml.features.dbt import build_point_in_time

    cut = _m(20)
    pit = build_point_in_time(cut, 24, tiny)
    assert pit.endswith("recsys_pit") and pit != tiny.marts_db
    u = {r["user_id"]: r for r in rows(tiny, "SELECT * FROM dim_users", pit)}
    assert u[1]["n_events_total"] == 2 and u[1]["last_event_ts"] < cut  # only session s0
    assert u[2]["n_events_total"] == 4
    f = {r["user_id"]: r for r in rows(tiny, "SELECT * FROM fct_session_intent", pit)}
    assert (f[1]["session_id"], f[1]["last_items"], f[1]["query_terms"]) == ("s0", "1", "red shoes")
    labels = {
        (r["user_id"], r["item_id"]): (r["clicked"], r["carted"], r["purchased"])
        for r in rows(tiny, "SELECT * FROM ml_labels", pit)
    }
    assert labels == {(1, 1): (1, 0, 0), (1, 2): (1, 1, 0), (1, 3): (1, 0, 0), (2, 1): (1, 0, 0)}
    ts = {(r["user_id"], r["item_id"]): r["label"] for r in rows(tiny, "SELECT * FROM ml_training_set", pit)}
    assert ts[1, 2] == 2 and ts[1, 1] == 1 and ts[2, 1] == 1
    assert all(v == 0 for k, v in ts.items() if k not in labels)
    # the serving marts are untouched by a point-in-time build
    assert rows(tiny, "SELECT n_events_total FROM dim_users WHERE user_id = 1")[0]["n_events_total"] == 8


def test_cut_and_window_boundaries(tiny):
    """An event exactly at cut_ts is a label, not a feature; one exactly at cut + label_hours is neither."""
    from ml.features.dbt import build_point_in_time

    pit = build_point_in_time(_m(10), 1, tiny)  # user 1's browse of item 1 happens exactly at the cut
    assert rows(tiny, "SELECT n_events_total FROM dim_users WHERE user_id = 1", pit)[0]["n_events_total"] == 2
    first = rows(tiny, "SELECT first_label_ts FROM ml_labels WHERE user_id = 1 AND item_id = 1", pit)
    assert first[0]["first_label_ts"] == _m(10)

    pit = build_point_in_time(_m(65), 1, tiny)  # window [T0-65m, T0-5m): the browse of item 2 at T0-5m is out
    last = rows(tiny, "SELECT last_label_ts FROM ml_labels WHERE user_id = 1 AND item_id = 2", pit)
    assert last[0]["last_label_ts"] == _m(8)


@pytest.mark.parametrize("pit_holds_another_cut", [False, True])
def test_rest_of_session_build_reveals_the_session_start_only(tiny, pit_holds_another_cut):
    """User 1's session s1 lies after the cut at T0-20m; cut inside it at T0-8m, the realtime models
    see its first two views and the labels are what follows; batch features stay as of the cut, and
    user 2 (no session cut) is left out of the session models. With another cut in the pit database
    the whole build is redone (same result)."""
    import pandas as pd

    from ml.features.datasets import load_cut, load_session_cut
    from ml.features.dbt import build_point_in_time, pit_database

    day = load_cut(tiny, pd.Timestamp(_m(20)), 24)
    day_intent = {r["user_id"]: r for r in rows(tiny, "SELECT * FROM fct_session_intent", pit_database(tiny))}
    if pit_holds_another_cut:
        build_point_in_time(_m(65), 1, tiny)
    cuts = pd.DataFrame({"user_id": [1], "session_id": ["s1"], "cut_ts": [pd.Timestamp(_m(8))]})
    sess = load_session_cut(tiny, day, cuts)
    pit = pit_database(tiny)

    f = {r["user_id"]: r for r in rows(tiny, "SELECT * FROM fct_session_intent", pit)}
    assert (f[1]["session_id"], f[1]["last_items"], f[1]["last_event_ts"]) == ("s1", "2,1", _m(9))
    assert 2 in day_intent and 2 not in f  # no session cut: no label in this build, so not in it
    labels = {
        (r["user_id"], r["item_id"]): (r["clicked"], r["carted"], r["purchased"])
        for r in rows(tiny, "SELECT * FROM ml_labels", pit)
    }
    assert labels == {(1, 2): (1, 1, 0), (1, 3): (1, 0, 0)}  # the rest of s1; item 1 was only revealed
    cand = {(r["user_id"], r["item_id"]) for r in rows(tiny, "SELECT * FROM ml_candidates", pit)}
    assert {(1, 1), (1, 2)} <= cand
    assert (
        rows(tiny, "SELECT n_events_total FROM dim_users WHERE user_id = 1", pit)[0]["n_events_total"] == 2
    )  # batch: as of the cut

    assert sorted(sess.revealed["ts"]) == [pd.Timestamp(_m(10)), pd.Timestamp(_m(9))]
    assert sess.window["ts"].min() == pd.Timestamp(_m(8)) and set(sess.window["user_id"]) == {1}
    assert len(sess.user_history) == len(day.history) + 2 and sess.history is day.history
    assert sess.users is day.users and sess.covis is day.covis


def test_session_cuts_must_lie_after_the_cut(tiny):
    import pandas as pd

    from ml.features.datasets import load_cut, load_session_cut

    day = load_cut(tiny, pd.Timestamp(_m(20)), 24)
    with pytest.raises(ValueError, match="after the cut"):
        load_session_cut(
            tiny, day, pd.DataFrame({"user_id": [1], "session_id": ["s1"], "cut_ts": [pd.Timestamp(_m(30))]})
        )
    with pytest.raises(ValueError, match="no user"):
        load_session_cut(tiny, day, pd.DataFrame(columns=["user_id", "session_id", "cut_ts"]))


def test_source_freshness_flags_stale_events(tiny):
    """user_behavior.ts freshness: errors after 48 h without events, passes once a current one lands."""
    from ml.features.dbt import DbtError, run_dbt

    with pytest.raises(DbtError, match="STALE"):
        run_dbt(["source", "freshness"], settings=tiny)
    conn = connect(tiny.raw_db, settings=tiny)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "INSERT INTO user_behavior (user_id, item_id, session_id, behavior_type, ts)"
                " VALUES (1, 1, 'fresh', 'browse', NOW(3))"
            )
            fresh_id = cur.lastrowid
        try:
            run_dbt(["source", "freshness"], settings=tiny)
        finally:
            with conn.cursor() as cur:
                cur.execute("DELETE FROM user_behavior WHERE event_id = %s", (fresh_id,))
    finally:
        conn.close()
