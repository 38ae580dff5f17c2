"""Refresh throughput: users re-scored per second by the champion's refresh, as the ``recsys_refresh``
DAG's last task runs it (:func:`ml.orchestration.tasks.refresh`: scoped champion, search lists, reasons,
intent rows, one transaction per batch of 1,000 users).

Measures only, on a shop that is already trained and published in full (a ``bench/scale.py`` size, the
freshness bench's shop, the README demo): set RECSYS_DB_PREFIX and RECSYS_HOME to that shop's. The
publish watermark is moved back so that the users who acted in the last ``--hours`` of the log are
"new" again, and the refresh re-scores them:

- ``cold``: in a fresh Python process, as an Airflow task process runs it (imports, the registry, the
  models' first load and jieba's dictionary included; the interpreter's own start is not);
- ``warm``: ``--repeat`` more times in this process, after one untimed run (what a long-lived worker
  would pay per run).

Between runs the watermark goes back to the same event, so each run re-scores the same users; at the end
the watermark row and its gaps are restored as they were. The lists written are the ones the refresh
would write anyway (same champion, same marts). Prints one JSON line (and appends it to
``bench/out/refresh_rate.jsonl``).

    RECSYS_DB_PREFIX=b1_ RECSYS_HOME=/tmp/bench_scale_xyz RECSYS_MLFLOW_EXPERIMENT=bench-scale \
        .venv/bin/python bench/refresh_rate.py --hours 2

(``bench/scale.py`` leaves its last size's databases and its RECSYS_HOME in place, and registers under
the experiment ``bench-scale``; the freshness benches use ``bench_freshness_dag`` and their own home.)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

COLD = """
import json, sys, time
t0 = time.perf_counter()
from ml.orchestration import tasks
t1 = time.perf_counter()
out = tasks.refresh(upper_event_id=int(sys.argv[1]))
t2 = time.perf_counter()
print("RESULT " + json.dumps({"import_s": t1 - t0, "refresh_s": t2 - t1, "users": out.get("users")}))
"""


def _state(conn, s):
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT name, event_id, max_event_ts, updated_at FROM `{s.serving_db}`.publish_watermark"
        )
        marks = cur.fetchall()
        cur.execute(
            f"SELECT name, first_event_id, last_event_id, seen_at FROM `{s.serving_db}`.publish_watermark_gaps"
        )
        gaps = cur.fetchall()
    return marks, gaps


def _restore(conn, s, marks, gaps) -> None:
    db = s.serving_db
    conn.begin()
    with conn.cursor() as cur:
        cur.execute(f"DELETE FROM `{db}`.publish_watermark")
        cur.execute(f"DELETE FROM `{db}`.publish_watermark_gaps")
        cur.executemany(
            f"INSERT INTO `{db}`.publish_watermark (name, event_id, max_event_ts, updated_at) VALUES (%s, %s, %s, %s)",
            marks,
        )
        cur.executemany(
            f"INSERT INTO `{db}`.publish_watermark_gaps (name, first_event_id, last_event_id, seen_at) "
            "VALUES (%s, %s, %s, %s)",
            gaps,
        )
    conn.commit()


def _rewind(conn, s, low: int, max_event_ts) -> None:
    """The watermark back to ``low`` (its newest-event time kept), no gaps."""
    from ml.publish.locking import save_watermark

    save_watermark(conn, s, low, max_event_ts, [])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--hours", type=float, default=2.0, help="re-score the users who acted in the log's last hours"
    )
    ap.add_argument("--repeat", type=int, default=3, help="warm runs timed after one untimed warm-up")
    ap.add_argument("--no-cold", action="store_true", help="skip the fresh-process run")
    args = ap.parse_args()
    if not os.environ.get("RECSYS_DB_PREFIX") or not os.environ.get("RECSYS_HOME"):
        raise SystemExit("set RECSYS_DB_PREFIX and RECSYS_HOME to a trained and published shop's")
    from ml.config import get_settings
    from ml.db import connect
    from ml.orchestration import tasks
    from ml.publish.common import WATERMARK_NAME

    s = get_settings()
    conn = connect(s.serving_db, settings=s, autocommit=True)
    marks, gaps = _state(conn, s)
    mark = next((m for m in marks if m[0] == WATERMARK_NAME), None)
    if mark is None:
        raise SystemExit(f"{s.serving_db}.publish_watermark has no row: publish the champion in full first")
    with conn.cursor() as cur:
        cur.execute(f"SELECT MAX(event_id), MAX(ts) FROM `{s.raw_db}`.user_behavior")
        newest, newest_ts = cur.fetchone()
        cur.execute(
            f"SELECT MIN(event_id), COUNT(*), COUNT(DISTINCT user_id) FROM `{s.raw_db}`.user_behavior "
            "WHERE ts > %s - INTERVAL %s SECOND",
            (newest_ts, int(args.hours * 3600)),
        )
        first, events, users = cur.fetchone()
    low = int(first) - 1
    runs: dict[str, list[dict]] = {"cold": [], "warm": []}
    try:
        if not args.no_cold:
            _rewind(conn, s, low, mark[2])
            done = subprocess.run(
                [sys.executable, "-c", COLD, str(newest)],
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            if done.returncode:
                raise SystemExit(f"the fresh-process refresh failed:\n{done.stderr[-3000:]}")
            line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
            runs["cold"].append(json.loads(line.removeprefix("RESULT ")))
        for k in range(args.repeat + 1):
            _rewind(conn, s, low, mark[2])
            t = time.perf_counter()
            out = tasks.refresh(upper_event_id=int(newest))
            took = time.perf_counter() - t
            if k:  # the first in-process run warms up (imports, first loads)
                runs["warm"].append({"refresh_s": took, "users": out.get("users")})
    finally:
        _restore(conn, s, marks, gaps)
        conn.close()
    for rows in runs.values():
        for r in rows:
            r["users_per_s"] = round(r["users"] / r["refresh_s"], 1) if r["users"] else None
            r.update({k: round(v, 2) for k, v in r.items() if k.endswith("_s")})
    result = {
        "bench": "refresh_rate",
        "db_prefix": os.environ["RECSYS_DB_PREFIX"],
        "hours": args.hours,
        "events_in_hours": int(events),
        "acting_users": int(users),
        "newest_event_id": int(newest),
        **runs,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    line = json.dumps(result)
    print(line)
    out_dir = ROOT / "bench" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "refresh_rate.jsonl", "a") as fh:
        fh.write(line + "\n")


if __name__ == "__main__":
    main()
