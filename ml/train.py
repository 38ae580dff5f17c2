"""The training chain as plain functions (CLI commands and Airflow tasks call these).

``train_pipeline``: split → point-in-time dbt builds per cut → candidates and features → (TF models)
→ LightGBM and XGBoost rerankers → every model and baseline evaluated on the test cut over full
ranking → one MLflow run with params, metrics, table and plots → LightGBM registered as challenger →
promotion gate. ``evaluate`` re-scores the champion on the newest holdout; ``promote`` re-runs the
gate for a registered version. Each returns a small JSON-able dict.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.baselines import build_baselines, intent_from_marts, popularity_scores
from ml.candidates import build_features, candidate_recall, feature_columns
from ml.config import Settings, get_settings
from ml.datasets import CutData, load_cut, load_intents, load_items, load_session_cut, max_event_ts
from ml.evaluate import evaluate_recommendations
from ml.protocol import Split, make_split, session_cuts
from ml.rerank import ColumnScorer, FitResult, LightGBMScorer, TwoStageRecommender, fit_lightgbm, fit_xgboost
from ml.rules import Backfill, RuleConfig, RuledRecommender
from ml.tf_stage import TFSettings, TFStage, cut_frame, fit_ranker_stage, fit_two_tower_stage, load_tf_stage, log_tf_stage

Step = Callable[[str], None]


@dataclass
class TrainConfig:
    """Everything a run can vary; logged as MLflow params."""

    label_hours: int = 24
    n_train_cuts: int = 1
    history_days: int = 30
    n: int = 20
    rounds: int = 300
    early_stopping: int = 30
    margin: float = 0.02
    xgboost: bool = True
    use_tf: bool = False
    tf: dict[str, Any] = field(default_factory=dict)
    max_users: int = 0  # sample at most this many users in each training/validation cut (0 = all); the test cut is never sampled
    session_task: bool = True  # also evaluate OTTO's "rest of session" task on the test cut (ARCHITECTURE.md §3)
    session_train: bool = True  # and fit the rerankers on rest-of-session frames of the training/validation cuts too
    shuffle_labels: bool = False
    seed: int = 7
    rules: RuleConfig = field(default_factory=RuleConfig)
    register: bool = True
    report_unruled: bool = True

    def as_params(self) -> dict[str, str]:
        d = asdict(self)
        rules = d.pop("rules")
        tf_cfg = d.pop("tf")
        out = {k: str(v) for k, v in d.items()}
        out.update({f"rules_{k}": str(v) for k, v in rules.items()})
        out.update({f"tf_{k}": str(v) for k, v in tf_cfg.items()})
        return out


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
        return evaluate_recommendations(recs, self.cut.window, self.cut.items, eval_users=self.eval_users, intents=self.intents,
                                        cut=self.cut.cut_ts)


def _noop(_: str) -> None:
    return None


def load_cuts(
    settings: Settings, split: Split, cfg: TrainConfig, step: Step = _noop, cache: dict[tuple, CutData] | None = None
) -> dict[str, CutData]:
    """Build and read the point-in-time tables of every cut (train_0.., val, test).

    ``cache`` (a dict the caller keeps) reuses cuts already read in this process, keyed by
    (raw database, cut, label hours): one dbt build per cut even across several training runs.
    """
    items = load_items(settings)
    cuts: dict[str, CutData] = {}
    named = [(f"train_{i}", c) for i, c in enumerate(split.train_cuts)] + [("val", split.val_cut), ("test", split.test_cut)]
    wanted = session_cut_names(cfg)
    for name, ts in named:
        key = (settings.raw_db, ts, split.label_hours, cfg.history_days)
        if cache is not None and key in cache:
            cuts[name] = cache[key]
        else:
            step(f"dbt point-in-time build: {name} cut {ts}")
            cuts[name] = load_cut(settings, ts, split.label_hours, history_days=cfg.history_days, items=items)
            if cache is not None:
                cache[key] = cuts[name]
        if name not in wanted:
            continue
        skey = (*key, "session", cfg.seed)
        if cache is not None and skey in cache:
            cuts[f"session_{name}"] = cache[skey]
            continue
        step(f"dbt rest-of-session build: {name} cut {ts}")
        day = cuts[name]
        seen = day.users["user_id"].astype("int64")
        cuts[f"session_{name}"] = load_session_cut(settings, day, session_cuts(day.window, seen, seed=cfg.seed))
        if cache is not None:
            cache[skey] = cuts[f"session_{name}"]
    return cuts


def session_cut_names(cfg: TrainConfig) -> set[str]:
    """The cuts that also get a "rest of session" variant (``session_<name>``): the test cut for the
    session task; validation and the rerankers' training cuts when the rerankers learn from it."""
    names: set[str] = {"test"} if cfg.session_task else set()
    if cfg.session_train:  # every training cut (the DIN ranker's too) and validation
        names |= {"val", *(f"train_{i}" for i in range(cfg.n_train_cuts))}
    return names


