"""Reasons on published rows (issue 17) over the hand-made shop: a full publish and a refresh write
one for every row, by the precedence of ml.models.reasons, and the pre-swap check refuses rows
without one."""

from __future__ import annotations

from datetime import timedelta

import pytest
from publish_support import T0, RawEventsRecommender, add_events, scalar, seed_serving_marts, seed_shop

from ml.contracts import REASON_CODES
from ml.db import connect
from ml.publish.full import publish_full
from ml.publish.refresh import publish_refresh
from ml.quality.topn import topn_invariants_validator


def _reasons(s, user_id: int) -> list[tuple[int, str, str]]:
    conn = connect(s.serving_db, settings=s)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT item_id, reason, reason_arg FROM user_topn WHERE user_id = %s ORDER BY `rank`", (user_id,)
        )
        rows = [tuple(r) for r in cur.fetchall()]
    conn.close()
    return rows


def _covisitation(s, pairs: list[tuple[int, int, float]]) -> None:
    """A stand-in ``ml_covisitation`` mart (seed_catalog drops it again for the next test)."""
    conn = connect(s.marts_db, settings=s)
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS ml_covisitation")
        cur.execute("CREATE TABLE ml_covisitation (item_id BIGINT, similar_item_id BIGINT, score DOUBLE)")
        cur.executemany("INSERT INTO ml_covisitation VALUES (%s, %s, %s)", pairs)
    conn.close()


@pytest.fixture()
def shop(clean_db):
    seed_shop(clean_db)
    return clean_db


def test_full_publish_writes_a_reason_for_every_row(shop):
    s = shop
    _covisitation(s, [(4, 2, 5.0), (7, 2, 1.0)])  # item 2 is co-visited with user 1's items 4 and 7
    r = publish_full(RawEventsRecommender(s), "v1", s, n=5)
    codes = ", ".join(f"'{c}'" for c in REASON_CODES)
    assert scalar(s, f"SELECT COUNT(*) FROM `{s.serving_db}`.user_topn WHERE reason IN ({codes})") == r.rows
    # user 1 carted item 1, browsed 1, 4, 7, 10 (category 1) and 30 (out of stock); item 2 is popular
    assert _reasons(s, 1) == [
        (1, "carted", ""),
        (4, "viewed_before", ""),
        (7, "viewed_before", ""),
        (10, "viewed_before", ""),
        (2, "viewed_with", "4"),  # the stronger of the two co-visitation pairs
    ]
    # the intent category of user 1 is published with its name, for the reader's fallback reason
    assert (
        scalar(s, f"SELECT category FROM `{s.serving_db}`.user_intent_category WHERE user_id = 1") == "cat1"
    )


def test_refresh_writes_reasons_of_the_new_events(shop):
    s = shop
    publish_full(RawEventsRecommender(s), "v1", s, n=5)
    # user 2 (category 2: browsed 2, 5, 8, 11, carted 2) carts two category-3 items
    add_events(s, [(2, 3, "cart", T0 + timedelta(days=1)), (2, 6, "cart", T0 + timedelta(days=1, minutes=1))])
    seed_serving_marts(s)
    assert publish_refresh(RawEventsRecommender(s), "v2", s, n=5).users == 1
    assert _reasons(s, 2) == [
        (2, "carted", ""),
        (3, "carted", ""),
        (6, "carted", ""),
        (5, "viewed_before", ""),
        (8, "viewed_before", ""),
    ]
    # buying item 3 ends its "carted" reason: it is now bought before
    add_events(s, [(2, 3, "purchase", T0 + timedelta(days=1, minutes=2))])
    seed_serving_marts(s)
    publish_refresh(RawEventsRecommender(s), "v3", s, n=5)
    assert dict((i, r) for i, r, _ in _reasons(s, 2))[3] == "bought_before"


def test_pre_swap_check_refuses_rows_without_a_reason(shop):
    s = shop
    r = publish_full(RawEventsRecommender(s), "v1", s, n=5)
    validate = topn_invariants_validator(s, 10**9)
    ok, summary = validate(f"{s.serving_db}.user_topn")
    assert ok and "rows_without_reason=0" in summary, summary
    conn = connect(s.serving_db, settings=s)
    with conn.cursor() as cur:
        cur.execute("UPDATE user_topn SET reason = '' WHERE user_id = 3 AND `rank` = 2")
    conn.close()
    ok, summary = validate(f"{s.serving_db}.user_topn")
    assert not ok and "rows_without_reason=1" in summary and r.rows > 1
