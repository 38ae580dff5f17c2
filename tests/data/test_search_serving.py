"""Search serving (issue 15) on MariaDB: the migration, the full publish and refresh of ``query_topn``,
``user_query_topn`` and ``search_items`` from the baseline provider, and the swap's atomicity."""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import timedelta

import pandas as pd
import pytest
from publish_support import T0, RawEventsRecommender, scalar, seed_serving_marts, serving_tables, topn
from search_serving_support import (
    QUERY_ITEMS,
    add_searches,
    drop_search_marts,
    rows,
    seed_search_marts,
    seed_search_shop,
)

from ml.db import connect, init_db
from ml.publish.common import ValidationFailed
from ml.publish.full import publish_full
from ml.publish.refresh import publish_refresh
from ml.search.lists import BaselineSearchLists

BASE = BaselineSearchLists.model_version
# the baseline on the hand-made marts (search_serving_support): behaviour rows 1 + weighted / best, in stock
# only (item 30 is not); BM25 fills with the other in-stock titles that match, best = 1.0
TRAINERS = [
    ("trainers", 1, 2, 2.0, "query_pop", BASE),
    ("trainers", 2, 1, 1.6, "query_pop", BASE),
    ("trainers", 3, 7, 1.2, "query_pop", BASE),
    ("trainers", 4, 3, 1.0, "bm25", BASE),
]
PHONE = [("phone", 1, 5, 2.0, "query_pop", BASE), ("phone", 2, 4, 1.0, "bm25", BASE)]


@pytest.fixture()
def search_shop(clean_db):
    seed_search_shop(clean_db)
    yield clean_db
    drop_search_marts(clean_db)


def test_db_init_applies_the_search_migration_to_an_existing_database(settings):
    conn = connect(settings=settings)
    with conn.cursor() as cur:
        cur.execute(f"DROP TABLE `{settings.serving_db}`.query_topn, `{settings.serving_db}`.search_items")
        cur.execute(f"DELETE FROM `{settings.raw_db}`.schema_migrations WHERE version = 12")
    conn.close()
    assert init_db(settings) == ["0012_search_serving.sql"]
    assert {"query_topn", "user_query_topn", "search_items"} <= serving_tables(settings)
    assert init_db(settings) == []


def test_full_publish_writes_the_search_tables(search_shop):
    s = search_shop
    r = publish_full(RawEventsRecommender(s), "v1", s, n=5)
    # "rare" was searched twice, under the minimum of 3: no list
    assert rows(s, "query_topn") == PHONE + TRAINERS
    assert (r.queries, r.query_rows, r.search_model_version) == (2, 6, BASE)
    # user 1 (intent category 1) searched trainers and phone, user 4 (category 1) phone: category-1
    # items (1, 4, 7) move to the front with + 2, the rest keep their order
    assert rows(s, "user_query_topn") == [
        (1, "phone", 1, 4, 3.0, "bm25+intent", BASE),
        (1, "phone", 2, 5, 2.0, "query_pop+intent", BASE),
        (1, "trainers", 1, 1, 3.6, "query_pop+intent", BASE),
        (1, "trainers", 2, 7, 3.2, "query_pop+intent", BASE),
        (1, "trainers", 3, 2, 2.0, "query_pop+intent", BASE),
        (1, "trainers", 4, 3, 1.0, "bm25+intent", BASE),
        (4, "phone", 1, 4, 3.0, "bm25+intent", BASE),
        (4, "phone", 2, 5, 2.0, "query_pop+intent", BASE),
    ]
    assert r.user_query_rows == 8
    assert scalar(s, f"SELECT COUNT(*) FROM `{s.serving_db}`.search_items") == 30
    assert scalar(
        s, f"SELECT CONCAT(title, '|', in_stock) FROM `{s.serving_db}`.search_items WHERE item_id = 30"
    ) == ("deluxe trainers|0")


def test_search_lists_are_cut_at_k(search_shop):
    s = dataclasses.replace(search_shop, search_k=3)
    publish_full(RawEventsRecommender(s), "v1", s, n=5)
    assert rows(s, "query_topn", "WHERE query_norm = 'trainers'") == TRAINERS[:3]
    assert scalar(s, f"SELECT MAX(`rank`) FROM `{s.serving_db}`.user_query_topn") == 3


def test_search_tables_kept_when_the_marts_are_missing(search_shop, caplog):
    s = search_shop
    publish_full(RawEventsRecommender(s), "v1", s, n=5)
    drop_search_marts(s)
    with caplog.at_level("WARNING"):
        r = publish_full(RawEventsRecommender(s), "v2", s, n=5)
    assert r.queries is None and r.search_model_version is None
    assert "search marts ml_query_stats, ml_query_item, ml_user_recent_queries missing" in caplog.text
    assert rows(s, "query_topn") == PHONE + TRAINERS  # the live lists were not touched
    assert {mv for *_, mv in topn(s)} == {"v2"}


