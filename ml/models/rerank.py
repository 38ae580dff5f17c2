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


def group_rows(frame: pd.DataFrame, keys: Sequence[str], label: str = "label") -> np.ndarray:
    """Positions of the rows of groups (``keys``) with at least one positive ``label``, sorted by
    group, then item (the order the libraries need; stable): only the key columns are copied."""
    keys = list(keys)
    positive = frame.groupby(keys)[label].transform("max").to_numpy() > 0
    narrow = frame[[*keys, "item_id"]].reset_index(drop=True)[positive]
    return narrow.sort_values([*keys, "item_id"], kind="stable").index.to_numpy()


def ranking_groups(frame: pd.DataFrame, label: str = "label") -> pd.DataFrame:
    """Rows of groups with at least one positive, sorted by group (the order the libraries need)."""
    return frame.take(group_rows(frame, group_keys(frame), label)).reset_index(drop=True)


@dataclass(frozen=True)
class RankingData:
    """What a learning-to-rank library fits on: the feature matrix, labels and group sizes of the
    rows :func:`group_rows` picks, in its order, taken column by column from the frame (fitting
    on a stacked frame of several cuts no longer copies every column of it)."""

    x: np.ndarray
    y: np.ndarray
    groups: np.ndarray

    @classmethod
    def of(
        cls, frame: pd.DataFrame, features: Sequence[str], keys: Sequence[str], label: str = "label"
    ) -> RankingData:
        rows = group_rows(frame, keys, label)
        sizes = frame[list(keys)].take(rows).groupby(list(keys), sort=False).size().to_numpy()
        return cls(feature_matrix(frame, features, rows), frame[label].to_numpy()[rows], sizes)


def feature_matrix(
    frame: pd.DataFrame, features: Sequence[str], rows: np.ndarray | None = None
) -> np.ndarray:
    """``frame[features]`` as float32 (through float64, as ``astype(float)``), only ``rows`` when given;
    column-major, as pandas lays out a frame's values (each column is one contiguous write)."""
    if rows is None:
        return frame[list(features)].astype(float).to_numpy(dtype=np.float32)
    out = np.empty((len(rows), len(features)), dtype=np.float32, order="F")
    for j, name in enumerate(features):
        out[:, j] = frame[name].astype(float).to_numpy()[rows]
    return out


class LightGBMScorer:
    """A LightGBM booster over a fixed feature list."""

    name = "lightgbm"

    def __init__(self, booster: Any, features: list[str]) -> None:
        self.booster = booster
        self.features = features

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.booster.predict(feature_matrix(frame, self.features)), dtype=float)


class XGBoostScorer:
    """An XGBoost booster over a fixed feature list."""

    name = "xgboost"

    def __init__(self, booster: Any, features: list[str]) -> None:
        self.booster = booster
        self.features = features

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        import xgboost as xgb

        dm = xgb.DMatrix(feature_matrix(frame, self.features), feature_names=self.features)
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


def _fit_groups(
    train: pd.DataFrame, valid: pd.DataFrame, features: Sequence[str]
) -> tuple[RankingData, RankingData]:
    """The users with a positive candidate in each frame (a ranker learns nothing from the others)."""
    tr = RankingData.of(train, features, group_keys(train))
    va = RankingData.of(valid, features, group_keys(valid))
    if not len(tr.y) or not len(va.y):
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

    tr, va = _fit_groups(train, valid, features)
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
    dtrain = lgb.Dataset(tr.x, tr.y, group=tr.groups, feature_name=features)
    dvalid = lgb.Dataset(va.x, va.y, group=va.groups, reference=dtrain)
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

    tr, va = _fit_groups(train, valid, features)
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
    dtrain = xgb.DMatrix(tr.x, label=tr.y, feature_names=features)
    dtrain.set_group(tr.groups)
    dvalid = xgb.DMatrix(va.x, label=va.y, feature_names=features)
    dvalid.set_group(va.groups)
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
