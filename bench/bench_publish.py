"""Full-publish write throughput: ~1M user_topn rows (20k users × 50) through ml.publish.core.publish_full.

Measures only. Uses its own databases (prefix RECSYS_DB_PREFIX, default ``bench_pub_``), seeds a
synthetic catalogue and one event per user, and scores with a vectorised fixed recommender so the
timing is the publisher's (spool TSV + LOAD DATA), not a model's. Prints one JSON object.

    RECSYS_DB_PREFIX=bench_pub_ nice -n 10 .venv/bin/python bench/bench_publish.py --users 20000 --n 50
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "data"))
from publish_support import seed_serving_marts  # noqa: E402


class FixedRecommender:
    """Deterministic lists: n distinct items per user, scores falling with rank."""

    def __init__(self, items: int):
        self.items = items

    def recommend(self, user_ids: list[int], n: int) -> pd.DataFrame:
        users = np.repeat(np.asarray(user_ids, dtype=np.int64), n)
        rank = np.tile(np.arange(1, n + 1, dtype=np.int64), len(user_ids))
        item = (users * 7 + rank * 13) % self.items + 1
        return pd.DataFrame(
            {"user_id": users, "rank": rank, "item_id": item, "score": 1.0 / rank, "source": "bench"}
        )


def seed(settings, users: int, items: int) -> None:
    """Fresh databases with ``items`` items in 50 categories and one event per user (LOAD DATA), and
    stand-ins for the dbt serving marts."""
    from ml.db import connect, drop_databases, init_db

    drop_databases(settings)
    init_db(settings)
    conn = connect(settings.raw_db, settings=settings, local_infile=True)
    t0 = datetime(2026, 10, 1)
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO items (item_id, category_id, in_stock) VALUES (%s, %s, 1)",
            [(i, i % 50 + 1) for i in range(1, items + 1)],
        )
        with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False) as fh:
            for u in range(1, users + 1):
                fh.write(
                    f"{u}\t{u % items + 1}\ts{u}\tbrowse\t{t0 + timedelta(seconds=u):%Y-%m-%d %H:%M:%S}\n"
                )
        cur.execute(
            "LOAD DATA LOCAL INFILE %s INTO TABLE user_behavior FIELDS TERMINATED BY '\\t' "
            "(user_id, item_id, session_id, behavior_type, ts) SET ingested_at = NOW(3) - INTERVAL 1 MINUTE",
            (fh.name,),
        )
        os.unlink(fh.name)
    conn.close()
    # the serving marts the publisher copies (popular lists, intent category), as the dbt build would
    # leave them: stand-ins computed from these raw rows
    seed_serving_marts(settings)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=20000)
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--items", type=int, default=5000)
    ap.add_argument(
        "--repeat", type=int, default=2, help="publishes to time (the first warms the buffer pool)"
    )
    args = ap.parse_args()
    os.environ.setdefault("RECSYS_DB_PREFIX", "bench_pub_")
    from ml.config import get_settings
    from ml.publish.full import publish_full

    s = get_settings()
    seed(s, args.users, args.items)
    rec = FixedRecommender(args.items)
    runs = []
    for i in range(args.repeat):
        t0 = time.perf_counter()
        r = publish_full(rec, f"bench-{i}", s, n=args.n, batch_size=5000)
        total = time.perf_counter() - t0
        runs.append(
            {
                "rows": r.rows,
                "users": r.users,
                "write_s": round(r.write_seconds, 3),
                "write_rows_per_s": round(r.write_rows_per_s),
                "total_s": round(total, 3),
                "end_to_end_rows_per_s": round(r.rows / total),
            }
        )
    print(json.dumps({"bench": "publish_full", "serving_db": s.serving_db, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
