"""Two imports of the same file racing in two threads end with exactly one copy of each event: the
second batch waits for the first to commit, then finds every event already loaded."""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

from ml.data import ingest
from ml.data.importers import import_file
from ml.features.datasets import read_sql

T0 = 1761998400  # 2025-11-01 12:00:00 UTC


def test_two_racing_imports_of_one_file_load_each_event_once(clean_db, tmp_path, monkeypatch):
    lines = [f"{u},{100 + u % 7},7,pv,{T0 + u}" for u in range(1, 201)]
    path = tmp_path / "UserBehavior.csv"
    path.write_text("\n".join(lines) + "\n")
    # the users and items are known already (an earlier day's file), as when a day is re-imported:
    # inserting them then takes no lock that would happen to make the two batches wait for each other
    earlier = tmp_path / "earlier.csv"
    earlier.write_text("\n".join(f"{u},{100 + u % 7},7,pv,{T0 - 86400 + u}" for u in range(1, 201)) + "\n")
    assert import_file(earlier, "taobao", clean_db).loaded == 200
    # Hold both batches just before their duplicate check until both are there: without
    # serialisation both check before either commits. With it, the second waits for the lock, the
    # first gives up waiting for it here (the barrier breaks) and commits, then the second goes on.
    meet = threading.Barrier(2, timeout=2)
    real = ingest._insert_new_events

    def both_at_once(conn, raw, events):
        with contextlib.suppress(threading.BrokenBarrierError):
            meet.wait()
        return real(conn, raw, events)

    monkeypatch.setattr(ingest, "_insert_new_events", both_at_once)
    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda _: import_file(path, "taobao", clean_db), range(2)))
    ev = read_sql(
        "SELECT user_id, item_id, behavior_type, ts, COUNT(*) AS n FROM user_behavior WHERE ts >= '2025-11-01' "
        "GROUP BY user_id, item_id, behavior_type, ts",
        clean_db,
        database=clean_db.raw_db,
    )
    assert len(ev) == len(lines) and set(ev.n) == {1}
    assert sorted(r.loaded for r in reports) == [0, len(lines)]
    late = next(r for r in reports if r.loaded == 0)
    assert dict(late.quarantined) == {"duplicate_of_loaded": len(lines)}
    q = read_sql("SELECT COUNT(*) AS n FROM user_behavior_quarantine", clean_db, database=clean_db.raw_db)
    assert int(q.n[0]) == len(lines)