def sample_users(cut: CutData, max_users: int, seed: int) -> CutData:
    """The cut restricted to a seeded random sample of ``max_users`` of its candidate users.

    Every user-keyed frame (features, intent, candidates, history, labels) is filtered alike, so
    the sample is a smaller but consistent shop; item-level marts stay whole.
    """
    users = np.sort(cut.candidates["user_id"].unique())
    if len(users) <= max_users:
        return cut
    keep = set(np.random.default_rng(seed).choice(users, size=max_users, replace=False).tolist())

    def only(df: pd.DataFrame | None) -> pd.DataFrame | None:
        return df if df is None or "user_id" not in df else df[df["user_id"].isin(keep)].reset_index(drop=True)

    return replace(cut, users=only(cut.users), intent=only(cut.intent), candidates=only(cut.candidates),
                   history=only(cut.history), purchased=only(cut.purchased), user_items=only(cut.user_items),
                   labels=only(cut.labels), window=only(cut.window))


def make_holdout(cut: CutData, frame: pd.DataFrame, intents: pd.DataFrame) -> Holdout:
    """Evaluated users: seen before the cut (in ``dim_users``) and active in the label window."""
    if cut.window is None:
        raise ValueError("a holdout needs a cut with a label window")
    seen = set(cut.users["user_id"].astype("int64"))
    active = set(cut.window.dropna(subset=["item_id"])["user_id"].astype("int64"))
    users = sorted(seen & active)
    if not users:
        raise ValueError(f"no user seen before the cut {cut.cut_ts} acts in its label window: widen label_hours")
    user_intent = intent_from_marts(cut.intent)
    backfill = Backfill.from_popularity(popularity_scores(cut.history, cut.now), cut.items, user_intent)
    return Holdout(cut, frame, users, intents, backfill)


