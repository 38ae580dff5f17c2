"""The search stage of a training run: rows per cut, the ranker, both baselines, MLflow, registry, gate.

``train_pipeline`` calls :func:`train_search` right after the point-in-time cuts are read (before the
recommender frees its training cuts). The stage has its own MLflow experiment
(``<experiment>-search``): its metrics are per search, not per user, and its registered model
(``<recommender model>_search``) is gated on its own, so keeping its runs apart keeps both comparison
views readable; the recommender's run is tagged with the search run's id.

Gate: the new version is always ``challenger``; it becomes ``champion`` only when its validation-cut
NDCG@10 beats the best of the two baselines *and* the current champion (re-evaluated on the same
validation cut) by the configured margin. The test cut is reported, never used to decide.
A log with too few searches (the public logs have none) skips the stage with a reason.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.config import Settings
from ml.features.datasets import CutData
from ml.features.protocol import Split
from ml.search.context import FEATURES
from ml.search.cut_rows import search_sets
from ml.search.dataset import SearchSet
from ml.search.engagement import attribute, searches_of
from ml.search.ranker import BASELINES, PRIMARY_METRIC, RANKER, SearchRanker, evaluate_all, fit_ranker
from ml.search.serve import load_registered_ranker, search_model_name
from ml.training.beside import Beside
from ml.training.config import Step, TrainConfig, noop

SPEC_FILE = "search_spec.json"
#: fewer engaged searches than this in the training cuts (or a tenth of it in validation or test) and
#: the stage is skipped: a ranker fitted on a handful of searches says nothing
MIN_ENGAGED_SEARCHES = 50


@dataclass(frozen=True)
class Verdict:
    """The search gate's decision: promoted or not, and why (against which reference)."""

    promoted: bool
    reason: str
    reference_name: str
    reference: float
    challenger: float


def search_experiment(settings: Settings) -> str:
    return f"{settings.mlflow_experiment}-search"


def engaged_searches(cut: CutData) -> int:
    """Searches of the cut's label window with at least one attributed item engagement."""
    if cut.window is None or cut.window.empty:
        return 0
    s = searches_of(cut.window)
    return int(attribute(cut.window)["search_id"].nunique()) if len(s) else 0


def skip_reason(cuts: dict[str, CutData], train_names: list[str]) -> str | None:
    """Why the log cannot train a search ranker, or None when it can."""
    train = sum(engaged_searches(cuts[k]) for k in train_names)
    val, test = engaged_searches(cuts["val"]), engaged_searches(cuts["test"])
    floor = MIN_ENGAGED_SEARCHES // 10
    if train < MIN_ENGAGED_SEARCHES or val < floor or test < floor:
        return (
            f"too few searches followed by an item engagement (training cuts {train}, validation {val}, "
            f"test {test}; needs ≥ {MIN_ENGAGED_SEARCHES} / {floor} / {floor})"
        )
    return None


def gate(
    ranker: dict[str, float],
    baselines: dict[str, dict[str, float]],
    champion: dict[str, float] | None,
    margin: float,
) -> Verdict:
    """Promote only above ``(1 + margin) ×`` the best baseline and the champion on the validation cut."""
    refs = {b: baselines[b][PRIMARY_METRIC] for b in BASELINES}
    if champion is not None:
        refs["champion"] = champion[PRIMARY_METRIC]
    name = max(refs, key=refs.__getitem__)
    ref, value = refs[name], ranker[PRIMARY_METRIC]
    needed = ref * (1 + margin)
    ok = value >= needed and value > 0
    reason = (
        f"search ranker validation {PRIMARY_METRIC}={value:.4f} {'beats' if ok else 'does not beat'} "
        f"{name} {ref:.4f} by the margin {margin:.0%} (needs ≥ {needed:.4f})"
    )
    return Verdict(ok, reason, name, float(ref), float(value))


def train_search(
    settings: Settings,
    cuts: dict[str, CutData],
    split: Split,
    cfg: TrainConfig,
    step: Step = noop,
    beside: Beside | None = None,
) -> dict[str, Any]:
    """Fit, evaluate, log, register and gate the search ranker on the run's cuts (with the search
    rows already computed beside the cut builds, when ``beside`` holds them).

    Returns ``{skipped, reason, run_id?, metrics?, val_metrics?, version?, promoted?}``.
    """
    if not cfg.search:
        return {"skipped": True, "reason": "search stage switched off (TrainConfig.search)"}
    train_names = sorted(k for k in cuts if k.startswith("train_"))
    why = skip_reason(cuts, train_names)
    if why is not None:
        step(f"search ranker skipped: {why}")
        return {"skipped": True, "reason": why}
    sets = search_sets(cuts, [*train_names, "val", "test"], cfg.search_k, step, beside)
    train = pd.concat([sets[k].frame.assign(cut=k) for k in train_names], ignore_index=True)
    step("search: fit LightGBM lambdarank (groups = searches)")
    ranker = fit_ranker(
        train, sets["val"].frame, rounds=cfg.rounds, early_stopping=cfg.early_stopping, seed=cfg.seed
    )
    step("search: evaluate the ranker and both baselines (validation and test cuts)")
    val = evaluate_all(sets["val"], ranker)
    test = evaluate_all(sets["test"], ranker)
    return _log_register_gate(settings, sets, ranker, val, test, split, cfg, step)