class _SellsOutOfStock(BaselineSearchLists):
    """Puts out-of-stock item 30 on top of every query list (a broken search ranker)."""

    model_version = "broken"

    def query_lists(self, settings, queries, k):
        df = super().query_lists(settings, queries, k)
        top = df[df["rank"] == 1].assign(item_id=30, score=df["score"].max() + 1)
        return pd.concat([top, df.assign(rank=df["rank"] + 1)])


def test_a_broken_search_list_swaps_nothing(search_shop):
    s = search_shop
    publish_full(RawEventsRecommender(s), "v1", s, n=5)
    before = rows(s, "query_topn"), rows(s, "user_query_topn"), topn(s)
    with pytest.raises(ValidationFailed, match="unknown or out of stock: \\[30\\]"):
        publish_full(RawEventsRecommender(s), "v2", s, n=5, search=_SellsOutOfStock())
    assert (rows(s, "query_topn"), rows(s, "user_query_topn"), topn(s)) == before
    assert not {t for t in serving_tables(s) if t.endswith("_new")}
    # the search tables fill on a second thread: a scoring crash on the first still swaps nothing,
    # and the staging tables go only once that thread is done with them
    with pytest.raises(RuntimeError, match="injected crash while scoring"):
        publish_full(RawEventsRecommender(s, fail_on_call=1), "v2", s, n=5)
    assert (rows(s, "query_topn"), rows(s, "user_query_topn"), topn(s)) == before
    assert not {t for t in serving_tables(s) if t.endswith("_new")}


def test_the_sql_invariants_catch_what_slipped_into_a_table(search_shop):
    from ml.quality.topn import search_invariants_validator

    s = search_shop
    publish_full(RawEventsRecommender(s), "v1", s, n=5)
    check = search_invariants_validator(s)
    assert check(f"{s.serving_db}.query_topn")[0] and check(f"{s.serving_db}.user_query_topn")[0]
    conn = connect(s.serving_db, settings=s)
    with conn.cursor() as cur:
        cur.execute("UPDATE query_topn SET score = 9 WHERE query_norm = 'trainers' AND `rank` = 3")
        cur.execute("UPDATE user_query_topn SET item_id = 30 WHERE user_id = 4 AND `rank` = 2")
    conn.close()
    ok, summary = check(f"{s.serving_db}.query_topn")
    assert not ok and "score_rises=1" in summary
    ok, summary = check(f"{s.serving_db}.user_query_topn")
    assert not ok and "unknown_or_out_of_stock_items=1" in summary


def test_refresh_gives_a_new_query_to_its_searcher_only(search_shop):
    """User 2 searches "Kids!" for the first time: after the refresh they have a list for "kids";
    no other user's search rows and no query list changed ("kids" is under the minimum count)."""
    s = search_shop
    publish_full(RawEventsRecommender(s), "v1", s, n=5)
    users_before, queries_before = rows(s, "user_query_topn"), rows(s, "query_topn")
    add_searches(s, [(2, "Kids!", T0 + timedelta(days=1))])
    # what the realtime dbt run writes before a refresh: the search counted, user 2's recent query
    seed_search_marts(
        s,
        [],
        [("trainers", 5), ("phone", 3), ("kids", 1)],
        [(1, "trainers", 1), (1, "phone", 2), (4, "phone", 1), (2, "kids", 1)],
    )
    seed_serving_marts(s)
    r = publish_refresh(RawEventsRecommender(s), "v1", s, n=5)

    assert r.users == 1 and r.batches[0].search_users == 1 and r.queries == 0
    # item 3 "kids trainers" is category 3; user 2's intent is category 2: BM25 order stays
    assert rows(s, "user_query_topn", "WHERE user_id = 2") == [(2, "kids", 1, 3, 1.0, "bm25+intent", BASE)]
    assert rows(s, "user_query_topn", "WHERE user_id <> 2") == users_before
    assert rows(s, "query_topn") == queries_before
    assert "search lists of 1 user(s) and 0 frequent query(ies) replaced" in r.message


def test_refresh_batch_rolls_back_whole_when_loading_its_search_rows_fails(search_shop, monkeypatch):
    """The users' search rows go in by LOAD DATA inside the batch's transaction: when the load fails
    (a score the FLOAT column cannot take), the batch's top-N, intent and search rows all stay as they
    were and the watermark does not move."""
    from ml.publish import refresh as refresh_module

    s = search_shop
    publish_full(RawEventsRecommender(s), "v1", s, n=5)
    before = (topn(s), rows(s, "user_query_topn"))
    mark = scalar(s, f"SELECT event_id FROM `{s.serving_db}`.publish_watermark")
    add_searches(s, [(2, "Kids!", T0 + timedelta(days=1))])
    seed_search_marts(s, [], [("trainers", 5), ("phone", 3)], [(1, "trainers", 1), (2, "kids", 1)])
    seed_serving_marts(s)
    bad = pd.DataFrame(
        [(2, "kids", 1, 3, "not a number", "bm25")],
        columns=["user_id", "query_norm", "rank", "item_id", "score", "source"],
    )
    monkeypatch.setattr(refresh_module, "user_rows_for_refresh", lambda *_: ([2], bad))
    with pytest.raises(Exception, match="(?i)score|truncated|incorrect"):
        publish_refresh(RawEventsRecommender(s), "v2", s, n=5)
    assert (topn(s), rows(s, "user_query_topn")) == before
    assert scalar(s, f"SELECT event_id FROM `{s.serving_db}`.publish_watermark") == mark