def _shuffled(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Labels permuted across rows: the model can learn nothing real (the gate must refuse it)."""
    out = frame.copy()
    out["label"] = np.random.default_rng(seed).permutation(out["label"].to_numpy())
    return out


def _candidate_recall(holdout: Holdout) -> dict[str, float]:
    """Recall of the whole candidate set, and of the best 200 by number of sources, per behaviour."""
    frame, window = holdout.frame, holdout.cut.window
    out = candidate_recall(frame, window, holdout.eval_users)
    top = candidate_recall(frame, window, holdout.eval_users, k=200, score="n_sources")
    out |= {k.replace("cand_", "cand200_"): v for k, v in top.items()}
    reach = candidate_recall(frame, reachable_events(window, holdout.cut), holdout.eval_users)
    return out | {k.replace("cand_recall_", "cand_recall_reachable_"): v for k, v in reach.items() if k.startswith("cand_recall_")}


def reachable_events(window: pd.DataFrame, cut: CutData) -> pd.DataFrame:
    """Label-window events whose item the business rules could serve at the cut: in the catalogue,
    in stock, and not already bought by the user (the ceiling of any candidate source)."""
    items = cut.items[cut.items["in_stock"].astype(int) == 1]["item_id"].astype("int64")
    ev = window[window["item_id"].notna()]
    ev = ev[ev["item_id"].astype("int64").isin(set(items))]
    bought = set(zip(cut.purchased["user_id"].astype("int64"), cut.purchased["item_id"].astype("int64")))
    keep = [(u, i) not in bought for u, i in zip(ev["user_id"].astype("int64"), ev["item_id"].astype("int64"))]
    return ev[keep]


def evaluate_holdout(holdout: Holdout, fits: dict[str, FitResult], stage: TFStage, cfg: TrainConfig, step: Step = _noop) -> dict[str, dict[str, float]]:
    """:func:`evaluate_all` plus the TF ranker alone (when the stage has one), on one holdout."""
    results = evaluate_all(holdout, fits, cfg, step)
    if stage.ranker is not None:
        step("evaluate the TF ranker alone")
        cut = holdout.cut
        alone = TwoStageRecommender(ColumnScorer("tf_score", "tf_ranker"), holdout.frame, cut.items, cut.purchased, holdout.backfill, cfg.rules)
        results["tf_ranker"] = holdout.evaluate(alone, cfg.n)
    return results


def fit_rerankers(train: pd.DataFrame, valid: pd.DataFrame, cfg: TrainConfig, step: Step = _noop) -> dict[str, FitResult]:
    """LightGBM (always) and XGBoost (when configured) on the same frames and features."""
    features = feature_columns(train)
    if cfg.shuffle_labels:
        train, valid = _shuffled(train, cfg.seed), _shuffled(valid, cfg.seed + 1)
    step("fit LightGBM lambdarank")
    fits = {"lightgbm": fit_lightgbm(train, valid, features, rounds=cfg.rounds, early_stopping=cfg.early_stopping, seed=cfg.seed)}
    if cfg.xgboost:
        step("fit XGBoost rank:ndcg")
        fits["xgboost"] = fit_xgboost(train, valid, features, rounds=cfg.rounds, early_stopping=cfg.early_stopping, seed=cfg.seed)
    return fits


def evaluate_all(holdout: Holdout, fits: dict[str, FitResult], cfg: TrainConfig, step: Step = _noop) -> dict[str, dict[str, float]]:
    """Every baseline and every fitted reranker on the holdout, with the same rules and list length."""
    cut = holdout.cut
    results: dict[str, dict[str, float]] = {}
    for name, base in build_baselines(cut.history, cut.items, cut.covis, cut.now, intent_from_marts(cut.intent), cut.user_history).items():
        step(f"evaluate baseline {name}")
        results[name] = holdout.evaluate(RuledRecommender(base, cut.items, cut.purchased, holdout.backfill, cfg.rules), cfg.n)
    for name, fit in fits.items():
        step(f"evaluate {name}")
        rec = TwoStageRecommender(fit.scorer, holdout.frame, cut.items, cut.purchased, holdout.backfill, cfg.rules)
        results[name] = holdout.evaluate(rec, cfg.n)
        results[name].update(rec.last_stats.as_metrics())
        if cfg.report_unruled:  # what the rules cost: the same ranking with no rule at all
            bare = TwoStageRecommender(fit.scorer, holdout.frame, cut.items, cut.purchased.iloc[0:0], holdout.backfill,
                                       RuleConfig(max_category_share=1.0, in_stock_only=False))
            results[f"{name}_no_rules"] = holdout.evaluate(bare, cfg.n)
    return results


def _log_run(
    holdout: Holdout, fits: dict[str, FitResult], results: dict[str, dict[str, float]], cand: dict[str, float],
    frames: dict[str, pd.DataFrame], cuts: dict[str, CutData], split: Split, cfg: TrainConfig, session: dict[str, Any] | None = None,
) -> None:
    """Params, data window, row counts, metrics of every model, comparison table and plots (active run)."""
    import mlflow

    from ml import report
    from ml.registry import mlflow_key

    mlflow.log_params(cfg.as_params() | split.as_params() | {"reranker_train_cuts": ",".join(reranker_train_cuts(frames, cfg)),
                                                               "tf_score_in_sample": str(cfg.use_tf and cfg.n_train_cuts < 2)})
    counts = {f"rows_{c}_{k}": float(v) for c, d in cuts.items() for k, v in d.row_counts().items()}
    counts |= {f"rows_frame_{k}": float(len(f)) for k, f in frames.items()}
    counts |= {f"positives_frame_{k}": float((f["label"] > 0).sum()) for k, f in frames.items()}
    counts["eval_users"] = float(len(holdout.eval_users))
    mlflow.log_metrics(counts)
    mlflow.log_metrics({mlflow_key(k): v for k, v in cand.items() if np.isfinite(v)})
    for name, m in results.items():
        mlflow.log_metrics({mlflow_key(f"{name}.{k}"): float(v) for k, v in m.items() if np.isfinite(v)})
    for name, fit in fits.items():
        mlflow.log_metrics({f"{name}.fit_seconds": fit.fit_seconds, f"{name}.best_iteration": float(fit.best_iteration)})
    tables = {"": report.comparison_table(results, {k: f.fit_seconds for k, f in fits.items()})}
    if session:
        mlflow.log_metrics({mlflow_key(f"session.{k}"): v for k, v in session["candidates"].items() if np.isfinite(v)})
        for name, m in session["results"].items():
            mlflow.log_metrics({mlflow_key(f"session.{name}.{k}"): float(v) for k, v in m.items() if np.isfinite(v)})
        tables["_session"] = report.comparison_table(session["results"], {k: f.fit_seconds for k, f in fits.items()})
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for suffix, table in tables.items():  # next-day task, then the rest-of-session task
            table.to_csv(d / f"comparison{suffix}.csv")
            (d / f"comparison{suffix}.md").write_text(report.to_markdown(table))
            report.plot_metric_bars(table, d / f"metric_bars{suffix}.png")
        test = holdout.frame
        for name, fit in fits.items():
            report.plot_importance(fit.importance, d / f"importance_{name}.png", f"{name} feature importance (gain)")
            fit.importance.rename("gain").to_csv(d / f"importance_{name}.csv")
            if "label" in test:
                report.plot_score_hist(fit.scorer.predict(test), test["label"].to_numpy(), d / f"scores_{name}.png", f"{name} test scores")
        mlflow.log_artifacts(str(d), artifact_path="report")


def train_pipeline(
    settings: Settings | None = None, config: TrainConfig | None = None, step: Step = _noop, cache: dict[tuple, CutData] | None = None
) -> dict[str, Any]:
    """The whole chain; returns ``{run_id, version, promoted, reason, metrics, split, ...}``."""
    import mlflow

    from ml import registry

    s = settings or get_settings()
    cfg = config or TrainConfig()
    split = make_split(max_event_ts(s), cfg.label_hours, cfg.n_train_cuts)
    cuts = load_cuts(s, split, cfg, step, cache)
    if cfg.max_users > 0:
        cuts = {k: (c if k in ("test", "session_test") else sample_users(c, cfg.max_users, cfg.seed)) for k, c in cuts.items()}
    stage, frames = _features_with_tf(cuts, cfg, step)
    train = pd.concat([frames[k] for k in reranker_train_cuts(frames, cfg)], ignore_index=True)
    valid = pd.concat([frames[k] for k in ("val", "session_val") if k in frames], ignore_index=True)
    fits = fit_rerankers(train, valid, cfg, step)
    intents = load_intents(s)
    holdout = make_holdout(cuts["test"], frames["test"], intents)
    cand = _candidate_recall(holdout)
    results = evaluate_holdout(holdout, fits, stage, cfg, step)
    session: dict[str, Any] = {}
    if "session_test" in cuts:
        step("rest-of-session task of the test cut")
        sh = make_holdout(cuts["session_test"], frames["session_test"], intents)
        session = {"holdout": sh, "candidates": _candidate_recall(sh), "results": evaluate_holdout(sh, fits, stage, cfg, step)}
    client = registry.configure(s)
    name = registry.model_name(s)
    step("log to MLflow")
    with mlflow.start_run(run_name="train") as run:
        _log_run(holdout, fits, results, cand, frames, cuts, split, cfg, session)
        out: dict[str, Any] = {"run_id": run.info.run_id, "split": split.as_params(), "candidates": cand,
                               "metrics": _headline(results),
                               "session": {"candidates": session["candidates"], "metrics": _headline(session["results"]),
                                           "eval_users": len(session["holdout"].eval_users)} if session else None,
                               "fit_seconds": {k: f.fit_seconds for k, f in fits.items()} | stage.fit_seconds, "version": None, "promoted": False,
                               "reason": "registration disabled"}
        if cfg.register:
            lgbm = fits["lightgbm"]
            tf_uris = log_tf_stage(stage) if cfg.use_tf else None
            spec = {"kind": "lightgbm", "n": cfg.n, "rules": asdict(cfg.rules), "tf": tf_uris, "test_cut": split.as_params()["test_cut"],
                    "label_hours": cfg.label_hours}
            version = registry.log_reranker(lgbm.scorer.booster, lgbm.scorer.features, frames["test"], spec, name)
            step("promotion gate")
            champion = _champion_metrics(client, name, holdout, cfg)
            decision = registry.gate_decision(results["lightgbm"], champion, results, margin=cfg.margin)
            registry.set_aliases(client, name, version, decision)
            mlflow.set_tags({"gate_promoted": str(decision.promoted), "gate_reason": decision.reason, "model_version": version})
            if champion is not None:
                mlflow.log_metrics({registry.mlflow_key(f"champion.{k}"): v for k, v in champion.items() if np.isfinite(v)})
            out.update(version=version, promoted=decision.promoted, reason=decision.reason, gate=decision.as_dict())
    return out


def _headline(results: dict[str, dict[str, float]]) -> dict[str, dict[str, float | None]]:
    return {k: {m: v.get(m) for m in ("ndcg@10", "otto_recall@20", "intent_capture@10")} for k, v in results.items()}


def _champion_metrics(client: Any, name: str, holdout: Holdout, cfg: TrainConfig) -> dict[str, float] | None:
    """The current champion re-evaluated on this holdout (None when there is no champion yet)."""
    from ml import registry

    mv = registry.alias_version(client, name, registry.CHAMPION)
    if mv is None:
        return None
    booster, spec = registry.load_reranker(client, name, mv.version)
    rec = recommender_from_spec(booster, spec, frame_for_spec(holdout.cut, spec), holdout.cut, holdout.backfill)
    return holdout.evaluate(rec, cfg.n)


def frame_for_spec(cut: CutData, spec: dict[str, Any]) -> pd.DataFrame:
    """The candidate frame a registered reranker expects: with its own TF models when it has them."""
    return cut_frame(cut, load_tf_stage(spec.get("tf")))


def tf_ranker_train_cuts(frames: dict[str, pd.DataFrame]) -> list[str]:
    """The DIN ranker learns on the first training cut only when there are several (stacking hygiene),
    with its rest-of-session variant when there is one."""
    names = sorted(k for k in frames if k.startswith("train_"))
    names = names[:1] if len(names) > 1 else names
    return names + [f"session_{k}" for k in names if f"session_{k}" in frames]


def reranker_train_cuts(frames: dict[str, pd.DataFrame], cfg: TrainConfig) -> list[str]:
    """Cuts the rerankers fit on (with their rest-of-session variants when built). With the TF stage
    and ≥ 2 training cuts, the cut the DIN ranker saw is left out, so ``tf_score`` is out-of-sample
    for the reranker; with one cut it is in-sample (logged)."""
    names = sorted(k for k in frames if k.startswith("train_"))
    if cfg.use_tf and len(names) > 1:
        names = [k for k in names if k not in tf_ranker_train_cuts(frames)]
    return names + [f"session_{k}" for k in names if f"session_{k}" in frames]


def _features_with_tf(cuts: dict[str, CutData], cfg: TrainConfig, step: Step) -> tuple[TFStage, dict[str, pd.DataFrame]]:
    """Candidate features of every cut; with ``use_tf`` the two-tower source and the DIN score join them."""
    stage = TFStage()
    if not cfg.use_tf:
        step("candidates and features")
        return stage, {name: build_features(cut) for name, cut in cuts.items()}
    tfs = TFSettings(**cfg.tf)
    stage.retrieve_k = tfs.retrieve_k
    step("fit TF two-tower retrieval")
    stage.two_tower = fit_two_tower_stage(cuts["train_0"], tfs)
    stage.fit_seconds["two_tower"] = float(stage.two_tower.fit_seconds)
    step("candidates (+ two-tower) and features")
    frames = {name: build_features(cut, stage.candidates(cut)) for name, cut in cuts.items()}
    step("fit TF DIN ranker")
    train = [(cuts[k], frames[k]) for k in tf_ranker_train_cuts(frames)]
    stage.ranker = fit_ranker_stage(train, (cuts["val"], frames["val"]), tfs)
    stage.fit_seconds["tf_ranker"] = float(stage.ranker.fit_seconds)
    step("TF ranker scores for every cut")
    for name, cut in cuts.items():
        scores = stage.scores(cut, frames[name])
        frames[name] = frames[name].merge(scores, on=["user_id", "item_id"], how="left")
    return stage, frames


def recommender_from_spec(booster: Any, spec: dict[str, Any], frame: pd.DataFrame, cut: CutData, backfill: Backfill) -> TwoStageRecommender:
    """A registered reranker over a cut's candidate frame; features it needs but the frame lacks are 0."""
    features = list(spec["features"])
    missing = [f for f in features if f not in frame.columns]
    if missing:
        frame = frame.assign(**{f: 0.0 for f in missing})
    rules = RuleConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec.get("rules", {}).items()})
    return TwoStageRecommender(LightGBMScorer(booster, features), frame, cut.items, cut.purchased, backfill, rules)


