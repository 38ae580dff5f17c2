"""Freshness of the near-real-time refresh: event time → the user's new rows committed.

Measures only. In its own databases (prefix RECSYS_DB_PREFIX, default ``bench_fresh_``): loads a small
simulation ending now, publishes it in full, then runs the live feed (``recsys data feed``, a
subprocess, ``--rate`` events/s) while calling :func:`ml.publish.core.publish_refresh` every
``--interval`` seconds. Each event covered by a refresh gets latency = commit time of the refresh
batch holding its user − the event's ``ts``; prints p50/p95/max and the refresh runs as JSON.
The recommender is the tests' small one over raw events (own items, then popularity).

    RECSYS_DB_PREFIX=bench_fresh_ nice -n 10 .venv/bin/python bench/bench_freshness.py --rate 100 --interval 60 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "data"))
from publish_support import RawEventsRecommender  # noqa: E402


def seed(settings, users: int, items: int, days: int) -> None:
    """Fresh databases with a simulation whose last day ends about now (UTC)."""
    from ml.data.sim_config import SimConfig
    from ml.data.sim_load import load_simulation
    from ml.data.simulate import simulate
    from ml.db import drop_databases, init_db

    drop_databases(settings)
    init_db(settings)
    start = datetime.now(UTC).replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0) - timedelta(
        days=days
    )
    load_simulation(simulate(SimConfig(users=users, items=items, days=days, seed=11, start=start)), settings)


def latencies(settings, run) -> list[float]:
    """Seconds from each event's ts to the commit of the refresh batch that covered its user."""
    from ml.db import connect

    conn = connect(settings.raw_db, settings=settings)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT user_id, ts FROM user_behavior WHERE event_id > %s AND event_id <= %s",
            (run.from_event_id, run.to_event_id),
        )
        events = cur.fetchall()
    conn.close()
    out = []
    for user, ts in events:
        batch = next(b for b in run.batches if b.first_user <= user <= b.last_user)
        out.append((batch.committed_at - ts).total_seconds())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--interval", type=float, default=60.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--users", type=int, default=2000)
    args = ap.parse_args()
    os.environ.setdefault("RECSYS_DB_PREFIX", "bench_fresh_")
    from ml.config import get_settings
    from ml.publish.full import publish_full
    from ml.publish.refresh import publish_refresh

    s = get_settings()
    seed(s, args.users, 500, 3)
    rec = RawEventsRecommender(s)
    publish_full(rec, "bench", s, settle_seconds=0)  # the simulation load has committed
    duration = args.interval * args.runs
    feed = subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "recsys"),
            "data",
            "feed",
            "--rate",
            str(args.rate),
            "--duration",
            str(duration),
            "--seed",
            "3",
        ],
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
    )
    runs, lat = [], []
    t0 = time.monotonic()
    try:
        for k in range(1, args.runs + 1):
            time.sleep(max(0.0, t0 + k * args.interval - time.monotonic()))
            started = time.monotonic()
            r = publish_refresh(rec, "bench", s)
            run_lat = [] if r.noop else latencies(s, r)
            lat += run_lat
            runs.append(
                {
                    "users": r.users,
                    "rows": r.rows,
                    "batches": len(r.batches),
                    "events": len(run_lat),
                    "seconds": round(time.monotonic() - started, 2),
                }
            )
    finally:
        feed.wait(timeout=args.interval + 30)
    arr = np.array(lat)
    print(
        json.dumps(
            {
                "bench": "refresh_freshness",
                "rate": args.rate,
                "interval_s": args.interval,
                "feed_exit": feed.returncode,
                "events_measured": int(arr.size),
                "p50_s": round(float(np.percentile(arr, 50)), 1) if arr.size else None,
                "p95_s": round(float(np.percentile(arr, 95)), 1) if arr.size else None,
                "max_s": round(float(arr.max()), 1) if arr.size else None,
                "load_avg_1m": os.getloadavg()[0],
                "refresh_runs": runs,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
