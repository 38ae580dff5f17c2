"""Any bytes on a line of an imported file end as a quarantine row with a reason and the line as
received (up to 4 MiB, cut on a character boundary beyond, saying so), while the good lines of the
same batch load: quotes, tabs, backslashes, CR, NUL, invalid UTF-8 and 1 MB lines, for Taobao and
Online Retail CSV files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ml.data.importers import import_file
from ml.data.online_retail import import_online_retail
from ml.data.validate import MAX_RAW_BYTES
from ml.features.datasets import read_sql

T0 = 1761998400  # 2025-11-01 12:00:00 UTC
BIG_ASCII = b"9" * 1_000_000
BIG_WIDE = "商".encode() * 350_000  # 1.05 MB, 3 bytes a character: over TEXT's 65,535 bytes
HUGE = "é".encode() * (MAX_RAW_BYTES // 2 + 1000)  # over the 4 MiB kept of a line

# (bad Taobao line, reason, raw_row as stored)
TAOBAO_BAD: list[tuple[bytes, str, str]] = [
    (b'5,"108,5,pv,1511544670', "non_numeric_id", '5,"108,5,pv,1511544670'),  # the line
    (b'5,108",5,pv,1511544670', "non_numeric_id", '5,108",5,pv,1511544670'),
    (b'5,"a,b",5,pv,1511544670', "unparseable", '5,"a,b",5,pv,1511544670'),
    (b"5,1\t08,5,pv,1511544670", "non_numeric_id", "5,1\t08,5,pv,1511544670"),
    (b"5,108\\,5,pv,1511544670", "non_numeric_id", "5,108\\,5,pv,1511544670"),
    (b'5,\\"108\\N,5,pv,1511544670', "non_numeric_id", '5,\\"108\\N,5,pv,1511544670'),
    (b"5,10\x008,5,pv,1511544670", "non_numeric_id", "5,10\x008,5,pv,1511544670"),
    (b"5,10\r8,5,pv,1511544670", "non_numeric_id", "5,10\r8,5,pv,1511544670"),
    (b'5,"10\xff8,5,pv,1511544670', "bad_encoding", '5,"10\\xff8,5,pv,1511544670'),
    (
        b"5," + BIG_ASCII + b",5,pv,1511544670",
        "non_numeric_id",
        "5," + BIG_ASCII.decode() + ",5,pv,1511544670",
    ),
    (
        b'5,"' + BIG_WIDE + b",5,pv,1511544670",
        "non_numeric_id",
        '5,"' + BIG_WIDE.decode() + ",5,pv,1511544670",
    ),
]


def _q(settings, sql: str) -> pd.DataFrame:
    return read_sql(sql, settings, database=settings.raw_db)


def _interleave(good: list[bytes], bad: list[bytes]) -> bytes:
    """good[0], bad[0], good[1], bad[1], ..., the rest of good."""
    out = []
    for i, g in enumerate(good):
        out.append(g)
        if i < len(bad):
            out.append(bad[i])
    return b"\n".join(out) + b"\n"


def test_taobao_any_bytes_go_to_quarantine_and_the_good_rows_load(clean_db, tmp_path: Path):
    good = [f"{u},{100 + u},7,pv,{T0 + u}".encode() for u in range(1, len(TAOBAO_BAD) + 2)]
    bad = [line for line, _, _ in TAOBAO_BAD] + [b"5," + HUGE + b",5,pv,1511544670"]
    path = tmp_path / "UserBehavior.csv"
    path.write_bytes(_interleave(good, bad))
    report = import_file(path, "taobao", clean_db)
    assert report.loaded == len(good) and report.batches == 1
    assert sorted(_q(clean_db, "SELECT user_id FROM user_behavior").user_id) == list(range(1, len(good) + 1))
    q = _q(
        clean_db,
        "SELECT line_no, reason, detail, raw_row, LENGTH(raw_row) AS nbytes FROM user_behavior_quarantine "
        "ORDER BY line_no",
    )
    assert q.line_no.tolist() == [2 * (i + 1) for i in range(len(bad))]
    for (_, reason, raw), row in zip(TAOBAO_BAD, q.itertuples()):
        assert (row.reason, row.raw_row) == (reason, raw), row.line_no
        assert row.nbytes == len(raw.encode())  # nothing cut or re-encoded on the way
        assert "cut" not in row.detail
    huge = q.iloc[-1]
    assert huge.reason == "non_numeric_id" and huge.detail.endswith(
        f"[raw_row cut to its first {MAX_RAW_BYTES:,} bytes]"
    )
    assert MAX_RAW_BYTES - 1 <= huge["nbytes"] <= MAX_RAW_BYTES  # cut between two 2-byte characters
    assert (b"5," + HUGE).decode().startswith(huge.raw_row)
    assert dict(report.quarantined) == dict(
        pd.Series([r for _, r, _ in TAOBAO_BAD] + ["non_numeric_id"]).value_counts()
    )


RETAIL_HEADER = b"InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"


def _retail(invoice: int, description: bytes) -> bytes:
    return b"%d,22%d,%s,2,2010-12-01 09:00:00,4.95,%d,France" % (
        invoice,
        invoice,
        description,
        13000 + invoice,
    )


def test_online_retail_csv_any_bytes(clean_db, tmp_path: Path):
    """Descriptions with a tab, a backslash, a doubled quote or 1 MB of text are good lines (titles
    kept as written, cut to 255 characters); a broken quote, NUL or invalid UTF-8 quarantines the
    line whole, however long."""
    good = {
        1: b"TAB\tIN TITLE",
        2: b"BACK\\SLASH \\N",
        3: b'"SAY ""HI"", \\ OK"',
        4: BIG_WIDE,
    }
    titles = {1: "TAB\tIN TITLE", 2: "BACK\\SLASH \\N", 3: 'SAY "HI", \\ OK', 4: BIG_WIDE.decode()[:255]}
    bad = [
        (_retail(5, b'"BROKEN ' + BIG_WIDE), "unparseable"),
        (_retail(6, b"NUL\x00BYTE"), "bad_encoding"),
        (_retail(7, b"LATIN1 \xe9T\xe9"), "bad_encoding"),
        (_retail(8, b'"TEA"SET\\'), "unparseable"),
    ]
    lines = [RETAIL_HEADER]
    for i, description in good.items():
        lines += [_retail(i, description), bad[i - 1][0]]
    path = tmp_path / "online_retail.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = import_online_retail(path, clean_db)
    assert report.loaded == len(good)
    got = _q(
        clean_db, "SELECT user_id - 13000 AS i, i.title FROM user_behavior e JOIN items i USING (item_id)"
    )
    assert dict(zip(got.i, got.title)) == titles
    q = _q(clean_db, "SELECT line_no, reason, raw_row FROM user_behavior_quarantine ORDER BY line_no")
    assert q.line_no.tolist() == [3, 5, 7, 9]
    assert q.reason.tolist() == [reason for _, reason in bad]
    assert q.raw_row.tolist() == [line.decode("utf-8", "backslashreplace") for line, _ in bad]
