"""Benchmark (not a test): dbt build time against the number of events, and one incremental
realtime run after 1% new events.

For each size: simulate a shop of about that many events, load all but the newest 1% into
``{prefix}recsys_raw``, time ``dbt build --full-refresh`` (all batch + realtime models and their
tests), then load the held-back 1% and time ``dbt run --select tag:realtime`` (the every-few-minutes
refresh) and ``dbt build --select tag:realtime`` (the same plus its tests). Per-model times come from
dbt's run_results.json. Writes one JSON line per size to stdout and to bench/out/dbt_scale.jsonl.

    RECSYS_DB_PREFIX=bench_ nice -n 10 .venv/bin/python bench/dbt_scale.py --events 100000 1000000

Uses (and drops first) only the databases of RECSYS_DB_PREFIX, which must be set and non-empty.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

EVENTS_PER_USER_DAY = (
    7.9  # measured on the simulator's defaults (sim_small: 16.5k events, 300 users x 7 days)
)
DAYS = 14


def sim_config(n_events: int):
    """A simulator config that yields about ``n_events`` events over two weeks."""
    from ml.data.sim_config import SimConfig

    users = max(100, round(n_events / (EVENTS_PER_USER_DAY * DAYS)))
    items = max(500, min(20_000, users // 4))
    return SimConfig(users=users, items=items, days=DAYS, seed=11, start=datetime(2026, 10, 1))


def model_times(target: Path) -> dict[str, float]:
    """Seconds per model (tests summed under 'tests') from the last dbt invocation."""
    results = json.loads((target / "run_results.json").read_text())["results"]
    out: dict[str, float] = {"tests": 0.0}
    for r in results:
        name = r["unique_id"].split(".")[-1]
        if r["unique_id"].startswith("test."):
            out["tests"] += r["execution_time"]
        else:
            out[name] = round(r["execution_time"], 2)
    out["tests"] = round(out["tests"], 2)
    return out


def timed_dbt(args: list[str], settings, target: Path) -> tuple[float, dict[str, float]]:
    from ml.features.dbt import run_dbt

    t0 = time.perf_counter()
    run_dbt(args, settings=settings)
    return round(time.perf_counter() - t0, 1), model_times(target)


def bench_size(n_events: int, new_share: float, settings, target: Path) -> dict:
    import pandas as pd

    from ml.data.sim_load import load_simulation
    from ml.data.simulate import simulate
    from ml.db import drop_databases, init_db

    cfg = sim_config(n_events)
    t0 = time.perf_counter()
    data = simulate(cfg)
    events = data.events.sort_values("ts", kind="stable", ignore_index=True)
    n_new = max(1, round(len(events) * new_share))
    old, new = events.iloc[:-n_new], events.iloc[-n_new:]
    drop_databases(settings)
    init_db(settings)
    load_simulation(replace(data, events=old), settings)
    prepare_s = round(time.perf_counter() - t0, 1)

    full_s, full_models = timed_dbt(["build", "--full-refresh"], settings, target)
    only_events = replace(
        data, users=data.users.iloc[:0], items=data.items.iloc[:0], intents=data.intents.iloc[:0]
    )
    load_simulation(replace(only_events, events=new), settings)
    rt_run_s, rt_models = timed_dbt(["run", "--select", "tag:realtime"], settings, target)
    # a second batch of the same size for the build-with-tests timing (the first one is consumed)
    shifted = new.assign(ts=new["ts"] + (new["ts"].max() - new["ts"].min()) + pd.Timedelta(seconds=1))
    load_simulation(replace(only_events, events=shifted), settings)
    rt_build_s, _ = timed_dbt(["build", "--select", "tag:realtime"], settings, target)
    return {
        "events": int(len(events)),
        "users": cfg.users,
        "items": cfg.items,
        "new_events": int(n_new),
        "new_users": int(new["user_id"].nunique()),
        "prepare_s": prepare_s,
        "full_build_s": full_s,
        "realtime_run_s": rt_run_s,
        "realtime_build_s": rt_build_s,
        "full_build_models_s": full_models,
        "realtime_run_models_s": rt_models,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument(
        "--new-share", type=float, default=0.01, help="share of events loaded after the full build"
    )
    args = parser.parse_args()
    if not os.environ.get("RECSYS_DB_PREFIX"):
        raise SystemExit("set RECSYS_DB_PREFIX (the benchmark drops and recreates that prefix's databases)")
    from ml.config import get_settings

    settings = get_settings()
    out_dir = Path(__file__).resolve().parent / "out"
    out_dir.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dbt_scale_") as tmp:
        target = Path(tmp) / "target"
        os.environ["DBT_TARGET_PATH"] = str(target)
        os.environ["DBT_LOG_PATH"] = str(Path(tmp) / "logs")
        for n in args.events:
            result = bench_size(n, args.new_share, settings, target)
            line = json.dumps(result)
            print(line, flush=True)
            with open(out_dir / "dbt_scale.jsonl", "a") as fh:
                fh.write(line + "\n")


if __name__ == "__main__":
    main()
