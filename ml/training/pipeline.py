"""The training chain as plain functions (CLI commands and Airflow tasks call these).

``train_pipeline``: split → point-in-time dbt builds per cut → candidates and features → (TF models)
→ LightGBM and XGBoost rerankers → every model and baseline evaluated on the test cut over full
ranking → one MLflow run with params, metrics, table and plots → LightGBM registered as challenger →
promotion gate. Returns a small JSON-able dict.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

import numpy as np
import pandas as pd

from ml.config import Settings, get_settings
from ml.features.candidates import feature_columns
from ml.features.datasets import CutData, load_intents, log_profile, max_event_ts
from ml.features.protocol import TaskChoice, choose_task, make_split
from ml.models.rerank import FitResult, fit_lightgbm, fit_xgboost, ranking_groups
from ml.models.tf.stage import log_tf_stage
from ml.search.train import train_search
from ml.training.beside import Beside
from ml.training.config import Step, TrainConfig, noop
from ml.training.cuts import features_with_tf, load_cuts, reranker_train_cuts
from ml.training.holdout import (
    Holdout,
    basket_cut,
    candidate_recall_metrics,
    evaluate_holdout,
    headline,
    make_holdout,
    measure_mmr,
)
from ml.training.overlap import BesideBuilds
from ml.training.promotion import register_and_gate
from ml.training.rules_choice import choose_rules, describe, rule_ablation
from ml.training.run_log import log_mmr, log_run, row_counts
from ml.training.timing import StageTimer


def _shuffled(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Labels permuted across rows: the model can learn nothing real (the gate must refuse it)."""
    out = frame.copy()
    out["label"] = np.random.default_rng(seed).permutation(out["label"].to_numpy())
    return out


def fit_rerankers(
    train: pd.DataFrame, valid: pd.DataFrame, cfg: TrainConfig, step: Step = noop
) -> dict[str, FitResult]:
    """LightGBM (always) and XGBoost (when configured) on the same frames and features."""
    features = feature_columns(train)
    if cfg.shuffle_labels:
        train, valid = _shuffled(train, cfg.seed), _shuffled(valid, cfg.seed + 1)
    step("fit LightGBM lambdarank")
    fits = {
        "lightgbm": fit_lightgbm(
            train, valid, features, rounds=cfg.rounds, early_stopping=cfg.early_stopping, seed=cfg.seed
        )
    }
    if cfg.xgboost:
        step("fit XGBoost rank:ndcg")
        fits["xgboost"] = fit_xgboost(
            train, valid, features, rounds=cfg.rounds, early_stopping=cfg.early_stopping, seed=cfg.seed
        )
    return fits


def _holdouts(
    choice: TaskChoice,
    cuts: dict[str, CutData],
    frames: dict[str, pd.DataFrame],
    intents: pd.DataFrame,
    name: str,
) -> dict[str, Holdout]:
    """The holdouts of cut ``name`` ("test" or "val") per task: next-day always, rest-of-session when
    the session variant was built, next-basket when it is the run's task."""
    out = {"next_day": make_holdout(cuts[name], frames[name], intents)}
    if f"session_{name}" in cuts:
        out["session"] = make_holdout(cuts[f"session_{name}"], frames[f"session_{name}"], intents)
    if choice.task == "next_basket":
        out["next_basket"] = make_holdout(basket_cut(cuts[name]), frames[name], intents)
    return out


