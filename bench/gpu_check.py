"""Train both TF models on synthetic data for a fixed number of steps; print device + throughput.

Measures only (no assertions). Works on CPU and GPU with the same code path: the device, precision
and distribution strategy are chosen by ``ml.models.tf.device.configure_device`` and printed.

    .venv/bin/python bench/gpu_check.py                      # CPU-sized defaults
    .venv/bin/python bench/gpu_check.py --steps 300 --batch 2048 --items 50000   # a GPU host

Prints one JSON object: device info, rows, fit seconds and examples/s (training includes encoding
the DataFrames; ``*_train_eps`` counts examples × epochs), and scoring/retrieval throughput.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    """Parse arguments, train both models, print a JSON report."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=40, help="training steps per model (1 epoch)")
    p.add_argument("--batch", type=int, default=512, help="global batch size")
    p.add_argument("--items", type=int, default=5000, help="catalogue size")
    p.add_argument("--categories", type=int, default=50)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--cpu", action="store_true", help="ignore GPUs")
    args = p.parse_args()

    from ml.models.tf.device import configure_device
    from ml.models.tf.ranker import fit_ranker
    from ml.models.tf.ranker_config import RankerConfig
    from ml.models.tf.synthetic import (
        ITEM_FEATURES,
        USER_FEATURES,
        make_world,
        ranker_rows,
        two_tower_sequences,
    )
    from ml.models.tf.two_tower import TwoTowerConfig, fit_two_tower

    device = configure_device(args.seed, force_cpu=args.cpu)
    n_rows = args.steps * args.batch
    t0 = time.perf_counter()
    world = make_world(args.items, args.categories, seed=args.seed)
    seqs = two_tower_sequences(world, n_rows, seed=1, hist_len=20)
    rows = ranker_rows(world, n_users=max(1, n_rows // 10), cands_per_user=10, seed=2, hist_len=20)
    valid = ranker_rows(world, n_users=max(1, n_rows // 100), cands_per_user=10, seed=3, hist_len=20)
    data_s = time.perf_counter() - t0

    per_replica = max(1, args.batch // device.strategy.num_replicas_in_sync)
    tt = fit_two_tower(
        seqs, world.items, TwoTowerConfig(epochs=1, batch_size=per_replica, seed=args.seed), device=device
    )
    t = time.perf_counter()
    ctx = seqs.drop(columns=["item_id"]).drop_duplicates("user_id").head(5000)
    tt.retrieve(ctx, k=100)
    retrieve_s = time.perf_counter() - t

    rcfg = RankerConfig(
        user_features=USER_FEATURES,
        item_features=ITEM_FEATURES,
        epochs=1,
        patience=1,
        batch_size=per_replica,
        seed=args.seed,
    )
    rk = fit_ranker(rows, valid, rcfg, items=world.items, device=device)
    t = time.perf_counter()
    rk.score(rows.head(50_000))
    score_s = time.perf_counter() - t

    report = {
        **device.as_params(),
        "replicas": device.strategy.num_replicas_in_sync,
        "items": args.items,
        "synthetic_data_s": round(data_s, 2),
        "two_tower_rows": len(seqs),
        "two_tower_fit_s": round(tt.fit_seconds, 2),
        "two_tower_train_eps": round(len(seqs) / tt.fit_seconds),
        "retrieve_users_per_s": round(len(ctx) / retrieve_s),
        "ranker_rows": len(rows),
        "ranker_fit_s": round(rk.fit_seconds, 2),
        "ranker_train_eps": round(len(rows) * len(rk.history["loss"]) / rk.fit_seconds),
        "ranker_score_rows_per_s": round(min(len(rows), 50_000) / score_s),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
