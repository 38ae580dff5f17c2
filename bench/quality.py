"""Benchmark (measures, asserts nothing): model quality of the whole chain on a simulated shop.

Simulates a shop into its own prefixed databases, runs ``train_pipeline`` (point-in-time dbt builds,
candidates, optional TF stage, LightGBM and XGBoost rerankers, every baseline, all under the same
business rules) and prints the comparison table of the test cut, the candidate recall, the fit
times and the targets of the Models issue (reranked NDCG@10 ≥ 1.25× co-visitation and ≥ 2×
popularity; intent capture ≥ 0.6).

    nice -n 10 .venv/bin/python bench/quality.py                    # default shop (2000 users, 14 days)
    nice -n 10 .venv/bin/python bench/quality.py --users 6000 --tf  # larger, with the TF stage
"""

from __future__ import annotations

import argparse
import time

from sim_shop import add_shop_args, prepare_shop


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_shop_args(p, "bench_quality_")
    p.add_argument("--label-hours", type=int, default=24)
    p.add_argument("--n-train-cuts", type=int, default=1)
    p.add_argument("--tf", action="store_true", help="also train the TF two-tower and DIN ranker stage")
    p.add_argument(
        "--no-session-train", action="store_true", help="fit the rerankers on next-day frames only"
    )
    return p.parse_args()


def main() -> None:
    a = _args()
    import mlflow
    import pandas as pd

    from ml.models.report import to_markdown
    from ml.registry import store
    from ml.training.config import TrainConfig
    from ml.training.pipeline import train_pipeline

    s = prepare_shop(a, "bench-quality")
    cfg = TrainConfig(
        label_hours=a.label_hours,
        n_train_cuts=a.n_train_cuts,
        use_tf=a.tf,
        register=False,
        session_train=not a.no_session_train,
    )
    t1 = time.perf_counter()
    out = train_pipeline(
        s, cfg, step=lambda m: print(f"  [{time.perf_counter() - t1:7.1f}s] {m}", flush=True)
    )
    chain_s = time.perf_counter() - t1
    store.configure(s)
    print(
        f"\ntest cut {out['split']['test_cut']}, label window {a.label_hours} h, MLflow run {out['run_id']}"
    )
    tasks = [("next-day task", "", out["candidates"])]
    if out.get("session"):
        tasks.append(
            (
                f"rest-of-session task ({out['session']['eval_users']} users)",
                "_session",
                out["session"]["candidates"],
            )
        )
    for title, suffix, cand in tasks:
        local = mlflow.artifacts.download_artifacts(
            run_id=out["run_id"], artifact_path=f"report/comparison{suffix}.csv"
        )
        table = pd.read_csv(local, index_col="model")
        print(f"\n## {title}\n")
        print(to_markdown(table))
        print("candidates:", {k: round(v, 4) for k, v in cand.items()})
        _targets(table)
    print(
        "\nfit seconds:",
        {k: round(v, 1) for k, v in out["fit_seconds"].items()},
        f"| whole chain {chain_s:.0f}s",
    )


def _targets(table) -> None:
    ndcg = table["ndcg@10"]
    best = "lightgbm"
    print("targets:")
    print(f"  {best} NDCG@10 / covisit = {ndcg[best] / ndcg['covisit']:.2f}  (target ≥ 1.25)")
    print(f"  {best} NDCG@10 / popular = {ndcg[best] / ndcg['popular']:.2f}  (target ≥ 2)")
    print(f"  {best} NDCG@10 / repeat  = {ndcg[best] / ndcg['repeat']:.2f}  (must be > 1 to be useful)")
    print(f"  {best} intent capture@10 = {table.loc[best, 'intent_capture@10']:.3f}  (target ≥ 0.6)")
    if "tf_ranker" in table.index:
        verdict = "beats" if ndcg["tf_ranker"] > ndcg["covisit"] else "LOSES TO"
        print(
            f"  TF ranker alone NDCG@10 {ndcg['tf_ranker']:.4f} {verdict} co-visitation {ndcg['covisit']:.4f}"
        )


if __name__ == "__main__":
    main()