def train_pipeline(
    settings: Settings | None = None,
    config: TrainConfig | None = None,
    step: Step = noop,
    cache: dict[tuple, CutData] | None = None,
) -> dict[str, Any]:
    """The whole chain; returns ``{run_id, task, version, promoted, reason, champion, metrics, ...}``.

    The task (and its label window) comes from the log unless the config names one; the gate, the
    rule choice and the baseline champion all use that task's holdout ("primary")."""
    import mlflow

    from ml.registry import store

    s = settings or get_settings()
    asked = config or TrainConfig()
    step = timer = StageTimer(step)
    choice = choose_task(log_profile(s), asked.n_train_cuts, asked.task, asked.label_hours)
    step(f"task {choice.reason}")
    # an order history has no "rest of session" (an invoice's lines share one time): no session builds
    sessions = choice.task != "next_basket"
    cfg = replace(
        asked,
        task=choice.task,
        label_hours=choice.label_hours,
        session_task=asked.session_task and sessions,
        session_train=asked.session_train and sessions,
    )
    split = make_split(max_event_ts(s), choice.label_hours, cfg.n_train_cuts)
    # each cut's search rows and candidate features are computed on a second thread while the next
    # cut builds (the builds leave a core idle): the same frames, taken below (ml.training.overlap)
    with Beside() as beside:
        hook = BesideBuilds(beside, cfg)
        cuts = load_cuts(s, split, cfg, step, cache, ready=hook)
        # the search stage reads every cut's label window before the recommender samples and frees them
        searched = train_search(s, cuts, split, cfg, step, beside)
        cuts = {k: hook.learning_cut(k, c) for k, c in cuts.items()}
        stage, frames = features_with_tf(cuts, cfg, step, beside)
        beside_seconds = beside.seconds
    counts = row_counts(cuts, frames)
    train_cuts = reranker_train_cuts(frames, cfg)
    # only the validation and test cuts are read after fitting: the training cuts and frames (most of
    # the memory on a log of 60k+ users) are freed as they are stacked, and only groups with a
    # positive are kept (the rankers learn nothing from the others); one group per user and cut
    train = pd.concat([ranking_groups(frames.pop(k).assign(cut=k)) for k in train_cuts], ignore_index=True)
    for key in [k for k in cuts if k.startswith(("train_", "session_train_"))]:  # frames are keyed by cut
        del cuts[key]
        frames.pop(key, None)
    valid = pd.concat(
        [ranking_groups(frames[k].assign(cut=k)) for k in ("val", "session_val") if k in frames],
        ignore_index=True,
    )
    fits = fit_rerankers(train, valid, cfg, step)
    del train, valid
    intents = load_intents(s)
    rule_tables: dict[str, pd.DataFrame] = {}
    if cfg.learn_rules or cfg.mmr:
        validation = _holdouts(choice, cuts, frames, intents, "val")[choice.task]
    if cfg.learn_rules:
        rules, rule_tables["rule_choice"] = choose_rules(fits["lightgbm"], validation, cfg.rules, cfg.n, step)
        cfg = replace(cfg, rules=rules)
        step(f"rules chosen on the validation cut: {describe(rules)}")
    tasks: dict[str, dict[str, Any]] = {}
    for task, holdout in _holdouts(choice, cuts, frames, intents, "test").items():
        step(f"evaluate the {task} task of the test cut")
        results = evaluate_holdout(holdout, fits, stage, cfg, step)
        tasks[task] = {
            "holdout": holdout,
            "candidates": candidate_recall_metrics(holdout),
            "results": results,
        }
    primary = tasks[choice.task]
    if cfg.rule_ablation:
        rule_tables["rule_ablation"] = rule_ablation(primary["holdout"], fits, cfg, primary["results"], step)
    # measured, never applied to what is published: the λ and its trade-off are reported only
    mmr = measure_mmr(validation, primary["holdout"], fits["lightgbm"], cfg, step) if cfg.mmr else None
    client = store.configure(s)
    name = store.model_name(s)
    step("log to MLflow")
    with mlflow.start_run(run_name="train") as run:
        log_run(tasks, choice, fits, counts, train_cuts, split, cfg, rule_tables)
        if mmr is not None:
            log_mmr(mmr, "lightgbm")
        out: dict[str, Any] = {
            "run_id": run.info.run_id,
            "task": {"task": choice.task, "label_hours": choice.label_hours, "reason": choice.reason},
            "rules": describe(cfg.rules),
            "split": split.as_params(),
            "candidates": tasks["next_day"]["candidates"],
            "metrics": headline(tasks["next_day"]["results"]),
            "primary": headline(primary["results"]),
            "primary_candidates": primary["candidates"],
            "eval_users": {t: len(v["holdout"].eval_users) for t, v in tasks.items()},
            "session": {
                "candidates": tasks["session"]["candidates"],
                "metrics": headline(tasks["session"]["results"]),
                "eval_users": len(tasks["session"]["holdout"].eval_users),
            }
            if "session" in tasks
            else None,
            "rule_ablation": rule_tables["rule_ablation"].to_dict()
            if "rule_ablation" in rule_tables
            else None,
            "fit_seconds": {k: f.fit_seconds for k, f in fits.items()} | stage.fit_seconds,
            "version": None,
            "promoted": False,
            "reason": "registration disabled",
            "champion": None,
            "search": searched,
            "mmr": {
                "lambda": mmr["lambda"],
                "rule": mmr["rule"],
                "val": mmr["val"].to_dict(orient="index"),
                "test": mmr["test"].to_dict(orient="index"),
            }
            if mmr is not None
            else None,
        }
        mlflow.set_tags(
            {"search_run_id": searched.get("run_id", ""), "search_skipped": str(searched["skipped"])}
        )
        if cfg.register:
            lgbm = fits["lightgbm"]
            spec = {
                "kind": "lightgbm",
                "n": cfg.n,
                "rules": asdict(cfg.rules),
                "tf": log_tf_stage(stage) if cfg.use_tf else None,
                "test_cut": split.as_params()["test_cut"],
                "label_hours": choice.label_hours,
                "task": choice.task,
            }
            out.update(
                register_and_gate(
                    client,
                    name,
                    lgbm.scorer,
                    spec,
                    frames["test"],
                    primary["results"],
                    primary["holdout"],
                    cfg,
                    step,
                )
            )
        timer.stop()
        out["stage_seconds"] = timer.table()
        mlflow.log_dict({"stages": out["stage_seconds"], "total": timer.total()}, "stage_seconds.json")
        mlflow.log_metric("train_seconds", timer.total())
        # the work done beside the cut builds is not in the stage table (it overlapped the builds)
        out["beside_builds_seconds"] = round(beside_seconds, 3)
        mlflow.log_metric("beside_builds_seconds", out["beside_builds_seconds"])
    return out
