"""Registered-model commands: re-evaluate a version by alias on the newest holdout (``recsys
evaluate``) and re-run the promotion gate for a version (``recsys promote``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from ml.config import Settings, get_settings
from ml.features.candidates import build_features
from ml.features.datasets import load_cut, load_intents, log_profile, max_event_ts
from ml.features.protocol import choose_task, make_split
from ml.registry import gate, store
from ml.registry.champion import registered_recommender, rules_from_spec
from ml.training.config import Step, TrainConfig, noop
from ml.training.cuts import session_variant
from ml.training.holdout import Holdout, basket_cut, evaluate_all, headline, make_holdout


def champion_metrics(client: Any, name: str, holdout: Holdout, cfg: TrainConfig) -> dict[str, float] | None:
    """The current champion re-evaluated on this holdout (None when there is no champion yet)."""
    mv = store.alias_version(client, name, store.CHAMPION)
    if mv is None:
        return None
    return holdout.evaluate(
        registered_recommender(client, name, mv.version, holdout.cut, holdout.backfill), cfg.n
    )


def _version_on_cut(
    s: Settings,
    client: Any,
    name: str,
    version: str,
    cut_ts: pd.Timestamp,
    label_hours: float,
    task: str,
    cfg: TrainConfig,
    step: Step,
) -> tuple[Holdout, dict[str, dict[str, float]], dict[str, float]]:
    """(holdout of ``task``, every baseline's metrics, the version's metrics) on one point-in-time cut."""
    cfg = replace(
        cfg, rules=rules_from_spec(store.load_spec(client, name, version))
    )  # baselines: the same rules
    step(f"dbt point-in-time build: test cut {cut_ts}")
    cut = load_cut(s, cut_ts, label_hours, history_days=cfg.history_days)
    if task == "session":
        cut = session_variant(s, cut, within=True, seed=cfg.seed)
    elif task == "next_basket":
        cut = basket_cut(cut)
    holdout = make_holdout(cut, build_features(cut), load_intents(s))
    baselines = evaluate_all(holdout, {}, cfg, step)
    step(f"evaluate version {version}")
    metrics = holdout.evaluate(registered_recommender(client, name, version, cut, holdout.backfill), cfg.n)
    return holdout, baselines, metrics


def _open(settings: Settings | None, config: TrainConfig | None) -> tuple[Settings, TrainConfig, Any, str]:
    """Settings, config, MLflow client and registered model name for one command."""
    s = settings or get_settings()
    return s, config or TrainConfig(), store.configure(s), store.model_name(s)


def evaluate(
    settings: Settings | None = None,
    config: TrainConfig | None = None,
    alias: str = "champion",
    step: Step = noop,
) -> dict[str, Any]:
    """Re-evaluate a registered version (by alias) and the baselines on the newest holdout; logs an MLflow run."""
    import mlflow

    s, cfg, client, name = _open(settings, config)
    mv = store.alias_version(client, name, alias)
    if mv is None:
        raise RuntimeError(f"model '{name}' has no '{alias}' version yet: run `recsys train` first")
    spec = store.load_spec(client, name, mv.version)
    choice = choose_task(
        log_profile(s), 1, cfg.task if cfg.task != "auto" else spec.get("task", "auto"), cfg.label_hours
    )
    step(f"task {choice.reason}")
    split = make_split(max_event_ts(s), choice.label_hours, 1)
    _, results, metrics = _version_on_cut(
        s, client, name, mv.version, split.test_cut, choice.label_hours, choice.task, cfg, step
    )
    results[alias] = metrics
    with mlflow.start_run(run_name=f"evaluate-{alias}") as run:
        mlflow.log_params(
            split.as_params() | {"model_version": mv.version, "alias": alias, "task": choice.task}
        )
        for model, m in results.items():
            mlflow.log_metrics(
                {store.mlflow_key(f"{model}.{k}"): float(v) for k, v in m.items() if np.isfinite(v)}
            )
    return {
        "run_id": run.info.run_id,
        "version": mv.version,
        "test_cut": split.as_params()["test_cut"],
        "task": choice.task,
        "metrics": headline(results),
    }


def promote(
    settings: Settings | None = None,
    version: str | None = None,
    config: TrainConfig | None = None,
    step: Step = noop,
) -> dict[str, Any]:
    """Run the gate for ``version`` (default: the challenger) on its own test cut, against the champion."""
    s, cfg, client, name = _open(settings, config)
    if version is None:
        mv = store.alias_version(client, name, store.CHALLENGER)
        if mv is None:
            raise RuntimeError(f"model '{name}' has no challenger: run `recsys train` first")
        version = mv.version
    champ_mv = store.alias_version(client, name, store.CHAMPION)
    if champ_mv is not None and str(champ_mv.version) == str(version):
        return {
            "version": str(version),
            "promoted": False,
            "reason": f"version {version} is already the champion",
        }
    spec = store.load_spec(client, name, str(version))
    cut_ts, label_hours = pd.Timestamp(spec["test_cut"]), float(spec["label_hours"])
    holdout, baselines, challenger = _version_on_cut(
        s, client, name, str(version), cut_ts, label_hours, spec.get("task", "next_day"), cfg, step
    )
    champion = champion_metrics(client, name, holdout, cfg) if champ_mv is not None else None
    decision = gate.gate_decision(challenger, champion, baselines, margin=cfg.margin)
    gate.set_aliases(client, name, str(version), decision)
    return {"version": str(version), **decision.as_dict()}
