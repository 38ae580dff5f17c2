"""Behavioural tests of the TF models on synthetic data with planted signals (ml.models.tf.synthetic).

Planted: each item has a successor in its category (the two-tower's next item); every user's
history and searches name one intent category, and candidates in it are clicked far more often.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.models.tf.ranker import fit_ranker
from ml.models.tf.ranker_config import RankerConfig
from ml.models.tf.synthetic import ITEM_FEATURES, USER_FEATURES, make_world, ranker_rows, two_tower_sequences
from ml.models.tf.two_tower import TwoTowerConfig, fit_two_tower

pytestmark = pytest.mark.slow

N_ITEMS = 200


@pytest.fixture(scope="module")
def world():
    return make_world(N_ITEMS, n_categories=8, seed=0)


@pytest.fixture(scope="module")
def two_tower(world):
    cfg = TwoTowerConfig(epochs=3, batch_size=128, user_features=USER_FEATURES)
    return fit_two_tower(two_tower_sequences(world, 3000, seed=1), world.items, cfg)


@pytest.fixture(scope="module")
def ranker(world):
    cfg = RankerConfig(
        user_features=USER_FEATURES,
        item_features=ITEM_FEATURES,
        epochs=4,
        batch_size=128,
        learning_rate=3e-3,
        item_dim=16,
        hidden=(32, 16),
    )
    return fit_ranker(
        ranker_rows(world, 400, seed=2), ranker_rows(world, 100, seed=3), cfg, items=world.items
    )


def _user(world, cat: int, n_hist: int = 6) -> pd.DataFrame:
    """One user whose whole recent history and last search are in category ``cat``."""
    hist = world.items.loc[world.items["category_id"] == cat, "item_id"].head(n_hist).tolist()
    return pd.DataFrame(
        {
            "user_id": [7],
            "last_items": [",".join(map(str, hist))],
            "last_categories": [",".join([str(cat)] * len(hist))],
            "query_terms": [f"cat{cat}"],
            "intent_category_id": [cat],
            "n_browse_7d": [5],
            "purchase_rate": [0.2],
        }
    )


def test_two_tower_retrieves_the_planted_next_item(world, two_tower):
    test = two_tower_sequences(world, 300, seed=9)
    got = two_tower.retrieve(test.drop(columns=["item_id"]), k=10)
    hit_rate = len(got.merge(test[["user_id", "item_id"]], on=["user_id", "item_id"])) / len(test)
    assert hit_rate >= 0.5, f"hit@10 {hit_rate:.2f}, chance is {10 / N_ITEMS:.2f}"


def test_two_tower_retrieve_contract(world, two_tower):
    ctx = two_tower_sequences(world, 20, seed=10).drop(columns=["item_id"])
    planted = [world.successor[int(s.split(",")[0])] for s in ctx["last_items"]]
    exclude = pd.DataFrame({"user_id": ctx["user_id"], "item_id": planted})
    got = two_tower.retrieve(ctx, k=15, exclude=exclude)
    assert list(got.columns) == ["user_id", "item_id", "score"]
    assert (got.groupby("user_id").size() == 15).all()
    assert not got.duplicated(["user_id", "item_id"]).any()
    assert got.merge(exclude, on=["user_id", "item_id"]).empty
    assert (got.groupby("user_id")["score"].apply(lambda s: s.is_monotonic_decreasing)).all()
    assert got["user_id"].drop_duplicates().tolist() == ctx["user_id"].tolist()


def test_two_tower_scores_items_added_after_training(world, two_tower):
    new = pd.DataFrame(
        {"item_id": [999_001, 999_002], "category_id": [3, 4], "brand": ["new", "new"], "price": [9.9, None]}
    )
    two_tower.set_catalogue(pd.concat([world.items, new], ignore_index=True))
    try:
        got = two_tower.retrieve(_user(world, 3), k=N_ITEMS + 2)
        assert set(new["item_id"]) <= set(got["item_id"])
        assert np.isfinite(got["score"]).all()
    finally:
        two_tower.set_catalogue(world.items)


def test_ranker_puts_the_users_category_in_the_top10(world, ranker):
    for cat in (2, 5):
        rows = _user(world, cat).merge(world.items, how="cross")
        rows = rows.assign(**{"pop_browse_7d": 20, "price_pct_in_category": 0.5})
        top = rows.assign(score=ranker.score(rows)).nlargest(10, "score")
        assert (top["category_id"] == cat).all(), top[["item_id", "category_id", "score"]]


def test_ranker_top5_of_mixed_candidates_is_the_intent_category(world, ranker):
    test = ranker_rows(world, 100, seed=4)
    test["score"] = ranker.score(test)
    top = test.sort_values("score", ascending=False).groupby("user_id").head(5)
    assert (top["category_id"] == top["intent_category_id"]).mean() >= 0.9


def test_ranker_scores_unseen_items_and_brands(world, ranker):
    rows = pd.concat([_user(world, 3)] * 2, ignore_index=True).assign(
        item_id=[999_001, 999_002],
        category_id=[3, 4],
        brand=["newbrand", "newbrand"],
        price=[9.0, 9.0],
        title=["thing", "thing"],
        category=["cat3", "cat4"],
        pop_browse_7d=[1, 1],
        price_pct_in_category=[0.5, 0.5],
    )
    s = ranker.score(rows)
    assert np.isfinite(s).all()
    assert s[0] > s[1]  # same unknown item and brand: the intent category still decides


def test_ranker_early_stopping_keeps_the_best_epoch(world, ranker):
    hist = ranker.history
    assert ranker.best_epoch == int(np.argmin(hist["val_loss"])) + 1
    valid = ranker_rows(world, 100, seed=3)
    heads = ranker.predict_heads(valid)
    eps = 1e-7
    loss = sum(
        float(
            -np.mean(
                valid[h] * np.log(np.clip(p, eps, 1 - eps))
                + (1 - valid[h]) * np.log(np.clip(1 - p, eps, 1 - eps))
            )
        )
        for h, p in heads.items()
    )
    assert loss == pytest.approx(min(hist["val_loss"]), rel=1e-3)


def test_ranker_rejects_rows_without_required_columns(ranker, world):
    rows = ranker_rows(world, 2, seed=5).drop(columns=["title"])
    with pytest.raises(ValueError, match="title"):
        ranker.score(rows)
