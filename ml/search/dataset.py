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
query, then joined to its searches.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from ml.search.engagement import (
    attribute,
    engagement_labels,
    query_item_stats,
    searches_of,
    unrankable_searches,
)
from ml.search.text import tokenize

#: the ranker's features, in this order (the registered spec repeats them)
FEATURES: tuple[str, ...] = (
    "bm25",
    "bm25_rank",
    "semantic",
    "qpop_weighted",
    "qpop_share",
    "qpop_users",
    "syn_pop",
    "item_pop",
    "prefix_cat_share",
    "prefix_brand_share",
    "hist_cat_share",
    "bought_before",
    "in_stock",
    "query_len",
)
#: the user-dependent features (0 in the query-level lists, which know no user)
USER_FEATURES: tuple[str, ...] = ("prefix_cat_share", "prefix_brand_share", "hist_cat_share", "bought_before")
#: the columns of a query's candidate rows after ``query_norm`` (:func:`query_candidates`)
CANDIDATE_COLUMNS: tuple[str, ...] = ("item_id", *(f for f in FEATURES if f not in USER_FEATURES))
#: columns of the query → item behaviour table (``ml_query_item`` or :func:`query_item_stats`) read here
QUERY_ITEM_COLUMNS: tuple[str, ...] = ("query_norm", "item_id", "n_users", "weighted")


class ItemScorer(Protocol):
    """A query → catalogue scorer (BM25 or the semantic index): one score per ``item_ids`` entry."""

    item_ids: np.ndarray

    def scores(self, query: str) -> np.ndarray: ...


