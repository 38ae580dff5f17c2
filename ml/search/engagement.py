"""Which item engagements follow a search: the attribution rule shared by the labels of the search
rows and the behavioural relevance (``ml_query_item``'s definition, in pandas).

An item event belongs to the most recent earlier search of the same user and session, at most
:data:`ATTRIBUTION_MINUTES_VAR` minutes after it (a later search takes over the events that follow
it). The window, the decay and the type weights of the behaviour are the dbt vars ``ml_query_item``
reads (:mod:`ml.contracts`), so the two definitions cannot drift apart. Label gains:
purchase 4 > cart 3 > fav 2 > browse 1; the strongest engagement with an item is the label.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.contracts import event_weights, number_var
from ml.search.text import normalize_query

#: graded relevance of an engagement after a search (the strongest one counts); also the LightGBM
#: label gains and the evaluation's NDCG gains, so the ranker optimises what it is judged on
GAIN: dict[str, int] = {"browse": 1, "fav": 2, "cart": 3, "purchase": 4}
#: dbt var: an item event is attributed to a search at most this many minutes after it
ATTRIBUTION_MINUTES_VAR = "query_attribution_minutes"
#: dbt var: an attributed event's behavioural weight decays as exp(-minutes after the search / this)
DECAY_MINUTES_VAR = "query_decay_minutes"

SEARCH_COLUMNS: list[str] = ["search_id", "user_id", "session_id", "query_norm", "ts"]


def searches_of(events: pd.DataFrame, *, keep_unrankable: bool = False) -> pd.DataFrame:
    """The searches of a raw event frame with their normalised query, one ``search_id`` each
    (0, 1, … in time order; the same events always give the same ids).

    Searches whose text normalises to nothing (blank, punctuation only) cannot be ranked for: they are
    left out, or kept with ``search_id`` -1 (``keep_unrankable``, for attribution: such a search still
    ends the previous search's window, as in ``ml_query_item``); :func:`unrankable_searches` counts them.
    """
    s = events[events["behavior_type"] == "search"]
    out = pd.DataFrame(
        {
            "user_id": s["user_id"].astype("int64").to_numpy(),
            "session_id": s["session_id"].astype(str).to_numpy(),
            "query_norm": [normalize_query(q) for q in s["query_text"]],
            "ts": pd.to_datetime(s["ts"]).to_numpy(),
        }
    ).sort_values(["ts", "user_id", "session_id"], kind="stable")
    rankable = (out["query_norm"] != "").to_numpy()
    out.insert(0, "search_id", np.where(rankable, np.cumsum(rankable) - 1, -1).astype("int64"))
    if not keep_unrankable:
        out = out[rankable]
    return out.reset_index(drop=True)[SEARCH_COLUMNS]


def unrankable_searches(events: pd.DataFrame) -> int:
    """Searches whose query text normalises to nothing."""
    s = events.loc[events["behavior_type"] == "search", "query_text"]
    return int(sum(normalize_query(q) == "" for q in s))


def attribute(events: pd.DataFrame) -> pd.DataFrame:
    """Item events attributed to a search: ``search_id, user_id, item_id, behavior_type, minutes``.

    An item event goes to the most recent search strictly before it in the same user's session, if
    that search is at most ``query_attribution_minutes`` earlier and its query is rankable. Search ids
    are those of :func:`searches_of` over the same events.
    """
    items = events[events["item_id"].notna() & events["behavior_type"].isin(list(GAIN))]
    cols = ["search_id", "user_id", "item_id", "behavior_type", "minutes"]
    searches = searches_of(events, keep_unrankable=True)
    if items.empty or searches.empty:
        return pd.DataFrame(columns=cols)
    left = pd.DataFrame(
        {
            "user_id": items["user_id"].astype("int64").to_numpy(),
            "session_id": items["session_id"].astype(str).to_numpy(),
            "item_id": items["item_id"].astype("int64").to_numpy(),
            "behavior_type": items["behavior_type"].astype(str).to_numpy(),
            "ts": pd.to_datetime(items["ts"]).to_numpy(),
        }
    ).sort_values("ts", kind="stable")
    right = searches[["search_id", "user_id", "session_id", "ts"]].rename(columns={"ts": "search_ts"})
    right = right.sort_values("search_ts", kind="stable")
    joined = pd.merge_asof(
        left,
        right,
        left_on="ts",
        right_on="search_ts",
        by=["user_id", "session_id"],
        direction="backward",
        allow_exact_matches=False,
        tolerance=pd.Timedelta(minutes=number_var(ATTRIBUTION_MINUTES_VAR)),
    ).dropna(subset=["search_id"])
    joined["search_id"] = joined["search_id"].astype("int64")
    joined = joined[joined["search_id"] >= 0]  # after an unrankable search: nobody's
    joined["minutes"] = (joined["ts"] - joined["search_ts"]).dt.total_seconds() / 60.0
    return joined[cols].reset_index(drop=True)


def engagement_labels(attributed: pd.DataFrame) -> pd.DataFrame:
    """``search_id, item_id, gain``: the strongest attributed engagement per (search, item)."""
    if attributed.empty:
        return pd.DataFrame(columns=["search_id", "item_id", "gain"])
    gain = attributed["behavior_type"].map(GAIN).astype("int64")
    out = attributed.assign(gain=gain).groupby(["search_id", "item_id"], as_index=False)["gain"].max()
    return out.astype({"search_id": "int64", "item_id": "int64", "gain": "int64"})


def query_item_stats(events: pd.DataFrame) -> pd.DataFrame:
    """Query → item behaviour of a stretch of events (the ``ml_query_item`` columns, in pandas).

    ``weighted`` sums each attributed event's type weight (``event_weights.popularity``) ×
    exp(-minutes after the search / ``query_decay_minutes``);
    ``n_users`` counts distinct users, ``n_searches`` distinct searches, ``n_<type>`` events by type.
    Used for a cut whose point-in-time build has no ``ml_query_item`` and in tests.
    """
    searches = searches_of(events)
    att = attribute(events)
    cols = [
        "query_norm",
        "item_id",
        "n_browse",
        "n_cart",
        "n_fav",
        "n_purchase",
        "n_searches",
        "n_users",
        "weighted",
    ]
    if att.empty:
        return pd.DataFrame(columns=cols)
    att = att.merge(searches[["search_id", "query_norm"]], on="search_id")
    weights = event_weights("popularity")
    decay = number_var(DECAY_MINUTES_VAR)
    att["weighted"] = att["behavior_type"].map(weights).fillna(0.0) * np.exp(-att["minutes"] / decay)
    for t in ("browse", "cart", "fav", "purchase"):
        att[f"n_{t}"] = (att["behavior_type"] == t).astype("int64")
    g = att.groupby(["query_norm", "item_id"], as_index=False)
    out = g.agg(
        n_browse=("n_browse", "sum"),
        n_cart=("n_cart", "sum"),
        n_fav=("n_fav", "sum"),
        n_purchase=("n_purchase", "sum"),
        n_searches=("search_id", "nunique"),
        n_users=("user_id", "nunique"),
        weighted=("weighted", "sum"),
    )
    return out[cols]
