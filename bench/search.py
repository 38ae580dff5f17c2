"""Benchmark (measures, asserts nothing): the personalised search ranker against its two baselines on
a simulated shop's test window.

Simulates a shop into its own prefixed databases (or reuses one with ``--reuse``), builds the
point-in-time cuts the training pipeline builds, and runs the search stage of a training run
(:func:`ml.search.train.train_search`: rows, LightGBM lambdarank, both baselines, one MLflow run in
``<experiment>-search``; nothing registered unless ``--register``). Prints NDCG@10, MRR and hit rate of
the ranker, ``bm25`` and ``query_pop`` on the validation and test cuts (full ranking over the
catalogue, searches with at least one engaged item) and the issue's targets: ranker NDCG@10 ≥ 1.3×
BM25 and ≥ 1.2× query popularity on the test window. Reader latency is measured by bench_reader.

    nice -n 10 .venv/bin/python bench/search.py                       # default shop (2000 users, 14 days)
    nice -n 10 .venv/bin/python bench/search.py --reuse --prefix bench_quality_   # a shop another bench built
"""

from __future__ import annotations

import argparse
import time

from sim_shop import add_shop_args, prepare_shop


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_shop_args(p, "bench_search_")
    p.add_argument("--label-hours", type=float, default=24)
    p.add_argument("--n-train-cuts", type=int, default=2)
    p.add_argument("--k", type=int, default=100, help="candidates per search from each source")
    p.add_argument("--register", action="store_true", help="register and gate the ranker like a training run")
    return p.parse_args()


def main() -> None:
    a = _args()
    from ml.features.datasets import max_event_ts
    from ml.features.protocol import make_split
    from ml.search.train import comparison_table, train_search
    from ml.training.config import TrainConfig
    from ml.training.cuts import load_cuts

    t0 = time.perf_counter()
    s = prepare_shop(a, "bench-search")
    cfg = TrainConfig(
        label_hours=a.label_hours,
        n_train_cuts=a.n_train_cuts,
        use_tf=False,
        session_task=False,
        session_train=False,
        register=a.register,
        search_k=a.k,
    )
    split = make_split(max_event_ts(s), a.label_hours, a.n_train_cuts)

    def step(msg: str) -> None:
        print(f"  [{time.perf_counter() - t0:7.1f}s] {msg}", flush=True)

    cuts = load_cuts(s, split, cfg, step)
    out = train_search(s, cuts, split, cfg, step)
    if out["skipped"]:
        print(f"\nsearch stage skipped: {out['reason']}")
        return
    print(f"\ntest cut {split.test_cut}, label window {a.label_hours:g} h, MLflow run {out['run_id']}")
    for cut in (*sorted(k for k in out["stats"] if k.startswith("train_")), "val", "test"):
        st = out["stats"][cut]
        print(
            f"  {cut}: {st['searches']:.0f} searches, {st['engaged_searches']:.0f} with an engaged item, "
            f"{st['rows']:.0f} rows, candidate recall {st['candidate_recall']:.3f}"
        )
    for title, results in (("validation cut", out["val_metrics"]), ("test cut", out["metrics"])):
        print(f"\n## {title}\n")
        print(comparison_table(results).to_markdown(floatfmt=".4f"))
    ndcg = {m: r["ndcg@10"] for m, r in out["metrics"].items()}
    print("\ntargets (test cut):")
    print(f"  search_ranker NDCG@10 / bm25      = {ndcg['search_ranker'] / ndcg['bm25']:.2f}  (target ≥ 1.3)")
    print(
        f"  search_ranker NDCG@10 / query_pop = {ndcg['search_ranker'] / ndcg['query_pop']:.2f}  (target ≥ 1.2)"
    )
    if a.register:
        print(f"\nregistered version {out['version']}: promoted={out['promoted']} — {out['reason']}")
    print(f"\nwhole bench {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
