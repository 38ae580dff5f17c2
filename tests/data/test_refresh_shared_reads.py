"""The refresh's reads on MariaDB: the search ranker built from the champion's 30-day history (one read of
the events per run, not two) lists what it lists from its own read, and mysqlclient reads (``binary``,
the per-user marts of a refresh batch) give the frames PyMySQL gives."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from publish_support import T0, add_events
from search_serving_support import add_searches, drop_search_marts, seed_search_shop

from ml.features import raw_reads
from ml.features.raw_reads import datetime_column, load_events, load_purchases, max_event_ts, read_sql
from ml.registry.champion import HISTORY_DAYS
from ml.search import serve
from ml.search.context import FEATURES
from ml.search.ranker import SearchRanker
from ml.search.serve import SearchRankerLists


class _SumBooster:
    """A stand-in booster: the score is the sum of the features (every feature moves the order)."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        return x.sum(axis=1)


@pytest.fixture()
def search_shop(clean_db):
    s = clean_db
    seed_search_shop(s)
    add_searches(s, [(1, "Trainers", T0 + timedelta(hours=1)), (2, "kids trainers", T0 + timedelta(hours=2))])
    add_events(
        s, [(1, 2, "cart", T0 + timedelta(hours=1, minutes=1)), (2, 3, "purchase", T0 + timedelta(hours=3))]
    )
    yield s
    drop_search_marts(s)


def _lists(lists: SearchRankerLists, s) -> tuple[pd.DataFrame, pd.DataFrame]:
    return lists.user_lists(s, list(range(1, 11)), 5), lists.query_lists(s, ["trainers", "phone", "kids"], 5)


EVENTS_READ = "load_events: rows of user_behavior"


def _reads(monkeypatch) -> list[str]:
    """The SQL of every read the search provider makes from now on."""
    seen: list[str] = []
    real = serve._read
    monkeypatch.setattr(
        serve, "_read", lambda src, sql, params=None: (seen.append(sql), real(src, sql, params))[1]
    )
    events = raw_reads.load_events  # the provider's own read of the events goes through it
    monkeypatch.setattr(
        raw_reads, "load_events", lambda *a, **k: (seen.append(EVENTS_READ), events(*a, **k))[1]
    )
    return seen


def test_search_lists_from_the_shared_history_equal_those_from_its_own_read(search_shop, monkeypatch):
    s = search_shop
    ranker = _ranker()
    own_users, own_queries = _lists(SearchRankerLists(ranker, s, "search/1", k=5), s)
    assert len(own_users) and len(own_queries)  # something to compare
    # what the refresh's champion read: the events of HISTORY_DAYS up to the newest
    history = load_events(s, max_event_ts(s) - pd.Timedelta(days=HISTORY_DAYS), None)
    seen = _reads(monkeypatch)
    shared = SearchRankerLists(ranker, s, "search/1", k=5).share_history(history, HISTORY_DAYS)
    users, queries = _lists(shared, s)
    pd.testing.assert_frame_equal(users, own_users)
    pd.testing.assert_frame_equal(queries, own_queries)
    assert seen and not [q for q in seen if "user_behavior" in q], "the events were read again"


def test_a_history_shorter_than_the_rankers_is_not_used(search_shop, monkeypatch):
    s = search_shop
    history = load_events(s, max_event_ts(s) - pd.Timedelta(days=7), None)
    seen = _reads(monkeypatch)
    lists = SearchRankerLists(_ranker(), s, "search/1", k=5, history_days=30).share_history(history, 7)
    lists.refresh()
    assert EVENTS_READ in seen, "30 days of events are needed: 7 shared days must not do"


def _ranker() -> SearchRanker:
    return SearchRanker(_SumBooster(), list(FEATURES))


def test_binary_reads_give_the_frames_pymysql_gives(search_shop):
    s = search_shop
    sql = (
        f"SELECT q.query_norm, q.item_id, q.weighted, q.first_ts, CAST(q.weighted AS DECIMAL(10, 3)) AS d, "
        f"NULL AS nothing, e.query_text, e.item_id AS event_item, "
        # DATETIME columns, which the binary read parses a column at a time: fractional seconds, NULLs
        # among values, only NULLs, and a date before datetime64[ns]'s range (kept as datetime objects)
        f"q.first_ts + INTERVAL e.event_id MICROSECOND AS frac_ts, IF(e.event_id % 2, q.first_ts, NULL) AS some_ts, "
        f"CAST(NULL AS DATETIME) AS no_ts, CAST('1000-01-01 00:00:00' AS DATETIME) AS old_ts "
        f"FROM `{s.marts_db}`.ml_query_item q "
        f"JOIN `{s.raw_db}`.user_behavior e ON e.user_id = q.item_id ORDER BY q.query_norm, q.item_id, e.event_id"
    )
    plain, binary = read_sql(sql, s), read_sql(sql, s, binary=True)
    assert len(plain) and plain["query_text"].isna().any() and plain["event_item"].isna().any()
    assert plain["some_ts"].isna().any() and plain["some_ts"].notna().any()
    assert (plain["frac_ts"].dt.microsecond > 0).any()
    pd.testing.assert_frame_equal(binary, plain)
    pd.testing.assert_frame_equal(
        load_purchases(s, None, [1, 2, 3], binary=True), load_purchases(s, None, [1, 2, 3])
    )
    events = load_events(s, pd.Timestamp(T0), None)
    assert events["query_text"].notna().any() and events["item_id"].isna().any()
    pd.testing.assert_frame_equal(load_events(s, pd.Timestamp(T0), None, binary=True), events)


def test_datetime_text_parses_like_mysqlclient_value_by_value():
    raw = np.array([b"2026-10-13 06:29:37.083", None, b"2026-10-13 06:29:37"], dtype=object)
    got = datetime_column(raw)
    assert got.dtype == "datetime64[ns]"
    assert list(pd.Series(got)) == [
        pd.Timestamp("2026-10-13 06:29:37.083"),
        pd.NaT,
        pd.Timestamp("2026-10-13 06:29:37"),
    ]
    # a zero date is NULL to mysqlclient's converter: NaT here too, the valid dates still parsed
    zero = datetime_column(np.array([b"0000-00-00 00:00:00", b"2026-01-02 03:04:05"], dtype=object))
    assert pd.isna(zero[0]) and pd.Timestamp(zero[1]) == pd.Timestamp("2026-01-02 03:04:05")
    # outside datetime64[ns]'s range: datetime objects, never a wrapped-around date
    old = datetime_column(np.array([b"1000-01-01 00:00:00"], dtype=object))
    assert old.dtype == object and old[0] == datetime(1000, 1, 1)
    assert list(datetime_column(np.array([None, None], dtype=object))) == [None, None]
