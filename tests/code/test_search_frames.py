"""Pure parts of search publishing: the provider-frame checks and the query keys (no database)."""

from __future__ import annotations

import pandas as pd
import pytest

from ml.contracts import QUERY_TOPN_COLUMNS, USER_QUERY_TOPN_COLUMNS
from ml.quality.topn import check_search_frame
from ml.search.lists import distinct_queries, fold_key

STOCK = {10, 11, 12}


def _queries(rows):
    return pd.DataFrame(rows, columns=QUERY_TOPN_COLUMNS)


def test_good_query_lists_are_sorted_and_typed():
    df = check_search_frame(
        _queries(
            [("phone", 2, 11, 0.5, "bm25"), ("phone", 1, 10, 2.0, "query_pop"), ("case", 1, 12, 1.0, "bm25")]
        ),
        5,
        queries=["phone", "case"],
        in_stock=STOCK,
    )
    assert df[["query_norm", "rank", "item_id"]].values.tolist() == [
        ["case", 1, 12],
        ["phone", 1, 10],
        ["phone", 2, 11],
    ]
    assert str(df["item_id"].dtype) == "int64" and str(df["score"].dtype) == "float64"


@pytest.mark.parametrize(
    "rows, message",
    [
        ([("!!!", 1, 10, 1.0, "x")], "normalises to nothing"),
        ([("", 1, 10, 1.0, "x")], "normalises to nothing"),
        ([("phone\tcase", 1, 10, 1.0, "x")], "not asked for: \\['phone case'\\]"),
        ([("tv", 1, 10, 1.0, "x")], "queries that were not asked for: \\['tv'\\]"),
        ([("phone", 1, 30, 1.0, "x")], "unknown or out of stock: \\[30\\]"),
        ([("phone", 1, 10, 1.0, "x"), ("phone", 3, 11, 0.5, "x")], "query 'phone' are not 1..k contiguous"),
        ([("phone", 1, 10, 1.0, "x"), ("phone", 2, 10, 0.5, "x")], "item 10 appears twice for query 'phone'"),
        ([("phone", 1, 10, 1.0, "x"), ("phone", 2, 11, 1.5, "x")], "scores rise with rank for query 'phone'"),
        ([("phone", 1, 10, float("nan"), "x")], "non-finite score for query 'phone'"),
        ([("phone", r, 9 + r, 1.0, "x") for r in range(1, 4)], "rank 3 > n=2"),
    ],
)
def test_broken_query_lists_are_rejected(rows, message):
    with pytest.raises(ValueError, match=message):
        check_search_frame(_queries(rows), 2, queries=["phone"], in_stock=STOCK | {9})


def test_user_lists_are_keyed_by_user_and_query():
    rows = [(1, "phone", 1, 10, 2.0, "x"), (1, "case", 1, 10, 2.0, "x"), (2, "phone", 1, 11, 1.0, "x")]
    df = check_search_frame(pd.DataFrame(rows, columns=USER_QUERY_TOPN_COLUMNS), 5, user_ids=[1, 2])
    assert len(df) == 3  # the same item in two lists of one user is fine
    with pytest.raises(ValueError, match="users that were not asked for: \\[2\\]"):
        check_search_frame(pd.DataFrame(rows, columns=USER_QUERY_TOPN_COLUMNS), 5, user_ids=[1])
    rising = [(1, "phone", 1, 10, 1.0, "x"), (1, "phone", 2, 11, 2.0, "x")]
    with pytest.raises(ValueError, match="scores rise with rank for user 1, query 'phone'"):
        check_search_frame(pd.DataFrame(rising, columns=USER_QUERY_TOPN_COLUMNS), 5, user_ids=[1])


def test_query_norm_is_put_in_normal_form_and_keys_must_not_clash():
    df = check_search_frame(_queries([("PHONE!", 1, 10, 1.0, "x")]), 5, queries=["phone"])
    assert df["query_norm"].tolist() == ["phone"]
    rows = [(1, "Café", 1, 10, 1.0, "x"), (1, "cafe", 1, 11, 1.0, "x"), (2, "cafe", 1, 10, 1.0, "x")]
    with pytest.raises(ValueError, match="\\['cafe', 'café'\\] share one serving key"):
        check_search_frame(pd.DataFrame(rows, columns=USER_QUERY_TOPN_COLUMNS), 5, user_ids=[1, 2])
    # two users may each have their own spelling
    ok = [(1, "Café", 1, 10, 1.0, "x"), (2, "cafe", 1, 11, 1.0, "x")]
    assert len(check_search_frame(pd.DataFrame(ok, columns=USER_QUERY_TOPN_COLUMNS), 5, user_ids=[1, 2])) == 2


