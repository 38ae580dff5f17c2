"""Outcome marts exact on a hand-made log (tests/data/outcomes_support.py, real MariaDB/MySQL):
every impression's outcomes by last touch within the window, maturity, repeats, anonymous lists,
and the online reports computed by hand from those rows."""

from __future__ import annotations

import pytest

from tests.data.marts_support import rows
from tests.data.outcomes_support import CATALOGUE, DAY1, DAY2, MV1, MV2, build_outcomes, h, load_log

OUTCOME_COLUMNS = [
    "impression_id",
    "request_id",
    "user_id",
    "item_id",
    "impression_rank",
    "model_version",
    "list_source",
    "arm",
    "endpoint",
    "served_at",
    "served_date",
    "is_attributable",
    "clicked",
    "carted",
    "purchased",
    "first_engaged_at",
    "is_repeat",
    "is_matured",
]
# impression_id: (is_attributable, clicked, carted, purchased, first_engaged_at, is_repeat, is_matured)
EXPECTED_OUTCOMES = {
    1: (1, 1, 0, 0, h(1), 0, 1),  # the browse at +1 h; the purchase at +3 h went to impression 4
    2: (1, 0, 1, 0, h(24), 1, 1),  # browse before it: repeat, not a click; cart at the window's end
    3: (1, 1, 0, 0, h(0.5), 0, 1),
    4: (1, 0, 0, 1, h(3), 1, 1),  # last touch of the purchase; item 1 was browsed before it
    5: (1, 0, 0, 0, None, 0, 1),  # user 3's browse of item 4 is not user 1's
    6: (1, 0, 1, 0, h(5), 0, 1),  # the fav at served_at counts neither as outcome nor as repeat
    7: (1, 1, 0, 0, h(31), 0, 0),  # served at +30 h: its window ends after the log's newest event
    8: (0, 0, 0, 0, None, 0, 1),  # anonymous: kept, nothing attributable
    9: (1, 0, 0, 0, None, 0, 1),
}
# counts: impressions, anonymous_impressions, lists, users, matured_impressions,
# matured_impressions_at_10, clicks_at_10, matured_lists_at_10, clicked_lists_at_10, carts, purchases,
# items_shown, attributable_impressions, repeat_impressions
COUNTS = [
    "impressions",
    "anonymous_impressions",
    "lists",
    "users",
    "matured_impressions",
    "matured_impressions_at_10",
    "clicks_at_10",
    "matured_lists_at_10",
    "clicked_lists_at_10",
    "carts",
    "purchases",
    "items_shown",
    "attributable_impressions",
    "repeat_impressions",
]
RATES = ["ctr_at_10", "list_ctr_at_10", "cart_rate", "purchase_rate", "coverage", "repeat_share"]
C = CATALOGUE
EXPECTED_REPORT = {
    # MV1, day 1: impressions 1-5; top-10 matured 1, 2, 4, 5 with one click (1); lists r1 (clicked), r2
    (DAY1, MV1, "user_topn", "champion", "/recommendations"): (
        (5, 0, 2, 1, 5, 4, 1, 2, 1, 1, 1, 4, 5, 2),
        (1 / 4, 1 / 2, 1 / 5, 1 / 5, 4 / C, 2 / 5),
    ),
    (DAY1, MV2, "user_topn", "challenger", "/recommendations"): (
        (1, 0, 1, 1, 1, 1, 0, 1, 0, 1, 0, 1, 1, 0),
        (0, 0, 1, 0, 1 / C, 0),
    ),
    (DAY1, MV2, "popular", "challenger", "/recommendations"): (
        (1, 0, 1, 1, 1, 1, 0, 1, 0, 0, 0, 1, 1, 0),
        (0, 0, 0, 0, 1 / C, 0),
    ),
    # immature only: its click counts nowhere, every outcome rate undefined
    (DAY2, MV2, "user_topn", "challenger", "/recommendations"): (
        (1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0),
        (None, None, None, None, 1 / C, 0),
    ),
    # anonymous search list: no model version, no arm; reported, never rated
    (DAY1, None, "search:lexical", None, "/search"): (
        (1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0),
        (None, None, None, None, 1 / C, None),
    ),
}
EXPECTED_DAILY = {
    (DAY1, MV1): EXPECTED_REPORT[DAY1, MV1, "user_topn", "champion", "/recommendations"],
    # impressions 6 and 9: one list (r3) across two list sources, so lists is 1, not 1 + 1
    (DAY1, MV2): ((2, 0, 1, 1, 2, 2, 0, 1, 0, 1, 0, 2, 2, 0), (0, 0, 1 / 2, 0, 2 / C, 0)),
    (DAY2, MV2): EXPECTED_REPORT[DAY2, MV2, "user_topn", "challenger", "/recommendations"],
    (DAY1, None): EXPECTED_REPORT[DAY1, None, "search:lexical", None, "/search"],
}


