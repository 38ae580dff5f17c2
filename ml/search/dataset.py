"""Search training and evaluation rows, point in time.

One row per (search, candidate item). For a cut T the examples are the searches of T's label window;
the label of (search, item) is the strongest engagement with the item *attributed* to that search —
the same rule as the ``ml_query_item`` mart: an item event belongs to the most recent earlier search
of the same user and session, at most
``query_attribution_minutes`` (a dbt var) after it (a later search takes over
the events that follow it). Gains: purchase 4 > cart 3 > fav 2 > browse 1.

Features may read only (a) what was known at T — query→item behaviour, item popularity and the
user's history, all from events before T — and (b) the user's own events of the same session before
the search moment: the session prefix the refresh DAG sees when it scores that user. Nothing of the
search's own outcome, and nothing after the search, reaches a feature (tests/code/test_search_dataset.py).

Candidates per search: the union of BM25 top-K, the query's behavioural top-K (its own rows plus its
learned synonyms') and the semantic top-K. Every query-level quantity is computed once per distinct
query and context (:mod:`ml.search.context`), then joined to its searches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml.search.context import FEATURES, SearchContext, query_candidates
from ml.search.engagement import attribute, engagement_labels, searches_of, unrankable_searches


def _shares(frame: pd.DataFrame, key: str, value: str, name: str) -> pd.DataFrame:
    """Share of each ``value`` among a ``key``'s rows (``key, value, name``)."""
    if frame.empty:
        return pd.DataFrame(columns=[key, value, name])
    counts = frame.groupby([key, value]).size()
    out = (counts / counts.groupby(level=0).transform("sum")).rename(name).reset_index()
    return out


def user_features(
    ctx: SearchContext, searches: pd.DataFrame, session_events: pd.DataFrame
) -> dict[str, pd.DataFrame]:
    """The user-dependent parts of the features, keyed for joining.

    ``prefix_cat``/``prefix_brand``: category and brand shares of the item events of the search's own
    session strictly before the search moment (``session_events`` may hold more: anything at or after
    the search is dropped here, row by row); ``hist_cat``: the user's category shares before the
    context's moment; ``bought``: (user, item) bought before it.
    """
    meta = ctx.items[["item_id", "category_id", "brand"]]
    ev = session_events[session_events["item_id"].notna()]
    ev = pd.DataFrame(
        {
            "user_id": ev["user_id"].astype("int64").to_numpy(),
            "session_id": ev["session_id"].astype(str).to_numpy(),
            "item_id": ev["item_id"].astype("int64").to_numpy(),
            "ev_ts": pd.to_datetime(ev["ts"]).to_numpy(),
        }
    ).merge(meta, on="item_id")
    prefix = searches[["search_id", "user_id", "session_id", "ts"]].merge(ev, on=["user_id", "session_id"])
    prefix = prefix[prefix["ev_ts"] < prefix["ts"]]
    hist = ctx.history[ctx.history["user_id"].isin(set(searches["user_id"]))]
    hist = hist.assign(item_id=hist["item_id"].astype("int64")).merge(meta, on="item_id")
    bought = hist.loc[hist["behavior_type"] == "purchase", ["user_id", "item_id"]].drop_duplicates()
    return {
        "prefix_cat": _shares(prefix, "search_id", "category_id", "prefix_cat_share"),
        "prefix_brand": _shares(prefix, "search_id", "brand", "prefix_brand_share"),
        "hist_cat": _shares(hist, "user_id", "category_id", "hist_cat_share"),
        "bought": bought.assign(bought_before=1.0),
    }


