"""Comparison tables and plots of one run (logged as MLflow artifacts; matplotlib Agg, no display)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

#: Metric columns of the comparison table, in reading order.
TABLE_METRICS = [
    "ndcg@10",
    "recall@20_clicks",
    "recall@20_carts",
    "recall@20_orders",
    "otto_recall@20",
    "hitrate@10",
    "mrr",
    "coverage@10",
    "intent_capture@10",
    "intent_capture_straddle@10",
    # beyond accuracy (ml.models.evaluate): diversity within a list, over all lists, and novelty
    "ild_category@10",
    "ild_brand@10",
    "coverage_in_stock@10",
    "novelty@10",
]


def comparison_table(
    results: Mapping[str, Mapping[str, float]], fit_seconds: Mapping[str, float] | None = None
) -> pd.DataFrame:
    """One row per model/baseline, the metric columns, lift over co-visitation and popularity, fit time."""
    rows = []
    for name, m in results.items():
        row = {"model": name, **{k: m.get(k, np.nan) for k in TABLE_METRICS}}
        row["fit_s"] = (fit_seconds or {}).get(name, np.nan)
        rows.append(row)
    df = pd.DataFrame(rows).set_index("model")
    for base in ("covisit", "popular"):
        if base in df.index and df.loc[base, "ndcg@10"] > 0:
            df[f"ndcg_lift_vs_{base}"] = df["ndcg@10"] / df.loc[base, "ndcg@10"]
    return df


def to_markdown(df: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub-style markdown table (no extra dependency)."""
    cols = [df.index.name or ""] + list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for idx, row in df.iterrows():
        cells = [str(idx)] + [
            "" if pd.isna(v) else (f"{v:.{digits}f}" if isinstance(v, float) else str(v)) for v in row
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_metric_bars(
    df: pd.DataFrame,
    path: Path,
    metrics: tuple[str, ...] = ("ndcg@10", "otto_recall@20", "hitrate@10", "intent_capture@10"),
) -> Path:
    """Grouped bars: each model vs the baselines on the headline metrics."""
    plt = _pyplot()
    present = [m for m in metrics if m in df.columns]
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(df)), 4))
    width = 0.8 / max(1, len(present))
    x = np.arange(len(df))
    for j, m in enumerate(present):
        ax.bar(x + j * width, df[m].fillna(0).to_numpy(), width, label=m)
    ax.set_xticks(x + width * (len(present) - 1) / 2, df.index, rotation=30, ha="right")
    ax.set_title("Test-cut metrics: models vs baselines")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_importance(importance: pd.Series, path: Path, title: str, top: int = 20) -> Path:
    """Horizontal bars of the top features by gain."""
    plt = _pyplot()
    imp = importance.head(top)[::-1]
    fig, ax = plt.subplots(figsize=(7, max(3, 0.3 * len(imp))))
    ax.barh(imp.index, imp.to_numpy())
    ax.set_title(title)
    ax.set_xlabel("gain")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_score_hist(scores: np.ndarray, labels: np.ndarray, path: Path, title: str) -> Path:
    """Score distributions of positive vs negative candidates on the test cut."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(scores[labels == 0], bins=50, alpha=0.6, density=True, label="negatives")
    if (labels > 0).any():
        ax.hist(scores[labels > 0], bins=50, alpha=0.6, density=True, label="positives")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
