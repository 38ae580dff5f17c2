"""Statistical shape of the simulator: funnel, search and switch shares, long tail, intent
fidelity, revisits, cold start, determinism. Pure pandas, no database; one mid-size run (<1 s)."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from ml.data.catalog import CATEGORIES, model_names
from ml.data.sim_config import SimConfig
from ml.data.simulate import simulate

START = datetime(2026, 10, 1)


@pytest.fixture(scope="module")
def sim():
    return simulate(SimConfig(users=1000, items=300, days=10, seed=3, start=START))


@pytest.fixture(scope="module")
def ev(sim):
    """Events joined to their session's planted intent and their item's category."""
    out = sim.events.merge(
        sim.intents[["session_id", "intent_category_id", "start_ts"]], on="session_id", how="left"
    )
    return out.merge(sim.items[["item_id", "category_id", "created_ts"]], on="item_id", how="left")


def test_raw_contract_columns(sim):
    assert list(sim.events.columns) == [
        "user_id",
        "item_id",
        "session_id",
        "behavior_type",
        "query_text",
        "ts",
    ]
    assert set(sim.events["behavior_type"]) == {"search", "browse", "cart", "fav", "purchase"}
    search = sim.events["behavior_type"] == "search"
    assert sim.events.loc[search, "item_id"].isna().all() and sim.events.loc[~search, "item_id"].notna().all()
    assert (
        sim.events.loc[search, "query_text"].notna().all()
        and sim.events.loc[~search, "query_text"].isna().all()
    )
    assert (
        sim.items["item_id"].is_unique
        and sim.users["user_id"].is_unique
        and sim.intents["session_id"].is_unique
    )
    assert sim.events["session_id"].isin(sim.intents["session_id"]).all()
    assert sim.events["item_id"].dropna().isin(sim.items["item_id"]).all()
    assert (sim.items["price"] > 0).all()


def test_funnel_rates(sim):
    st = sim.summary()
    assert st["n_browse"] > 8 * st["n_cart"] > 8 * st["n_purchase"]
    assert 0.05 <= st["cart_per_browse"] <= 0.12
    assert 0.25 <= st["purchase_per_cart"] <= 0.5
    assert 0 < st["n_fav"] < st["n_cart"]


def test_search_and_switch_shares(sim):
    st = sim.summary()
    assert 0.5 <= st["search_share"] <= 0.7
    assert 0.28 <= st["switch_share"] <= 0.42
    it = sim.intents
    # a session in the user's main long-term category is never a switch
    assert (it.loc[it.intent_category_id == it.long_term_category_id, "is_switch"] == 0).all()


def test_sessions_open_with_a_search_naming_the_need(ev, sim):
    first = ev.sort_values("ts", kind="stable").groupby("session_id").head(1)
    searched = sim.intents.query_text.notna()
    assert (first.behavior_type == "search").sum() == searched.sum()
    words = {i + 1: c.words + c.zh_words for i, c in enumerate(CATEGORIES)}
    q = sim.intents[searched]
    named = [any(w in text for w in words[c]) for c, text in zip(q.intent_category_id, q.query_text)]
    assert 0.85 <= np.mean(named) < 1.0  # typos make a few miss


def test_browsing_follows_the_intent(ev):
    b = ev[ev.behavior_type == "browse"]
    assert (b.category_id == b.intent_category_id).mean() > 0.8


def test_long_tail_popularity(ev, sim):
    counts = ev[ev.behavior_type == "browse"].item_id.value_counts()
    top = counts.iloc[: len(sim.items) // 10].sum() / counts.sum()
    assert top > 0.35  # a uniform catalogue would give 0.10


def test_users_revisit_and_buy_items_seen_before(ev):
    views = (
        ev[ev.behavior_type == "browse"]
        .groupby(["user_id", "item_id"])
        .ts.min()
        .rename("first_view")
        .reset_index()
    )
    bought = ev[ev.behavior_type == "purchase"].merge(views, on=["user_id", "item_id"], how="left")
    assert (bought.first_view < bought.start_ts).mean() > 0.3  # seen in an earlier session


def test_purchases_lead_to_complement_browsing(ev):
    from ml.data.catalog import complement_ids

    comp = complement_ids()
    after = []
    for _, s in ev[ev.behavior_type.isin(["browse", "purchase"])].groupby("session_id"):
        buys = s[s.behavior_type == "purchase"]
        if buys.empty or not comp[int(buys.category_id.iloc[0])]:
            continue
        later = s[(s.ts > buys.ts.max()) & (s.behavior_type == "browse")]
        wanted = {c for b in buys.category_id for c in comp[int(b)]}
        after.append(later.category_id.isin(wanted).any())
    assert len(after) > 50 and 0.3 < np.mean(after) < 0.8


def test_time_order_within_sessions(ev):
    gaps = ev.sort_values(["session_id", "ts"]).groupby("session_id").ts.agg(["min", "max"])
    assert ((gaps["max"] - gaps["min"]) < pd.Timedelta(hours=3)).all()
    firsts = ev.groupby("session_id").ts.min()
    starts = ev.drop_duplicates("session_id").set_index("session_id").start_ts
    assert (firsts.sort_index() == starts.sort_index()).all()
    # sessions of one user do not overlap: next start ≥ previous end + 30 minutes
    per = (
        ev.groupby(["user_id", "session_id"])
        .ts.agg(["min", "max"])
        .reset_index()
        .sort_values(["user_id", "min"])
    )
    nxt = per.groupby("user_id")["min"].shift(-1)
    assert ((nxt - per["max"]).dropna() >= pd.Timedelta(minutes=30)).all()
    assert ev.ts.min() >= pd.Timestamp(START) and ev.ts.max() < pd.Timestamp(START) + pd.Timedelta(days=10)


def test_cold_start_items_and_new_users(ev, sim):
    new_items = sim.items[sim.items.created_ts > pd.Timestamp(START)]
    assert len(new_items) > 10
    assert not (ev.ts < ev.created_ts).any()  # nobody sees an item before its launch
    assert ev.item_id.isin(new_items.item_id).any()
    first = sim.events.groupby("user_id").ts.min().rename("first").reset_index().merge(sim.users)
    new_users = first[first.signup_ts > pd.Timestamp(START)]
    assert len(new_users) > 50 and (new_users["first"] >= new_users.signup_ts).all()


def test_activity_is_heavy_tailed(sim):
    per_user = sim.intents.groupby("user_id").size()
    assert per_user.quantile(0.99) > 5 * per_user.median()
    daily = sim.intents.assign(day=sim.intents.start_ts.dt.date).groupby(["user_id", "day"]).size()
    assert (daily > 1).any()


def test_deterministic_for_a_seed():
    cfg = SimConfig(users=200, items=100, days=5, seed=11, start=START)
    a, b = simulate(cfg), simulate(cfg)
    for name in ("users", "items", "events", "intents", "queries"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    c = simulate(SimConfig(users=200, items=100, days=5, seed=12, start=START))
    assert not a.events.equals(c.events)


def test_blocks_cover_all_users_with_distinct_sessions():
    data = simulate(SimConfig(users=250, items=80, days=4, seed=5, start=START, users_per_block=100))
    assert data.users.user_id.tolist() == list(range(1, 251))
    assert data.intents.session_id.is_unique and data.events.user_id.max() > 200


def test_rejects_a_catalogue_smaller_than_the_category_list():
    with pytest.raises(ValueError, match="items must be"):
        SimConfig(items=5)


def test_popularity_drifts_over_days(ev):
    b = ev[ev.behavior_type == "browse"]
    day = (b.ts - pd.Timestamp(START)).dt.days
    first = set(b[day <= 1].item_id.value_counts().index[:30])
    last = set(b[day >= 8].item_id.value_counts().index[:30])
    overlap = len(first & last) / 30
    assert 0.2 < overlap < 0.9  # the head persists but reshuffles


def test_summary_is_additive_over_blocks():
    from ml.data.sim_config import summarize
    from ml.data.simulate import iter_simulation

    cfg = SimConfig(users=240, items=80, days=4, seed=9, start=START, users_per_block=100)
    total: dict[str, int] = {}
    for block in iter_simulation(cfg):
        for k, v in block.counts().items():
            total[k] = total.get(k, 0) + v
    assert summarize(total) == simulate(cfg).summary()


def test_query_truth_is_one_row_per_searched_session(sim):
    """SimData.queries: the planted truth of every session's query, aligned with the intents."""
    q = sim.queries.merge(sim.intents, on=["session_id", "user_id"], suffixes=("", "_intent"))
    assert len(q) == len(sim.queries) == sim.intents.query_text.notna().sum()
    assert (q.query_text == q.query_text_intent).all()
    assert (q.category_id == q.intent_category_id).all()
    assert set(q.lang) == {"en", "zh"} and set(q.has_typo) == {0, 1}


