"""Taobao and RetailRocket imports into the real MariaDB: mapping, sessions, users/items from what
is seen, quarantine reasons, duplicates against loaded events, format errors and atomic batches."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ml.data import ingest
from ml.data.importers import import_file
from ml.data.validate import FormatError
from ml.datasets import read_sql

T0 = 1761998400  # 2025-11-01 12:00:00 UTC


def _q(settings, sql: str) -> pd.DataFrame:
    return read_sql(sql, settings, database=settings.raw_db)


def _write(tmp_path: Path, name: str, lines: list[str] | bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(lines if isinstance(lines, bytes) else ("\n".join(lines) + "\n").encode())
    return p


def test_taobao_mapping_sessions_users_items(clean_db, tmp_path):
    path = _write(tmp_path, "UserBehavior.csv", [
        f"1,100,7,pv,{T0}",
        f"1,100,7,cart,{T0 + 60}",
        f"1,101,7,fav,{T0 + 120}",
        f"1,100,7,buy,{T0 + 300}",
        f"1,102,8,pv,{T0 + 300 + 31 * 60}",  # > 30 min later: new session
        f"2,102,8,pv,{T0 + 10}",
    ])
    report = import_file(path, "taobao", clean_db)
    assert report.loaded == 6 and not report.quarantined and report.batches == 1
    ev = _q(clean_db, "SELECT user_id, item_id, session_id, behavior_type, query_text, ts FROM user_behavior ORDER BY user_id, ts")
    assert ev.behavior_type.tolist() == ["browse", "cart", "fav", "purchase", "browse", "browse"]
    assert ev.session_id.tolist() == [f"1-{T0}"] * 4 + [f"1-{T0 + 300 + 31 * 60}", f"2-{T0 + 10}"]
    assert ev.ts.iloc[0] == pd.Timestamp("2025-11-01 12:00:00") and ev.query_text.isna().all()
    items = _q(clean_db, "SELECT item_id, category_id, created_ts FROM items ORDER BY item_id")
    assert items.values.tolist() == [
        [100, 7, pd.Timestamp("2025-11-01 12:00:00")],
        [101, 7, pd.Timestamp("2025-11-01 12:02:00")],
        [102, 8, pd.Timestamp("2025-11-01 12:00:10")],
    ]
    users = _q(clean_db, "SELECT user_id, signup_ts FROM users ORDER BY user_id")
    assert users.user_id.tolist() == [1, 2] and users.signup_ts.iloc[1] == pd.Timestamp("2025-11-01 12:00:10")


def test_retailrocket_mapping(clean_db, tmp_path):
    ms = T0 * 1000
    path = _write(tmp_path, "events.csv", [
        "timestamp,visitorid,event,itemid,transactionid",
        f"{ms + 5},257597,view,355908,",
        f"{ms + 65000},257597,addtocart,355908,",
        f"{ms + 99000},257597,transaction,355908,4000",
        f"{ms + 1},992329,view,248676,",
    ])
    report = import_file(path, "retailrocket", clean_db)
    assert report.loaded == 4 and not report.quarantined
    ev = _q(clean_db, "SELECT user_id, item_id, behavior_type, ts, session_id FROM user_behavior ORDER BY user_id, ts")
    assert ev.behavior_type.tolist() == ["browse", "cart", "purchase", "browse"]
    assert ev.ts.iloc[0] == pd.Timestamp("2025-11-01 12:00:00.005")
    assert ev.session_id.tolist() == [f"257597-{T0}"] * 3 + [f"992329-{T0}"]
    assert _q(clean_db, "SELECT DISTINCT category_id FROM items").category_id.tolist() == [0]  # unknown in this file


def test_every_reason_reaches_quarantine_with_counts(clean_db, tmp_path):
    path = _write(tmp_path, "ub.csv", b"\n".join([
        f"1,100,7,pv,{T0}".encode(),
        f",100,7,pv,{T0}".encode(),  # null_id
        f"u1,100,7,pv,{T0}".encode(),  # non_numeric_id
        f"1,100,x,pv,{T0}".encode(),  # non_numeric_id (category)
        f"1,100,7,click,{T0}".encode(),  # unknown_behavior
        b"1,100,7,pv,yesterday",  # bad_timestamp
        b"1,100,7,pv,4102444800",  # ts_future (2100)
        b"1,100,7,pv,900000000",  # ts_before_2000 (1998)
        f"1,100,7,pv,{T0}".encode(),  # duplicate_in_batch
        b"1,100,7,pv",  # unparseable
        b"1,100,7,pv,17619\xff84000",  # bad_encoding
    ]) + b"\n")
    report = import_file(path, "taobao", clean_db)
    expected = {"null_id": 1, "non_numeric_id": 2, "unknown_behavior": 1, "bad_timestamp": 1, "ts_future": 1,
                "ts_before_2000": 1, "duplicate_in_batch": 1, "unparseable": 1, "bad_encoding": 1}
    assert report.loaded == 1 and dict(report.quarantined) == expected
    q = _q(clean_db, "SELECT reason, COUNT(*) n, MIN(source) source FROM user_behavior_quarantine GROUP BY reason")
    assert dict(zip(q.reason, q.n)) == expected and set(q.source) == {"taobao:ub.csv"}
    rows = _q(clean_db, "SELECT line_no, raw_row, detail FROM user_behavior_quarantine WHERE reason = 'bad_encoding'")
    assert rows.line_no.tolist() == [11] and rows.raw_row[0] == "1,100,7,pv,17619\\xff84000"
    # a second import of the same file: the good row is now a duplicate of a loaded event
    again = import_file(path, "taobao", clean_db)
    assert again.loaded == 0 and again.quarantined["duplicate_of_loaded"] == 1
    assert int(_q(clean_db, "SELECT COUNT(*) n FROM user_behavior").n[0]) == 1


def test_partial_overlap_loads_only_new_events(clean_db, tmp_path):
    first = _write(tmp_path, "a.csv", [f"1,100,7,pv,{T0}", f"1,101,7,pv,{T0 + 50}"])
    import_file(first, "taobao", clean_db)
    second = _write(tmp_path, "b.csv", [f"1,101,7,pv,{T0 + 50}", f"1,102,7,pv,{T0 + 20}", f"2,101,7,pv,{T0 + 50}"])
    report = import_file(second, "taobao", clean_db)
    assert report.loaded == 2 and dict(report.quarantined) == {"duplicate_of_loaded": 1}
    dup = _q(clean_db, "SELECT line_no, source FROM user_behavior_quarantine")
    assert dup.values.tolist() == [[1, "taobao:b.csv"]]
    assert int(_q(clean_db, "SELECT COUNT(*) n FROM user_behavior").n[0]) == 4


def test_format_error_writes_nothing(clean_db, tmp_path):
    path = _write(tmp_path, "events.csv", [f"{T0}000,1,view,5,", f"{T0}001,1,view,6,"])
    with pytest.raises(FormatError, match=r"events.csv: line 1: header is .*timestamp,visitorid,event,itemid,transactionid"):
        import_file(path, "retailrocket", clean_db)
    assert int(_q(clean_db, "SELECT COUNT(*) n FROM user_behavior_quarantine").n[0]) == 0
    assert int(_q(clean_db, "SELECT COUNT(*) n FROM user_behavior").n[0]) == 0


def test_a_failing_batch_leaves_nothing_and_earlier_batches_stay(clean_db, tmp_path, monkeypatch):
    lines = []
    for b in range(3):  # 3 batches of 3 lines: two good events and one bad row each
        lines += [f"{10 + b},{100 + b},7,pv,{T0 + b}", f"{10 + b},{100 + b},7,cart,{T0 + b + 5}", f"{10 + b},x,7,pv,{T0}"]
    path = _write(tmp_path, "ub.csv", lines)
    real, calls = ingest._write_quarantine, []

    def fail_on_second(conn, raw, quarantine):
        calls.append(len(quarantine))
        real(conn, raw, quarantine)  # the rows reach the server inside the transaction ...
        if len(calls) == 2:
            raise RuntimeError("simulated failure after the batch's events and quarantine were written")

    monkeypatch.setattr(ingest, "_write_quarantine", fail_on_second)
    with pytest.raises(RuntimeError, match="simulated failure"):
        import_file(path, "taobao", clean_db, batch_rows=3)
    ev = _q(clean_db, "SELECT user_id, COUNT(*) n FROM user_behavior GROUP BY user_id")
    assert ev.values.tolist() == [[10, 2]]
    assert int(_q(clean_db, "SELECT COUNT(*) n FROM user_behavior_quarantine").n[0]) == 1
    assert _q(clean_db, "SELECT user_id FROM users").user_id.tolist() == [10]
    assert _q(clean_db, "SELECT item_id FROM items").item_id.tolist() == [100]


def test_cli_prints_counts_and_fails_clearly(clean_db, tmp_path):
    good = _write(tmp_path, "ub.csv", [f"1,100,7,pv,{T0}", f"1,100,7,nope,{T0}"])
    recsys = Path(sys.executable).parent / "recsys"
    env = dict(os.environ)
    out = subprocess.run([str(recsys), "data", "import", "taobao", str(good)], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "quarantined: unknown_behavior" in out.stdout and "loaded" in out.stdout
    bad = _write(tmp_path, "bin.csv", b"\x00\x01\x02garbage")
    out = subprocess.run([str(recsys), "data", "import", "taobao", str(bad)], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2 and "bin.csv: line 1: binary data" in out.stderr and "Traceback" not in out.stderr
