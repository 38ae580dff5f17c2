"""Offline evaluation over full ranking (ARCHITECTURE.md §3).

Every recommender returns its top-N over the *whole* catalogue (never a sampled set of negatives);
the ground truth is everything a user did in the label window ``[cut, cut + Δ)``. Metrics:

- ``ndcg@10`` with graded relevance (purchase 3 > cart 2 > browse 1; linear gain, log2 discount),
- ``recall@20_{clicks,carts,orders}`` in the OTTO definition: per type, hits / min(20, |truth|),
  summed over users before dividing (micro average, as the OTTO leaderboard does),
- ``otto_recall@20`` = 0.1 clicks + 0.3 carts + 0.6 orders,
- ``hitrate@10`` (any positive in the top 10), ``mrr`` (1 / rank of the first positive in the list),
- ``coverage@10`` (distinct items in all top-10 lists / catalogue size) and ``coverage_in_stock@10``
  (distinct in-stock items in them / in-stock items: what the rules let a list show),
- ``ild_category@10`` / ``ild_brand@10``: intra-list diversity with a 0/1 distance, the share of the
  distinct pairs of a top-10 whose category (brand) differ, averaged over users with two or more items
  (pairs where either item has no brand are left out of the brand figure, not counted as similar),
- ``novelty@10``: mean self-information -log2 p(i) of the listed items, p the item's share of the
  training window's item events with add-one smoothing over the catalogue (an unseen item is finite
  and the most novel), averaged per list then over users,
- ``intent_capture@10`` (share of a user's top 10 in the planted intent category of the session that
  follows or straddles the cut; simulator ground truth, never read by a model), and
  ``intent_capture_straddle@10`` restricted to sessions already running at the cut (intent observable).

The beyond-accuracy metrics (diversity, novelty) are computed in :mod:`ml.models.beyond`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.models.beyond import beyond_accuracy, self_information

#: OTTO weights of the per-type recalls.
OTTO_WEIGHTS: dict[str, float] = {"clicks": 0.1, "carts": 0.3, "orders": 0.6}
#: Which raw behaviour types make each OTTO type.
TYPE_BEHAVIOURS: dict[str, tuple[str, ...]] = {
    "clicks": ("browse",),
    "carts": ("cart",),
    "orders": ("purchase",),
}
#: Graded relevance of an item in the label window (the strongest action counts).
RELEVANCE: dict[str, int] = {"browse": 1, "fav": 1, "cart": 2, "purchase": 3}


def dcg(relevances: Sequence[float]) -> float:
    """Discounted cumulative gain with linear gain: sum rel_i / log2(i + 1), i from 1."""
    return float(sum(r / math.log2(i + 2) for i, r in enumerate(relevances)))


def ndcg_at_k(ranked: Sequence[int], relevance: Mapping[int, float], k: int = 10) -> float:
    """NDCG@k of one ranked list against graded relevance ``{item: rel}``; 0 when nothing is relevant."""
    ideal = dcg(sorted(relevance.values(), reverse=True)[:k])
    if ideal <= 0:
        return 0.0
    return dcg([relevance.get(i, 0.0) for i in ranked[:k]]) / ideal


def otto_hits(ranked: Sequence[int], truth: Iterable[int], k: int = 20) -> tuple[int, int]:
    """(hits in the top k, min(k, |truth|)): the numerator and denominator of OTTO recall."""
    truth_set = set(truth)
    return len(truth_set.intersection(ranked[:k])), min(k, len(truth_set))


def reciprocal_rank(ranked: Sequence[int], truth: Iterable[int]) -> float:
    """1 / rank of the first relevant item in the list, 0 if none is in it."""
    truth_set = set(truth)
    for i, item in enumerate(ranked):
        if item in truth_set:
            return 1.0 / (i + 1)
    return 0.0


def coverage(lists: Iterable[Sequence[int]], catalogue_size: int, k: int = 10) -> float:
    """Distinct items shown in all top-k lists over the catalogue size."""
    if catalogue_size <= 0:
        raise ValueError("catalogue_size must be positive")
    shown: set[int] = set()
    for ranked in lists:
        shown.update(ranked[:k])
    return len(shown) / catalogue_size


def intent_share(
    ranked: Sequence[int], item_category: Mapping[int, int], intent_category: int, k: int = 10
) -> float:
    """Share of the top k that belongs to the intent category (a short list counts its missing slots as misses)."""
    top = list(ranked[:k])
    if not top:
        return 0.0
    return sum(1 for i in top if item_category.get(i) == intent_category) / k


def ground_truth(window_events: pd.DataFrame) -> dict[int, dict[str, object]]:
    """Per user: ``{"rel": {item: grade}, "clicks": set, "carts": set, "orders": set}`` from label-window events.

    ``window_events`` has raw columns ``user_id, item_id, behavior_type``; searches (no item) are ignored.
    """
    ev = window_events.dropna(subset=["item_id"])
    truth: dict[int, dict[str, object]] = {}
    for user_id, g in ev.groupby("user_id", sort=False):
        items = g["item_id"].astype("int64").to_numpy()
        types = g["behavior_type"].to_numpy()
        rel: dict[int, float] = {}
        for item, bt in zip(items, types):
            grade = RELEVANCE.get(str(bt), 0)
            if grade > rel.get(int(item), 0):
                rel[int(item)] = float(grade)
        entry: dict[str, object] = {"rel": rel}
        for otto_type, behaviours in TYPE_BEHAVIOURS.items():
            entry[otto_type] = {int(i) for i, bt in zip(items, types) if bt in behaviours}
        truth[int(user_id)] = entry
    return truth


def session_intents(window_events: pd.DataFrame, intents: pd.DataFrame) -> dict[int, int]:
    """Per user, the planted intent category of the first session with an event at or after the cut.

    That session either straddles the cut (started before it) or follows it. ``intents`` is
    ``recsys_raw.sim_session_intent`` (``session_id, intent_category_id``).
    """
    if window_events.empty or intents.empty:
        return {}
    joined = _first_sessions(window_events, intents)
    return dict(zip(joined["user_id"].astype("int64"), joined["intent_category_id"].astype("int64")))


def straddling_users(window_events: pd.DataFrame, intents: pd.DataFrame, cut: pd.Timestamp) -> set[int]:
    """Users whose first session in the label window started before the cut (its intent is observable)."""
    if window_events.empty or intents.empty or "start_ts" not in intents.columns:
        return set()
    joined = _first_sessions(window_events, intents)
    return set(joined.loc[pd.to_datetime(joined["start_ts"]) < cut, "user_id"].astype("int64"))


def _first_sessions(window_events: pd.DataFrame, intents: pd.DataFrame) -> pd.DataFrame:
    first = window_events.sort_values("ts").drop_duplicates("user_id", keep="first")[
        ["user_id", "session_id"]
    ]
    cols = ["session_id", "intent_category_id"] + (["start_ts"] if "start_ts" in intents.columns else [])
    return first.merge(intents[cols], on="session_id", how="inner").dropna(subset=["intent_category_id"])


def item_brands(items: pd.DataFrame) -> dict[int, str]:
    """Item → brand for the items with a non-empty brand (the others are left out of brand diversity)."""
    if "brand" not in items.columns:
        return {}
    known = items.dropna(subset=["brand"])
    known = known[known["brand"].astype(str).str.strip() != ""]
    return dict(zip(known["item_id"].astype("int64"), known["brand"].astype(str)))


def recs_to_lists(recs: pd.DataFrame) -> dict[int, list[int]]:
    """``recommend()`` output (user_id, rank, item_id, ...) → ``{user: [item, ...] by rank}``."""
    if recs.empty:
        return {}
    ordered = recs.sort_values(["user_id", "rank"], kind="stable")
    users = ordered["user_id"].to_numpy(dtype="int64")
    items = ordered["item_id"].to_numpy(dtype="int64")
    # one slice per user of the sorted arrays (a pandas groupby per user was most of this)
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    ends = np.r_[starts[1:], len(users)]
    return {int(users[a]): items[a:b].tolist() for a, b in zip(starts, ends)}


def evaluate_lists(
    lists: Mapping[int, Sequence[int]],
    truth: Mapping[int, Mapping[str, object]],
    *,
    catalogue_size: int,
    item_category: Mapping[int, int] | None = None,
    intents: Mapping[int, int] | None = None,
    k_ndcg: int = 10,
    k_recall: int = 20,
    straddling: set[int] | None = None,
    item_brand: Mapping[int, object] | None = None,
    in_stock: Iterable[int] | None = None,
    info: Mapping[int, float] | None = None,
) -> dict[str, float]:
    """All metrics for ranked lists against the ground truth of the evaluated users (``truth``'s keys).

    A user in ``truth`` without a list counts as an empty list (a miss), so a recommender cannot look
    better by skipping users. The beyond-accuracy metrics (:func:`beyond_accuracy`) are computed
    for whichever of ``item_category``, ``item_brand``, ``in_stock`` and ``info`` are given.
    """
    users = list(truth)
    if not users:
        raise ValueError("no users with ground truth in the label window: nothing to evaluate")
    ndcgs, hits10, rrs = [], [], []
    num = {t: 0 for t in OTTO_WEIGHTS}
    den = {t: 0 for t in OTTO_WEIGHTS}
    for u in users:
        ranked = list(lists.get(u, ()))
        entry = truth[u]
        rel: Mapping[int, float] = entry["rel"]  # type: ignore[assignment]
        positives = set(rel)
        ndcgs.append(ndcg_at_k(ranked, rel, k_ndcg))
        hits10.append(1.0 if positives.intersection(ranked[:k_ndcg]) else 0.0)
        rrs.append(reciprocal_rank(ranked, positives))
        for t in OTTO_WEIGHTS:
            h, d = otto_hits(ranked, entry[t], k_recall)  # type: ignore[arg-type]
            num[t] += h
            den[t] += d
    out: dict[str, float] = {
        f"ndcg@{k_ndcg}": float(np.mean(ndcgs)),
        f"hitrate@{k_ndcg}": float(np.mean(hits10)),
        "mrr": float(np.mean(rrs)),
    }
    otto = 0.0
    for t, w in OTTO_WEIGHTS.items():
        r = num[t] / den[t] if den[t] else 0.0
        out[f"recall@{k_recall}_{t}"] = r
        otto += w * r
    out[f"otto_recall@{k_recall}"] = otto
    out[f"coverage@{k_ndcg}"] = coverage((lists.get(u, ()) for u in users), catalogue_size, k_ndcg)
    out |= beyond_accuracy(
        lists,
        users,
        item_category=item_category,
        item_brand=item_brand,
        in_stock=in_stock,
        info=info,
        k=k_ndcg,
    )
    if intents is not None and item_category is not None:
        shares = [
            intent_share(list(lists.get(u, ())), item_category, c, k_ndcg)
            for u, c in intents.items()
            if u in truth
        ]
        out[f"intent_capture@{k_ndcg}"] = float(np.mean(shares)) if shares else float("nan")
        out["n_intent_users"] = float(len(shares))
        if straddling is not None:
            st = [
                intent_share(list(lists.get(u, ())), item_category, c, k_ndcg)
                for u, c in intents.items()
                if u in truth and u in straddling
            ]
            out[f"intent_capture_straddle@{k_ndcg}"] = float(np.mean(st)) if st else float("nan")
            out["n_straddle_users"] = float(len(st))
    out["n_users"] = float(len(users))
    return out


@dataclass(frozen=True)
class EvalContext:
    """What :func:`evaluate_lists` needs of one holdout besides the lists: built once per holdout by
    :func:`evaluation_context` and reused for every model, baseline and rule variant evaluated on it."""

    truth: Mapping[int, Mapping[str, object]]
    catalogue_size: int
    item_category: Mapping[int, int]
    intents: Mapping[int, int] | None = None
    straddling: set[int] | None = None
    item_brand: Mapping[int, object] | None = None
    in_stock: tuple[int, ...] | None = None
    info: Mapping[int, float] | None = None

    def evaluate(self, recs: pd.DataFrame) -> dict[str, float]:
        """Every metric of a ``recommend()`` frame against this holdout."""
        return evaluate_lists(
            recs_to_lists(recs),
            self.truth,
            catalogue_size=self.catalogue_size,
            item_category=self.item_category,
            intents=self.intents,
            straddling=self.straddling,
            item_brand=self.item_brand,
            in_stock=self.in_stock,
            info=self.info,
        )


def evaluation_context(
    window_events: pd.DataFrame,
    items: pd.DataFrame,
    *,
    eval_users: Iterable[int] | None = None,
    intents: pd.DataFrame | None = None,
    cut: pd.Timestamp | None = None,
    history: pd.DataFrame | None = None,
    info: Mapping[int, float] | None = None,
) -> EvalContext:
    """The ground truth and item attributes of one holdout (see :func:`evaluate_recommendations`)."""
    ev = window_events
    if eval_users is not None:
        ev = ev[ev["user_id"].isin(set(eval_users))]
    if info is None and history is not None:
        info = self_information(history, items["item_id"])
    stock = items.loc[items["in_stock"].astype(int) == 1, "item_id"] if "in_stock" in items.columns else None
    return EvalContext(
        truth=ground_truth(ev),
        catalogue_size=len(items),
        item_category=dict(zip(items["item_id"].astype("int64"), items["category_id"].astype("int64"))),
        intents=session_intents(ev, intents) if intents is not None else None,
        straddling=straddling_users(ev, intents, cut) if intents is not None and cut is not None else None,
        item_brand=item_brands(items) if "brand" in items.columns else None,
        in_stock=None if stock is None else tuple(int(i) for i in stock.astype("int64")),
        info=info,
    )


def evaluate_recommendations(
    recs: pd.DataFrame,
    window_events: pd.DataFrame,
    items: pd.DataFrame,
    *,
    eval_users: Iterable[int] | None = None,
    intents: pd.DataFrame | None = None,
    cut: pd.Timestamp | None = None,
    history: pd.DataFrame | None = None,
    info: Mapping[int, float] | None = None,
) -> dict[str, float]:
    """Evaluate a ``recommend()`` frame against the label window's events.

    ``eval_users`` restricts the evaluation (normally: users seen before the cut); ``items`` gives the
    catalogue size, categories, brands (column ``brand``, when present) and stock (``in_stock``);
    ``intents`` (simulator ground truth) enables intent capture, and with ``cut`` also intent capture
    over the users whose session straddles the cut. Novelty needs the item popularity of the training
    window: ``info`` (:func:`self_information`, computed once per cut by a caller evaluating many
    models) or ``history`` to compute it from.
    """
    return evaluation_context(
        window_events, items, eval_users=eval_users, intents=intents, cut=cut, history=history, info=info
    ).evaluate(recs)