def _log_register_gate(
    settings: Settings,
    sets: dict[str, SearchSet],
    ranker: SearchRanker,
    val: dict[str, dict[str, float]],
    test: dict[str, dict[str, float]],
    split: Split,
    cfg: TrainConfig,
    step: Step,
) -> dict[str, Any]:
    import mlflow

    from ml.registry import store

    client = store.configure(settings)
    exp = client.get_experiment_by_name(search_experiment(settings))
    exp_id = exp.experiment_id if exp is not None else client.create_experiment(search_experiment(settings))
    name = search_model_name(settings)
    step("search: log to MLflow, register, gate")
    with mlflow.start_run(run_name="train-search", experiment_id=exp_id) as run:
        _log(sets, ranker, val, test, split, cfg)
        out: dict[str, Any] = {
            "skipped": False,
            "reason": "",
            "run_id": run.info.run_id,
            "metrics": test,
            "val_metrics": val,
            "stats": {k: s.stats() for k, s in sets.items()},
            "version": None,
            "promoted": False,
        }
        if not cfg.register:
            out["reason"] = "registration disabled"
            return out
        version = log_search_ranker(ranker, sets["val"].frame, cfg, split, name)
        client.set_model_version_tag(name, version, store.SPEC_PATH_TAG, SPEC_FILE)
        champ_mv = store.alias_version(client, name, store.CHAMPION)
        champion = None
        if champ_mv is not None:
            found = load_registered_ranker(client, name, str(champ_mv.version))
            champion = evaluate_all(sets["val"], found)[RANKER]
            mlflow.log_metrics(_finite(champion, "search.val.champion."))
        verdict = gate(val[RANKER], val, champion, cfg.margin)
        client.set_registered_model_alias(name, store.CHALLENGER, version)
        client.set_model_version_tag(name, version, "gate", verdict.reason)
        if verdict.promoted:
            client.set_registered_model_alias(name, store.CHAMPION, version)
        mlflow.set_tags(
            {"gate_promoted": str(verdict.promoted), "gate_reason": verdict.reason, "model_version": version}
        )
        step(f"search gate: {verdict.reason}")
        out.update(version=version, promoted=verdict.promoted, reason=verdict.reason, gate=verdict.__dict__)
    return out


def _finite(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    from ml.registry.store import mlflow_key

    return {mlflow_key(f"{prefix}{k}"): float(v) for k, v in metrics.items() if np.isfinite(v)}


def comparison_table(results: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Models × metrics, with each model's NDCG@10 relative to both baselines."""
    table = pd.DataFrame(results).T
    table.index.name = "model"
    for b in BASELINES:
        table[f"ndcg@10_vs_{b}"] = table[PRIMARY_METRIC] / table.loc[b, PRIMARY_METRIC]
    return table


def _log(
    sets: dict[str, SearchSet],
    ranker: SearchRanker,
    val: dict[str, dict[str, float]],
    test: dict[str, dict[str, float]],
    split: Split,
    cfg: TrainConfig,
) -> None:
    import mlflow

    mlflow.log_params(
        split.as_params()
        | {
            "search_k": str(cfg.search_k),
            "rounds": str(cfg.rounds),
            "early_stopping": str(cfg.early_stopping),
            "margin": str(cfg.margin),
            "seed": str(cfg.seed),
            "features": ",".join(ranker.features),
        }
    )
    mlflow.log_metrics(
        {"search.best_iteration": float(ranker.best_iteration), "search.fit_seconds": ranker.fit_seconds}
    )
    for cut, s in sets.items():
        mlflow.log_metrics(_finite(s.stats(), f"search.rows.{cut}."))
    for model, m in test.items():
        mlflow.log_metrics(_finite(m, f"search.{model}."))
    for model, m in val.items():
        mlflow.log_metrics(_finite(m, f"search.val.{model}."))
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for label, results in (("", test), ("_val", val)):
            table = comparison_table(results)
            table.to_csv(d / f"search_comparison{label}.csv")
            (d / f"search_comparison{label}.md").write_text(table.to_markdown(floatfmt=".4f"))
        ranker.importance.rename("gain").to_csv(d / "search_importance.csv")
        mlflow.log_artifacts(str(d), artifact_path="report")


def log_search_ranker(
    ranker: SearchRanker, sample: pd.DataFrame, cfg: TrainConfig, split: Split, name: str
) -> str:
    """Log the booster (LightGBM flavour: the model file is LightGBM's own text format, never a
    pickle) with signature and the spec, registered as a new version of ``name``."""
    import lightgbm
    import mlflow
    import mlflow.lightgbm
    from mlflow.models import infer_signature

    x = sample[ranker.features].astype(float).head(200)
    signature = infer_signature(x, ranker.booster.predict(x.to_numpy(dtype="float32")))
    spec = {
        "kind": "search_lightgbm",
        "features": ranker.features,
        "k": cfg.search_k,
        "val_cut": split.as_params()["val_cut"],
        "test_cut": split.as_params()["test_cut"],
        "label_hours": split.label_hours,
        "history_days": cfg.history_days,
    }
    mlflow.log_dict(spec, SPEC_FILE)
    info = mlflow.lightgbm.log_model(
        ranker.booster,
        name="search_ranker",
        signature=signature,
        input_example=x.head(3),
        registered_model_name=name,
        # named, not inferred: inference imports the model in a subprocess (seconds per version)
        pip_requirements=[f"lightgbm=={lightgbm.__version__}"],
    )
    return str(info.registered_model_version)


__all__ = ["FEATURES", "search_model_name", "train_search"]
