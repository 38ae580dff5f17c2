"""Metric functions against values computed by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from ml.models import evaluate as ev


def test_ndcg_hand_computed() -> None:
    # ranked [5, 7, 9]; relevance 7→3, 9→1, 11→2 (11 not shown)
    # DCG = 0/log2(2) + 3/log2(3) + 1/log2(4) = 1.892789 + 0.5 = 2.392789
    # IDCG = 3/1 + 2/log2(3) + 1/2 = 3 + 1.261860 + 0.5 = 4.761860
    got = ev.ndcg_at_k([5, 7, 9], {7: 3, 9: 1, 11: 2}, k=10)
    assert got == pytest.approx(2.392789 / 4.761860, abs=1e-6)


def test_ndcg_perfect_and_empty() -> None:
    assert ev.ndcg_at_k([1, 2], {1: 3, 2: 1}) == pytest.approx(1.0)
    assert ev.ndcg_at_k([1, 2], {}) == 0.0
    # the cutoff: a relevant item at rank 3 does not count at k=2
    assert ev.ndcg_at_k([4, 5, 1], {1: 1}, k=2) == 0.0


def test_otto_recall_denominator_is_capped() -> None:
    truth = set(range(100, 130))  # 30 true items
    ranked = list(range(100, 110)) + list(range(1, 11))  # 10 hits in 20 slots
    assert ev.otto_hits(ranked, truth, k=20) == (10, 20)
    assert ev.otto_hits([1, 2, 3], {3, 4}, k=20) == (1, 2)


def test_reciprocal_rank_and_coverage() -> None:
    assert ev.reciprocal_rank([9, 8, 7], {7}) == pytest.approx(1 / 3)
    assert ev.reciprocal_rank([9, 8], {1}) == 0.0
    # top-2 lists {1, 2} and {3, 4}: 4 distinct of 10
    assert ev.coverage([[1, 2, 3], [3, 4]], catalogue_size=10, k=2) == pytest.approx(4 / 10)
    assert ev.coverage([[1, 2], [2, 1]], catalogue_size=10, k=2) == pytest.approx(2 / 10)
    with pytest.raises(ValueError):
        ev.coverage([[1]], catalogue_size=0)


def test_intent_share_counts_missing_slots() -> None:
    cats = {1: 7, 2: 7, 3: 8}
    assert ev.intent_share([1, 2, 3], cats, 7, k=10) == pytest.approx(0.2)
    assert ev.intent_share([1, 2, 3], cats, 7, k=2) == pytest.approx(1.0)


def _window() -> pd.DataFrame:
    ts = pd.Timestamp("2026-01-02 00:00:00")
    rows = [
        # user 1: browses 10 and 11, carts 11, buys 12 ; session s1 straddles the cut
        (1, 10, "s1", "browse", ts),
        (1, 11, "s1", "browse", ts),
        (1, 11, "s1", "cart", ts + pd.Timedelta("1min")),
        (1, 12, "s1", "purchase", ts + pd.Timedelta("2min")),
        # user 2: one browse of 20 ; a search (no item) is ignored
        (2, None, "s2", "search", ts),
        (2, 20, "s2", "browse", ts + pd.Timedelta("1min")),
    ]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "session_id", "behavior_type", "ts"])


def test_ground_truth_grades_and_types() -> None:
    truth = ev.ground_truth(_window())
    assert truth[1]["rel"] == {10: 1.0, 11: 2.0, 12: 3.0}
    assert truth[1]["clicks"] == {10, 11} and truth[1]["carts"] == {11} and truth[1]["orders"] == {12}
    assert truth[2]["rel"] == {20: 1.0} and truth[2]["orders"] == set()


def test_evaluate_recommendations_end_to_end_hand_values() -> None:
    items = pd.DataFrame({"item_id": [10, 11, 12, 20, 30], "category_id": [5, 5, 6, 5, 9]})
    recs = pd.DataFrame(
        {
            "user_id": [1, 1, 2, 2],
            "rank": [1, 2, 1, 2],
            "item_id": [12, 30, 30, 20],
            "score": [2.0, 1.0, 2.0, 1.0],
            "source": ["t"] * 4,
        }
    )
    intents = pd.DataFrame({"session_id": ["s1", "s2"], "intent_category_id": [6, 5]})
    m = ev.evaluate_recommendations(recs, _window(), items, eval_users=[1, 2, 3], intents=intents)
    # user 1: [12, 30]; rel 12→3, 11→2, 10→1. DCG = 3 ; IDCG = 3 + 2/log2(3) + 1/2
    ndcg1 = 3 / (3 + 2 / math.log2(3) + 0.5)
    # user 2: [30, 20]; rel 20→1. DCG = 1/log2(3); IDCG = 1
    ndcg2 = 1 / math.log2(3)
    assert m["ndcg@10"] == pytest.approx((ndcg1 + ndcg2) / 2)
    assert m["hitrate@10"] == pytest.approx(1.0)
    assert m["mrr"] == pytest.approx((1.0 + 0.5) / 2)
    # clicks: user1 0 of min(20,2)=2, user2 1 of 1 → 1/3 ; carts 0/1 ; orders 1/1
    assert m["recall@20_clicks"] == pytest.approx(1 / 3)
    assert m["recall@20_carts"] == pytest.approx(0.0)
    assert m["recall@20_orders"] == pytest.approx(1.0)
    assert m["otto_recall@20"] == pytest.approx(0.1 / 3 + 0.0 + 0.6)
    assert m["coverage@10"] == pytest.approx(3 / 5)
    # intent: user1 intent 6 → 1 of top-10 (12) → 0.1 ; user2 intent 5 → item 20 → 0.1
    assert m["intent_capture@10"] == pytest.approx(0.1)
    assert m["n_users"] == 2


def test_user_without_list_counts_as_miss() -> None:
    items = pd.DataFrame({"item_id": [10, 11, 12, 20], "category_id": [1, 1, 1, 1]})
    recs = pd.DataFrame({"user_id": [2], "rank": [1], "item_id": [20], "score": [1.0], "source": ["t"]})
    m = ev.evaluate_recommendations(recs, _window(), items)
    assert m["hitrate@10"] == pytest.approx(0.5)


def test_no_truth_is_an_error() -> None:
    with pytest.raises(ValueError, match="nothing to evaluate"):
        ev.evaluate_lists({}, {}, catalogue_size=3)


def test_intent_capture_over_straddling_sessions_only() -> None:
    items = pd.DataFrame({"item_id": [10, 11, 12, 20, 30], "category_id": [5, 5, 6, 5, 9]})
    recs = pd.DataFrame(
        {"user_id": [1, 2], "rank": [1, 1], "item_id": [12, 20], "score": [1.0, 1.0], "source": ["t", "t"]}
    )
    cut = pd.Timestamp("2026-01-02 00:00:00")
    # s1 started before the cut (straddles), s2 after it
    intents = pd.DataFrame(
        {
            "session_id": ["s1", "s2"],
            "intent_category_id": [6, 9],
            "start_ts": [cut - pd.Timedelta("5min"), cut + pd.Timedelta("1s")],
        }
    )
    m = ev.evaluate_recommendations(recs, _window(), items, intents=intents, cut=cut)
    assert m["intent_capture_straddle@10"] == pytest.approx(0.1)  # user 1 only: item 12 in category 6
    assert m["n_straddle_users"] == 1
    assert m["intent_capture@10"] == pytest.approx((0.1 + 0.0) / 2)
