"""Search rows: attribution and labels against hand-computed values, and no future leakage — an event
after the search or after the cut changes no feature of that search's rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from search_support import T0, catalogue, sessions

from ml.search.context import FEATURES, USER_FEATURES, build_context, query_candidates
from ml.search.dataset import build_search_set, search_rows, user_features
from ml.search.engagement import attribute, engagement_labels, query_item_stats, searches_of


def _ev(user, session, kind, minute, item=None, query=None):
    return {
        "user_id": user,
        "item_id": item,
        "session_id": session,
        "behavior_type": kind,
        "query_text": query,
        "ts": T0 + pd.Timedelta(minutes=minute),
    }


def _frame(rows) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    df["item_id"] = df["item_id"].astype("Int64")
    return df


def test_attribution_labels_and_query_item_stats_by_hand() -> None:
    ev = _frame(
        [
            _ev(1, "a", "browse", 0, 7),  # before any search: nobody's
            _ev(1, "a", "search", 1, query="Phone!"),
            _ev(1, "a", "browse", 3, 2),  # search 0, 2 min
            _ev(1, "a", "cart", 5, 2),  # search 0, 4 min: strongest for item 2
            _ev(1, "a", "search", 10, query="shoes"),
            _ev(1, "a", "purchase", 12, 14),  # search 1 (the later search takes over)
            _ev(1, "a", "search", 13, query="?!"),  # unrankable, yet it ends search 1's window
            _ev(1, "a", "browse", 14, 16),  # after the unrankable search: nobody's
            _ev(1, "a", "browse", 45, 15),  # 35 min after search 1: too late
            _ev(2, "b", "browse", 2, 3),  # another session: no search
            _ev(1, "c", "browse", 11, 4),  # user 1, other session: not search 1's
            _ev(1, "a", "search", 50, query="!!!"),  # normalises to nothing
        ]
    )
    s = searches_of(ev)
    assert s["query_norm"].tolist() == ["phone", "shoes"] and s["search_id"].tolist() == [0, 1]
    att = attribute(ev)
    assert sorted(zip(att["search_id"], att["item_id"], att["behavior_type"])) == [
        (0, 2, "browse"),
        (0, 2, "cart"),
        (1, 14, "purchase"),
    ]
    labels = engagement_labels(att)
    assert sorted(map(tuple, labels.to_numpy().tolist())) == [(0, 2, 3), (1, 14, 4)]
    stats = query_item_stats(ev).set_index(["query_norm", "item_id"])
    assert stats.loc[("phone", 2), "weighted"] == pytest.approx(1 * np.exp(-0.2) + 3 * np.exp(-0.4))
    assert stats.loc[("phone", 2), ["n_browse", "n_cart", "n_users", "n_searches"]].tolist() == [1, 1, 1, 1]
    assert stats.loc[("shoes", 14), "weighted"] == pytest.approx(4 * np.exp(-0.2))
    assert len(stats) == 2


@pytest.fixture(scope="module")
def shop():
    items = catalogue()
    history = sessions(T0, 48, 120, seed=1)
    cut = T0 + pd.Timedelta(hours=48)
    window = sessions(cut, 24, 60, seed=2)
    return items, history, cut, window


def _features(ctx, history, window, search_id: int) -> pd.DataFrame:
    data = build_search_set(ctx, history, window)
    rows = data.frame[data.frame["search_id"] == search_id]
    return rows.set_index("item_id")[list(FEATURES)].sort_index(), data


def test_no_future_leakage(shop) -> None:
    items, history, cut, window = shop
    ctx = build_context(items, history, cut)
    first = build_search_set(ctx, history, window)
    # a phone search with a brand in its session prefix
    branded = first.frame.groupby("search_id")["prefix_brand_share"].max()
    target = first.searches.set_index("search_id").loc[int(branded[branded > 0].index[3])]
    sid, user, session, ts = int(target.name), target["user_id"], target["session_id"], target["ts"]
    assert target["query_norm"] == "phone"
    before, data = _features(ctx, history, window, sid)
    # the search's own outcome: purchases of a shoe and a zeta phone right after it, and a browse of
    # shoes later in the same session; plus another user's events just before the search
    zeta = 7 if before.loc[7, "prefix_brand_share"] == 0 else 1
    outcome = _frame(
        [
            _ev(user, session, "purchase", 0, 14),
            _ev(user, session, "purchase", 0, zeta),
            _ev(user, session, "browse", 0, 15),
            _ev(999, "other", "browse", 0, zeta),
        ]
    )
    outcome["ts"] = [
        ts + pd.Timedelta(seconds=30),
        ts + pd.Timedelta(seconds=40),
        ts + pd.Timedelta(minutes=5),
    ] + [ts - pd.Timedelta(seconds=5)]
    grown = pd.concat([window, outcome], ignore_index=True).sort_values("ts", kind="stable")
    after, data2 = _features(ctx, history, grown, sid)
    pd.testing.assert_frame_equal(before, after)
    # ... the outcome did reach the labels (the test would notice a feature reading it)
    labels = data2.frame[data2.frame["search_id"] == sid].set_index("item_id")["label"]
    assert labels.loc[zeta] == 4 and labels.loc[14] == 4
    # events after the cut never enter the context: refused, not silently used
    with pytest.raises(ValueError, match="at or after"):
        build_context(items, pd.concat([history, window], ignore_index=True), cut)
    assert data.stats()["candidate_recall"] > 0.9


def test_prefix_share_sees_only_earlier_events_of_the_same_session(shop) -> None:
    items, history, cut, window = shop
    ctx = build_context(items, history, cut)
    ev = _frame(
        [
            _ev(5, "x", "browse", 0, 1),  # acme, before the search
            _ev(5, "x", "browse", 1, 2),  # acme
            _ev(5, "x", "browse", 2, 8),  # zeta
            _ev(5, "y", "browse", 2, 9),  # another session of the same user
            _ev(5, "x", "search", 3, query="phone"),
            _ev(5, "x", "browse", 4, 10),  # after the search
        ]
    )
    ev["ts"] = ev["ts"] + (cut - T0) + pd.Timedelta(hours=1)
    data = build_search_set(ctx, history, ev)
    rows = data.frame.set_index("item_id")
    assert rows.loc[3, "prefix_brand_share"] == pytest.approx(2 / 3)
    assert rows.loc[11, "prefix_brand_share"] == pytest.approx(1 / 3)
    assert rows.loc[3, "prefix_cat_share"] == pytest.approx(1.0)
    assert rows.loc[14, "prefix_cat_share"] == 0.0
    assert rows.loc[10, "label"] == 1


def _rows_by_joins(ctx, searches, session_events) -> pd.DataFrame:
    """What search_rows means, written as the joins of its definition (slow on millions of rows)."""
    cands = query_candidates(ctx, searches["query_norm"])
    rows = searches[["search_id", "user_id", "query_norm"]].merge(cands, on="query_norm")
    rows = rows.merge(ctx.items[["item_id", "category_id", "brand"]], on="item_id", how="left")
    parts = user_features(ctx, searches, session_events)
    rows = rows.merge(parts["prefix_cat"], on=["search_id", "category_id"], how="left")
    rows = rows.merge(parts["prefix_brand"], on=["search_id", "brand"], how="left")
    rows = rows.merge(parts["hist_cat"], on=["user_id", "category_id"], how="left")
    rows = rows.merge(parts["bought"], on=["user_id", "item_id"], how="left")
    for col in USER_FEATURES:
        rows[col] = rows[col].astype(float).fillna(0.0)
    rows = rows.sort_values(["search_id", "item_id"], kind="stable").reset_index(drop=True)
    return rows[["search_id", "user_id", "query_norm", "item_id", *FEATURES]]


def test_search_rows_equal_their_join_definition_row_for_row(shop) -> None:
    items, history, cut, window = shop
    searches = searches_of(window)
    # a phone searcher bought phone 3 before the cut (bought_before)
    buyer = int(searches.loc[searches["query_norm"] == "phone", "user_id"].iloc[0])
    history = pd.concat([history, _frame([_ev(buyer, "h", "purchase", 60, 3)])], ignore_index=True)
    ctx = build_context(items, history, cut)
    # shuffled search ids and a repeated query (its candidates come from the context's cache)
    searches = searches.assign(search_id=np.random.default_rng(3).permutation(len(searches)) * 7)
    assert searches["query_norm"].duplicated().any()
    session = pd.concat([history, window], ignore_index=True)
    got = search_rows(ctx, searches, session)
    want = _rows_by_joins(ctx, searches, session)
    assert (got[list(USER_FEATURES)] > 0).any().all()  # every user feature is exercised
    pd.testing.assert_frame_equal(got, want)
    pd.testing.assert_frame_equal(search_rows(ctx, searches, session), want)  # from the cache