def test_empty_answers_are_allowed():
    assert check_search_frame(_queries([]), 5, queries=["phone"]).empty


def test_queries_that_would_share_a_serving_key_are_kept_once():
    # utf8mb4_unicode_ci compares case, width and accents equal: one list each
    assert distinct_queries(["Café", "cafe", "ＣＡＦＥ", "!!!", " phone ", "phone", "手机壳"]) == [
        "café",
        "phone",
        "手机壳",
    ]
    assert fold_key("Café") == fold_key("CAFE") == "cafe"


def test_the_search_champion_is_published_when_there_is_one(monkeypatch):
    import sys
    import types

    from ml.config import get_settings
    from ml.publish.search import load_search_lists
    from ml.search.lists import BaselineSearchLists

    s = get_settings()
    monkeypatch.setitem(sys.modules, "ml.search.serve", None)  # no search ranker module: ImportError
    assert isinstance(load_search_lists(s), BaselineSearchLists)

    def no_champion(settings):
        raise LookupError("no search champion registered")

    champion = types.SimpleNamespace(model_version="search-ranker/3")
    fake = types.ModuleType("ml.search.serve")
    fake.load_search_champion = no_champion
    monkeypatch.setitem(sys.modules, "ml.search.serve", fake)
    assert isinstance(load_search_lists(s), BaselineSearchLists)
    fake.load_search_champion = lambda settings: champion
    assert load_search_lists(s) is champion


class _SumBooster:
    """A stand-in booster: the score is a fixed function of the features (ties on purpose)."""

    def predict(self, x):
        return (x[:, 0] * 2).round() / 2  # bm25 rounded to halves: many equal scores


def _reference_top(rows, keys, k, score):
    """The frame-at-a-time formulation ``SearchRankerLists._top`` replaced (filter, sort, head)."""
    rows = rows.assign(score=score)[rows["in_stock"] > 0]
    rows = rows.sort_values(
        [*keys, "score", "item_id"], ascending=[True] * len(keys) + [False, True], kind="stable"
    )
    rows = rows.groupby(keys, sort=False).head(k)
    rows["rank"] = rows.groupby(keys, sort=False).cumcount() + 1
    return rows.assign(source="search_ranker")


@pytest.mark.parametrize("key", ["search_id", "query_norm"])
def test_ranker_top_k_equals_the_sorted_frame(key):
    import numpy as np

    from ml.config import get_settings
    from ml.search.ranker import SearchRanker
    from ml.search.serve import QUERY_LIST_COLUMNS, USER_LIST_COLUMNS, SearchRankerLists

    rng = np.random.default_rng(3)
    n = 4000
    rows = pd.DataFrame(
        {
            "search_id": rng.integers(0, 60, n),
            "user_id": rng.integers(1, 9, n),
            "query_norm": rng.choice(["phone", "手机壳", "Case", "earbuds", "a b"], n),
            "item_id": rng.permutation(n) + 1,
            "bm25": rng.uniform(0, 3, n),
            "in_stock": rng.choice([0.0, 1.0], n, p=[0.2, 0.8]),
        }
    ).sample(frac=1.0, random_state=1)
    lists = SearchRankerLists(SearchRanker(_SumBooster(), ["bm25"]), get_settings(), "v")
    columns = USER_LIST_COLUMNS if key == "search_id" else QUERY_LIST_COLUMNS
    got = lists._top(rows, key, 7, columns)
    score = (rows["bm25"].to_numpy() * 2).round() / 2
    expected = _reference_top(rows, [key], 7, score)[list(columns)].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected)
    assert got["rank"].max() == 7 and set(got["item_id"]).isdisjoint(
        rows.loc[rows["in_stock"] == 0, "item_id"]
    )
    assert lists._top(rows.head(0), key, 7, columns).columns.tolist() == list(columns)