def load_champion(settings: Settings | None = None) -> TwoStageRecommender:
    """The champion reranker over the current marts (serving view, no cut) — what publishing scores with."""
    from ml import registry

    s = settings or get_settings()
    client = registry.configure(s)
    name = registry.model_name(s)
    mv = registry.alias_version(client, name, registry.CHAMPION)
    if mv is None:
        raise registry.NoChampionError(f"no '{registry.CHAMPION}' version of model '{name}' in {s.mlflow_tracking_uri}: run `recsys train` first")
    booster, spec = registry.load_reranker(client, name, mv.version)
    cut = load_cut(s, None)
    frame = frame_for_spec(cut, spec)
    backfill = Backfill.from_popularity(popularity_scores(cut.history, cut.now), cut.items, intent_from_marts(cut.intent))
    rec = recommender_from_spec(booster, spec, frame, cut, backfill)
    rec.model_version = f"{name}/{mv.version}"
    return rec


def evaluate(settings: Settings | None = None, config: TrainConfig | None = None, alias: str = "champion", step: Step = _noop) -> dict[str, Any]:
    """Re-evaluate a registered version (by alias) and the baselines on the newest holdout; logs an MLflow run."""
    import mlflow

    from ml import registry

    s = settings or get_settings()
    cfg = config or TrainConfig()
    client = registry.configure(s)
    name = registry.model_name(s)
    mv = registry.alias_version(client, name, alias)
    if mv is None:
        raise RuntimeError(f"model '{name}' has no '{alias}' version yet: run `recsys train` first")
    split = make_split(max_event_ts(s), cfg.label_hours, 1)
    step(f"dbt point-in-time build: test cut {split.test_cut}")
    cut = load_cut(s, split.test_cut, cfg.label_hours, history_days=cfg.history_days)
    holdout = make_holdout(cut, build_features(cut), load_intents(s))
    results = evaluate_all(holdout, {}, cfg, step)
    booster, spec = registry.load_reranker(client, name, mv.version)
    step(f"evaluate {alias} v{mv.version}")
    results[alias] = holdout.evaluate(recommender_from_spec(booster, spec, frame_for_spec(cut, spec), cut, holdout.backfill), cfg.n)
    with mlflow.start_run(run_name=f"evaluate-{alias}") as run:
        mlflow.log_params(split.as_params() | {"model_version": mv.version, "alias": alias})
        for model, m in results.items():
            mlflow.log_metrics({registry.mlflow_key(f"{model}.{k}"): float(v) for k, v in m.items() if np.isfinite(v)})
    return {"run_id": run.info.run_id, "version": mv.version, "test_cut": split.as_params()["test_cut"],
            "metrics": _headline(results)}


