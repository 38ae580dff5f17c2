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
from ml.data.online_retail import import_online_retail
from ml.data.validate import FormatError
from ml.features.datasets import read_sql

T0 = 1761998400  # 2025-11-01 12:00:00 UTC


def _q(settings, sql: str) -> pd.DataFrame:
    return read_sql(sql, settings, database=settings.raw_db)


def _write(tmp_path: Path, name: str, lines: list[str] | bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(lines if isinstance(lines, bytes) else ("\n".join(lines) + "\n").encode())
    return p


def test_taobao_mapping_sessions_users_items(clean_db, tmp_path):
    path = _write(
        tmp_path,
        "UserBehavior.csv",
        [
            f"1,100,7,pv,{T0}",
            f"1,100,7,cart,{T0 + 60}",
            f"1,101,7,fav,{T0 + 120}",
            f"1,100,7,buy,{T0 + 300}",
            f"1,102,8,pv,{T0 + 300 + 31 * 60}",  # > 30 min later: new session
            f"2,102,8,pv,{T0 + 10}",
        ],
    )
    report = import_file(path, "taobao", clean_db)
    assert report.loaded == 6 and not report.quarantined and report.batches == 1
    ev = _q(
        clean_db,
        "SELECT user_id, item_id, session_id, behavior_type, query_text, ts FROM user_behavior ORDER BY user_id, ts",
    )
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
    path = _write(
        tmp_path,
        "events.csv",
        [
            "timestamp,visitorid,event,itemid,transactionid",
            f"{ms + 5},257597,view,355908,",
            f"{ms + 65000},257597,addtocart,355908,",
            f"{ms + 99000},257597,transaction,355908,4000",
            f"{ms + 1},992329,view,248676,",
        ],
    )
    report = import_file(path, "retailrocket", clean_db)
    assert report.loaded == 4 and not report.quarantined
    ev = _q(
        clean_db,
        "SELECT user_id, item_id, behavior_type, ts, session_id FROM user_behavior ORDER BY user_id, ts",
    )
    assert ev.behavior_type.tolist() == ["browse", "cart", "purchase", "browse"]
    assert ev.ts.iloc[0] == pd.Timestamp("2025-11-01 12:00:00.005")
    assert ev.session_id.tolist() == [f"257597-{T0}"] * 3 + [f"992329-{T0}"]
    assert _q(clean_db, "SELECT DISTINCT category_id FROM items").category_id.tolist() == [
        0
    ]  # unknown in this file


def test_every_reason_reaches_quarantine_with_counts(clean_db, tmp_path):
    path = _write(
        tmp_path,
        "ub.csv",
        b"\n".join(
            [
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
            ]
        )
        + b"\n",
    )
    report = import_file(path, "taobao", clean_db)
    expected = {
        "null_id": 1,
        "non_numeric_id": 2,
        "unknown_behavior": 1,
        "bad_timestamp": 1,
        "ts_future": 1,
        "ts_before_2000": 1,
        "duplicate_in_batch": 1,
        "unparseable": 1,
        "bad_encoding": 1,
    }
    assert report.loaded == 1 and dict(report.quarantined) == expected
    q = _q(
        clean_db,
        "SELECT reason, COUNT(*) n, MIN(source) source FROM user_behavior_quarantine GROUP BY reason",
    )
    assert dict(zip(q.reason, q.n)) == expected and set(q.source) == {"taobao:ub.csv"}
    rows = _q(
        clean_db,
        "SELECT line_no, raw_row, detail FROM user_behavior_quarantine WHERE reason = 'bad_encoding'",
    )
    assert rows.line_no.tolist() == [11] and rows.raw_row[0] == "1,100,7,pv,17619\\xff84000"
    # a second import of the same file: the good row is now a duplicate of a loaded event
    again = import_file(path, "taobao", clean_db)
    assert again.loaded == 0 and again.quarantined["duplicate_of_loaded"] == 1
    assert int(_q(clean_db, "SELECT COUNT(*) n FROM user_behavior").n[0]) == 1


def test_partial_overlap_loads_only_new_events(clean_db, tmp_path):
    first = _write(tmp_path, "a.csv", [f"1,100,7,pv,{T0}", f"1,101,7,pv,{T0 + 50}"])
    import_file(first, "taobao", clean_db)
    second = _write(
        tmp_path, "b.csv", [f"1,101,7,pv,{T0 + 50}", f"1,102,7,pv,{T0 + 20}", f"2,101,7,pv,{T0 + 50}"]
    )
    report = import_file(second, "taobao", clean_db)
    assert report.loaded == 2 and dict(report.quarantined) == {"duplicate_of_loaded": 1}
    dup = _q(clean_db, "SELECT line_no, source FROM user_behavior_quarantine")
    assert dup.values.tolist() == [[1, "taobao:b.csv"]]
    assert int(_q(clean_db, "SELECT COUNT(*) n FROM user_behavior").n[0]) == 4


def test_format_error_writes_nothing(clean_db, tmp_path):
    path = _write(tmp_path, "events.csv", [f"{T0}000,1,view,5,", f"{T0}001,1,view,6,"])
    with pytest.raises(
        FormatError, match=r"events.csv: line 1: header is .*timestamp,visitorid,event,itemid,transactionid"
    ):
        import_file(path, "retailrocket", clean_db)
    assert int(_q(clean_db, "SELECT COUNT(*) n FROM user_behavior_quarantine").n[0]) == 0
    assert int(_q(clean_db, "SELECT COUNT(*) n FROM user_behavior").n[0]) == 0


def test_a_failing_batch_leaves_nothing_and_earlier_batches_stay(clean_db, tmp_path, monkeypatch):
    lines = []
    for b in range(3):  # 3 batches of 3 lines: two good events and one bad row each
        lines += [
            f"{10 + b},{100 + b},7,pv,{T0 + b}",
            f"{10 + b},{100 + b},7,cart,{T0 + b + 5}",
            f"{10 + b},x,7,pv,{T0}",
        ]
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
    out = subprocess.run(
        [str(recsys), "data", "import", "taobao", str(good)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "quarantined: unknown_behavior" in out.stdout and "loaded" in out.stdout
    bad = _write(tmp_path, "bin.csv", b"\x00\x01\x02garbage")
    out = subprocess.run(
        [str(recsys), "data", "import", "taobao", str(bad)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert (
        out.returncode == 2 and "bin.csv: line 1: binary data" in out.stderr and "Traceback" not in out.stderr
    )


# --- UCI Online Retail -------------------------------------------------------------------------

RETAIL_HEADER = b"InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
# (line in the CSV, bytes, expected reason or None for a kept line); the Parquet twin holds the
# lines that a typed file can hold, in the same order
RETAIL_LINES: list[tuple[bytes, str | None]] = [
    (
        b"536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom",
        None,
    ),
    (b"536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850.0,United Kingdom", None),
    (
        b'536366,22633,"HAND WARMER ""UNION JACK"", RED",6,2010-12-01 08:28:00,1.85,17850.0,United Kingdom',
        None,
    ),
    (b'536367,84879,RECORD FRAME 7" SINGLE SIZE ,32,2010-12-01 08:34:00,1.69,13047,France', None),
    (b"536369,85123a,CREAM HANGING HEART T-LIGHT HOLDER,1,2010-12-02 10:00:00,2.95,13047,France", None),
    (b"536370,85123A,,2,12/3/2010 9:00,3.10,13047,France", None),  # US date; no title: keeps the last
    (b"C536379,D,Discount,-1,2010-12-01 09:41:00,27.50,14527.0,United Kingdom", "cancelled"),
    (b"536380,22139,RETROSPOT TEA SET,-3,2010-12-01 09:45:00,4.95,14527.0,United Kingdom", "cancelled"),
    (b"536381,22139,RETROSPOT TEA SET,2,2010-12-01 09:46:00,4.95,,United Kingdom", "null_id"),
    (b"536382,22139,RETROSPOT TEA SET,2,2010-12-01 09:47:00,0.00,14527.0,United Kingdom", "bad_price"),
    (b"536383,22139,RETROSPOT TEA SET,2,2010-12-01 09:48:00,-1.5,14527.0,United Kingdom", "bad_price"),
    (b"536384,22139,RETROSPOT TEA SET,0,2010-12-01 09:49:00,4.95,14527.0,United Kingdom", "bad_quantity"),
    (b"536385,22139,RETROSPOT TEA SET,2,not a date,4.95,14527.0,United Kingdom", "bad_timestamp"),
    (b"536391,22145,HALF A CUSTOMER,1,2010-12-01 10:00:00,1.00,17850.5,United Kingdom", "non_numeric_id"),
    (
        b"536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom",
        "duplicate_in_batch",
    ),
    # lines only a CSV can hold
    (b"536392,22146,FRACTIONAL,1.5,2010-12-01 10:00:00,1.00,17850,United Kingdom", "bad_quantity"),
    (b'536386,"22140,BROKEN QUOTE,2,2010-12-01 09:50:00,4.95,14527.0,United Kingdom', "unparseable"),
    (b'536387,22141,"TEA"SET,2,2010-12-01 09:51:00,4.95,14527.0,United Kingdom', "unparseable"),
    (b"536388,22142,DOILY \xff PACK,2,2010-12-01 09:52:00,4.95,14527.0,United Kingdom", "bad_encoding"),
    (b"536389,22143,NUL\x00BYTE,2,2010-12-01 09:53:00,4.95,14527.0,United Kingdom", "bad_encoding"),
    (b"536390,22144,TOO,MANY,FIELDS,2,2010-12-01 09:54:00,4.95,14527.0,United Kingdom", "unparseable"),
]
N_TYPED = 15  # the first lines, which a Parquet file can hold too
RETAIL_ITEMS = [  # item_id, code, title, price, created_ts: ids in first-seen order
    [1, "85123A", "CREAM HANGING HEART T-LIGHT HOLDER", 3.10, pd.Timestamp("2010-12-01 08:26:00")],
    [2, "71053", "WHITE METAL LANTERN", 3.39, pd.Timestamp("2010-12-01 08:26:00")],
    [3, "22633", 'HAND WARMER "UNION JACK", RED', 1.85, pd.Timestamp("2010-12-01 08:28:00")],
    [4, "84879", 'RECORD FRAME 7" SINGLE SIZE', 1.69, pd.Timestamp("2010-12-01 08:34:00")],
]
_RAW_TABLES = ("user_behavior", "user_behavior_quarantine", "users", "items", "source_keys", "import_ledger")


def _retail_csv(tmp_path: Path, name: str = "online_retail.csv") -> Path:
    body = b"\n".join([RETAIL_HEADER, *(line for line, _ in RETAIL_LINES)]) + b"\n\n"  # + a blank line
    return _write(tmp_path, name, body)


def _retail_parquet(tmp_path: Path, name: str = "online_retail.parquet") -> Path:
    """The typed lines as the UCI Parquet has them (CustomerID float with NaN, InvoiceDate a
    timestamp: the unparseable date is NaT)."""
    import csv

    rows = list(csv.reader(line.decode() for line, _ in RETAIL_LINES[:N_TYPED]))
    df = pd.DataFrame(rows, columns=RETAIL_HEADER.decode().split(","))
    df["Quantity"] = df["Quantity"].astype("int64")
    df["UnitPrice"] = df["UnitPrice"].astype(float)
    df["CustomerID"] = pd.to_numeric(df["CustomerID"])
    df["InvoiceDate"] = pd.to_datetime(df["InvoiceDate"], format="mixed", errors="coerce")
    p = tmp_path / name
    df.to_parquet(p, index=False)
    return p


def _counts(settings) -> dict[str, int]:
    return {t: int(_q(settings, f"SELECT COUNT(*) n FROM {t}").n[0]) for t in _RAW_TABLES}


def _retail_items(settings) -> list[list]:
    got = _q(
        settings,
        "SELECT i.item_id, k.source_key, i.title, i.price, i.created_ts, i.category_id FROM items i "
        "JOIN source_keys k ON k.id = i.item_id AND k.kind = 'item' AND k.source = 'online_retail' "
        "ORDER BY i.item_id",
    )
    assert set(got.category_id) == {0}  # unknown: the file has no categories
    return [[r[0], r[1], r[2], float(r[3]), r[4]] for r in got.drop(columns="category_id").values.tolist()]


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_online_retail_every_case_then_reimport_adds_nothing(clean_db, tmp_path, kind):
    path = _retail_csv(tmp_path) if kind == "csv" else _retail_parquet(tmp_path)
    lines = RETAIL_LINES if kind == "csv" else RETAIL_LINES[:N_TYPED]
    first_line = 2 if kind == "csv" else 1  # CSV line numbers count the header
    expected = {first_line + i: reason for i, (_, reason) in enumerate(lines) if reason}
    report = import_online_retail(path, clean_db)
    assert report.loaded == 6 and report.items == 4 and report.users == 2
    q = _q(clean_db, "SELECT line_no, reason, detail, raw_row, source FROM user_behavior_quarantine")
    assert dict(zip(q.line_no, q.reason)) == expected == dict(sorted(expected.items()))
    assert dict(report.quarantined) == dict(pd.Series(list(expected.values())).value_counts())
    assert set(q.source) == {f"online_retail:{path.name}"}
    detail = dict(zip(q.line_no, q.detail))
    assert detail[first_line + 6] == "InvoiceNo=C536379 Quantity=-1"
    assert detail[first_line + 9] == ("UnitPrice=0.00" if kind == "csv" else "UnitPrice=0.0")
    assert detail[first_line + 8] == "user_id is empty"
    raw = dict(zip(q.line_no, q.raw_row))
    assert raw[first_line + 6] == "C536379,D,Discount,-1,2010-12-01 09:41:00,27.5,14527.0,United Kingdom" or (
        kind == "csv" and raw[first_line + 6] == RETAIL_LINES[6][0].decode()
    )
    if kind == "csv":
        assert (
            raw[first_line + 18]
            == "536388,22142,DOILY \\xff PACK,2,2010-12-01 09:52:00,4.95,14527.0,United Kingdom"
        )
        assert detail[first_line + 19].startswith("control character 0x00")
        assert detail[first_line + 16].startswith("broken quoting")
    ev = _q(
        clean_db,
        "SELECT user_id, item_id, session_id, behavior_type, ts, quantity, unit_price FROM user_behavior "
        "ORDER BY event_id",
    )
    assert ev.drop(columns="unit_price").values.tolist() == [
        [17850, 1, "inv-536365", "purchase", pd.Timestamp("2010-12-01 08:26:00"), 6],
        [17850, 2, "inv-536365", "purchase", pd.Timestamp("2010-12-01 08:26:00"), 6],
        [17850, 3, "inv-536366", "purchase", pd.Timestamp("2010-12-01 08:28:00"), 6],
        [13047, 4, "inv-536367", "purchase", pd.Timestamp("2010-12-01 08:34:00"), 32],
        [13047, 1, "inv-536369", "purchase", pd.Timestamp("2010-12-02 10:00:00"), 1],
        [13047, 1, "inv-536370", "purchase", pd.Timestamp("2010-12-03 09:00:00"), 2],
    ]
    assert ev.unit_price.astype(float).tolist() == [2.55, 3.39, 1.85, 1.69, 2.95, 3.10]
    assert _retail_items(clean_db) == RETAIL_ITEMS
    users = _q(clean_db, "SELECT user_id, location, signup_ts FROM users ORDER BY user_id")
    assert users.values.tolist() == [
        [13047, "France", pd.Timestamp("2010-12-01 08:34:00")],
        [17850, "United Kingdom", pd.Timestamp("2010-12-01 08:26:00")],
    ]
    before = _counts(clean_db)
    again = import_online_retail(path, clean_db)
    assert (again.loaded, again.batches, dict(again.quarantined)) == (0, 0, {})
    assert again.skipped == len(lines)
    assert _counts(clean_db) == before


def test_online_retail_ids_stay_across_batches_files_and_formats(clean_db, tmp_path):
    """Batches of 4 lines give what one batch gives; the Parquet twin of an imported CSV maps
    every code to the same item and loads no event twice (a different file: its lines are checked
    against the loaded events by the natural key)."""
    report = import_online_retail(_retail_csv(tmp_path), clean_db, batch_rows=4)
    assert report.loaded == 6 and report.batches == 6
    assert _retail_items(clean_db) == RETAIL_ITEMS
    n_keys = _counts(clean_db)["source_keys"]
    twin = import_online_retail(_retail_parquet(tmp_path), clean_db)
    assert twin.loaded == 0 and twin.quarantined["duplicate_of_loaded"] == 6
    assert twin.items == 0 and _counts(clean_db)["source_keys"] == n_keys
    assert _retail_items(clean_db) == RETAIL_ITEMS


def test_online_retail_latest_title_and_price_win_whatever_the_import_order(clean_db, tmp_path):
    newer = _write(
        tmp_path,
        "2011.csv",
        [
            RETAIL_HEADER.decode(),
            "581587,22138,BAKING SET 9 PIECE RETROSPOT ,3,2011-12-09 12:50:00,4.95,12680.0,France",
        ],
    )
    older = _write(
        tmp_path,
        "2010.csv",
        [RETAIL_HEADER.decode(), "536365,22138,OLD NAME,2,2010-12-01 08:26:00,3.75,17850.0,United Kingdom"],
    )
    import_online_retail(newer, clean_db)
    import_online_retail(older, clean_db)
    assert _retail_items(clean_db) == [
        [1, "22138", "BAKING SET 9 PIECE RETROSPOT", 4.95, pd.Timestamp("2010-12-01 08:26:00")]
    ]


def test_online_retail_resumes_after_a_failed_batch(clean_db, tmp_path, monkeypatch):
    path = _retail_csv(tmp_path)
    real, calls = ingest._write_quarantine, []

    def fail_on_second(conn, raw, quarantine):
        calls.append(1)
        real(conn, raw, quarantine)
        if len(calls) == 2:
            raise RuntimeError("simulated failure in the second batch")

    monkeypatch.setattr(ingest, "_write_quarantine", fail_on_second)
    with pytest.raises(RuntimeError, match="simulated failure"):
        import_online_retail(path, clean_db, batch_rows=8)
    assert _q(clean_db, "SELECT first_line, last_line FROM import_ledger").values.tolist() == [[2, 9]]
    monkeypatch.setattr(ingest, "_write_quarantine", real)
    rest = import_online_retail(path, clean_db, batch_rows=8)
    assert rest.skipped == 8 and rest.batches == 2
    assert _counts(clean_db)["user_behavior_quarantine"] == len(RETAIL_LINES) - 6
    assert _retail_items(clean_db) == RETAIL_ITEMS


def test_online_retail_cli_and_format_errors(clean_db, tmp_path):
    recsys = Path(sys.executable).parent / "recsys"
    path = _retail_parquet(tmp_path)

    def run(*args: str) -> subprocess.CompletedProcess:
        cmd = [str(recsys), "data", "import", "online_retail", *args]
        return subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), timeout=120)

    out = run(str(path))
    assert out.returncode == 0, out.stderr
    assert "quarantined: cancelled" in out.stdout and "2 / 4" in out.stdout
    out = run(str(path))
    assert out.returncode == 0 and "lines already imported (skipped)" in out.stdout
    pd.DataFrame({"InvoiceNo": ["1"], "Quantity": [1]}).to_parquet(tmp_path / "narrow.parquet")
    out = run(str(tmp_path / "narrow.parquet"))
    assert out.returncode == 2 and "Parquet columns lack StockCode, Description" in out.stderr
    bad_header = _write(tmp_path, "wrong.csv", ["a,b,c", "1,2,3"])
    out = run(str(bad_header))
    assert (
        out.returncode == 2 and "wrong.csv: line 1: header is" in out.stderr and "Traceback" not in out.stderr
    )


def test_online_retail_line_splitting():
    from ml.data.importers import LineError
    from ml.data.online_retail import split_csv_line

    assert split_csv_line('1,"A, ""B""",2') == ["1", 'A, "B"', "2"]
    assert split_csv_line('1,7" FRAME,2') == ["1", '7" FRAME', "2"]
    for bad, reason in (
        ('1,"open,2', "unparseable"),
        ('1,"a"b,2', "unparseable"),
        ("1,\x07,2", "bad_encoding"),
    ):
        with pytest.raises(LineError) as err:
            split_csv_line(bad)
        assert err.value.reason == reason
