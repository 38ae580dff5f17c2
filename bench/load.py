"""Benchmark (measures only): bulk-load throughput of simulated events into recsys_raw.

Simulates about ``--events`` events (not timed), then times, on a fresh throw-away database set
(``<RECSYS_DB_PREFIX>bench_*``, dropped at the end):
  1. the raw path: TSV write + LOAD DATA LOCAL INFILE into user_behavior;
  2. the full loader path used by every loader: validation + atomic batches (no overlap with
     loaded events, the LOAD DATA fast path);
  3. the dedupe path: re-loading a slice that overlaps loaded events (staged + anti-join).
Run with nice:  nice -n 10 .venv/bin/python bench/load.py --events 1000000
"""

from __future__ import annotations

import argparse
import os
import time


def _timed(label: str, rows: int, fn) -> float:
    t = time.perf_counter()
    fn()
    secs = time.perf_counter() - t
    print(f"{label:<46} {rows:>10,} rows {secs:7.2f} s {rows / secs:>10,.0f} rows/s", flush=True)
    return rows / secs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000, help="approximate events to simulate (max 1.2M)")
    args = ap.parse_args()
    if args.events > 1_200_000:
        raise SystemExit("keep the benchmark at or under ~1M events on shared machines")
    os.environ["RECSYS_DB_PREFIX"] = os.environ.get("RECSYS_DB_PREFIX", "") + "bench_"

    from ml.config import get_settings
    from ml.data.ingest import write_batch
    from ml.data.load import EVENT_COLUMNS, load_frame
    from ml.data.sim_config import SimConfig
    from ml.data.simulate import simulate
    from ml.data.validate import validate_events
    from ml.db import connect, drop_databases, init_db, transaction

    s = get_settings()
    users = max(100, args.events // 100)
    t = time.perf_counter()
    data = simulate(SimConfig(users=users, items=max(100, users // 2), days=14, seed=1))
    events = data.events
    print(
        f"simulated {len(events):,} events for {users:,} users in {time.perf_counter() - t:.1f} s (not part of the figures)"
    )
    drop_databases(s)
    init_db(s)
    raw = f"`{s.raw_db}`"
    batch = 500_000

    def truncate() -> None:
        conn = connect(s.raw_db, settings=s)
        with conn.cursor() as cur:
            cur.execute("TRUNCATE TABLE user_behavior")
            cur.execute("TRUNCATE TABLE user_behavior_quarantine")
        conn.close()

    def raw_load() -> None:
        for lo in range(0, len(events), batch):
            with transaction(settings=s, local_infile=True) as conn:
                load_frame(conn, f"{raw}.user_behavior", events.iloc[lo : lo + batch], EVENT_COLUMNS)

    def full_load() -> None:
        for lo in range(0, len(events), batch):
            write_batch(validate_events(events.iloc[lo : lo + batch], "bench"), "bench", s)

    overlap = events.iloc[len(events) // 2 : len(events) // 2 + 200_000]

    def dedupe_load() -> None:
        rep = write_batch(validate_events(overlap, "bench"), "bench", s)
        assert rep.loaded == 0 and rep.quarantined["duplicate_of_loaded"] == len(overlap)

    try:
        truncate()
        _timed("LOAD DATA only (tsv + load)", len(events), raw_load)
        truncate()
        figure = _timed("full loader (validate + atomic LOAD DATA batches)", len(events), full_load)
        _timed("dedupe path (overlapping slice, all duplicates)", len(overlap), dedupe_load)
        print(f"RESULT full loader: {figure:,.0f} rows/s (target >= 100,000)")
    finally:
        drop_databases(s)


if __name__ == "__main__":
    main()
