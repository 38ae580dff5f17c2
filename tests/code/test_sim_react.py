"""Reactive simulated users (ml.data.sim_react): deterministic, position bias, fatigue, well-formed rows."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from ml.data.sim_config import SimConfig
from ml.data.sim_react import IMPRESSION_COLUMNS, ReactiveShop, ReactParams
from ml.data.simulate import simulate
from ml.data.validate import validate_events
from ml.models.fatigue import exposure_table

CFG = SimConfig(users=600, items=150, days=3, seed=11, start=datetime(2026, 10, 1))
START = datetime(2026, 10, 4)


@pytest.fixture(scope="module")
def data():
    return simulate(CFG)


def _random_lists(seed: int = 0, k: int = 10) -> pd.DataFrame:
    """Each user gets ``k`` random catalogue items: relevance independent of rank."""
    rng = np.random.default_rng(seed)
    items = np.stack([rng.choice(CFG.items, k, replace=False) for _ in range(CFG.users)]) + CFG.first_item_id
    return pd.DataFrame(
        {
            "user_id": np.repeat(np.arange(CFG.users) + CFG.first_user_id, k),
            "rank": np.tile(np.arange(1, k + 1), CFG.users),
            "item_id": items.ravel(),
        }
    )


def _rounds(shop: ReactiveShop, lists: pd.DataFrame, n: int):
    imps, events = [], []
    for r in range(n):
        i, e = shop.react(lists, START + pd.Timedelta(days=r), r)
        imps.append(i)
        events.append(e)
    return pd.concat(imps, ignore_index=True), pd.concat(events, ignore_index=True)


def test_latent_users_are_the_simulated_ones(data):
    shop = ReactiveShop(CFG, data=data)
    pd.testing.assert_frame_equal(shop.users.frame, data.users)


def test_same_seed_and_lists_give_the_same_rows(data):
    lists = _random_lists()
    a = _rounds(ReactiveShop(CFG, data=data), lists, 3)
    b = _rounds(ReactiveShop(CFG, data=data), lists, 3)
    for x, y in zip(a, b):
        pd.testing.assert_frame_equal(x, y)
    other = ReactiveShop(replace(CFG, seed=12), data=None).react(lists, START, 0)[0]
    assert not other["user_id"].equals(a[0]["user_id"].iloc[: len(other)])  # another seed, other visitors


def test_click_chance_falls_with_rank_exactly_and_ctr_falls_with_rank_empirically(data):
    shop = ReactiveShop(CFG, ReactParams(fatigue_decay=1.0), data=data)
    u, i = np.zeros(10, dtype=np.int64), np.full(10, 5)
    p = shop.click_probability(u, i, np.arange(1, 11))
    assert np.all(np.diff(p) < 0) and p[0] / p[9] == pytest.approx(10**0.8)
    imps, events = _rounds(shop, _random_lists(), 6)
    table = exposure_table(imps, events, 3600)
    ctr = table.groupby(pd.cut(table["rank"], [0, 3, 6, 10]), observed=True)["clicked"].mean().to_numpy()
    assert ctr[0] > ctr[1] > ctr[2], ctr


def test_repeated_unengaged_shows_lower_the_click_chance(data):
    params = ReactParams(fatigue_after=2, fatigue_decay=0.5)
    shop = ReactiveShop(CFG, params, data=data)
    lists = _random_lists()
    u0, i0 = np.arange(CFG.users), lists["item_id"].to_numpy()[::10] - CFG.first_item_id  # rank-1 items
    fresh = shop.click_probability(u0, i0, np.ones(CFG.users))
    imps, events = _rounds(shop, lists, 3)
    shows = shop.shows(u0, i0)
    after = shop.click_probability(u0, i0, np.ones(CFG.users))
    expected = fresh * np.where(shows >= 2, 0.5 ** (shows - 1.0), 1.0)
    np.testing.assert_allclose(after, expected)
    assert (shows >= 2).sum() > 50  # many rank-1 items were ignored twice or more
    # the same static lists with and without fatigue: CTR of re-shown items falls further with it
    tired = exposure_table(*_rounds(ReactiveShop(CFG, params, data=data), lists, 6), 3600)
    fresh_shop = ReactiveShop(CFG, replace(params, fatigue_decay=1.0), data=data)
    calm = exposure_table(*_rounds(fresh_shop, lists, 6), 3600)
    ratio = [t[t["k"] >= 2]["clicked"].mean() / t[t["k"] == 0]["clicked"].mean() for t in (tired, calm)]
    assert ratio[0] < 0.75 * ratio[1], ratio


def test_events_and_impressions_are_well_formed(data):
    shop = ReactiveShop(CFG, data=data)
    imps, events = _rounds(shop, _random_lists(), 3)
    assert list(imps.columns) == list(IMPRESSION_COLUMNS)
    assert imps["rank"].between(1, 10).all() and imps["item_id"].isin(data.items["item_id"]).all()
    assert not imps.duplicated(["request_id", "item_id"]).any()
    checked = validate_events(events, "test")
    assert checked.quarantine.empty and len(checked.clean) == len(events) > 0
    assert set(events["behavior_type"]) <= {"browse", "cart", "purchase"}
    assert events["item_id"].isin(data.items["item_id"]).all()
    first = events.groupby(["user_id", "item_id", "behavior_type"])["ts"].min().unstack()
    carted = first.dropna(subset=["cart"])
    assert (carted["browse"] < carted["cart"]).all()  # a cart follows the click that led to it
    bought = first.dropna(subset=["purchase"])
    assert (bought["cart"] < bought["purchase"]).all()
    # some shows were clicked (a browse of the item within the hour after it)
    clicks = exposure_table(imps, events, 3600)
    assert clicks["clicked"].any()


def test_lists_naming_unknown_users_or_items_are_refused(data):
    shop = ReactiveShop(CFG, data=data)
    bad = pd.DataFrame({"user_id": [CFG.users + 5], "rank": [1], "item_id": [1]})
    with pytest.raises(ValueError, match="users"):
        shop.react(bad, START, 0)
    bad = pd.DataFrame({"user_id": [1], "rank": [1], "item_id": [CFG.items + 9]})
    with pytest.raises(ValueError, match="items"):
        ReactiveShop(CFG, ReactParams(round_hours=10_000), data=data).react(bad, START, 0)


def test_visits_are_the_ones_react_draws_and_a_population_keeps_them(data):
    lists = _random_lists()
    everyone = lists["user_id"].unique()
    visitors, at = ReactiveShop(CFG, data=data).visits(everyone, 2)
    imps, events = ReactiveShop(CFG, data=data).react(lists, START, 2)
    assert 0 < len(visitors) < len(everyone) and set(imps["user_id"]) <= set(visitors)
    offset = (imps.groupby("user_id")["served_at"].first() - pd.Timestamp(START)).dt.total_seconds()
    np.testing.assert_allclose(offset.to_numpy(), pd.Series(at, index=visitors)[offset.index], atol=1e-3)
    # only the visitors' lists given (as a reader would serve them), the population named: same round
    mine = lists[lists["user_id"].isin(visitors)]
    imps2, events2 = ReactiveShop(CFG, data=data).react(mine, START, 2, users=everyone)
    pd.testing.assert_frame_equal(imps2, imps)
    pd.testing.assert_frame_equal(events2, events)
    # without the population, the visits are drawn among the listed users only: another round
    imps3, _ = ReactiveShop(CFG, data=data).react(mine, START, 2)
    assert len(imps3) != len(imps) or not imps3["user_id"].equals(imps["user_id"])
