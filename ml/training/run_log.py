"""What one training run writes to MLflow: params (config, split, task, chosen rules), row counts,
every model's metrics on every task, comparison tables, the rule choice and ablation, plots."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.features.datasets import CutData
from ml.features.protocol import Split, TaskChoice
from ml.models.rerank import FitResult
from ml.training.config import TrainConfig
from ml.training.rules_choice import rules_params

#: MLflow metric prefix of each task (next-day keeps the historical bare ``{model}.{metric}`` keys).
TASK_PREFIX = {"next_day": "", "session": "session.", "next_basket": "basket."}


#: rows of the test frame scored again for the score histograms
SCORE_PLOT_ROWS = 200_000


def row_counts(cuts: dict[str, CutData], frames: dict[str, pd.DataFrame]) -> dict[str, float]:
    """Rows of every table of every cut, and rows and positives of every candidate frame."""
    counts = {f"rows_{c}_{k}": float(v) for c, d in cuts.items() for k, v in d.row_counts().items()}
    counts |= {f"rows_frame_{k}": float(len(f)) for k, f in frames.items()}
    counts |= {f"positives_frame_{k}": float((f["label"] > 0).sum()) for k, f in frames.items()}
    return counts


def log_run(
    tasks: dict[str, dict[str, Any]],
    choice: TaskChoice,
    fits: dict[str, FitResult],
    counts: dict[str, float],
    train_cuts: list[str],
    split: Split,
    cfg: TrainConfig,
    rules: dict[str, pd.DataFrame],
) -> None:
    """Log into the active run. ``tasks``: task → {holdout, candidates, results}; ``counts``: row
    counts of the cuts and frames (:func:`row_counts`, taken before the training frames were freed);
    ``rules``: the validation table of the rule choice and the test-cut ablation (either may be empty)."""
    import mlflow

    from ml.models import report
    from ml.registry.store import mlflow_key

    mlflow.log_params(
        cfg.as_params()
        | split.as_params()
        | rules_params(cfg.rules)
        | {
            "task": choice.task,
            "task_reason": choice.reason[:500],
            "reranker_train_cuts": ",".join(train_cuts),
            "tf_score_in_sample": str(cfg.use_tf and cfg.n_train_cuts < 2),
        }
    )
    mlflow.set_tag("task", choice.task)
    mlflow.log_metrics(counts)
    for name, fit in fits.items():
        mlflow.log_metrics(
            {f"{name}.fit_seconds": fit.fit_seconds, f"{name}.best_iteration": float(fit.best_iteration)}
        )

    def finite(d: dict[str, float], prefix: str) -> dict[str, float]:
        return {
            mlflow_key(f"{prefix}{k}"): float(v) for k, v in d.items() if v is not None and np.isfinite(v)
        }

    tables: dict[str, pd.DataFrame] = {}
    for task, t in tasks.items():
        prefixes = [TASK_PREFIX[task]] + (["primary."] if task == choice.task else [])
        for prefix in prefixes:
            mlflow.log_metrics(
                finite(t["candidates"], prefix) | {f"{prefix}eval_users": float(len(t["holdout"].eval_users))}
            )
            for model, m in t["results"].items():
                mlflow.log_metrics(finite(m, f"{prefix}{model}."))
        tables[task] = report.comparison_table(t["results"], {k: f.fit_seconds for k, f in fits.items()})
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for task, table in tables.items():
            suffix = "" if task == "next_day" else f"_{task}"
            table.to_csv(d / f"comparison{suffix}.csv")
            (d / f"comparison{suffix}.md").write_text(report.to_markdown(table))
            report.plot_metric_bars(table, d / f"metric_bars{suffix}.png")
        if "rule_ablation" in rules:
            for variant, column in rules["rule_ablation"].items():
                mlflow.log_metrics(finite(column.to_dict(), f"ablation.{variant}."))
        for key, table in rules.items():
            if not table.empty:
                table.to_csv(d / f"{key}.csv")
                (d / f"{key}.md").write_text(table.to_markdown(floatfmt=".4f"))
        test = tasks[choice.task]["holdout"].frame
        # the score histogram needs a sample, not the frame: scoring all of a large log's test frame
        # again (a copy per booster) here pushed a 66k-user Taobao run out of memory
        if len(test) > SCORE_PLOT_ROWS:
            test = test.sample(n=SCORE_PLOT_ROWS, random_state=cfg.seed)
        for name, fit in fits.items():
            report.plot_importance(
                fit.importance, d / f"importance_{name}.png", f"{name} feature importance (gain)"
            )
            fit.importance.rename("gain").to_csv(d / f"importance_{name}.csv")
            if "label" in test:
                report.plot_score_hist(
                    fit.scorer.predict(test),
                    test["label"].to_numpy(),
                    d / f"scores_{name}.png",
                    f"{name} test scores",
                )
        mlflow.log_artifacts(str(d), artifact_path="report")


def log_mmr(mmr: dict[str, Any], model: str) -> None:
    """Log the MMR measurement (:func:`ml.training.holdout.measure_mmr`) into the active run: the
    chosen λ, the trade-off of every λ on the validation and test cuts (``mmr.{cut}.lam{λ}.{metric}``),
    every test metric at the chosen λ as ``{model}_mmr.{metric}``, and report/diversity.md + csv."""
    import mlflow

    from ml.models import report
    from ml.registry.store import mlflow_key

    metrics = {"mmr.lambda": float(mmr["lambda"])}
    for cut in ("val", "test"):
        for lam, row in mmr[cut].iterrows():
            metrics |= {
                mlflow_key(f"mmr.{cut}.lam{lam:g}.{k}"): float(v) for k, v in row.items() if np.isfinite(v)
            }
    metrics |= {
        mlflow_key(f"{model}_mmr.{k}"): float(v)
        for k, v in mmr["metrics"].items()
        if v is not None and np.isfinite(v)
    }
    mlflow.log_metrics(metrics)
    mlflow.log_param("mmr_lambda", str(mmr["lambda"]))
    text = (
        f"# MMR re-rank of {model}: NDCG / diversity trade-off\n\n"
        f"λ chosen = **{mmr['lambda']:g}**: {mmr['rule']}. λ = 1 is the model's own list. "
        "Published lists are not re-ranked.\n\n"
        f"## Validation cut (where λ is chosen)\n\n{report.to_markdown(mmr['val'])}\n"
        f"## Test cut\n\n{report.to_markdown(mmr['test'])}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        mmr["val"].to_csv(d / "diversity_val.csv")
        mmr["test"].to_csv(d / "diversity.csv")
        (d / "diversity.md").write_text(text)
        mlflow.log_artifacts(str(d), artifact_path="report")
