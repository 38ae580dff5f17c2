"""What a search is ranked with at one moment: the ranker's features, the :class:`SearchContext` (catalogue
indexes, query → item behaviour, synonyms, popularity, the users' history before the moment) and each query's
candidates with their query-level features (:func:`query_candidates`), computed once per query and context.

:mod:`ml.search.dataset` joins them to searches and adds the user-dependent features and the labels.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd

from ml.search.engagement import query_item_stats
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
        # the catalogue columns every query's candidates take their values from (candidates())
        self._item_ids = self.items["item_id"].to_numpy()
        self._in_stock = self.items["in_stock"].to_numpy(dtype=float)
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
            "item_id": self._item_ids[pos],
            "bm25": bm25[pos],
            "bm25_rank": rank.astype(float),
            "semantic": sem[pos],
            "qpop_weighted": weighted[pos],
            "qpop_share": share[pos],
            "qpop_users": users[pos],
            "syn_pop": syn[pos],
            "item_pop": self.item_pop[pos],
            "in_stock": self._in_stock[pos],
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
    prepare = getattr(ctx.semantic, "prepare", None)  # batch the query embeddings not computed yet
    if prepare is not None:
        prepare([q for q in qs if q not in ctx._candidates])
    parts = [ctx.candidates(q) for q in qs]
    lengths = [len(p["item_id"]) for p in parts]
    out = {"query_norm": np.repeat(np.array(qs, dtype=object), lengths)}
    for col in CANDIDATE_COLUMNS:
        out[col] = np.concatenate([p[col] for p in parts])
    return pd.DataFrame(out)
