"""The TensorFlow stage of the pipeline: two-tower retrieval as one more candidate source, and the
DIN ranker's score as one more reranker feature (``tf_score``). The models live in ``ml.models.tf``;
this module only wires them to the cuts (point in time) and to MLflow.

Leakage discipline: the two-tower learns from events before the *first* training cut; the ranker
learns on the training cuts' rows and early-stops on the validation cut. The test cut is never seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml.contracts import CANDIDATE_SCORES, ITEM_FEATURES
from ml.features.datasets import CutData
from ml.models.tf.features import TOKEN_MIN_USERS

CONTEXT_COLUMNS = ["user_id", "last_items", "last_categories", "query_terms"]
PAIR_FEATURES = (
    *CANDIDATE_SCORES,
    "two_tower_score",
    "n_sources",
    "intent_strength",
    "intent_match",
    "recent_category_share",
    "user_top_category_match",
    "price_vs_user",
)


@dataclass
class TFSettings:
    """Small defaults: the CPU here is shared; a GPU host raises epochs and sizes."""

    retrieve_k: int = 50
    token_min_users: int = TOKEN_MIN_USERS  # both models; a value in two_tower/ranker wins for that model
    two_tower: dict[str, Any] = field(default_factory=lambda: {"epochs": 3, "batch_size": 512})
    ranker: dict[str, Any] = field(
        default_factory=lambda: {"epochs": 4, "patience": 1, "negative_rate": 0.3, "batch_size": 1024}
    )


@dataclass
class TFStage:
    """Fitted TF models (either may be None) and how many items retrieval returns."""

    two_tower: Any = None
    ranker: Any = None
    retrieve_k: int = 50
    fit_seconds: dict[str, float] = field(default_factory=dict)

    def candidates(self, cut: CutData) -> dict[str, pd.DataFrame]:
        """``{"two_tower": (user_id, item_id, score)}`` for the cut's users (purchases excluded)."""
        if self.two_tower is None:
            return {}
        ctx = user_contexts(cut)
        catalogue = cut.items[["item_id", "category_id", "brand", "price"]]
        self.two_tower.set_catalogue(catalogue)
        got = self.two_tower.retrieve(ctx, self.retrieve_k, exclude=cut.purchased[["user_id", "item_id"]])
        return {"two_tower": got.astype({"user_id": "int64", "item_id": "int64"})}

    def scores(self, cut: CutData, frame: pd.DataFrame) -> pd.DataFrame | None:
        """(user_id, item_id, tf_score) for every candidate row of ``frame`` (None without a ranker)."""
        if self.ranker is None:
            return None
        rows = ranker_rows(cut, frame)
        return pd.DataFrame(
            {
                "user_id": rows["user_id"].to_numpy(),
                "item_id": rows["item_id"].to_numpy(),
                "tf_score": self.ranker.score(rows),
            }
        )


def user_contexts(cut: CutData) -> pd.DataFrame:
    """One row per user seen before the cut: the session context the TF models read."""
    ctx = (
        cut.intent[[c for c in CONTEXT_COLUMNS if c in cut.intent.columns]].drop_duplicates("user_id").copy()
    )
    for c in CONTEXT_COLUMNS[1:]:
        ctx[c] = ctx[c].fillna("") if c in ctx else ""
    return ctx.astype({"user_id": "int64"}).reset_index(drop=True)


def ranker_rows(cut: CutData, frame: pd.DataFrame) -> pd.DataFrame:
    """Frame rows with what the DIN ranker needs: text context, item title/category/brand, labels."""
    from ml.models.tf.ranker_inputs import attach_context

    rows = frame.drop(columns=[c for c in ("last_items", "last_categories") if c in frame.columns])
    items = cut.items[["item_id", "title", "category"] + [c for c in ("brand",) if c not in rows.columns]]
    rows = attach_context(rows, cut.intent.astype({"user_id": "int64"}), items=items)
    rows["brand"] = rows["brand"].fillna("")
    rows["price"] = rows["price"].astype(float)
    for c in ("clicked", "carted", "purchased"):
        if c not in rows:
            rows[c] = 0
    return rows


def _present(frame: pd.DataFrame, names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(c for c in names if c in frame.columns)


def fit_two_tower_stage(first: CutData, cfg: TFSettings) -> Any:
    """Two-tower on next-item examples from the events before the first training cut."""
    from ml.models.tf.sequences import sequences_from_events
    from ml.models.tf.two_tower import TwoTowerConfig, fit_two_tower

    seqs = sequences_from_events(first.history)
    if len(seqs) < 2:
        raise ValueError(f"too few events before {first.cut_ts} to train the two-tower model")
    catalogue = first.items[["item_id", "category_id", "brand", "price"]]
    return fit_two_tower(
        seqs, catalogue, TwoTowerConfig(**{"token_min_users": cfg.token_min_users, **cfg.two_tower})
    )


def fit_ranker_stage(
    train: list[tuple[CutData, pd.DataFrame]], valid: tuple[CutData, pd.DataFrame], cfg: TFSettings
) -> Any:
    """DIN ranker on the training cuts' candidate rows, early-stopped on the validation cut."""
    from ml.models.tf.ranker import fit_ranker
    from ml.models.tf.ranker_config import RankerConfig

    tr = pd.concat([ranker_rows(c, f) for c, f in train], ignore_index=True)
    va = ranker_rows(*valid)
    rcfg = RankerConfig(
        user_features=_present(tr, PAIR_FEATURES)
        + tuple(c for c in tr.columns if c.startswith(("u_n_", "ui_"))),
        item_features=_present(tr, ITEM_FEATURES),
        **{"token_min_users": cfg.token_min_users, **cfg.ranker},
    )
    catalogue = (
        valid[0]
        .items[["item_id", "category_id", "brand", "price", "title", "category"]]
        .assign(brand=lambda d: d["brand"].fillna(""))
    )
    return fit_ranker(tr, va, rcfg, items=catalogue)


def log_tf_stage(stage: TFStage) -> dict[str, str]:
    """Log both models into the active MLflow run; returns their model URIs for the reranker spec."""
    from ml.models.tf.persist import log_ranker, log_two_tower

    uris: dict[str, str] = {}
    if stage.two_tower is not None:
        uris["two_tower_uri"] = log_two_tower(stage.two_tower).model_uri
    if stage.ranker is not None:
        uris["ranker_uri"] = log_ranker(stage.ranker).model_uri
    uris["retrieve_k"] = str(stage.retrieve_k)
    return uris


def load_tf_stage(spec_tf: dict[str, str] | None) -> TFStage:
    """The TF models a registered reranker depends on (empty stage when it has none)."""
    if not spec_tf:
        return TFStage()
    from ml.models.tf.persist import load_ranker, load_two_tower

    return TFStage(
        two_tower=load_two_tower(spec_tf["two_tower_uri"]) if spec_tf.get("two_tower_uri") else None,
        ranker=load_ranker(spec_tf["ranker_uri"]) if spec_tf.get("ranker_uri") else None,
        retrieve_k=int(spec_tf.get("retrieve_k", 50)),
    )


def cut_frame(cut: CutData, stage: TFStage) -> pd.DataFrame:
    """Candidate features of a cut with the TF source and score when the stage has them."""
    from ml.features.candidates import build_features

    frame = build_features(cut, stage.candidates(cut))
    scores = stage.scores(cut, frame)
    if scores is not None:
        frame = frame.merge(scores, on=["user_id", "item_id"], how="left")
        frame["tf_score"] = (
            frame["tf_score"]
            .astype(float)
            .fillna(float(np.nanmin(scores["tf_score"])) if len(scores) else 0.0)
        )
    return frame
