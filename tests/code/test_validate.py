"""Validation on the way in (pure pandas): each quarantine reason, the natural-key duplicate rule,
format recognition with clear errors, line-level failures, and 30-minute sessionisation."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ml.data.importers import RETAILROCKET, TAOBAO, Sessionizer, check_format, read_batches
from ml.data.validate import FormatError, validate_events, validate_items

NOW = pd.Timestamp("2026-11-01 12:00:00")
PV = {"pv": "browse", "cart": "cart", "fav": "fav", "buy": "purchase"}


def _rows(*rows):
    return pd.DataFrame(rows, columns=["user_id", "item_id", "behavior_type", "ts"]).assign(
        line_no=range(1, len(rows) + 1)
    )


def test_each_event_reason_is_named():
    df = _rows(
        ("1", "10", "pv", "1761998400"),  # ok
        ("", "10", "pv", "1761998401"),  # null user
        ("1", "", "buy", "1761998402"),  # null item on a purchase
        ("x1", "10", "pv", "1761998403"),  # non-numeric user
        ("1", "1.5", "pv", "1761998404"),  # non-integer item
        ("1", "-3", "pv", "1761998405"),  # negative item
        ("1", "10", "click", "1761998406"),  # unknown behaviour
        ("1", "10", "pv", "soon"),  # bad timestamp
        ("1", "10", "pv", "1893456000"),  # 2030: future
        ("1", "10", "pv", "511000000"),  # 1986: before 2000
        ("1", "10", "pv", "1761998400"),  # duplicate of row 1
    )
    checked = validate_events(df, "t", behavior_map=PV, ts_unit="s", now=NOW)
    got = dict(zip(checked.quarantine.line_no, checked.quarantine.reason))
    assert got == {
        2: "null_id",
        3: "null_id",
        4: "non_numeric_id",
        5: "non_numeric_id",
        6: "non_numeric_id",
        7: "unknown_behavior",
        8: "bad_timestamp",
        9: "ts_future",
        10: "ts_before_2000",
        11: "duplicate_in_batch",
    }
    assert checked.clean.line_no.tolist() == [1]
    row = checked.clean.iloc[0]
    assert (row.user_id, row.item_id, row.behavior_type, row.ts) == (
        1,
        10,
        "browse",
        pd.Timestamp("2025-11-01 12:00:00"),
    )
    assert (checked.quarantine.source == "t").all()
    assert checked.quarantine.set_index("line_no").detail[4] == "user_id=x1"


def test_duplicate_key_ignores_session_and_keeps_first():
    df = pd.DataFrame(
        {
            "user_id": [5, 5, 5, 5],
            "item_id": pd.array([None, None, 7, 7], dtype="Int64"),
            "behavior_type": ["search", "search", "browse", "cart"],
            "ts": pd.to_datetime(["2026-10-01 10:00:00.123"] * 4),
            "session_id": ["a", "b", "a", "a"],
            "query_text": ["tv", "tv", None, None],
        }
    )
    checked = validate_events(df, "sim", now=NOW)
    assert checked.quarantine.reason.tolist() == ["duplicate_in_batch"]
    assert checked.clean.session_id.tolist() == ["a", "a", "a"]
    assert checked.clean.item_id.isna().tolist() == [True, False, False]


def test_milliseconds_and_search_queries_kept():
    df = pd.DataFrame(
        {
            "user_id": [1, 1],
            "item_id": [None, 4],
            "behavior_type": ["search", "browse"],
            "ts": ["1761998400123", "1761998401999"],
            "query_text": ["red dress", "stray"],
        }
    )
    checked = validate_events(df, "t", ts_unit="ms", now=NOW)
    assert checked.clean.ts.tolist() == [
        pd.Timestamp("2025-11-01 12:00:00.123"),
        pd.Timestamp("2025-11-01 12:00:01.999"),
    ]
    assert checked.clean.query_text.tolist() == ["red dress", None]


def test_item_prices():
    items = pd.DataFrame(
        {"item_id": [1, 2, 3, 4, 5], "category_id": [1, 1, 1, 1, 1], "price": [9.99, -1.0, 5e6, "abc", None]}
    )
    checked = validate_items(items, "items")
    assert checked.clean.item_id.tolist() == [1, 5]
    assert checked.quarantine.reason.tolist() == ["bad_price"] * 3
    assert checked.quarantine.detail.tolist() == ["price=-1.0", "price=5000000.0", "price=abc"]


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_line_failures_become_quarantine_reasons(tmp_path):
    p = _write(
        tmp_path,
        "ub.csv",
        b"1,2,3,pv,1761998400\n1,2,3\n\n1,2,3,pv,17619\xff\xfe8400\n1,2,3,buy,1761998500,9\n",
    )
    (batch,) = list(read_batches(p, TAOBAO, 100))
    assert batch.line_no == [1]
    assert [(b[1], b[3]) for b in batch.bad] == [("unparseable", 2), ("bad_encoding", 4), ("unparseable", 5)]
    assert batch.bad[1][0] == "1,2,3,pv,17619\\xff\\xfe8400"


@pytest.mark.parametrize(
    ("fmt", "data", "line", "needle"),
    [
        (TAOBAO, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", 3, "binary"),
        (TAOBAO, b"1;2;3;pv;1761998400\n", 1, "1 columns"),
        (TAOBAO, b"a,b,c,d,e\nf,g,h,i,j\n", 1, "no valid taobao row"),
        (TAOBAO, b"", 1, "empty"),
        (RETAILROCKET, b"1,2268318,2520377,pv,1511544070\n", 1, "header is"),
        (
            RETAILROCKET,
            b"timestamp,visitorid,event,itemid,transactionid\n1433221332117,257597,view\n",
            2,
            "3 columns",
        ),
    ],
)
def test_format_errors_name_file_line_and_columns(tmp_path, fmt, data, line, needle):
    p = _write(tmp_path, "in.csv", data)
    with pytest.raises(FormatError) as err:
        check_format(p, fmt)
    msg = str(err.value)
    assert str(p) in msg and f"line {line}:" in msg and needle in msg and ",".join(fmt.columns) in msg


def test_format_accepts_good_files(tmp_path):
    check_format(_write(tmp_path, "t.csv", b"1,2,3,pv,1511544070\n"), TAOBAO)
    check_format(
        _write(
            tmp_path, "t2.csv", b"user_id,item_id,category_id,behavior_type,timestamp\n1,2,3,pv,1511544070\n"
        ),
        TAOBAO,
    )
    check_format(
        _write(
            tmp_path,
            "r.csv",
            b"timestamp,visitorid,event,itemid,transactionid\r\n1433221332117,257597,view,355908,\r\n",
        ),
        RETAILROCKET,
    )


def test_sessions_split_on_30_minute_gap_and_continue_across_batches():
    s = Sessionizer()
    t0 = pd.Timestamp("2026-10-01 10:00:00")
    first = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 2],
            "ts": [t0, t0 + pd.Timedelta(minutes=29), t0 + pd.Timedelta(minutes=60), t0],
        }
    )
    a = s.assign(first)
    epoch = int(t0.timestamp())
    assert a.session_id.tolist() == [f"1-{epoch}", f"1-{epoch}", f"1-{epoch + 3600}", f"2-{epoch}"]
    second = pd.DataFrame(
        {"user_id": [1, 2], "ts": [t0 + pd.Timedelta(minutes=80), t0 + pd.Timedelta(minutes=31)]}
    )
    b = s.assign(second)
    assert b.session_id.tolist() == [f"1-{epoch + 3600}", f"2-{epoch + 31 * 60}"]


def test_text_timestamps_of_mixed_shapes_parse_one_by_one():
    df = pd.DataFrame(
        {
            "user_id": ["1", "1", "1"],
            "item_id": ["2", "3", "4"],
            "behavior_type": ["browse"] * 3,
            "ts": ["2026-10-01 10:00:00.123", "2026-10-02", "not a time"],
        }
    )
    checked = validate_events(df, "t", now=NOW)
    assert checked.clean.ts.tolist() == [pd.Timestamp("2026-10-01 10:00:00.123"), pd.Timestamp("2026-10-02")]
    assert checked.quarantine.reason.tolist() == ["bad_timestamp"]
