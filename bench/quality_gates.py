"""Time each quality gate on the data already in the (prefixed) databases. Measures only.

    RECSYS_DB_PREFIX=x_ recsys data simulate ... && scripts/dbt.sh build && \\
    scripts/dbt.sh run --vars '{cut_ts: "..."}' && python bench/quality_gates.py

Prints seconds per stage, with and without Data Docs rendering, and the GX import/context cost.
The top-N is a synthetic top-``--n`` per user of the raw events (in-stock items, falling scores).
"""

from __future__ import annotations

import argparse
import time


def _topn(settings, n: int):
    import numpy as np
    import pandas as pd

    from ml.features.datasets import read_sql

    users = read_sql(f"SELECT DISTINCT user_id FROM `{settings.raw_db}`.user_behavior", settings)[
        "user_id"
    ].to_numpy()
    items = read_sql(f"SELECT item_id FROM `{settings.raw_db}`.items WHERE in_stock = 1", settings)[
        "item_id"
    ].to_numpy()
    bought = (
        read_sql(
            f"SELECT DISTINCT user_id, item_id FROM `{settings.raw_db}`.user_behavior WHERE behavior_type = 'purchase'",
            settings,
        )
        .groupby("user_id")["item_id"]
        .agg(set)
        .to_dict()
    )
    rng = np.random.default_rng(0)
    picks = np.stack(
        [rng.choice(np.setdiff1d(items, list(bought.get(u, ()))), size=n, replace=False) for u in users]
    )
    return pd.DataFrame(
        {
            "user_id": np.repeat(users, n),
            "rank": np.tile(np.arange(1, n + 1), len(users)),
            "item_id": picks.ravel(),
            "score": np.tile(np.linspace(1, 0, n), len(users)),
        }
    ), [int(u) for u in users]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=20)
    args = ap.parse_args()
    t = time.perf_counter()
    import great_expectations  # noqa: F401

    print(f"import great_expectations: {time.perf_counter() - t:.2f}s")
    from ml.config import get_settings
    from ml.quality.context import get_context
    from ml.quality.gates import run_stage

    s = get_settings()
    t = time.perf_counter()
    get_context(s)
    print(f"file context: {time.perf_counter() - t:.2f}s")
    frame, users = _topn(s, args.n)
    stages = {
        "raw": {"since_event_id": 0},
        "marts": {},
        "realtime": {},
        "training": {},
        "topn": {"frame": frame, "n": args.n, "user_ids": users},
    }
    for stage, params in stages.items():
        for docs in (False, True):
            t = time.perf_counter()
            r = run_stage(stage, s, build_docs=docs, **params)
            rows = r.details.get("rows", "")
            print(
                f"{stage:9s} docs={'on ' if docs else 'off'} {time.perf_counter() - t:6.2f}s  "
                f"success={r.success} rows={rows}"
            )
            if not r.success:
                print(r.summary)


if __name__ == "__main__":
    main()