def promote(settings: Settings | None = None, version: str | None = None, config: TrainConfig | None = None, step: Step = _noop) -> dict[str, Any]:
    """Run the gate for ``version`` (default: the challenger) on its own test cut, against the champion."""
    from ml import registry

    s = settings or get_settings()
    cfg = config or TrainConfig()
    client = registry.configure(s)
    name = registry.model_name(s)
    if version is None:
        mv = registry.alias_version(client, name, registry.CHALLENGER)
        if mv is None:
            raise RuntimeError(f"model '{name}' has no challenger: run `recsys train` first")
        version = mv.version
    champ_mv = registry.alias_version(client, name, registry.CHAMPION)
    if champ_mv is not None and str(champ_mv.version) == str(version):
        return {"version": str(version), "promoted": False, "reason": f"version {version} is already the champion"}
    booster, spec = registry.load_reranker(client, name, version)
    test_cut = pd.Timestamp(spec["test_cut"])
    step(f"dbt point-in-time build: challenger's test cut {test_cut}")
    cut = load_cut(s, test_cut, int(spec["label_hours"]), history_days=cfg.history_days)
    holdout = make_holdout(cut, build_features(cut), load_intents(s))
    baselines = evaluate_all(holdout, {}, cfg, step)
    challenger = holdout.evaluate(recommender_from_spec(booster, spec, frame_for_spec(cut, spec), cut, holdout.backfill), cfg.n)
    champion = _champion_metrics(client, name, holdout, cfg) if champ_mv is not None else None
    decision = registry.gate_decision(challenger, champion, baselines, margin=cfg.margin)
    registry.set_aliases(client, name, str(version), decision)
    return {"version": str(version), **decision.as_dict()}
