"""The personalised search ranker (LightGBM lambdarank, one group per search), its two baselines and
the evaluation they share.

Baselines: ``bm25`` ranks the whole catalogue by BM25 of the query; ``query_pop`` ranks the items most
engaged after this query before the cut (its own behaviour, nothing else). Evaluation is over full
ranking: each method orders the whole catalogue (the ranker: its candidates by score, then every other
item), and NDCG@10 (gains purchase 4 … browse 1, linear) and MRR are averaged over the searches with
at least one engaged item. Every method's tail — the items it does not score — is in item-id order,
so no method gains from how the others' ties fall.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml.models.evaluate import ndcg_at_k
from ml.models.rerank import RankingData, feature_matrix
from ml.search.context import FEATURES
from ml.search.dataset import SearchSet
from ml.search.engagement import GAIN

BASELINES: tuple[str, ...] = ("bm25", "query_pop")
RANKER = "search_ranker"
PRIMARY_METRIC = "ndcg@10"


@dataclass
class SearchRanker:
    """A LightGBM booster over :data:`~ml.search.context.FEATURES` (or the list it was fitted on)."""

    booster: Any
    features: list[str]
    best_iteration: int = 0
    fit_seconds: float = 0.0
    importance: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))

    def predict(self, frame: pd.DataFrame, rows: np.ndarray | None = None) -> np.ndarray:
        """One score per row of ``frame`` (only of the positions ``rows`` when given)."""
        missing = [f for f in self.features if f not in frame.columns]
        if missing:
            raise ValueError(f"the frame lacks the ranker's features {missing}")
        return np.asarray(self.booster.predict(feature_matrix(frame, self.features, rows)), dtype=float)


def fit_ranker(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    features: list[str] | None = None,
    *,
    rounds: int = 300,
    early_stopping: int = 30,
    seed: int = 7,
    **params: Any,
) -> SearchRanker:
    """LightGBM lambdarank over search groups (a ``cut`` column, when present, keeps the same search id
    of two cuts apart), label gains = :data:`GAIN` values, early stopping on the validation NDCG@10."""
    import lightgbm as lgb

    feats = list(features or FEATURES)
    keys = ["cut", "search_id"] if "cut" in train.columns else ["search_id"]
    vkeys = ["cut", "search_id"] if "cut" in valid.columns else ["search_id"]
    # rows of searches with a positive candidate, sorted by group (what lambdarank needs)
    tr, va = RankingData.of(train, feats, keys), RankingData.of(valid, feats, vkeys)
    if not len(tr.y) or not len(va.y):
        raise ValueError("no search with an engaged candidate in the training or validation rows: cannot fit")
    p = {
        "objective": "lambdarank",
        "metric": "ndcg",
        "eval_at": [10],
        "label_gain": [float(g) for g in range(max(GAIN.values()) + 1)],
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_data_in_leaf": 20,
        "feature_fraction": 0.9,
        "bagging_fraction": 0.9,
        "bagging_freq": 1,
        "num_threads": 2,
        "seed": seed,
        "deterministic": True,
        "verbose": -1,
    } | params

    dtrain = lgb.Dataset(tr.x, tr.y, group=tr.groups, feature_name=feats)
    dvalid = lgb.Dataset(va.x, va.y, group=va.groups, feature_name=feats, reference=dtrain)
    t0 = time.perf_counter()
    booster = lgb.train(
        p,
        dtrain,
        num_boost_round=rounds,
        valid_sets=[dvalid],
        callbacks=[lgb.early_stopping(early_stopping, verbose=False)],
    )
    imp = pd.Series(booster.feature_importance("gain"), index=feats).sort_values(ascending=False)
    return SearchRanker(booster, feats, int(booster.best_iteration or rounds), time.perf_counter() - t0, imp)


def _full_ranking(head: np.ndarray, n_items: int) -> np.ndarray:
    """Catalogue positions: ``head`` first, then every other position in catalogue (item-id) order."""
    rest = np.ones(n_items, dtype=bool)
    rest[head] = False
    return np.concatenate([head, np.flatnonzero(rest)])


def ranked_lists(data: SearchSet, scores: np.ndarray) -> dict[int, np.ndarray]:
    """Search → every catalogue item id, candidates by ``scores`` (aligned with ``data.frame``) first."""
    ids = data.context.items["item_id"].to_numpy()
    pos = pd.Series(np.arange(len(ids)), index=ids)
    f = data.frame.assign(_score=scores, _pos=pos.loc[data.frame["item_id"]].to_numpy())
    f = f.sort_values(["search_id", "_score", "item_id"], ascending=[True, False, True], kind="stable")
    heads = {int(s): g.to_numpy() for s, g in f.groupby("search_id", sort=False)["_pos"]}
    out = {}
    for s in data.searches["search_id"]:
        out[int(s)] = ids[_full_ranking(heads.get(int(s), np.array([], dtype=int)), len(ids))]
    return out


def baseline_lists(data: SearchSet, baseline: str) -> dict[int, np.ndarray]:
    """Search → the whole catalogue ordered by one baseline (ties in item-id order)."""
    if baseline not in BASELINES:
        raise ValueError(f"unknown search baseline {baseline!r}; known: {', '.join(BASELINES)}")
    ctx = data.context
    ids = ctx.items["item_id"].to_numpy()
    by_query: dict[str, np.ndarray] = {}
    for q in data.searches["query_norm"].unique():
        s = np.asarray(ctx.lexical.scores(q), dtype=float) if baseline == "bm25" else ctx.behaviour(q)[0]
        head = np.flatnonzero(s > 0)
        head = head[np.argsort(-s[head], kind="stable")]
        by_query[q] = ids[_full_ranking(head, len(ids))]
    return {int(s): by_query[q] for s, q in zip(data.searches["search_id"], data.searches["query_norm"])}


def evaluate_lists(lists: dict[int, np.ndarray], truth: pd.DataFrame, k: int = 10) -> dict[str, float]:
    """NDCG@k and MRR over the searches with at least one engaged item (``truth``: search_id, item_id, gain)."""
    if truth.empty:
        raise ValueError("no search with an engaged item: nothing to evaluate")
    ndcgs, rrs, hits = [], [], []
    for s, g in truth.groupby("search_id", sort=True):
        rel = {int(i): float(v) for i, v in zip(g["item_id"], g["gain"])}
        ranked = np.asarray(lists.get(int(s), np.array([], dtype=int)))
        top = [int(i) for i in ranked[:k]]
        ndcgs.append(ndcg_at_k(top, rel, k))
        # the first engaged item anywhere in the (whole-catalogue) list, found in one vectorised pass
        first = np.flatnonzero(np.isin(ranked, list(rel)))
        rrs.append(1.0 / (first[0] + 1) if len(first) else 0.0)
        hits.append(1.0 if set(rel).intersection(top) else 0.0)
    return {
        f"ndcg@{k}": float(np.mean(ndcgs)),
        "mrr": float(np.mean(rrs)),
        f"hitrate@{k}": float(np.mean(hits)),
        "n_searches": float(len(ndcgs)),
    }


def evaluate_all(data: SearchSet, ranker: SearchRanker | None = None) -> dict[str, dict[str, float]]:
    """Metrics of both baselines and (when given) the ranker on one search set."""
    out = {b: evaluate_lists(baseline_lists(data, b), data.truth) for b in BASELINES}
    if ranker is not None:
        out[RANKER] = evaluate_lists(ranked_lists(data, ranker.predict(data.frame)), data.truth)
    return out
