"""Evaluation on a holdout cut: who is evaluated, candidate recall, every baseline and reranker under
the same business rules and list length (ARCHITECTURE.md §3: full ranking, never sampled negatives).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import pandas as pd

from ml.features.candidates import candidate_recall
from ml.features.datasets import CutData
from ml.models.baselines import build_baselines, intent_from_marts, popularity_scores
from ml.models.beyond import self_information
from ml.models.diversity import MMRRecommender, choose_lambda, parse_grid
from ml.models.evaluate import EvalContext, evaluation_context, item_brands
from ml.models.rerank import ColumnScorer, FitResult, Scorer, TwoStageRecommender
from ml.models.rules import Backfill, RuleConfig, RuledRecommender
from ml.models.tf.stage import TFStage
from ml.training.config import Step, TrainConfig, noop


@dataclass
class Holdout:
    """One evaluated cut: its data, candidate features, who is evaluated, and the rules' backfill.

    Everything that does not depend on the business rules is computed once per holdout and reused by
    every evaluation on it (the rule choice, the ablation and the MMR grid evaluate the same models
    under many rule sets): the ground truth and item attributes (:attr:`context`), each scorer's
    scores of the evaluated users (:meth:`scores`) and each baseline's ranked list before the rules
    (:attr:`baselines`)."""

    cut: CutData
    frame: pd.DataFrame
    eval_users: list[int]
    intents: pd.DataFrame
    backfill: Backfill
    _scored: dict[int, tuple[Scorer, pd.DataFrame]] = field(default_factory=dict, init=False, repr=False)

    @cached_property
    def info(self) -> dict[int, float]:
        """Self-information of every catalogue item in the cut's history window (novelty), computed
        once for all the models evaluated on this holdout."""
        return self_information(self.cut.history, self.cut.items["item_id"])

    @cached_property
    def context(self) -> EvalContext:
        """Ground truth of the evaluated users and the item attributes the metrics read."""
        return evaluation_context(
            self.cut.window,
            self.cut.items,
            eval_users=self.eval_users,
            intents=self.intents,
            cut=self.cut.cut_ts,
            info=self.info,
        )

    @cached_property
    def baselines(self) -> dict[str, _Remembered]:
        """The cut's baselines, each remembering its lists (they do not depend on the rules)."""
        cut = self.cut
        found = build_baselines(
            cut.history, cut.items, cut.covis, cut.now, intent_from_marts(cut.intent), cut.user_history
        )
        return {name: _Remembered(base) for name, base in found.items()}

    def scores(self, scorer: Scorer) -> pd.DataFrame:
        """``scorer``'s (user_id, item_id, score) of the evaluated users' candidates, scored once."""
        key = id(scorer)
        if key not in self._scored:  # the scorer is kept with its scores, so its id stays its own
            rec = TwoStageRecommender(scorer, self.frame, self.cut.items, self.cut.purchased, self.backfill)
            self._scored[key] = (scorer, rec.score(self.eval_users))
        return self._scored[key][1]

    def two_stage(self, scorer: Scorer, rules: RuleConfig) -> TwoStageRecommender:
        """A two-stage recommender of ``scorer`` under ``rules``, over this holdout's scores."""
        cut = self.cut
        return TwoStageRecommender(
            scorer, self.frame, cut.items, cut.purchased, self.backfill, rules, scored=self.scores(scorer)
        )

    def evaluate(self, recommender: Any, n: int) -> dict[str, float]:
        return self.evaluate_recs(recommender.recommend(self.eval_users, n))

    def evaluate_recs(self, recs: pd.DataFrame) -> dict[str, float]:
        """Every metric of a ``recommend()`` frame of the evaluated users."""
        return self.context.evaluate(recs)