def test_queries_name_brands_models_and_chinese_words(sim):
    """Vocabulary variety: Chinese queries only for categories with Chinese words and with one of
    them; a named brand or model is in the text unless a typo hit it; model words are the brand's
    own lines and appear in the titles of that brand's items."""
    q = sim.queries
    zh = q[q.lang == "zh"]
    zh_words = {i + 1: c.zh_words for i, c in enumerate(CATEGORIES)}
    assert len(zh) > 0 and all(zh_words[c] for c in zh.category_id)
    assert all(any(w in t for w in zh_words[c]) for c, t in zip(zh.category_id, zh.query_text))
    assert not zh.has_typo.any()
    # share of Chinese queries among the categories that have Chinese words
    has_zh = q.category_id.map(lambda c: bool(zh_words[c]))
    assert 0.2 <= (q[has_zh].lang == "zh").mean() <= 0.5
    clean = q[q.has_typo == 0]
    branded = clean[clean.brand.notna()]
    assert 0.2 <= q.brand.notna().mean() <= 0.4
    assert all(b in t.split() for b, t in zip(branded.brand, branded.query_text))
    modelled = clean[clean.model.notna()]
    assert len(modelled) > 0 and modelled.brand.notna().all()
    assert all(
        m in t.split() and m in model_names(b)
        for m, b, t in zip(modelled.model, modelled.brand, modelled.query_text)
    )
    titles = sim.items.assign(model=sim.items.title.str.split().str[1].str.lower())
    assert all(m in model_names(b) for m, b in zip(titles.model, titles.brand))


def test_item_titles_are_bilingual_for_categories_with_chinese_words(sim):
    for c, spec in enumerate(CATEGORIES, start=1):
        titles = sim.items.loc[sim.items.category_id == c, "title"]
        if spec.zh_words:
            assert titles.str.endswith(" " + spec.zh_words[0]).all(), spec.name
        else:
            assert all(t.isascii() for t in titles), spec.name


def test_synonyms_share_words_across_categories(sim):
    """ "trainers" names running shoes and sneakers alike: the query alone does not say which."""
    q = sim.queries[sim.queries.query_text.str.split().map(lambda w: "trainers" in w)]
    names = {CATEGORIES[c - 1].name for c in q.category_id}
    assert {"running_shoes", "sneakers"} <= names
