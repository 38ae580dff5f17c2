"""The data chooses: the evaluation task and label window from the log's shape, the repeat-buy
categories from who re-bought what, and the rules from the validation cut (hand-computed cases)."""

from __future__ import annotations

import pandas as pd
import pytest

from ml.features.protocol import LogProfile, choose_task, make_split
from ml.models.rules import Backfill, RuleConfig, apply_rules
from ml.training.rules_choice import ablation_variants, repeat_buy_categories, rule_grid

T0 = pd.Timestamp("2026-01-01 00:00:00")


def _profile(hours: float, types: dict[str, int], ret: float | None = 30.0) -> LogProfile:
    return LogProfile(T0, T0 + pd.Timedelta(hours=hours), types, users=100, median_return_hours=ret)


def test_order_history_gets_next_basket_with_the_median_return_window() -> None:
    c = choose_task(_profile(24 * 365, {"purchase": 1000}, ret=24 * 9.4), n_train_cuts=2)
    assert (c.task, c.label_hours) == ("next_basket", 24 * 9.0)
    # returns faster than a day still get a day; slower than a month get 30 days
    assert choose_task(_profile(24 * 365, {"purchase": 10}, ret=2), 2).label_hours == 24
    assert choose_task(_profile(24 * 365, {"purchase": 10}, ret=24 * 90), 2).label_hours == 24 * 30


def test_log_of_hours_gets_the_session_task_with_windows_that_fit() -> None:
    c = choose_task(_profile(2 + 10 / 60, {"browse": 900, "purchase": 20}), n_train_cuts=2)
    # 130 minutes / (2 train + val + test + 1 history) = 26 min, rounded down to 5 minutes
    assert c.task == "session" and c.label_hours == pytest.approx(25 / 60)
    split = make_split(T0 + pd.Timedelta(minutes=130), c.label_hours, 2)
    assert split.test_cut == T0 + pd.Timedelta(minutes=105) and split.train_cuts[0] == T0 + pd.Timedelta(
        minutes=30
    )


def test_browsing_log_of_weeks_gets_next_day_and_asked_tasks_win() -> None:
    assert choose_task(_profile(24 * 14, {"browse": 10, "cart": 1}), 2).task == "next_day"
    asked = choose_task(_profile(24 * 14, {"browse": 10}), 2, task="session", label_hours=6)
    assert (asked.task, asked.label_hours) == ("session", 6.0) and "asked" in asked.reason
    with pytest.raises(ValueError, match="too short"):
        choose_task(_profile(0.5, {"browse": 10}), 2)
    with pytest.raises(ValueError, match="unknown task"):
        choose_task(_profile(48, {"browse": 10}), 2, task="weekly")


def _buys(rows: list[tuple[int, int, int]]) -> pd.DataFrame:
    """(user, item, hour) purchases."""
    return pd.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "item_id": [r[1] for r in rows],
            "behavior_type": "purchase",
            "ts": [T0 + pd.Timedelta(hours=r[2]) for r in rows],
        }
    )


ITEMS = pd.DataFrame({"item_id": [1, 2, 3, 4, 5, 6], "category_id": [10, 10, 20, 20, 30, 30], "in_stock": 1})


def test_repeat_buy_categories_are_the_ones_people_re_buy() -> None:
    # category 10 (milk): 6 purchases, 3 of them re-buys (50%); category 20: 6 purchases, no re-buy;
    # category 30: one re-buy out of 2 purchases (too few to count)
    rows = [(u, 1, 0) for u in (1, 2, 3)] + [(u, 1, 5) for u in (1, 2, 3)]
    rows += [(u, 3 if u % 2 else 4, 1) for u in range(1, 7)]
    rows += [(9, 5, 0), (9, 5, 3)]
    hist = _buys(rows)
    assert repeat_buy_categories(hist, ITEMS, min_rate=0.2) == (10,)
    assert repeat_buy_categories(hist, ITEMS, min_rate=0.2, min_purchases=2) == (10, 30)
    assert repeat_buy_categories(hist, ITEMS, min_rate=0.6) == ()


def test_a_re_bought_category_may_repeat_others_may_not() -> None:
    rows = [(u, 1, 0) for u in (1, 2, 3)] + [(u, 1, 5) for u in (1, 2, 3)] + [(u, 3, 1) for u in range(1, 7)]
    hist = _buys(rows)
    rules = RuleConfig(max_category_share=1.0, repeat_buy_categories=repeat_buy_categories(hist, ITEMS, 0.2))
    purchased = hist[["user_id", "item_id"]]
    ranked = pd.DataFrame({"user_id": 1, "item_id": [1, 3, 2], "score": [3.0, 2.0, 1.0], "source": "m"})
    out, stats = apply_rules(ranked, [1], 2, ITEMS, purchased, Backfill({}, [], {}), rules)
    # item 1 (milk, re-bought category) stays; item 3 (bought, category 20) is dropped
    assert out["item_id"].tolist() == [1, 2] and stats.removed["purchased"] == 1
    allowed = RuleConfig(max_category_share=1.0, exclude_purchased=False)
    out, _ = apply_rules(ranked, [1], 2, ITEMS, purchased, Backfill({}, [], {}), allowed)
    assert out["item_id"].tolist() == [1, 3]


def test_rule_grid_and_ablation_cover_each_rule() -> None:
    hist = _buys([(u, 1, 0) for u in (1, 2, 3)] + [(u, 1, 5) for u in (1, 2, 3)])
    grid = rule_grid(hist, ITEMS, RuleConfig())
    assert len(grid) == len(set(grid)) and grid[0].exclude_purchased and not grid[-1].exclude_purchased
    assert {g.max_category_share for g in grid} == {0.5, 0.7, 1.0}
    assert any(g.repeat_buy_categories == (10,) for g in grid)
    v = ablation_variants(grid[0])
    assert v["no_category_cap"].max_category_share == 1.0 and not v["bought_allowed"].exclude_purchased
    assert not v["any_stock"].in_stock_only and v["no_rules"] == RuleConfig(1.0, (), False, False)
