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


def build_marts(settings) -> None:
    """The dbt marts of the serving view (the pit models excluded), as the train DAG's dbt group builds
    them: the publish reads its serving marts (reasons, intent) from there."""
    from ml.features.dbt import run_dbt

    run_dbt(["build", "--select", "path:models", "--exclude", "tag:pit"], settings=settings)


def latencies(settings, run) -> list[float]:
    """Seconds from each event's ts to the commit of the refresh batch that covered its user.

    ``run`` is a :class:`~ml.publish.common.RefreshResult` or its JSON form (the refresh task's
    return): ``from_event_id``/``to_event_id`` and ``batches`` with ``first_user``, ``last_user``
    and ``committed_at`` (a datetime or its ISO string)."""
    from ml.db import connect

    def field(obj, name):
        return obj[name] if isinstance(obj, dict) else getattr(obj, name)

    spans = []
    for b in field(run, "batches"):
        at = field(b, "committed_at")
        spans.append(
            (
                field(b, "first_user"),
                field(b, "last_user"),
                datetime.fromisoformat(at) if isinstance(at, str) else at,
            )
        )
    conn = connect(settings.raw_db, settings=settings)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT user_id, ts FROM user_behavior WHERE event_id > %s AND event_id <= %s",
            (field(run, "from_event_id"), field(run, "to_event_id")),
        )
        events = cur.fetchall()
    conn.close()
    out = []
    for user, ts in events:
        committed = next(at for first, last, at in spans if first <= user <= last)
        out.append((committed - ts).total_seconds())
    return out


def start_feed(rate: float, duration: float) -> subprocess.Popen:
    """``recsys data feed`` as a subprocess: ``rate`` events/s for ``duration`` seconds."""
    return subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "recsys"),
            "data",
            "feed",
            "--rate",
            str(rate),
            "--duration",
            str(duration),
            "--seed",
            "3",
        ],
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
    )


def latency_summary(lat: list[float]) -> dict:
    """Count, p50, p95 and max of the latencies (seconds), None when there are none."""
    arr = np.array(lat)

    def pct(q: float) -> float | None:
        return round(float(np.percentile(arr, q)), 1) if arr.size else None

    return {
        "events_measured": int(arr.size),
        "p50_s": pct(50),
        "p95_s": pct(95),
        "max_s": round(float(arr.max()), 1) if arr.size else None,
    }


def feed_parser(doc: str, *, rate: float, runs: int, users: int) -> argparse.ArgumentParser:
    """The options both freshness benches share: feed rate, refresh interval and runs, shop size."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--rate", type=float, default=rate, help="events/s of the live feed")
    ap.add_argument("--interval", type=float, default=60.0, help="seconds between refresh runs")
    ap.add_argument("--runs", type=int, default=runs)
    ap.add_argument("--users", type=int, default=users, help="users of the simulated shop")
    return ap


def main() -> None:
    args = feed_parser(__doc__, rate=100.0, runs=3, users=2000).parse_args()
    os.environ.setdefault("RECSYS_DB_PREFIX", "bench_fresh_")
    from ml.config import get_settings
    from ml.publish.full import publish_full
    from ml.publish.refresh import publish_refresh

    s = get_settings()
    seed(s, args.users, 500, 3)
    build_marts(s)
    rec = RawEventsRecommender(s)
    publish_full(rec, "bench", s, settle_seconds=0)  # the simulation load has committed
    duration = args.interval * args.runs
    feed = start_feed(args.rate, duration)
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
    print(
        json.dumps(
            {
                "bench": "refresh_freshness",
                "rate": args.rate,
                "interval_s": args.interval,
                "feed_exit": feed.returncode,
                **latency_summary(lat),
                "load_avg_1m": os.getloadavg()[0],
                "refresh_runs": runs,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