class _Remembered:
    """A baseline whose ``recommend`` answers a repeated (users, n) from memory."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = getattr(inner, "name", type(inner).__name__)
        self._lists: dict[tuple[tuple[int, ...], int], pd.DataFrame] = {}

    def recommend(self, user_ids: list[int], n: int) -> pd.DataFrame:
        key = (tuple(int(u) for u in user_ids), int(n))
        if key not in self._lists:
            self._lists[key] = self.inner.recommend(user_ids, n)
        return self._lists[key]


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
        alone = holdout.two_stage(ColumnScorer("tf_score", "tf_ranker"), cfg.rules)
        results["tf_ranker"] = holdout.evaluate(alone, cfg.n)
    return results


def evaluate_all(
    holdout: Holdout, fits: dict[str, FitResult], cfg: TrainConfig, step: Step = noop
) -> dict[str, dict[str, float]]:
    """Every baseline and every fitted reranker on the holdout, with the same rules and list length."""
    cut = holdout.cut
    results: dict[str, dict[str, float]] = {}
    for name, base in holdout.baselines.items():
        step(f"evaluate baseline {name}")
        results[name] = holdout.evaluate(
            RuledRecommender(base, cut.items, cut.purchased, holdout.backfill, cfg.rules), cfg.n
        )
    for name, fit in fits.items():
        step(f"evaluate {name}")
        rec = holdout.two_stage(fit.scorer, cfg.rules)
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
    "ild_category@10",
    "ild_brand@10",
    "novelty@10",
)


def headline(results: dict[str, dict[str, float]]) -> dict[str, dict[str, float | None]]:
    return {k: {m: v.get(m) for m in HEADLINE_METRICS} for k, v in results.items()}


#: Columns of the MMR trade-off table (report/diversity.md), per λ.
TRADEOFF_METRICS = (
    "ndcg@10",
    "ild_category@10",
    "ild_brand@10",
    "coverage@10",
    "coverage_in_stock@10",
    "novelty@10",
)


def mmr_tradeoff(
    holdout: Holdout, fit: FitResult, cfg: TrainConfig, lambdas: list[float], step: Step = noop
) -> tuple[pd.DataFrame, dict[float, dict[str, float]]]:
    """The reranker re-ranked by MMR at each λ on one holdout, under the run's rules: the table
    (index λ, :data:`TRADEOFF_METRICS`) and every metric per λ. The model scores once for all λ."""
    rec = holdout.two_stage(fit.scorer, cfg.rules)  # carries the holdout's scores of the model
    brand = item_brands(holdout.cut.items) if cfg.mmr_brand else None
    metrics: dict[float, dict[str, float]] = {}
    for lam in lambdas:
        step(f"evaluate MMR λ={lam}")
        mmr = MMRRecommender(rec, lam, item_brand=brand, pool=cfg.mmr_pool)
        metrics[lam] = holdout.evaluate(mmr, cfg.n)
    table = pd.DataFrame({lam: {m: v.get(m) for m in TRADEOFF_METRICS} for lam, v in metrics.items()}).T
    table.index.name = "lambda"
    return table.astype(float), metrics


def measure_mmr(
    validation: Holdout, test: Holdout, fit: FitResult, cfg: TrainConfig, step: Step = noop
) -> dict[str, Any]:
    """λ chosen on the validation cut (:func:`ml.models.diversity.choose_lambda`), the trade-off of
    the whole grid on both cuts, and every test metric at the chosen λ (as ``{fit}_mmr``)."""
    grid = parse_grid(cfg.mmr_grid)
    val_table, _ = mmr_tradeoff(validation, fit, cfg, grid, step)
    lam = choose_lambda(val_table, cfg.mmr_min_ndcg_ratio)
    test_table, test_metrics = mmr_tradeoff(test, fit, cfg, grid, step)
    rule = (
        f"the most category-diverse λ of {grid} whose validation ndcg@10 >= "
        f"{cfg.mmr_min_ndcg_ratio} × ndcg@10 at λ=1 (ties → larger λ)"
    )
    return {"lambda": lam, "rule": rule, "val": val_table, "test": test_table, "metrics": test_metrics[lam]}
