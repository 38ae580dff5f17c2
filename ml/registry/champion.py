"""The serving recommender assembled from the registry: the ``champion`` reranker (with the TF models
its spec names) over the current marts. Publish and refresh load it through here, so the 5-minute
refresh never imports the training package.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ml.config import Settings, get_settings
from ml.features.datasets import CutData, load_cut, with_users
from ml.models.baselines import build_baselines, intent_from_marts, popularity_scores
from ml.models.rerank import LightGBMScorer, TwoStageRecommender
from ml.models.rules import Backfill, RuleConfig, RuledRecommender
from ml.models.tf.stage import cut_frame, load_tf_stage
from ml.registry import store

#: days of raw events a serving recommender reads (``load_cut``'s history)
HISTORY_DAYS = 30


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
    return _Registered(client, name, version).over(cut, backfill)


def version_label(name: str, version: str, spec: dict[str, Any]) -> str:
    """The ``model_version`` a registered version's lists carry: ``name/version`` (a reranker) or
    ``name/version:baseline-<name>``."""
    return f"{name}/{version}" + (f":baseline-{spec['baseline']}" if spec["kind"] == "baseline" else "")


def champion_label(settings: Settings | None = None) -> str:
    """The champion's ``model_version`` from the registry alone (its spec; no marts, no model load):
    what the refresh guard compares with the serving full publish. No champion raises
    :class:`~ml.registry.store.NoChampionError`."""
    s = settings or get_settings()
    client = store.configure(s)
    name = store.model_name(s)
    mv = store.alias_version(client, name, store.CHAMPION)
    if mv is None:
        raise store.NoChampionError(
            f"no '{store.CHAMPION}' version of model '{name}' in {s.mlflow_tracking_uri}: run `recsys train` first"
        )
    return version_label(name, mv.version, store.load_spec(client, name, mv.version))


class _Registered:
    """One registered version, loaded once from the registry (spec, booster, TF models), to assemble
    over any cut."""

    def __init__(self, client: Any, name: str, version: str) -> None:
        self.spec = store.load_spec(client, name, version)
        self.model_version = version_label(name, version, self.spec)
        self.booster: Any = None
        self.tf: Any = None
        if self.spec["kind"] != "baseline":
            self.booster, self.spec = store.load_reranker(client, name, version)
            self.tf = load_tf_stage(self.spec.get("tf"))
        self.rules = rules_from_spec(self.spec)

    def over(self, cut: CutData, backfill: Backfill) -> Any:
        if self.booster is None:
            rec: Any = baseline_recommender(self.spec, cut, backfill)
        else:
            rec = recommender_from_spec(self.booster, self.spec, cut_frame(cut, self.tf), cut, backfill)
        rec.model_version = self.model_version
        return rec


class UserScopedRecommender:
    """A registered version for a refresh: each :meth:`recommend` reads the per-user marts
    (candidates, user features, session intent, user × item counts, purchases) of the users asked
    only, over the item-level tables and history read once. The lists equal those of the same
    version over a full load (:func:`load_aliases`), without building every user's candidate frame
    to re-score a few hundred (most of a refresh's time on a shop of a few thousand users)."""

    def __init__(self, settings: Settings, registered: _Registered, base: CutData) -> None:
        self._settings, self._registered, self._base = settings, registered, base
        self._popularity = popularity_scores(base.history, base.now)
        self.model_version = registered.model_version
        self.rules = registered.rules

    @property
    def history(self) -> pd.DataFrame:
        """The raw events of the :data:`HISTORY_DAYS` up to the newest, read once for every batch: the
        refresh builds its search context from this frame too instead of reading it again."""
        return self._base.history

    def cut_for(self, users: list[int]) -> CutData:
        """The serving view holding ``users``' per-user rows (and item-level tables whole)."""
        return with_users(self._settings, self._base, users)

    def recommend(self, user_ids: list[int], n: int) -> pd.DataFrame:
        cut = self.cut_for(list(user_ids))
        backfill = Backfill.from_popularity(self._popularity, cut.items, intent_from_marts(cut.intent))
        return self._registered.over(cut, backfill).recommend(user_ids, n)


def load_champion(settings: Settings | None = None) -> TwoStageRecommender:
    """The champion reranker over the current marts (serving view, no cut) — what publishing scores with."""
    return load_aliases(settings, (store.CHAMPION,))[0]


def load_aliases(settings: Settings | None, aliases: tuple[str, ...], *, scoped: bool = False) -> list[Any]:
    """The versions holding ``aliases`` as recommenders over one load of the current marts (the A/B full
    publish scores with ``champion`` and ``challenger``). A missing champion raises
    :class:`~ml.registry.store.NoChampionError`; any other missing alias gives None in its place.

    ``scoped`` (a refresh): :class:`UserScopedRecommender` s, which read the per-user marts of the
    users they score at each call instead of every user's now."""
    s = settings or get_settings()
    client = store.configure(s)
    name = store.model_name(s)
    versions = [store.alias_version(client, name, alias) for alias in aliases]
    if store.CHAMPION in aliases and versions[aliases.index(store.CHAMPION)] is None:
        raise store.NoChampionError(
            f"no '{store.CHAMPION}' version of model '{name}' in {s.mlflow_tracking_uri}: run `recsys train` first"
        )
    if scoped:
        base = load_cut(s, None, users=(), history_days=HISTORY_DAYS)  # item-level tables and history, once
        return [
            None if mv is None else UserScopedRecommender(s, _Registered(client, name, mv.version), base)
            for mv in versions
        ]
    cut = load_cut(s, None)
    backfill = Backfill.from_popularity(
        popularity_scores(cut.history, cut.now), cut.items, intent_from_marts(cut.intent)
    )
    return [
        None if mv is None else registered_recommender(client, name, mv.version, cut, backfill)
        for mv in versions
    ]
