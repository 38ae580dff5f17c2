"""The serving recommender assembled from the registry: the ``champion`` reranker (with the TF models
its spec names) over the current marts. Publish and refresh load it through here, so the 5-minute
refresh never imports the training package.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ml.config import Settings, get_settings
from ml.features.datasets import CutData, load_cut
from ml.models.baselines import build_baselines, intent_from_marts, popularity_scores
from ml.models.rerank import LightGBMScorer, TwoStageRecommender
from ml.models.rules import Backfill, RuleConfig, RuledRecommender
from ml.models.tf.stage import cut_frame, load_tf_stage
from ml.registry import store


def frame_for_spec(cut: CutData, spec: dict[str, Any]) -> pd.DataFrame:
    """The candidate frame a registered reranker expects: with its own TF models when it has them."""
    return cut_frame(cut, load_tf_stage(spec.get("tf")))


def recommender_from_spec(
    booster: Any, spec: dict[str, Any], frame: pd.DataFrame, cut: CutData, backfill: Backfill
) -> TwoStageRecommender:
    """A registered reranker over a cut's candidate frame; features it needs but the frame lacks are 0."""
    features = list(spec["features"])
    missing = [f for f in features if f not in frame.columns]
    if missing:
        frame = frame.assign(**{f: 0.0 for f in missing})
    rules = rules_from_spec(spec)
    return TwoStageRecommender(
        LightGBMScorer(booster, features), frame, cut.items, cut.purchased, backfill, rules
    )


def rules_from_spec(spec: dict[str, Any]) -> RuleConfig:
    """The business rules a version was chosen with (JSON lists back to tuples)."""
    return RuleConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec.get("rules", {}).items()})


def baseline_recommender(spec: dict[str, Any], cut: CutData, backfill: Backfill) -> RuledRecommender:
    """A registered baseline (``kind: baseline``) over a cut, under the rules it was chosen with."""
    found = build_baselines(
        cut.history, cut.items, cut.covis, cut.now, intent_from_marts(cut.intent), cut.user_history
    )
    if spec["baseline"] not in found:
        raise ValueError(f"unknown baseline {spec['baseline']!r}; known: {sorted(found)}")
    return RuledRecommender(
        found[spec["baseline"]], cut.items, cut.purchased, backfill, rules_from_spec(spec)
    )


def registered_recommender(client: Any, name: str, version: str, cut: CutData, backfill: Backfill) -> Any:
    """One registered version as a recommender over ``cut``: a LightGBM reranker (with its own TF
    models, rules and features) or a baseline. ``model_version`` says which (``name/version`` and,
    for a baseline, ``:baseline-<name>``)."""
    spec = store.load_spec(client, name, version)
    if spec["kind"] == "baseline":
        rec: Any = baseline_recommender(spec, cut, backfill)
        rec.model_version = f"{name}/{version}:baseline-{spec['baseline']}"
        return rec
    booster, spec = store.load_reranker(client, name, version)
    rec = recommender_from_spec(booster, spec, frame_for_spec(cut, spec), cut, backfill)
    rec.model_version = f"{name}/{version}"
    return rec


def load_champion(settings: Settings | None = None) -> TwoStageRecommender:
    """The champion reranker over the current marts (serving view, no cut) — what publishing scores with."""
    return load_aliases(settings, (store.CHAMPION,))[0]


def load_aliases(settings: Settings | None, aliases: tuple[str, ...]) -> list[Any]:
    """The versions holding ``aliases`` as recommenders over one load of the current marts (the A/B full
    publish scores with ``champion`` and ``challenger``). A missing champion raises
    :class:`~ml.registry.store.NoChampionError`; any other missing alias gives None in its place."""
    s = settings or get_settings()
    client = store.configure(s)
    name = store.model_name(s)
    versions = [store.alias_version(client, name, alias) for alias in aliases]
    if store.CHAMPION in aliases and versions[aliases.index(store.CHAMPION)] is None:
        raise store.NoChampionError(
            f"no '{store.CHAMPION}' version of model '{name}' in {s.mlflow_tracking_uri}: run `recsys train` first"
        )
    cut = load_cut(s, None)
    backfill = Backfill.from_popularity(
        popularity_scores(cut.history, cut.now), cut.items, intent_from_marts(cut.intent)
    )
    return [
        None if mv is None else registered_recommender(client, name, mv.version, cut, backfill)
        for mv in versions
    ]