def search_rows(ctx: SearchContext, searches: pd.DataFrame, session_events: pd.DataFrame) -> pd.DataFrame:
    """Every (search, candidate) row with all :data:`FEATURES` (no label), ordered by search and item.

    Built from positions rather than joins of the wide rows: each search takes its query's block of
    :func:`query_candidates` rows, and the user features are looked up through a narrow frame of the
    join keys (each part is unique on its key — a group-by, the catalogue, distinct purchases — so a
    left join keeps the left rows and their order). At 1M events the
    users' lists held ~5M rows, and joining each feature onto them copied every column each time."""
    cands = query_candidates(ctx, searches["query_norm"])
    # query_candidates keeps each query's rows together, queries in order of first appearance
    codes, queries = pd.factorize(cands["query_norm"])
    counts = np.bincount(codes, minlength=len(queries))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    code = pd.Index(queries).get_indexer(searches["query_norm"])
    lens = np.where(code >= 0, counts[code], 0)
    search_pos = np.repeat(np.arange(len(searches)), lens)
    offsets = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)
    cand_pos = np.repeat(starts[code], lens) + offsets
    search_ids = searches["search_id"].to_numpy()
    item_ids = cands["item_id"].to_numpy()
    order = np.lexsort((item_ids[cand_pos], search_ids[search_pos]))  # (search_id, item_id) is unique
    search_pos, cand_pos = search_pos[order], cand_pos[order]
    out = {
        "search_id": search_ids[search_pos],
        "user_id": searches["user_id"].to_numpy()[search_pos],
        "query_norm": searches["query_norm"].to_numpy()[search_pos],
        "item_id": item_ids[cand_pos],
    }
    meta = ctx.items[["item_id", "category_id", "brand"]]
    keys = pd.DataFrame({k: out[k] for k in ("search_id", "user_id", "item_id")}).merge(
        meta, on="item_id", how="left"
    )
    parts = user_features(ctx, searches, session_events)
    found: dict[str, np.ndarray] = {}
    for part, on, col in (
        ("prefix_cat", ["search_id", "category_id"], "prefix_cat_share"),
        ("prefix_brand", ["search_id", "brand"], "prefix_brand_share"),
        ("hist_cat", ["user_id", "category_id"], "hist_cat_share"),
        ("bought", ["user_id", "item_id"], "bought_before"),
    ):
        joined = keys[on].merge(parts[part], on=on, how="left")
        found[col] = joined[col].astype(float).fillna(0.0).to_numpy()
    for col in FEATURES:
        out[col] = found[col] if col in found else cands[col].to_numpy()[cand_pos]
    return pd.DataFrame(out)


@dataclass
class SearchSet:
    """The searches of one label window, their candidate rows (with ``label``) and full ground truth."""

    searches: pd.DataFrame
    frame: pd.DataFrame  # search_id, user_id, query_norm, item_id, FEATURES..., label
    truth: pd.DataFrame  # search_id, item_id, gain: every engaged item, candidate or not
    context: SearchContext
    unrankable: int = 0  # searches left out: their text normalises to nothing

    @property
    def engaged_searches(self) -> int:
        return int(self.truth["search_id"].nunique())

    def stats(self) -> dict[str, Any]:
        """What a run logs about the set (rows, searches, candidate recall)."""
        hit = self.truth.merge(self.frame[["search_id", "item_id"]], on=["search_id", "item_id"])
        return {
            "searches": float(len(self.searches)),
            "engaged_searches": float(self.engaged_searches),
            "rows": float(len(self.frame)),
            "positives": float((self.frame["label"] > 0).sum()),
            "candidate_recall": float(len(hit) / len(self.truth)) if len(self.truth) else float("nan"),
            "unrankable_searches": float(self.unrankable),
        }


def build_search_set(ctx: SearchContext, history: pd.DataFrame, window: pd.DataFrame) -> SearchSet:
    """Examples of one cut: the searches of ``window`` (events after the context's moment) with
    features from ``ctx`` and the session prefix, labels from the attributed engagements.

    ``history`` supplies the session prefix before the cut (a session may straddle it); features see
    each search's session only up to the search (see :func:`user_features`).
    """
    searches = searches_of(window)
    truth = engagement_labels(attribute(window))
    session = pd.concat([history, window], ignore_index=True)
    session = session[session["user_id"].isin(set(searches["user_id"]))]
    frame = search_rows(ctx, searches, session)
    frame = frame.merge(truth, on=["search_id", "item_id"], how="left")
    frame["label"] = frame.pop("gain").fillna(0).astype("int64")
    return SearchSet(searches, frame, truth, ctx, unrankable_searches(window))
