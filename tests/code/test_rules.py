"""Business rules after ranking: exclusions, dedupe, diversity cap, backfill to exactly n."""

from __future__ import annotations

import pandas as pd
import pytest

from ml.models.rules import Backfill, RuleConfig, apply_rules

# items 1..12: category = 10 for 1-6, 20 for 7-10, 30 for 11-12 ; item 5 out of stock
ITEMS = pd.DataFrame(
    {
        "item_id": list(range(1, 13)),
        "category_id": [10] * 6 + [20] * 4 + [30] * 2,
        "in_stock": [1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1],
    }
)


def _ranked(user: int, items: list[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": user,
            "rank": range(1, len(items) + 1),
            "item_id": items,
            "score": [10.0 - r for r in range(len(items))],
            "source": "model",
        }
    )


def _backfill(intent: dict[int, int] | None = None) -> Backfill:
    pop = pd.Series([5.0, 4.0, 3.0], index=[11, 7, 1])
    return Backfill.from_popularity(pop, ITEMS, intent or {})


def test_exclusions_dedupe_and_order() -> None:
    ranked = pd.concat([_ranked(1, [2, 2, 5, 3, 99, 4])])
    purchased = pd.DataFrame({"user_id": [1], "item_id": [3]})
    out, stats = apply_rules(
        ranked, [1], 3, ITEMS, purchased, _backfill(), RuleConfig(max_category_share=1.0)
    )
    assert out["item_id"].tolist() == [
        2,
        4,
        11,
    ]  # 2 (dup removed), 5 out of stock, 3 bought, 99 unknown, 4 ; then backfill 11
    assert out["rank"].tolist() == [1, 2, 3]
    assert stats.removed == {
        "not_in_catalogue": 1,
        "duplicate": 1,
        "out_of_stock": 1,
        "purchased": 1,
        "category_cap": 0,
    }
    assert stats.backfilled == 1
    assert out["source"].tolist() == ["model", "model", "backfill_popular"]


def test_repeat_buy_category_keeps_purchased_item() -> None:
    purchased = pd.DataFrame({"user_id": [1], "item_id": [3]})
    cfg = RuleConfig(max_category_share=1.0, repeat_buy_categories=(10,))
    out, _ = apply_rules(_ranked(1, [3, 4]), [1], 2, ITEMS, purchased, _backfill(), cfg)
    assert out["item_id"].tolist() == [3, 4]


def test_category_cap_and_intent_backfill() -> None:
    # 4 items of category 10 ranked; cap = ceil(0.5 * 4) = 2 → two are kept, the rest is backfilled:
    # user intent is category 20 → items of 20 by popularity: 7 first, then 8 (id order after the popular ones)
    out, stats = apply_rules(
        _ranked(1, [1, 2, 3, 4]),
        [1],
        4,
        ITEMS,
        pd.DataFrame(),
        _backfill({1: 20}),
        RuleConfig(max_category_share=0.5),
    )
    assert out["item_id"].tolist() == [1, 2, 7, 8]
    assert stats.removed["category_cap"] == 2
    assert out["source"].tolist()[2:] == ["backfill_intent", "backfill_intent"]


def test_every_user_gets_exactly_n_even_without_rows() -> None:
    out, stats = apply_rules(
        _ranked(1, [1]), [1, 2, 3], 5, ITEMS, pd.DataFrame(), _backfill(), RuleConfig(max_category_share=0.4)
    )
    sizes = out.groupby("user_id").size().to_dict()
    assert sizes == {1: 5, 2: 5, 3: 5}
    assert not out.duplicated(["user_id", "item_id"]).any()
    assert set(out["item_id"]).isdisjoint({5})
    # cap ceil(0.4*5)=2 per category: 3 categories in stock → fillable within the cap
    assert out.merge(ITEMS, on="item_id").groupby(["user_id", "category_id"]).size().max() <= 2
    assert stats.short_users == 0
    assert out["user_id"].drop_duplicates().tolist() == [1, 2, 3]


def test_cap_is_relaxed_only_when_catalogue_runs_out() -> None:
    # cap 1 per category but n=5 with only 3 categories: the last two slots break the cap rather than stay empty
    out, stats = apply_rules(
        _ranked(1, []), [1], 5, ITEMS, pd.DataFrame(), _backfill(), RuleConfig(max_category_share=0.2)
    )
    assert len(out) == 5 and stats.short_users == 0


def test_bad_share_is_rejected() -> None:
    with pytest.raises(ValueError, match="max_category_share"):
        RuleConfig(max_category_share=0).cap(10)


def test_backfill_keeps_scores_falling_after_negative_model_scores() -> None:
    """LightGBM scores can be negative: backfilled rows must still score below the ranked ones
    (the publisher rejects lists whose scores rise with rank)."""
    ranked = pd.DataFrame({"user_id": 1, "item_id": [1, 2], "score": [-0.5, -1.25], "source": "lightgbm"})
    out, stats = apply_rules(
        ranked, [1, 2], 4, ITEMS, pd.DataFrame(), _backfill(), RuleConfig(max_category_share=1.0)
    )
    assert stats.backfilled == 2 + 4
    for _, g in out.groupby("user_id"):
        assert g["score"].is_monotonic_decreasing and g["score"].is_unique
    assert out[out["user_id"] == 1]["score"].tolist()[:2] == [-0.5, -1.25]
