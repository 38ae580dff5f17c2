"""Second stage: learning-to-rank over each user's candidates, then the business rules.

LightGBM ``lambdarank`` is the reranker; XGBoost ``rank:ndcg`` is fitted on the same frames for
comparison. Both early-stop on the validation cut's NDCG@10. Groups are users; users whose
candidates hold no positive are left out of fitting (a group without a positive has no gradient).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from ml.models.rules import Backfill, RuleConfig, RuleStats, apply_rules


class Scorer(Protocol):
    """Anything that turns a feature frame into one score per row."""

    name: str
    features: list[str]

    def predict(self, frame: pd.DataFrame) -> np.ndarray: ...


@dataclass
class FitResult:
    """A fitted scorer plus what the run logs about it."""

    scorer: Any
    fit_seconds: float
    best_iteration: int
    importance: pd.Series  # feature → gain
    params: dict[str, Any] = field(default_factory=dict)


def group_keys(frame: pd.DataFrame) -> list[str]:
    """A ranking group is one user's candidates at one cut: frames of several cuts stacked for fitting
    carry a ``cut`` column (the same user at two cuts is two groups, not one merged list)."""
    return ["cut", "user_id"] if "cut" in frame else ["user_id"]


def ranking_groups(frame: pd.DataFrame, label: str = "label") -> pd.DataFrame:
    """Rows of groups with at least one positive, sorted by group (the order the libraries need)."""
    keys = group_keys(frame)
    pos = frame.groupby(keys)[label].transform("max") > 0
    return frame[pos].sort_values([*keys, "item_id"], kind="stable").reset_index(drop=True)


def _group_sizes(frame: pd.DataFrame) -> np.ndarray:
    return frame.groupby(group_keys(frame), sort=False).size().to_numpy()


def _matrix(frame: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    return frame[list(features)].astype(float).to_numpy(dtype=np.float32)


class LightGBMScorer:
    """A LightGBM booster over a fixed feature list."""

    name = "lightgbm"

    def __init__(self, booster: Any, features: list[str]) -> None:
        self.booster = booster
        self.features = features

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.booster.predict(_matrix(frame, self.features)), dtype=float)


class XGBoostScorer:
    """An XGBoost booster over a fixed feature list."""

    name = "xgboost"

    def __init__(self, booster: Any, features: list[str]) -> None:
        self.booster = booster
        self.features = features

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        import xgboost as xgb

        dm = xgb.DMatrix(_matrix(frame, self.features), feature_names=self.features)
        return np.asarray(
            self.booster.predict(dm, iteration_range=(0, self.booster.best_iteration + 1)), dtype=float
        )


class ColumnScorer:
    """Ranks by one existing column (e.g. the TF ranker's score alone)."""

    def __init__(self, column: str, name: str | None = None) -> None:
        self.name = name or column
        self.features = [column]

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return frame[self.features[0]].astype(float).fillna(-np.inf).to_numpy()


def _fit_groups(train: pd.DataFrame, valid: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The users with a positive candidate in each frame (a ranker learns nothing from the others)."""
    tr, va = ranking_groups(train), ranking_groups(valid)
    if tr.empty or va.empty:
        raise ValueError(
            "no user with a positive candidate in the train or validation cut: cannot fit a ranker"
        )
    return tr, va


def fit_lightgbm(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    features: list[str],
    *,
    rounds: int = 300,
    early_stopping: int = 30,
    seed: int = 7,
    **params: Any,
) -> FitResult:
    """LightGBM lambdarank with early stopping on the validation cut's NDCG@10."""
    import lightgbm as lgb

    tr, va = _fit_groups(train, valid)
    p = {
        "objective": "lambdarank",
        "metric": "ndcg",
        "eval_at": [10],
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_data_in_leaf": 20,
        "feature_fraction": 0.9,
        "bagging_fraction": 0.9,
        "bagging_freq": 1,
        "lambdarank_truncation_level": 20,
        "num_threads": 2,
        "seed": seed,
        "deterministic": True,
        "verbose": -1,
    } | params
    dtrain = lgb.Dataset(
        _matrix(tr, features), tr["label"].to_numpy(), group=_group_sizes(tr), feature_name=features
    )
    dvalid = lgb.Dataset(
        _matrix(va, features), va["label"].to_numpy(), group=_group_sizes(va), reference=dtrain
    )
    t0 = time.perf_counter()
    booster = lgb.train(
        p,
        dtrain,
        num_boost_round=rounds,
        valid_sets=[dvalid],
        callbacks=[lgb.early_stopping(early_stopping, verbose=False)],
    )
    secs = time.perf_counter() - t0
    imp = pd.Series(booster.feature_importance("gain"), index=features).sort_values(ascending=False)
    return FitResult(
        LightGBMScorer(booster, features),
        secs,
        int(booster.best_iteration or rounds),
        imp,
        p | {"rounds": rounds},
    )


def fit_xgboost(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    features: list[str],
    *,
    rounds: int = 300,
    early_stopping: int = 30,
    seed: int = 7,
    **params: Any,
) -> FitResult:
    """XGBoost rank:ndcg on the same frames, early-stopped on the validation NDCG@10."""
    import xgboost as xgb

    tr, va = _fit_groups(train, valid)
    p = {
        "objective": "rank:ndcg",
        "eval_metric": "ndcg@10",
        "eta": 0.05,
        "max_depth": 6,
        "min_child_weight": 1.0,
        "subsample": 0.9,
        "colsample_bytree": 0.9,
        "tree_method": "hist",
        "nthread": 2,
        "seed": seed,
        "lambdarank_pair_method": "topk",
        "lambdarank_num_pair_per_sample": 20,
    } | params
    dtrain = xgb.DMatrix(_matrix(tr, features), label=tr["label"].to_numpy(), feature_names=features)
    dtrain.set_group(_group_sizes(tr))
    dvalid = xgb.DMatrix(_matrix(va, features), label=va["label"].to_numpy(), feature_names=features)
    dvalid.set_group(_group_sizes(va))
    t0 = time.perf_counter()
    booster = xgb.train(
        p,
        dtrain,
        num_boost_round=rounds,
        evals=[(dvalid, "valid")],
        early_stopping_rounds=early_stopping,
        verbose_eval=False,
    )
    secs = time.perf_counter() - t0
    gain = booster.get_score(importance_type="total_gain")
    imp = pd.Series({f: gain.get(f, 0.0) for f in features}).sort_values(ascending=False)
    return FitResult(
        XGBoostScorer(booster, features), secs, int(booster.best_iteration), imp, p | {"rounds": rounds}
    )


class TwoStageRecommender:
    """Scores a cut's candidate frame with a scorer, then applies the business rules (a recommender)."""

    def __init__(
        self,
        scorer: Scorer,
        frame: pd.DataFrame,
        items: pd.DataFrame,
        purchased: pd.DataFrame,
        backfill: Backfill,
        rules: RuleConfig = RuleConfig(),
        scored: pd.DataFrame | None = None,
    ) -> None:
        self.scorer = scorer
        self.name = scorer.name
        # the scorer's scores of some users, already computed (an evaluation under many rule sets);
        # users outside them are scored as usual
        self.scored = scored
        self._scored_users = set() if scored is None else set(scored["user_id"].astype("int64"))
        self.frame = frame
        self.items = items
        self.purchased = purchased
        self.backfill = backfill
        self.rules = rules
        self.last_stats = RuleStats()
        self.model_version = scorer.name  # the registry sets "name/version" for published lists

    def score(self, user_ids: Sequence[int] | None = None) -> pd.DataFrame:
        """(user_id, item_id, score) for the candidates of ``user_ids`` (all when None)."""
        if self.scored is not None and user_ids is not None:
            wanted = set(int(u) for u in user_ids)
            if wanted == self._scored_users:  # every evaluation of a holdout asks for all of them
                return self.scored
            if wanted < self._scored_users:
                return self.scored[self.scored["user_id"].isin(wanted)].reset_index(drop=True)
        f = (
            self.frame
            if user_ids is None
            else self.frame[self.frame["user_id"].isin(set(int(u) for u in user_ids))]
        )
        return pd.DataFrame(
            {
                "user_id": f["user_id"].to_numpy(),
                "item_id": f["item_id"].to_numpy(),
                "score": self.scorer.predict(f),
            }
        )

    def recommend(self, user_ids: list[int], n: int) -> pd.DataFrame:
        scored = self.score(user_ids).assign(source=self.name)
        scored = scored.sort_values(["user_id", "score"], ascending=[True, False], kind="stable")
        out, self.last_stats = apply_rules(
            scored, user_ids, n, self.items, self.purchased, self.backfill, self.rules
        )
        return out