def test_refresh_errors_of_either_thread_surface_and_commit_nothing(search_shop):
    """The batch's search lists are computed on a second thread while the champion scores: a broken
    search list (an out-of-stock item) and a failing recommender each raise their own error, and the
    batch's rows and the watermark stay as they were."""
    s = search_shop
    publish_full(RawEventsRecommender(s), "v1", s, n=5)
    before = (topn(s), rows(s, "user_query_topn"))
    mark = scalar(s, f"SELECT event_id FROM `{s.serving_db}`.publish_watermark")
    add_searches(s, [(1, "phone", T0 + timedelta(days=1))])
    with pytest.raises(ValidationFailed, match="user lists rejected: .*unknown or out of stock: \\[30\\]"):
        publish_refresh(RawEventsRecommender(s), "v2", s, n=5, search=_SellsOutOfStock())
    with pytest.raises(RuntimeError, match="injected crash while scoring"):
        publish_refresh(RawEventsRecommender(s, fail_on_call=1), "v2", s, n=5)
    assert (topn(s), rows(s, "user_query_topn")) == before
    assert scalar(s, f"SELECT event_id FROM `{s.serving_db}`.publish_watermark") == mark
    assert publish_refresh(RawEventsRecommender(s), "v2", s, n=5).batches[0].search_users == 1


def test_refresh_replaces_the_lists_of_frequent_queries_searched_since_the_watermark(search_shop):
    s = search_shop
    publish_full(RawEventsRecommender(s), "v1", s, n=5)
    generated = scalar(
        s, f"SELECT MAX(generated_at) FROM `{s.serving_db}`.query_topn WHERE query_norm = 'phone'"
    )
    add_searches(s, [(u, "kids", T0 + timedelta(days=1, minutes=u)) for u in (5, 6, 7)])
    add_searches(s, [(8, "TRAINERS", T0 + timedelta(days=1))])
    # the behaviour mart now knows that "trainers" searchers bought item 4
    seed_search_marts(
        s,
        [("trainers", 4, 20.0), *QUERY_ITEMS],
        [("trainers", 6), ("phone", 3), ("kids", 3)],
        [
            (1, "trainers", 1),
            (1, "phone", 2),
            (4, "phone", 1),
            (5, "kids", 1),
            (6, "kids", 1),
            (7, "kids", 1),
            (8, "trainers", 1),
        ],
    )
    r = publish_refresh(RawEventsRecommender(s), "v1", s, n=5)

    assert (r.queries, r.query_rows) == (2, 6)  # kids (1 item) and trainers (5); phone not searched
    assert rows(s, "query_topn", "WHERE query_norm = 'kids'") == [("kids", 1, 3, 1.0, "bm25", BASE)]
    assert [row[2] for row in rows(s, "query_topn", "WHERE query_norm = 'trainers'")] == [4, 2, 1, 7, 3]
    assert (
        scalar(s, f"SELECT MAX(generated_at) FROM `{s.serving_db}`.query_topn WHERE query_norm = 'phone'")
        == generated
    )
    assert {u for u, *_ in rows(s, "user_query_topn")} == {1, 4, 5, 6, 7, 8}


class _Versioned(BaselineSearchLists):
    def __init__(self, version: str):
        super().__init__()
        self.model_version = version


def test_reader_sees_whole_search_lists_during_repeated_publishes(search_shop):
    """A reader thread asks for a query's list while 30 full publishes swap the search tables."""
    from ml.serving.app import ServingStore
    from ml.serving.search import SearchReader

    s = search_shop
    rec = RawEventsRecommender(s)
    publish_full(rec, "v0", s, n=5, search=_Versioned("s0"))
    store = ServingStore(s, pool_size=2)
    searcher = SearchReader(store)
    stop = threading.Event()
    errors: list[str] = []
    partial: list[object] = []
    versions: set[str] = set()
    reads = 0

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            try:
                for user in (None, 3, 1):
                    got = searcher.search("trainers", user, 10)
                    items = [it["item_id"] for it in got["items"]]
                    expected = {None: [2, 1, 7, 3], 3: [3, 2, 1, 7], 1: [1, 7, 2, 3]}[user]
                    source = {None: "query", 3: "query+intent", 1: "user"}[user]
                    if items != expected or got["source"] != source:
                        partial.append((user, got))
                    versions.add(got["model_version"])
                    reads += 1
            except Exception as exc:  # noqa: BLE001 - every failure is the test's finding
                errors.append(repr(exc))
            time.sleep(0.0005)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        for i in range(1, 31):
            publish_full(rec, f"v{i}", s, n=5, search=_Versioned(f"s{i}"))
    finally:
        stop.set()
        thread.join(30)
    store.pool.close()
    assert errors == [] and partial == []
    assert reads >= 90 and len(versions) >= 5, (reads, versions)  # the reads really spanned many swaps
    assert {row[5] for row in rows(s, "query_topn")} == {"s30"}