@pytest.fixture(scope="module")
def shop(settings):
    load_log(settings)
    build_outcomes(settings)
    return settings


def _outcomes(settings) -> dict[int, dict]:
    return {r["impression_id"]: r for r in rows(settings, "SELECT * FROM fct_served_outcomes")}


def _flags(r: dict) -> tuple:
    return tuple(r[c] for c in OUTCOME_COLUMNS[11:])


def _assert_report(got: list[dict], keys: list[str], expected: dict) -> None:
    by_key = {tuple(r[k] for k in keys): r for r in got}
    assert set(by_key) == set(expected)
    for key, (counts, rates) in expected.items():
        r = by_key[key]
        assert [r[c] for c in COUNTS] == list(counts), key
        for col, want in zip(RATES, rates):
            assert r[col] == (None if want is None else pytest.approx(want)), (key, col)


def test_one_row_per_impression_with_the_documented_columns(shop):
    got = rows(shop, "SELECT * FROM fct_served_outcomes ORDER BY impression_id")
    assert list(got[0]) == OUTCOME_COLUMNS
    assert [r["impression_id"] for r in got] == sorted(EXPECTED_OUTCOMES)
    anonymous = _outcomes(shop)[8]
    assert (anonymous["user_id"], anonymous["model_version"], anonymous["arm"]) == (None, None, None)
    assert (anonymous["served_date"], _outcomes(shop)[7]["served_date"]) == (DAY1, DAY2)


def test_last_touch_outcomes_within_the_window(shop):
    got = {i: _flags(r) for i, r in _outcomes(shop).items()}
    assert got == EXPECTED_OUTCOMES


def test_a_shorter_window_credits_less_and_matures_sooner(shop):
    """outcome_window_hours 0.5: only the browse 30 minutes after impression 3 stays credited (the
    window's end is inclusive), and impression 7's window closes long before the log's end."""
    build_outcomes(shop, vars={"outcome_window_hours": 0.5})
    try:
        got = {i: _flags(r) for i, r in _outcomes(shop).items()}
    finally:
        build_outcomes(shop)
    assert {i for i, f in got.items() if f[1] or f[2] or f[3]} == {3}
    assert [got[i][-1] for i in sorted(got)] == [1] * 9
    assert [got[i][5] for i in sorted(got)] == [EXPECTED_OUTCOMES[i][5] for i in sorted(got)]


def test_a_window_that_is_not_positive_is_refused(shop):
    from ml.features.dbt import DbtError

    with pytest.raises(DbtError, match="outcome_window_hours must be a number > 0"):
        build_outcomes(shop, vars={"outcome_window_hours": 0})


def test_online_metrics_per_slice(shop):
    keys = ["served_date", "model_version", "list_source", "arm", "endpoint"]
    _assert_report(rows(shop, "SELECT * FROM rpt_model_online_metrics"), keys, EXPECTED_REPORT)


def test_online_metrics_per_day_and_version(shop):
    _assert_report(
        rows(shop, "SELECT * FROM rpt_model_online_daily"), ["served_date", "model_version"], EXPECTED_DAILY
    )
