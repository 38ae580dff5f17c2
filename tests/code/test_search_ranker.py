"""The search ranker and its baselines on a tiny hand-made shop: full-ranking metrics by hand, the
baselines' definitions, and personalisation — for the same query, a shopper whose session so far is
brand X sees brand X higher than a shopper without it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from search_support import T0, catalogue, sessions

from ml.models.evaluate import ndcg_at_k, reciprocal_rank
from ml.search.context import build_context
from ml.search.dataset import build_search_set, search_rows
from ml.search.ranker import RANKER, _full_ranking, baseline_lists, evaluate_all, evaluate_lists, fit_ranker


def test_full_ranking_metrics_by_hand() -> None:
    lists = {0: np.array([5, 3, 9, 1]), 1: np.array([2, 4, 6, 8])}
    truth = pd.DataFrame({"search_id": [0, 0, 1], "item_id": [3, 1, 8], "gain": [4, 1, 2]})
    m = evaluate_lists(lists, truth, k=10)
    ndcg0 = (4 / np.log2(3) + 1 / np.log2(5)) / (4 + 1 / np.log2(3))
    ndcg1 = (2 / np.log2(5)) / 2
    assert m["ndcg@10"] == pytest.approx((ndcg0 + ndcg1) / 2)
    assert m["mrr"] == pytest.approx((1 / 2 + 1 / 4) / 2)
    assert m["n_searches"] == 2
    with pytest.raises(ValueError, match="nothing to evaluate"):
        evaluate_lists(lists, truth.iloc[0:0])


def test_metrics_of_whole_catalogue_lists_equal_their_definitions() -> None:
    """evaluate_lists on whole-catalogue rankings equals NDCG@k, MRR and hit rate computed item by item
    on the full Python lists: engaged items in the top k, far below it, absent from a list, and a
    search without a list; _full_ranking equals its set-difference definition."""
    rng = np.random.default_rng(8)
    n_items = 300
    lists, rows = {}, []
    for s in range(60):
        head = rng.choice(n_items, size=int(rng.integers(0, 40)), replace=False)
        full = _full_ranking(head, n_items)
        np.testing.assert_array_equal(full, np.concatenate([head, np.setdiff1d(np.arange(n_items), head)]))
        if s % 7:
            lists[s] = full + 1000  # item ids, not positions
        for item in rng.choice(n_items + 5, size=int(rng.integers(1, 4)), replace=False):
            rows.append((s, int(item) + 1000, float(rng.integers(1, 5))))
    truth = pd.DataFrame(rows, columns=["search_id", "item_id", "gain"]).drop_duplicates(
        ["search_id", "item_id"]
    )
    got = evaluate_lists(lists, truth, k=10)
    ndcgs, rrs, hits = [], [], []
    for s, g in truth.groupby("search_id"):
        rel = dict(zip(g["item_id"].astype(int), g["gain"]))
        ranked = [int(i) for i in lists.get(s, [])]
        ndcgs.append(ndcg_at_k(ranked, rel, 10))
        rrs.append(reciprocal_rank(ranked, rel))
        hits.append(1.0 if set(rel) & set(ranked[:10]) else 0.0)
    assert 0 < min(r for r in rrs if r > 0) < 1 / 10  # some first hits lie far below the top 10
    assert got == {
        "ndcg@10": np.mean(ndcgs),
        "mrr": np.mean(rrs),
        "hitrate@10": np.mean(hits),
        "n_searches": 60.0,
    }


@pytest.fixture(scope="module")
def trained():
    items = catalogue()
    history = sessions(T0, 48, 240, seed=1)
    cut1 = T0 + pd.Timedelta(hours=48)
    w1 = sessions(cut1, 24, 240, seed=2)
    cut2 = cut1 + pd.Timedelta(hours=24)
    h2 = pd.concat([history, w1], ignore_index=True)
    w2 = sessions(cut2, 24, 120, seed=3)
    ctx1 = build_context(items, history, cut1)
    ctx2 = build_context(items, h2, cut2, lexical=ctx1.lexical, semantic=ctx1.semantic)
    train, valid = build_search_set(ctx1, history, w1), build_search_set(ctx2, h2, w2)
    ranker = fit_ranker(train.frame, valid.frame, rounds=80, early_stopping=20, min_data_in_leaf=5)
    return ctx2, h2, valid, ranker


def test_baselines_are_what_they_say(trained) -> None:
    ctx, _, valid, _ = trained
    bm25 = baseline_lists(valid, "bm25")
    pop = baseline_lists(valid, "query_pop")
    sid = int(valid.searches.loc[valid.searches["query_norm"] == "running shoes", "search_id"].iloc[0])
    # every list is the whole catalogue once
    assert sorted(bm25[sid].tolist()) == ctx.items["item_id"].tolist()
    # BM25 puts the shoes (the only titles with "shoe"/"running") first
    assert set(bm25[sid][:6].tolist()) == set(range(13, 19))
    # query popularity: the items engaged after "phone" before the cut, most weighted first
    phone = int(valid.searches.loc[valid.searches["query_norm"] == "phone", "search_id"].iloc[0])
    weighted = ctx.behaviour("phone")[0]
    order = ctx.items["item_id"].to_numpy()[np.argsort(-weighted, kind="stable")]
    assert pop[phone][:12].tolist() == order[:12].tolist()
    with pytest.raises(ValueError, match="unknown search baseline"):
        baseline_lists(valid, "random")


def test_ranker_beats_both_baselines_on_a_learnable_shop(trained) -> None:
    _, _, valid, ranker = trained
    results = evaluate_all(valid, ranker)
    best = max(results["bm25"]["ndcg@10"], results["query_pop"]["ndcg@10"])
    assert results[RANKER]["ndcg@10"] > best, results
    assert {"prefix_brand_share", "bm25", "qpop_share"} <= set(ranker.features)


def test_brand_in_the_session_prefix_lifts_that_brand(trained) -> None:
    ctx, _, _, ranker = trained
    now = ctx.now + pd.Timedelta(hours=1)
    # user 500 browsed two zeta phones in this session, user 501 two acme phones, 502 nothing
    session = pd.DataFrame(
        {
            "user_id": [500, 500, 501, 501],
            "item_id": pd.array([8, 9, 2, 3], dtype="Int64"),
            "session_id": ["z", "z", "a", "a"],
            "behavior_type": ["browse"] * 4,
            "query_text": [None] * 4,
            "ts": [now - pd.Timedelta(minutes=m) for m in (3, 2, 3, 2)],
        }
    )
    searches = pd.DataFrame(
        {
            "search_id": [0, 1, 2],
            "user_id": [500, 501, 502],
            "session_id": ["z", "a", "n"],
            "query_norm": ["phone"] * 3,
            "ts": [now] * 3,
        }
    )
    rows = search_rows(ctx, searches, session)
    rows["score"] = ranker.predict(rows)
    rows = rows.merge(ctx.items[["item_id", "brand"]], on="item_id")

    def brand_rank(sid: int, brand: str) -> float:
        """Mean rank (1 = top) of the brand's phones in the search's list."""
        r = rows[rows["search_id"] == sid].sort_values("score", ascending=False).reset_index(drop=True)
        return float(np.mean(r.index[r["brand"] == brand] + 1))

    # the brand browsed in the session takes the top six places (its six phones) ...
    assert brand_rank(0, "zeta") == pytest.approx(3.5) and brand_rank(1, "acme") == pytest.approx(3.5)
    # ... and ranks higher than for the shopper with no prefix, for whom one of the brands must be lower
    lifts = [brand_rank(2, "zeta") - brand_rank(0, "zeta"), brand_rank(2, "acme") - brand_rank(1, "acme")]
    assert min(lifts) >= 0 and max(lifts) > 0, lifts
