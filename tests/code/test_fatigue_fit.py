"""Fatigue fit and demotion (ml.models.fatigue) on hand-computed and synthetic logs, no database."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.models.fatigue import (
    FatigueParams,
    FatigueRecommender,
    demote,
    exposure_table,
    fit_fatigue,
)
from ml.quality.topn import check_topn_frame

T0 = pd.Timestamp("2026-10-01")


def _synthetic_log(fatigue_after: int | None, decay: float, seed: int = 1, users: int = 1500):
    """Each user is shown 8 items at 6 daily rounds with rank-dependent click chances; a click is an
    event 5 minutes after the show and resets the pair; with ``fatigue_after`` set the chance is
    multiplied by decay^(shows - N + 1) from N unengaged shows on."""
    rng = np.random.default_rng(seed)
    shows = np.zeros((users, 8), dtype=int)
    imps, events = [], []
    for day in range(6):
        rank = np.tile(np.arange(1, 9), (users, 1))
        rng.permuted(rank, axis=1, out=rank)  # the list order changes from day to day
        p = 0.3 / rank
        if fatigue_after is not None:
            p = p * np.where(shows >= fatigue_after, decay ** (shows - fatigue_after + 1.0), 1.0)
        click = rng.random((users, 8)) < p
        at = T0 + pd.Timedelta(days=day)
        u, i = np.nonzero(np.ones_like(click))
        imps.append(pd.DataFrame({"user_id": u, "item_id": i, "rank": rank[u, i], "served_at": at}))
        cu, ci = np.nonzero(click)
        events.append(pd.DataFrame({"user_id": cu, "item_id": ci, "ts": at + pd.Timedelta(minutes=5)}))
        shows = np.where(click, 0, shows + 1)
    return pd.concat(imps, ignore_index=True), pd.concat(events, ignore_index=True)


def test_exposure_table_counts_unengaged_shows_and_clicks_by_hand():
    h = pd.Timedelta(hours=1)
    imps = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 1, 2],
            "item_id": [5, 5, 5, 5, 5],
            "rank": [1, 2, 1, 3, 1],
            "served_at": [T0, T0 + 2 * h, T0 + 4 * h, T0 + 6 * h, T0],
        }
    )
    # user 1 views item 5 10 minutes after the third show (a click; the count starts again) and
    # user 2 views it at the very moment of its show (engagement before it, not a click)
    events = pd.DataFrame({"user_id": [1, 2], "item_id": [5, 5], "ts": [T0 + 4 * h + h / 6, T0]})
    table = exposure_table(imps, events, window_s=3600)
    mine = table[table["user_id"] == 1].sort_values("served_at")
    assert mine["k"].tolist() == [0, 1, 2, 0]
    assert mine["clicked"].tolist() == [False, False, True, False]
    other = table[table["user_id"] == 2]
    assert other["k"].tolist() == [0] and other["clicked"].tolist() == [False]


def test_fit_recovers_n_and_decay_from_a_log_with_known_fatigue():
    imps, events = _synthetic_log(fatigue_after=2, decay=0.5)
    params = fit_fatigue(exposure_table(imps, events, 3600))
    assert params.min_shows == 2, params.table
    assert params.decay == pytest.approx(0.5, abs=0.1), params.table
    assert params.active and "CTR after 2" in params.reason


def test_fit_on_a_log_without_fatigue_returns_no_demotion():
    imps, events = _synthetic_log(fatigue_after=None, decay=1.0)
    params = fit_fatigue(exposure_table(imps, events, 3600))
    assert not params.active and params.min_shows is None, params.table
    assert "no exposure bucket has a CTR significantly below" in params.reason


def test_fit_on_too_small_a_log_says_so():
    imps, events = _synthetic_log(fatigue_after=1, decay=0.3, users=20)
    params = fit_fatigue(exposure_table(imps, events, 3600))
    assert not params.active and params.reason.startswith("too few impressions")


def _candidates() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [1] * 5 + [2] * 5,
            "rank": [1, 2, 3, 4, 5] * 2,
            "item_id": [10, 11, 12, 13, 14, 10, 11, 12, 13, 14],
            "score": [5.0, 4.0, 3.0, 2.0, 1.0, -1.0, -2.0, -3.0, -4.0, -5.0],
            "source": "m",
        }
    )


def test_demote_moves_tired_items_down_and_keeps_n_by_hand():
    params = FatigueParams(2, 0.5, "test")
    # user 1 (scores 5..1 normalised to 1, .75, .5, .25, 0): item 10 shown 4 times, factor
    # 0.5^3 → 0.125, between item 13 (.25) and item 14 (0); item 11 shown once (below N: untouched)
    shows = pd.DataFrame({"user_id": [1, 1], "item_id": [10, 11], "shows": [4, 1]})
    out = demote(_candidates(), shows, params, 4)
    assert out[out["user_id"] == 1]["item_id"].tolist() == [11, 12, 13, 10]
    assert out[out["user_id"] == 1]["score"].tolist() == [4.0, 3.0, 2.0, 1.5]  # 1 + 4 × 0.125
    # shown 3 times: factor 0.25 ties with item 13; the recommender's order breaks the tie
    tie = demote(_candidates(), shows.assign(shows=[3, 1]), params, 4)
    assert tie[tie["user_id"] == 1]["item_id"].tolist() == [11, 12, 10, 13]
    assert out[out["user_id"] == 2]["item_id"].tolist() == [10, 11, 12, 13]
    assert out[out["user_id"] == 2]["score"].tolist() == [-1.0, -2.0, -3.0, -4.0]
    check_topn_frame(out, [1, 2], 4)  # ranks 1..n, no duplicates, scores never rise


def test_inactive_params_change_nothing_but_the_cut():
    out = demote(
        _candidates(),
        pd.DataFrame({"user_id": [1], "item_id": [10], "shows": [9]}),
        FatigueParams(None, 1.0, ""),
        3,
    )
    assert out["item_id"].tolist() == [10, 11, 12, 10, 11, 12]


def test_fatigue_recommender_asks_for_a_pool_and_one_exposure_read_per_batch():
    calls: list[tuple] = []

    class Inner:
        def recommend(self, user_ids, n):
            calls.append(("recommend", tuple(user_ids), n))
            return _candidates()[lambda d: d["user_id"].isin(user_ids)]

    def exposures(user_ids, min_shows):
        calls.append(("exposures", tuple(user_ids), min_shows))
        return pd.DataFrame({"user_id": [2], "item_id": [10], "shows": [2]})

    rec = FatigueRecommender(Inner(), FatigueParams(2, 0.1, ""), exposures, pool=3)
    out = rec.recommend([1, 2], 2)
    assert sorted(calls) == [("exposures", (1, 2), 2), ("recommend", (1, 2), 5)]
    assert out[out["user_id"] == 2]["item_id"].tolist() == [11, 12]
    with pytest.raises(ValueError, match="active demotion"):
        FatigueRecommender(Inner(), FatigueParams(None, 1.0, ""), exposures)


def test_two_stage_recommender_keeps_its_category_cap_after_demotion():
    """With the champion's kind of recommender (scores + rules), the demotion re-scores all its
    candidates and then its own rules make the list: the category cap holds at n (here 2 of 4 per
    category), and the tired item (2 unengaged shows, N = 2) leaves the list."""
    from ml.models.rerank import TwoStageRecommender
    from ml.models.rules import Backfill, RuleConfig

    class Scorer:
        name = "hand"

        def predict(self, frame: pd.DataFrame) -> np.ndarray:
            return frame["s"].to_numpy(dtype=float)

    # user 1's candidates, best first: category 1 holds the four best (items 1-4), category 2 items 5-8
    frame = pd.DataFrame(
        {"user_id": 1, "item_id": range(1, 9), "s": [8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0]}
    )
    items = pd.DataFrame({"item_id": range(1, 9), "category_id": [1] * 4 + [2] * 4, "in_stock": 1})
    purchased = pd.DataFrame(columns=["user_id", "item_id"])
    backfill = Backfill(by_category={}, global_items=[], user_intent={})
    rules = RuleConfig(max_category_share=0.5)
    inner = TwoStageRecommender(Scorer(), frame, items, purchased, backfill, rules)
    assert inner.recommend([1], 4)["item_id"].tolist() == [1, 2, 5, 6]
    tired = pd.DataFrame({"user_id": [1], "item_id": [1], "shows": [2]})
    rec = FatigueRecommender(inner, FatigueParams(2, 0.1, "hand", 0, 0), lambda users, k: tired)
    out = rec.recommend([1], 4)
    assert out["item_id"].tolist() == [2, 3, 5, 6]  # 1 demoted; category 1 still holds only 2 of 4
    assert out["rank"].tolist() == [1, 2, 3, 4]
