"""Repeat-purchase, short-trend and typed co-visitation features on a tiny order history, checked
against values computed by hand (real MariaDB).

Two users, three items, invoices as sessions (purchases), plus one late session of user 2 with a
view and a cart. T0 is the newest event (the reference time); every var used here is the project's
default (trend_short_hours 1, covisit_half_life_days 7, candidates_covisit_source_decay 0.8).
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


def _h(hours: float) -> datetime:
    return T0 - timedelta(hours=hours)


ITEMS = [(1, 10, "acme", 10, 1), (2, 10, "acme", 20, 1), (3, 20, "zeta", 30, 1)]
EVENTS = [  # user_id, item_id, session_id, behavior_type, ts
    (1, 1, "a", "purchase", _h(240)),
    (1, 2, "a", "purchase", _h(240)),
    (1, 1, "b", "purchase", _h(120)),
    (1, 3, "b", "purchase", _h(120)),
    (1, 1, "c", "purchase", _h(48)),
    (2, 1, "d", "purchase", _h(100)),
    (2, 2, "d", "purchase", _h(100)),
    (2, 2, "f", "purchase", _h(99)),  # same day as d, another invoice
    (2, 3, "e", "browse", _h(1)),
    (2, 1, "e", "cart", T0),
]


def d(hours: float) -> float:
    return math.exp(-math.log(2) * hours / HALF_LIFE_COVIS_H)


@pytest.fixture(scope="module")
def shop(settings, tmp_path_factory: pytest.TempPathFactory):
    """Load the order history into emptied raw tables and build all marts (own dbt target/log folders)."""
    from ml.features.dbt import run_dbt

    base = tmp_path_factory.mktemp("dbt_exact_repeat")
    old = {k: os.environ.get(k) for k in ("DBT_TARGET_PATH", "DBT_LOG_PATH")}
    os.environ["DBT_TARGET_PATH"] = str(base / "target")
    os.environ["DBT_LOG_PATH"] = str(base / "logs")
    conn = connect(settings.raw_db, settings=settings)
    try:
        with conn.cursor() as cur:
            for t in ("user_behavior", "user_behavior_quarantine", "users", "items"):
                cur.execute(f"TRUNCATE TABLE `{t}`")
            cur.executemany("INSERT INTO users (user_id, gender, age) VALUES (%s, 'F', 30)", [(1,), (2,)])
            cur.executemany(
                "INSERT INTO items (item_id, title, category_id, brand, price, in_stock, created_ts)"
                " VALUES (%s, 't', %s, %s, %s, %s, '2026-09-01')",
                ITEMS,
            )
            cur.executemany(
                "INSERT INTO user_behavior (user_id, item_id, session_id, behavior_type, ts)"
                " VALUES (%s, %s, %s, %s, %s)",
                EVENTS,
            )
    finally:
        conn.close()
    try:
        run_dbt(["build", "--full-refresh"], settings=settings)
        yield settings
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_repeat_purchase_rhythm_per_user_item(shop):
    ui = {(r["user_id"], r["item_id"]): r for r in rows(shop, "SELECT * FROM int_user_items_aggregated")}
    # user 1 bought item 1 in 3 invoices, 240, 120 and 48 h ago: mean gap (240 - 48) / 2 = 96 h
    one = ui[1, 1]
    assert (one["n_purchase"], one["n_purchase_sessions"], one["n_purchase_days"]) == (3, 3, 3)
    assert (one["hours_since_last_purchase"], one["purchase_gap_hours_mean"]) == pytest.approx((48, 96))
    assert one["purchase_due_ratio"] == pytest.approx(0.5)
    # user 2 bought item 2 in two invoices an hour apart on the same day
    two = ui[2, 2]
    assert (two["n_purchase_sessions"], two["n_purchase_days"]) == (2, 1)
    assert (two["purchase_gap_hours_mean"], two["purchase_due_ratio"]) == pytest.approx((1, 99))
    # one purchase: no rhythm; the cart at T0 is 0 h ago
    last = ui[2, 1]
    assert (last["n_purchase_sessions"], last["purchase_gap_hours_mean"], last["purchase_due_ratio"]) == (
        1,
        None,
        None,
    )
    assert (last["hours_since_last_cart"], last["hours_since_last_purchase"]) == pytest.approx((0, 100))
    assert last["hours_since_last_browse"] is None


def test_item_repeat_buyer_rate(shop):
    i = {r["item_id"]: r for r in rows(shop, "SELECT * FROM dim_items")}
    # item 1: user 1 re-bought, user 2 did not; item 2: user 2 re-bought; item 3: nobody
    assert [i[k]["n_repeat_buyers"] for k in (1, 2, 3)] == [1, 1, 0]
    assert [i[k]["repeat_buyer_rate"] for k in (1, 2, 3)] == pytest.approx([0.5, 0.5, 0])
    # the log spans 240 h: a full day; item 3 viewed 1 h ago (inside the short window)
    assert i[3]["trend_short_1d"] == pytest.approx(2 / (1 / 24 + 1))


def test_short_trend_day_is_clipped_to_the_log(shop):
    """At a cut 2 h after the first invoice the "last day" is 2 h long: 1 purchase in it, none in the last hour."""
    from ml.features.dbt import build_point_in_time

    pit = build_point_in_time(_h(238), 24, shop)
    i = {r["item_id"]: r for r in rows(shop, "SELECT * FROM dim_items", pit)}
    assert (i[1]["pop_purchase_short"], i[1]["pop_purchase_1d"]) == (0, 1)
    assert i[1]["trend_purchase_short_1d"] == pytest.approx(1 / (1 * 1 / 2 + 1))


def test_typed_covisitation_pairs(shop):
    c = {(r["item_id"], r["similar_item_id"]): r for r in rows(shop, "SELECT * FROM ml_covisitation")}
    # 1-2 bought together in invoices a (240 h) and d (100 h): every variant counts both
    both = d(240) + d(100)
    got = c[1, 2]
    assert (got["score_browse"], got["score_cart_cart"], got["score_buy_buy"]) == pytest.approx(
        (both, both, both)
    )
    # 1-3 bought together in b (120 h) and seen together in e (T0: 3 only viewed): view only for e
    got = c[1, 3]
    assert (got["score_browse"], got["score_cart_cart"], got["score_buy_buy"]) == pytest.approx(
        (d(120) + 1, d(120), d(120))
    )
    assert c[3, 1]["score_cart_cart"] == pytest.approx(d(120))


def test_candidates_carry_typed_covisitation_sums(shop):
    """User 2's recent items, newest first: 1 (T0), 3 (1 h), 2 (99 h), weighted 1, 0.8, 0.64."""
    cand = {
        (r["user_id"], r["item_id"]): r for r in rows(shop, "SELECT * FROM ml_candidates WHERE user_id = 2")
    }
    both = d(240) + d(100)
    item1 = cand[2, 1]  # a repeat candidate too: neighbour of 3 (weight 0.8) and of 2 (0.64)
    assert item1["covisit_view_view"] == pytest.approx(0.8 * (d(120) + 1) + 0.64 * both)
    assert item1["covisit_cart_cart"] == pytest.approx(0.8 * d(120) + 0.64 * both)
    assert item1["covisit_buy_buy"] == pytest.approx(0.8 * d(120) + 0.64 * both)
    assert cand[2, 2]["covisit_buy_buy"] == pytest.approx(both)
    assert cand[2, 3]["covisit_view_view"] == pytest.approx(d(120) + 1)
    neighbours = {
        (r["user_id"], r["item_id"]): r for r in rows(shop, "SELECT * FROM int_user_covisit_neighbours")
    }
    covisit = {
        (r["user_id"], r["item_id"]): r["score"] for r in rows(shop, "SELECT * FROM int_candidates__covisit")
    }
    assert set(covisit) <= set(neighbours)
    for key, score in covisit.items():
        assert score == pytest.approx(neighbours[key]["score"])
