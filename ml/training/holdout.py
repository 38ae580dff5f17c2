"""Evaluation on a holdout cut: who is evaluated, candidate recall, every baseline and reranker under
the same business rules and list length (ARCHITECTURE.md §3: full ranking, never sampled negatives).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from ml.features.candidates import candidate_recall
from ml.features.datasets import CutData
from ml.models.baselines import build_baselines, intent_from_marts, popularity_scores
from ml.models.evaluate import evaluate_recommendations
from ml.models.rerank import ColumnScorer, FitResult, TwoStageRecommender
from ml.models.rules import Backfill, RuledRecommender
from ml.models.tf.stage import TFStage
from ml.training.config import Step, TrainConfig, noop


@dataclass
class Holdout:
    """One evaluated cut: its data, candidate features, who is evaluated, and the rules' backfill."""

    cut: CutData
    frame: pd.DataFrame
    eval_users: list[int]
    intents: pd.DataFrame
    backfill: Backfill

    def evaluate(self, recommender: Any, n: int) -> dict[str, float]:
        recs = recommender.recommend(self.eval_users, n)
        return evaluate_recommendations(
            recs,
            self.cut.window,
            self.cut.items,
            eval_users=self.eval_users,
            intents=self.intents,
            cut=self.cut.cut_ts,
        )


def make_holdout(cut: CutData, frame: pd.DataFrame, intents: pd.DataFrame) -> Holdout:
    """Evaluated users: known at the cut (in ``dim_users``, or with a revealed session start in a
    session cut) and with an item event in the label window."""
    if cut.window is None:
        raise ValueError("a holdout needs a cut with a label window")
    seen = set(cut.users["user_id"].astype("int64"))
    if cut.revealed is not None:
        seen |= set(cut.revealed["user_id"].astype("int64"))
    active = set(cut.window.dropna(subset=["item_id"])["user_id"].astype("int64"))
    users = sorted(seen & active)
    if not users:
        raise ValueError(
            f"no user seen before the cut {cut.cut_ts} acts in its label window: widen label_hours"
        )
    user_intent = intent_from_marts(cut.intent)
    backfill = Backfill.from_popularity(popularity_scores(cut.history, cut.now), cut.items, user_intent)
    return Holdout(cut, frame, users, intents, backfill)


def basket_cut(cut: CutData) -> CutData:
    """The next-basket view of a cut: each user's label window shrunk to their first session after
    the cut (the next order or invoice); nothing of it is revealed."""
    if cut.window is None:
        raise ValueError("a next-basket holdout needs a cut with a label window")
    ev = cut.window.sort_values("ts", kind="stable")
    first = ev.drop_duplicates("user_id")[["user_id", "session_id"]]
    return replace(cut, window=ev.merge(first, on=["user_id", "session_id"]).reset_index(drop=True))


def candidate_recall_metrics(holdout: Holdout) -> dict[str, float]:
    """Recall of the whole candidate set, and of the best 200 by number of sources, per behaviour."""
    frame, window = holdout.frame, holdout.cut.window
    out = candidate_recall(frame, window, holdout.eval_users)
    top = candidate_recall(frame, window, holdout.eval_users, k=200, score="n_sources")
    out |= {k.replace("cand_", "cand200_"): v for k, v in top.items()}
    reach = candidate_recall(frame, reachable_events(window, holdout.cut), holdout.eval_users)
    return out | {
        k.replace("cand_recall_", "cand_recall_reachable_"): v
        for k, v in reach.items()
        if k.startswith("cand_recall_")
    }


def reachable_events(window: pd.DataFrame, cut: CutData) -> pd.DataFrame:
    """Label-window events whose item the business rules could serve at the cut: in the catalogue,
    in stock, and not already bought by the user (the ceiling of any candidate source)."""
    items = cut.items[cut.items["in_stock"].astype(int) == 1]["item_id"].astype("int64")
    ev = window[window["item_id"].notna()]
    ev = ev[ev["item_id"].astype("int64").isin(set(items))]
    bought = set(zip(cut.purchased["user_id"].astype("int64"), cut.purchased["item_id"].astype("int64")))
    keep = [
        (u, i) not in bought for u, i in zip(ev["user_id"].astype("int64"), ev["item_id"].astype("int64"))
    ]
    return ev[keep]


def evaluate_holdout(
    holdout: Holdout, fits: dict[str, FitResult], stage: TFStage, cfg: TrainConfig, step: Step = noop
) -> dict[str, dict[str, float]]:
    """:func:`evaluate_all` plus the TF ranker alone (when the stage has one), on one holdout."""
    results = evaluate_all(holdout, fits, cfg, step)
    if stage.ranker is not None:
        step("evaluate the TF ranker alone")
        cut = holdout.cut
        alone = TwoStageRecommender(
            ColumnScorer("tf_score", "tf_ranker"),
            holdout.frame,
            cut.items,
            cut.purchased,
            holdout.backfill,
            cfg.rules,
        )
        results["tf_ranker"] = holdout.evaluate(alone, cfg.n)
    return results


def evaluate_all(
    holdout: Holdout, fits: dict[str, FitResult], cfg: TrainConfig, step: Step = noop
) -> dict[str, dict[str, float]]:
    """Every baseline and every fitted reranker on the holdout, with the same rules and list length."""
    cut = holdout.cut
    results: dict[str, dict[str, float]] = {}
    for name, base in build_baselines(
        cut.history, cut.items, cut.covis, cut.now, intent_from_marts(cut.intent), cut.user_history
    ).items():
        step(f"evaluate baseline {name}")
        results[name] = holdout.evaluate(
            RuledRecommender(base, cut.items, cut.purchased, holdout.backfill, cfg.rules), cfg.n
        )
    for name, fit in fits.items():
        step(f"evaluate {name}")
        rec = TwoStageRecommender(
            fit.scorer, holdout.frame, cut.items, cut.purchased, holdout.backfill, cfg.rules
        )
        results[name] = holdout.evaluate(rec, cfg.n)
        results[name].update(rec.last_stats.as_metrics())
    return results


#: The metrics a run reports per model in its summary (all of them go to MLflow).
HEADLINE_METRICS = (
    "ndcg@10",
    "hitrate@10",
    "recall@20_orders",
    "otto_recall@20",
    "coverage@10",
    "intent_capture@10",
)


def headline(results: dict[str, dict[str, float]]) -> dict[str, dict[str, float | None]]:
    return {k: {m: v.get(m) for m in HEADLINE_METRICS} for k, v in results.items()}
