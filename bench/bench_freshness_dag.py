"""Freshness through the real refresh path: event time → the user's new rows, as ``recsys_refresh`` runs.

Measures only. In its own databases (prefix RECSYS_DB_PREFIX, default ``bench_fresh_dag_``) and its
own RECSYS_HOME (a fresh MLflow registry): loads a small simulation ending now, builds the marts
(``dbt build``, the pit models excluded, as the train DAG's dbt group), trains a champion with a
fast config (no TF, no XGBoost, no rule ablation, no MMR, few rounds) and publishes it in full
(:func:`ml.orchestration.tasks.publish_full`, GX top-N gate included). Then it runs the live feed
(``recsys data feed``, ``--rate`` events/s) while every ``--interval`` seconds the refresh chain
runs exactly as the DAG's tasks run it, in the same order and with the same arguments:

1. ``tasks.refresh_guard()`` (champion published? events after the watermark?),
2. ``dbt build --select tag:realtime`` — the command the Cosmos ``dbt_realtime`` task runs, here
   through :func:`ml.features.dbt.run_dbt` (one dbt process; Cosmos adds its own start-up: a copy
   of the project and a profile, ~1 s, not measured here),
3. ``tasks.quality_gate("realtime")`` (the GX gate),
4. ``tasks.refresh(upper_event_id=<the guard's newest_event_id>)`` (champion scoring, one
   transaction per batch).

Airflow's own overhead (scheduling, a task process per step, XCom) is not included: it is the
four task bodies, back to back in one process each run. Latency per event = commit time of the
refresh batch holding its user − the event's ``ts`` (as ``bench_freshness.py``). Prints one JSON
summary: p50/p95/max, and per run the seconds of each step and the users re-scored per second in
the refresh step.

    RECSYS_DB_PREFIX=bench_fresh_dag_ nice -n 10 .venv/bin/python bench/bench_freshness_dag.py --rate 200 --interval 60 --runs 5

``--interval 0`` runs the chain back to back, as the DAG does with ``RECSYS_REFRESH_MINUTES=0``
(``@continuous``; the guard waits up to ``--idle`` seconds for an event), for ``--seconds`` of feed.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from bench_freshness import build_marts, feed_parser, latencies, latency_summary, seed, start_feed  # noqa: E402

#: the fast training run: the chain, not the model's quality (as tests/dags/test_dag_runs.py TRAIN_CONF)
TRAIN_PARAMS: dict[str, Any] = {
    "use_tf": False,
    "xgboost": False,
    "session_train": False,
    "rule_ablation": False,
    "mmr": False,
    "n_train_cuts": 1,
    "rounds": 60,
    "label_hours": 24,
}


def prepare(settings, users: int, items: int, days: int) -> dict[str, float]:
    """Shop, marts, champion, full publish; returns the seconds of each."""
    from ml.orchestration import tasks

    took: dict[str, float] = {}
    t = time.perf_counter()
    seed(settings, users, items, days)
    took["simulate_load_s"] = time.perf_counter() - t
    t = time.perf_counter()
    build_marts(settings)
    took["dbt_marts_s"] = time.perf_counter() - t
    t = time.perf_counter()
    out = tasks.train(TRAIN_PARAMS)
    if not out["promoted"]:
        raise SystemExit(f"the trained model was not promoted ({out['reason']}): no champion to refresh with")
    took["train_s"] = time.perf_counter() - t
    t = time.perf_counter()
    tasks.publish_full()
    took["publish_full_s"] = time.perf_counter() - t
    return {k: round(v, 1) for k, v in took.items()}


def refresh_chain(settings, wait_s: float = 0.0) -> tuple[dict[str, Any], dict[str, float]]:
    """The DAG's four steps in order (``wait_s``: the guard's wait for an event, back to back);
    returns the refresh task's result and each step's seconds."""
    from airflow.sdk.exceptions import AirflowSkipException

    from ml.features.dbt import run_dbt
    from ml.orchestration import tasks

    took: dict[str, float] = {}
    t = time.perf_counter()
    try:
        seen = tasks.refresh_guard(wait_s=wait_s)
    except AirflowSkipException as exc:
        return {"skipped": str(exc), "batches": []}, {"guard": round(time.perf_counter() - t, 2)}
    took["guard"] = time.perf_counter() - t
    t = time.perf_counter()
    run_dbt(["build", "--select", "tag:realtime"], settings=settings)
    took["dbt"] = time.perf_counter() - t
    t = time.perf_counter()
    tasks.quality_gate("realtime")
    took["gx"] = time.perf_counter() - t
    t = time.perf_counter()
    out = tasks.refresh(upper_event_id=seen["newest_event_id"])
    took["refresh"] = time.perf_counter() - t
    return out, {k: round(v, 2) for k, v in took.items()}


def main() -> None:
    ap = feed_parser(__doc__, rate=200.0, runs=5, users=1000)
    ap.add_argument("--items", type=int, default=500)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=180.0, help="feed seconds when --interval is 0")
    ap.add_argument(
        "--idle", type=float, default=60.0, help="the guard's wait for events when --interval is 0"
    )
    args = ap.parse_args()
    back_to_back = args.interval <= 0
    os.environ.setdefault("RECSYS_DB_PREFIX", "bench_fresh_dag_")
    prefix = os.environ["RECSYS_DB_PREFIX"]
    home = Path(os.environ.setdefault("RECSYS_HOME", str(ROOT / ".local" / f"{prefix}home")))
    shutil.rmtree(home / "mlflow", ignore_errors=True)  # a fresh registry: this run's champion only
    os.environ.setdefault("RECSYS_MLFLOW_EXPERIMENT", "bench_freshness_dag")
    from ml.config import get_settings

    s = get_settings()
    setup = prepare(s, args.users, args.items, args.days)
    feed_s = args.seconds if back_to_back else args.interval * args.runs
    feed = start_feed(args.rate, feed_s)
    runs, lat = [], []
    t0 = time.monotonic()
    try:
        for k in itertools.count(1):
            if back_to_back and (time.monotonic() - t0 >= feed_s or feed.poll() is not None):
                break
            if not back_to_back:
                if k > args.runs:
                    break
                time.sleep(max(0.0, t0 + k * args.interval - time.monotonic()))
            out, took = refresh_chain(s, args.idle if back_to_back else 0.0)
            run_lat = latencies(s, out) if out.get("batches") else []
            lat += run_lat
            users = int(out.get("users") or 0)
            runs.append(
                {
                    "users": users,
                    "rows": out.get("rows"),
                    "batches": len(out.get("batches") or []),
                    "events": len(run_lat),
                    "step_s": took,
                    "chain_s": round(sum(took.values()), 2),
                    "users_per_s": round(users / took["refresh"], 1) if users and "refresh" in took else None,
                    **({"skipped": out["skipped"]} if "skipped" in out else {}),
                }
            )
    finally:
        feed.wait(timeout=args.interval + 30)
    print(
        json.dumps(
            {
                "bench": "refresh_freshness_real_path",
                "measured": "the recsys_refresh task bodies in one process (no Airflow overhead)",
                "rate": args.rate,
                "interval_s": args.interval if not back_to_back else "back to back",
                "feed_s": feed_s,
                "users": args.users,
                "feed_exit": feed.returncode,
                **latency_summary(lat),
                "load_avg_1m": os.getloadavg()[0],
                "setup": setup,
                "refresh_runs": runs,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
