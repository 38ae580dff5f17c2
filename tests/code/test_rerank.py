"""Candidate features and the rerankers on a small synthetic cut where the signal is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.features.candidates import build_features, candidate_recall, feature_columns
from ml.features.datasets import CutData
from ml.models.evaluate import ndcg_at_k
from ml.models.rerank import (
    ColumnScorer,
    RankingData,
    TwoStageRecommender,
    fit_lightgbm,
    fit_xgboost,
    ranking_groups,
)
from ml.models.rules import Backfill, RuleConfig


def synthetic_cut(seed: int, n_users: int = 120, n_items: int = 60) -> CutData:
    """Each user has an intent category; positives are candidates in that category (plus noise)."""
    rng = np.random.default_rng(seed)
    items = pd.DataFrame(
        {
            "item_id": np.arange(1, n_items + 1),
            "category_id": np.arange(n_items) % 6,
            "in_stock": 1,
            "price": 10.0,
        }
    )
    item_features = items.assign(pop_browse_7d=rng.random(n_items), brand="b")
    users = pd.DataFrame(
        {
            "user_id": np.arange(1, n_users + 1),
            "n_browse_7d": rng.integers(1, 20, n_users),
            "avg_price_viewed": 10.0,
            "top_category_id": rng.integers(0, 6, n_users),
        }
    )
    intent_cat = rng.integers(0, 6, n_users)
    intent = pd.DataFrame(
        {
            "user_id": users["user_id"],
            "intent_category_id": intent_cat,
            "intent_strength": rng.uniform(0.5, 1.0, n_users),
            "last_items": "",
            "last_categories": [f"{c},{c}" for c in intent_cat],
            "carted_not_bought": "",
        }
    )
    rows, labels = [], []
    for u, c in zip(users["user_id"], intent_cat):
        cand = rng.choice(items["item_id"], size=20, replace=False)
        for i in cand:
            rows.append((u, i, 0.0, rng.random(), rng.random(), rng.random(), "covisit"))
            if items.loc[i - 1, "category_id"] == c and rng.random() < 0.8:
                labels.append((u, i, 1, int(rng.random() < 0.5), int(rng.random() < 0.3)))
    cands = pd.DataFrame(
        rows,
        columns=[
            "user_id",
            "item_id",
            "repeat_score",
            "covisit_score",
            "intent_pop_score",
            "global_pop_score",
            "sources",
        ],
    )
    lab = pd.DataFrame(labels, columns=["user_id", "item_id", "clicked", "carted", "purchased"])
    empty = pd.DataFrame(columns=["user_id", "item_id", "session_id", "behavior_type", "ts"])
    return CutData(
        cut_ts=pd.Timestamp("2026-01-01"),
        items=items,
        users=users,
        item_features=item_features,
        intent=intent,
        covis=pd.DataFrame(),
        candidates=cands,
        history=empty,
        purchased=pd.DataFrame(columns=["user_id", "item_id"]),
        labels=lab,
    )


def _mean_ndcg(frame: pd.DataFrame, scores: np.ndarray) -> float:
    f = frame.assign(s=scores)
    out = []
    for _, g in f.groupby("user_id"):
        rel = dict(zip(g["item_id"], g["label"].astype(float)))
        rel = {k: v for k, v in rel.items() if v > 0}
        if rel:
            out.append(ndcg_at_k(g.sort_values("s", ascending=False)["item_id"].tolist(), rel))
    return float(np.mean(out))


def test_features_carry_intent_match_and_graded_label() -> None:
    frame = build_features(synthetic_cut(1))
    assert {"intent_match", "intent_match_strength", "recent_category_share", "label", "covisit_rank"} <= set(
        frame.columns
    )
    # label grade = strongest action (purchase 3 > cart 2 > click 1)
    assert frame["label"].max() == 3 and frame["label"].min() == 0
    pos = frame[frame["label"] > 0]
    assert (pos["intent_match"] == 1).all()
    feats = feature_columns(frame)
    assert "label" not in feats and "user_id" not in feats and "intent_match" in feats


@pytest.mark.parametrize("fit", [fit_lightgbm, fit_xgboost])
def test_ranker_learns_the_planted_signal(fit) -> None:
    train, valid, test = (build_features(synthetic_cut(s)) for s in (1, 2, 3))
    feats = feature_columns(train)
    res = fit(train, valid, feats, rounds=40, early_stopping=10)
    learned = _mean_ndcg(test, res.scorer.predict(test))
    covis_only = _mean_ndcg(test, test["covisit_score"].to_numpy())
    assert learned > covis_only + 0.3
    assert res.importance.index[0] in {"intent_match", "intent_match_strength", "recent_category_share"}


def test_two_stage_recommender_gives_n_rule_abiding_items() -> None:
    cut = synthetic_cut(3)
    frame = build_features(cut)
    bought = frame.drop_duplicates("user_id")[["user_id", "item_id"]]
    backfill = Backfill.from_popularity(pd.Series(dtype=float), cut.items, {})
    rec = TwoStageRecommender(ColumnScorer("covisit_score"), frame, cut.items, bought, backfill, RuleConfig())
    out = rec.recommend([1, 2, 999], 10)
    assert out.groupby("user_id").size().to_dict() == {1: 10, 2: 10, 999: 10}
    assert not out.duplicated(["user_id", "item_id"]).any()
    assert out.merge(bought, on=["user_id", "item_id"]).empty


def test_candidate_recall_counts_reachable_positives() -> None:
    cands = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [10, 11, 20], "s": [2.0, 1.0, 1.0]})
    window = pd.DataFrame(
        {
            "user_id": [1, 1, 2, 3],
            "item_id": [10, 12, 21, 10],
            "behavior_type": ["purchase", "browse", "cart", "cart"],
        }
    )
    r = candidate_recall(cands, window, users=[1, 2])
    assert r["cand_recall_any"] == pytest.approx(1 / 3)
    assert r["cand_recall_orders"] == pytest.approx(1.0) and r["cand_recall_carts"] == pytest.approx(0.0)
    r1 = candidate_recall(cands, window, users=[1, 2], k=1, score="s")
    assert r1["cand_per_user"] == pytest.approx(1.0)


def test_sample_users_filters_every_user_keyed_frame_consistently():
    import pandas as pd

    from ml.features.datasets import CutData
    from ml.training.cuts import sample_users

    users = pd.DataFrame({"user_id": range(10)})
    cand = pd.DataFrame({"user_id": [u for u in range(10) for _ in range(3)], "item_id": list(range(3)) * 10})
    items = pd.DataFrame({"item_id": range(3), "category_id": [1, 1, 2], "in_stock": 1, "price": 1.0})
    cut = CutData(
        cut_ts=pd.Timestamp("2026-10-01"),
        items=items,
        users=users,
        item_features=items,
        intent=users.assign(x=1),
        covis=pd.DataFrame({"item_id": [0], "similar_item_id": [1]}),
        candidates=cand,
        history=cand.assign(ts=pd.Timestamp("2026-09-30")),
        purchased=cand.head(0),
        labels=cand.head(5),
    )
    small = sample_users(cut, 4, seed=1)
    kept = set(small.candidates["user_id"])
    assert len(kept) == 4
    for frame in (small.users, small.intent, small.history):
        assert set(frame["user_id"]) == kept
    assert set(small.labels["user_id"]) <= kept
    assert small.items is cut.items and small.covis is cut.covis  # item-level data untouched
    assert set(sample_users(cut, 4, seed=1).candidates["user_id"]) == kept  # deterministic
    assert sample_users(cut, 50, seed=1) is cut


def test_a_user_at_two_cuts_is_two_groups_and_groups_without_a_positive_are_left_out() -> None:
    frame = pd.DataFrame(
        {
            "cut": ["train_0"] * 3 + ["train_1"] * 4,
            "user_id": [7, 7, 8, 7, 7, 8, 8],
            "item_id": [1, 2, 1, 1, 3, 2, 1],
            "label": [1, 0, 0, 0, 2, 0, 1],
        }
    )
    groups = ranking_groups(frame)
    # user 8 at train_0 has no positive: left out; user 7 is one group per cut, not one merged list
    assert list(zip(groups["cut"], groups["user_id"], groups["item_id"])) == [
        ("train_0", 7, 1),
        ("train_0", 7, 2),
        ("train_1", 7, 1),
        ("train_1", 7, 3),
        ("train_1", 8, 1),
        ("train_1", 8, 2),
    ]
    frame["f"] = np.arange(len(frame), dtype=float)
    data = RankingData.of(frame, ["f"], ["cut", "user_id"])
    assert data.groups.tolist() == [2, 2, 2]
    assert data.x[:, 0].tolist() == [0, 1, 3, 4, 6, 5] and data.y.tolist() == [1, 0, 0, 2, 1, 0]
    # a single cut's frame (no cut column) is grouped by user
    assert RankingData.of(frame.drop(columns="cut"), ["f"], ["user_id"]).groups.tolist() == [4, 3]


def test_ranking_data_equals_the_sorted_frame_it_is_defined_by() -> None:
    """The matrix, labels and group sizes taken by row positions equal those of the filtered and
    sorted frame (the definition): shuffled rows, an index that is not 0..n-1, int / bool / nullable /
    float features with NaN, groups without a positive."""
    rng = np.random.default_rng(3)
    n = 400
    frame = pd.DataFrame(
        {
            "cut": rng.choice(["train_1", "session_train_1", "train_0"], n),
            "user_id": rng.integers(1, 300, n),
            "item_id": rng.permutation(n),
            "label": rng.choice([0, 0, 0, 1, 2], n),
            "count": rng.integers(0, 2**40, n),
            "flag": rng.random(n) < 0.5,
            "maybe": pd.array(np.where(rng.random(n) < 0.2, None, rng.integers(0, 9, n)), dtype="Int64"),
            "score": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n) * 1e6),
        },
        index=rng.permutation(np.arange(1000, 1000 + n)),
    )
    features = ["score", "count", "flag", "maybe"]
    for keys in (["cut", "user_id"], ["user_id"]):
        positive = frame.groupby(keys)["label"].transform("max") > 0
        assert not positive.all()
        ref = frame[positive].sort_values([*keys, "item_id"], kind="stable").reset_index(drop=True)
        data = RankingData.of(frame, features, keys)
        np.testing.assert_array_equal(data.x, ref[features].astype(float).to_numpy(dtype=np.float32))
        assert data.x.dtype == np.float32 and data.x.flags.f_contiguous
        np.testing.assert_array_equal(data.y, ref["label"].to_numpy())
        np.testing.assert_array_equal(data.groups, ref.groupby(keys, sort=False).size().to_numpy())
    pd.testing.assert_frame_equal(
        ranking_groups(frame),
        frame[frame.groupby(["cut", "user_id"])["label"].transform("max") > 0]
        .sort_values(["cut", "user_id", "item_id"], kind="stable")
        .reset_index(drop=True),
    )
