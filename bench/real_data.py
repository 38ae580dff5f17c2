"""Benchmark (measures, asserts nothing): the README pipeline on real public logs.

For each file in ``../shared/data`` (or ``--data``): a fresh prefixed set of databases, the importer,
the dbt build, ``train_pipeline`` with the task chosen from the log (rest-of-session for the Taobao
time slice, next-basket for the Online Retail order history), and a full publish of whatever the
registry then holds as champion (a learned model that passed the gate, else the best baseline).
Prints, per dataset: the task and label window, NDCG@10 / Recall@20 / HitRate@10 of every model and
baseline on that task's holdout (same rules for all), the ratio of the champion and of LightGBM to
the best baseline, the rules chosen on the validation cut and the time of each stage. Results are
also written to ``bench/out/real_data_<name>.json``.

    nice -n 10 .venv/bin/python bench/real_data.py                      # both files, no TF stage
    nice -n 10 .venv/bin/python bench/real_data.py --only taobao --tf   # one file, with the TF stage
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATASETS = {
    "taobao": ("taobao_timeslice.csv", "taobao"),
    "online_retail": ("online_retail.parquet", "online_retail"),
}
METRICS = ("ndcg@10", "hitrate@10", "recall@20_orders", "otto_recall@20", "coverage@10")


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--data", type=Path, default=ROOT.parent / "shared" / "data", help="folder with the real files"
    )
    p.add_argument("--only", choices=sorted(DATASETS), action="append", help="run only these datasets")
    p.add_argument("--tf", action="store_true", help="also train the TF two-tower and DIN ranker stage")
    p.add_argument("--n-train-cuts", type=int, default=2)
    p.add_argument("--reuse", action="store_true", help="keep data already imported under the prefix")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    return p.parse_args()


def _import(name: str, path: Path, settings) -> dict:
    from ml.data.importers import import_file
    from ml.data.online_retail import import_online_retail

    report = (
        import_online_retail(path, settings)
        if name == "online_retail"
        else import_file(path, "taobao", settings)
    )
    return {"loaded": report.loaded, "quarantined": dict(report.quarantined)}


def run_one(name: str, a: argparse.Namespace) -> dict:
    """Import → dbt build → train → publish for one file; returns the measured numbers."""
    os.environ["RECSYS_DB_PREFIX"] = f"bench_real_{name}_"
    os.environ["RECSYS_MLFLOW_EXPERIMENT"] = f"bench-real-{name}"
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{a.out / 'mlflow.db'}")
    from ml.config import get_settings
    from ml.db import drop_databases, init_db
    from ml.features.dbt import run_dbt
    from ml.publish.run import publish_champion_full
    from ml.training.config import TrainConfig
    from ml.training.pipeline import train_pipeline

    s = get_settings()
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    if not a.reuse:
        drop_databases(s)
    init_db(s)
    imported = None if a.reuse else _import(name, a.data / DATASETS[name][0], s)
    seconds["import"] = time.perf_counter() - t
    t = time.perf_counter()
    run_dbt(["build", "--exclude", "tag:pit", "--full-refresh"], settings=s)
    seconds["dbt_build"] = time.perf_counter() - t
    t = time.perf_counter()

    def step(msg: str) -> None:
        print(f"  [{name}] {msg}", flush=True)

    out = train_pipeline(s, TrainConfig(n_train_cuts=a.n_train_cuts, use_tf=a.tf), step=step)
    seconds["train"] = time.perf_counter() - t
    t = time.perf_counter()
    published = publish_champion_full(s, gx=True)
    seconds["publish"] = time.perf_counter() - t
    seconds["chain"] = sum(seconds.values())
    return {
        "dataset": name,
        "imported": imported,
        "task": out["task"],
        "rules": out["rules"],
        "eval_users": out["eval_users"],
        "primary": out["primary"],
        "primary_candidates": out["primary_candidates"],
        "rule_ablation": out["rule_ablation"],
        "gate": out.get("gate"),
        "champion": out.get("champion"),
        "published": {k: published[k] for k in ("model_version", "users", "rows")},
        "seconds": seconds,
        "train_stages": out["stage_seconds"],
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }


def _table(r: dict) -> str:
    from ml.models.baselines import BASELINE_NAMES

    primary = r["primary"]
    best = max(BASELINE_NAMES, key=lambda b: primary.get(b, {}).get("ndcg@10") or 0)
    ref = primary[best]["ndcg@10"] or 0.0
    lines = [
        f"### {r['dataset']}: task {r['task']['reason']}",
        f"eval users {r['eval_users']}; rules chosen on validation: {r['rules']}",
        "",
        "| model | " + " | ".join(METRICS) + " | × best baseline |",
        "|---|" + "---|" * (len(METRICS) + 1),
    ]
    for model, m in primary.items():
        ratio = (m.get("ndcg@10") or 0.0) / ref if ref else float("nan")
        cells = " | ".join("-" if m.get(k) is None else f"{m[k]:.4f}" for k in METRICS)
        lines.append(f"| {model}{' (best baseline)' if model == best else ''} | {cells} | {ratio:.2f} |")
    lines.append("")
    lines.append(f"champion now: {r['champion']}; published {r['published']}")
    lines.append("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in r["seconds"].items()))
    lines.append(f"peak memory of the process: {r['peak_rss_gib']} GiB")
    slow = sorted(r["train_stages"], key=lambda s: -s[1])[:8]
    lines.append("slowest train stages: " + "; ".join(f"{m} {sec:.0f}" for m, sec in slow))
    return "\n".join(lines)


def main() -> None:
    a = _args()
    a.out.mkdir(parents=True, exist_ok=True)
    for name in a.only or list(DATASETS):
        r = run_one(name, a)
        (a.out / f"real_data_{name}.json").write_text(json.dumps(r, indent=2, default=str))
        print(_table(r), flush=True)


if __name__ == "__main__":
    main()