@dataclass
class SearchContext:
    """Everything known at one moment that the features read, indexed for fast per-query lookups."""

    items: pd.DataFrame  # item_id, category_id, brand, in_stock (catalogue order = the indexes' order)
    lexical: ItemScorer
    semantic: ItemScorer
    query_items: pd.DataFrame  # query_norm, item_id, n_users, weighted (behaviour before the moment)
    synonyms: dict[str, list[tuple[str, float]]]
    item_pop: np.ndarray  # aligned with items
    history: pd.DataFrame  # the users' item events before the moment (history category, bought before)
    now: pd.Timestamp  # the moment: every input is from before it
    k: int = 100
    _qi: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)
    _candidates: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        ids = self.items["item_id"].astype("int64").to_numpy()
        for name, index in (("lexical", self.lexical), ("semantic", self.semantic)):
            if not np.array_equal(np.asarray(index.item_ids, dtype="int64"), ids):
                raise ValueError(
                    f"the {name} index is not aligned with the catalogue (rebuild it from the same items)"
                )
        self._pos = pd.Series(np.arange(len(ids)), index=ids)
        qi = self.query_items
        qi = qi[qi["item_id"].isin(self._pos.index)]
        # one vectorised lookup, then each query's rows sliced out (a per-query .loc took seconds)
        pos = self._pos.reindex(qi["item_id"].astype("int64")).to_numpy()
        weighted = qi["weighted"].astype(float).to_numpy()
        users = qi["n_users"].astype(float).to_numpy()
        for q, rows in qi.groupby("query_norm", sort=False).indices.items():
            self._qi[str(q)] = (pos[rows], weighted[rows], users[rows])

    def behaviour(self, query: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(weighted, share, n_users) of one query over the catalogue (zeros for an unseen query)."""
        n = len(self.items)
        weighted, share, users = np.zeros(n), np.zeros(n), np.zeros(n)
        if query in self._qi:
            pos, w, u = self._qi[query]
            np.add.at(weighted, pos, w)
            np.add.at(users, pos, u)
            total = weighted.sum()
            share = weighted / total if total > 0 else share
        return weighted, share, users

    def candidates(self, query: str) -> dict[str, np.ndarray]:
        """One query's candidate items and query-level features (:data:`CANDIDATE_COLUMNS`), cached:
        the union of the BM25, behavioural, synonym and semantic top-K, in catalogue order."""
        hit = self._candidates.get(query)
        if hit is not None:
            return hit
        bm25 = np.asarray(self.lexical.scores(query), dtype=float)
        sem = np.asarray(self.semantic.scores(query), dtype=float)
        weighted, share, users = self.behaviour(query)
        syn = self.synonym_pop(query)
        sem_top = np.argsort(-sem, kind="stable")[: self.k]
        pos = np.unique(
            np.concatenate([_top(bm25, self.k), _top(weighted, self.k), _top(syn, self.k), sem_top])
        )
        # rank 1 = best; ties share a rank; every item BM25 does not match ranks after all it matches
        rank = 1 + np.searchsorted(np.sort(-bm25), -bm25[pos], side="left")
        out = {
            "item_id": self.items["item_id"].to_numpy()[pos],
            "bm25": bm25[pos],
            "bm25_rank": rank.astype(float),
            "semantic": sem[pos],
            "qpop_weighted": weighted[pos],
            "qpop_share": share[pos],
            "qpop_users": users[pos],
            "syn_pop": syn[pos],
            "item_pop": self.item_pop[pos],
            "in_stock": self.items["in_stock"].to_numpy(dtype=float)[pos],
            "query_len": np.full(len(pos), float(len(tokenize(query)))),
        }
        self._candidates[query] = out
        return out

    def synonym_pop(self, query: str) -> np.ndarray:
        """Σ over the query's learned synonyms of similarity × that synonym's behavioural share."""
        out = np.zeros(len(self.items))
        for other, sim in self.synonyms.get(query, []):
            if other != query:
                out += float(sim) * self.behaviour(other)[1]
        return out


def build_context(
    items: pd.DataFrame,
    history: pd.DataFrame,
    now: pd.Timestamp,
    *,
    query_items: pd.DataFrame | None = None,
    k: int = 100,
    lexical: ItemScorer | None = None,
    semantic: ItemScorer | None = None,
) -> SearchContext:
    """The context as of ``now`` from the catalogue and events before it.

    ``query_items`` is the ``ml_query_item`` mart as of ``now`` when the caller has it (the cut's
    point-in-time build, the serving marts); otherwise it is computed from ``history`` by
    :func:`query_item_stats`. Synonyms are learned from the same behaviour. The indexes are built from
    the catalogue unless given (they depend on the catalogue only, so callers may share them).
    """
    from ml.models.baselines import popularity_scores
    from ml.search.synonyms import learn_synonyms

    if history["ts"].notna().any() and pd.to_datetime(history["ts"]).max() >= now:
        raise ValueError(f"the history of a context as of {now} holds events at or after it")
    cat = items[["item_id", "title", "category_id", "category", "brand", "in_stock"]].copy()
    cat = cat.sort_values("item_id", kind="stable").reset_index(drop=True)
    if lexical is None or semantic is None:
        from ml.search.lexical import LexicalIndex
        from ml.search.semantic import SemanticIndex

        lexical = lexical or LexicalIndex.build(cat)
        semantic = semantic or SemanticIndex.build(cat)
    qi = query_item_stats(history) if query_items is None else query_items
    qi = qi[list(QUERY_ITEM_COLUMNS)].copy()
    qi["item_id"] = qi["item_id"].astype("int64")
    pairs = qi.rename(columns={"weighted": "weight"})[["query_norm", "item_id", "weight"]]
    pop = popularity_scores(history, now) if not history.empty else pd.Series(dtype=float)
    item_pop = cat["item_id"].map(pop).fillna(0.0).to_numpy(dtype=float)
    hist = history[history["item_id"].notna()]
    return SearchContext(
        items=cat,
        lexical=lexical,
        semantic=semantic,
        query_items=qi,
        synonyms=learn_synonyms(pairs) if not pairs.empty else {},
        item_pop=item_pop,
        history=hist[["user_id", "item_id", "behavior_type", "ts"]].reset_index(drop=True),
        now=pd.Timestamp(now),
        k=k,
    )


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k best positive scores."""
    pos = np.flatnonzero(scores > 0)
    if len(pos) > k:
        pos = pos[np.argsort(-scores[pos], kind="stable")[:k]]
    return pos


def query_candidates(ctx: SearchContext, queries: Iterable[str]) -> pd.DataFrame:
    """Candidates and query-level features of each distinct query: ``query_norm, item_id`` + features.

    The semantic source always proposes its top-K (a cosine has no natural zero), so even an unseen
    query in words BM25 does not know gets candidates (cold start). A query's rows are computed once
    per context (:meth:`SearchContext.candidates`): publishing ranks the same queries for the users'
    lists and for the query lists.
    """
    qs = list(dict.fromkeys(queries))
    if not qs:
        return pd.DataFrame(columns=["query_norm", *CANDIDATE_COLUMNS])
    parts = [ctx.candidates(q) for q in qs]
    lengths = [len(p["item_id"]) for p in parts]
    out = {"query_norm": np.repeat(np.array(qs, dtype=object), lengths)}
    for col in CANDIDATE_COLUMNS:
        out[col] = np.concatenate([p[col] for p in parts])
    return pd.DataFrame(out)


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
    for part, on in (
        ("prefix_cat", ["search_id", "category_id"]),
        ("prefix_brand", ["search_id", "brand"]),
        ("hist_cat", ["user_id", "category_id"]),
        ("bought", ["user_id", "item_id"]),
    ):
        joined = keys[on].merge(parts[part], on=on, how="left")
        col = next(c for c in joined.columns if c not in on)
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
