"""Issue 14, item 11: `recsys data import ... --pseudonymize` keeps source user ids out of the warehouse
(real MariaDB/MySQL): the same source id gets the same pseudonymous id in every import under one key,
another key gives other ids, and no table of recsys_raw holds the source id in any column."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from ml.data.importers import import_file
from ml.data.online_retail import import_online_retail
from ml.features.datasets import read_sql

T0 = 1761998400  # 2025-11-01 12:00:00 UTC
ALICE, BOB = 987654321, 876543219  # source ids distinctive enough to search for as text
KEY1, KEY2 = b"first secret key", b"another secret key"


def _q(s, sql: str, params: tuple | None = None) -> pd.DataFrame:
    return read_sql(sql, s, params, database=s.raw_db)


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def _where_stored(s, needle: str) -> list[str]:
    """``table.column`` of every raw column whose text holds ``needle`` somewhere."""
    cols = _q(
        s,
        "SELECT c.table_name, c.column_name FROM information_schema.columns c JOIN information_schema.tables t "
        "USING (table_schema, table_name) WHERE c.table_schema = %s AND t.table_type = 'BASE TABLE'",
        (s.raw_db,),
    )
    found = []
    for table, col in cols.itertuples(index=False):
        n = _q(
            s, f"SELECT COUNT(*) AS n FROM `{table}` WHERE CAST(`{col}` AS CHAR) LIKE %s", (f"%{needle}%",)
        )
        if int(n["n"][0]):
            found.append(f"{table}.{col}")
    return found


def test_taobao_pseudonyms_are_stable_per_key_differ_between_keys_and_never_store_the_source_id(
    clean_db, tmp_path
):
    s = clean_db
    first = _write(
        tmp_path / "first.csv",
        [
            f"{ALICE},5,1,pv,{T0}",
            f"{BOB},6,1,cart,{T0 + 10}",
            f"{ALICE},7,1,teleport,{T0 + 20}",  # unknown_behavior: kept, with the pseudonym in its text
            f"{BOB},8,1,pv",  # 4 fields: unparseable, no raw text kept
        ],
    )
    rep = import_file(first, "taobao", s, pseudonym_key=KEY1)
    assert rep.loaded == 2 and rep.quarantined == {"unknown_behavior": 1, "unparseable": 1}
    ids = set(_q(s, "SELECT user_id FROM users")["user_id"].astype(int))
    assert len(ids) == 2 and not ids & {ALICE, BOB}

    later = _write(tmp_path / "later.csv", [f"{ALICE},9,2,buy,{T0 + 7200}", f"{BOB},9,2,fav,{T0 + 7300}"])
    assert import_file(later, "taobao", s, pseudonym_key=KEY1).loaded == 2
    assert set(_q(s, "SELECT DISTINCT user_id FROM user_behavior")["user_id"].astype(int)) == ids  # stable
    assert len(_q(s, "SELECT user_id FROM users")) == 2

    for needle in (str(ALICE), str(BOB)):
        assert _where_stored(s, needle) == []
    q = _q(s, "SELECT raw_row, reason, detail FROM user_behavior_quarantine ORDER BY line_no")
    assert q.raw_row.iloc[0].split(",")[0] in {str(i) for i in ids}  # line 3, pseudonymised
    assert q.raw_row.iloc[1] is None and "withheld" in q.detail.iloc[1]  # line 4 (4 fields): no text

    assert import_file(first, "taobao", s, pseudonym_key=KEY2).loaded == 2  # same file, another key
    other = set(_q(s, "SELECT user_id FROM users")["user_id"].astype(int)) - ids
    assert len(other) == 2 and not other & ids


RETAIL_HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"


def test_online_retail_pseudonymises_customer_ids_across_files_and_formats(clean_db, tmp_path):
    s = clean_db
    csv_file = _write(
        tmp_path / "retail.csv",
        [
            RETAIL_HEADER,
            f"536365,85123A,HEART HOLDER,6,2010-12-01 08:26:00,2.55,{ALICE}.0,United Kingdom",
            f"536366,71053,LANTERN,2,2010-12-01 09:26:00,3.39,{BOB},France",
            f"536367,22139,TEA SET,2,2010-12-01 09:47:00,0.00,{ALICE},United Kingdom",  # bad_price
            f'536368,"22140,BROKEN QUOTE,2,2010-12-01 09:50:00,4.95,{BOB},France',  # unparseable
            "536369,22141,HALF,1,2010-12-01 10:00:00,1.00,12.5,France",  # non_numeric_id
        ],
    )
    rep = import_online_retail(csv_file, s, pseudonym_key=KEY1)
    assert rep.loaded == 2
    assert rep.quarantined == {"bad_price": 1, "unparseable": 1, "non_numeric_id": 1}
    ids = dict(_q(s, "SELECT location, user_id FROM users").itertuples(index=False))
    assert set(ids) == {"United Kingdom", "France"} and not set(ids.values()) & {ALICE, BOB}

    parquet = tmp_path / "retail.parquet"  # later lines of the same customers, CustomerID a float
    pd.DataFrame(
        {
            "InvoiceNo": ["536400", "536401"],
            "StockCode": ["85123A", "71053"],
            "Description": ["HEART HOLDER", "LANTERN"],
            "Quantity": [1, 1],
            "InvoiceDate": pd.to_datetime(["2010-12-05 10:00", "2010-12-05 11:00"]),
            "UnitPrice": [2.55, 3.39],
            "CustomerID": [float(ALICE), float(BOB)],
            "Country": ["United Kingdom", "France"],
        }
    ).to_parquet(parquet, index=False)
    assert import_online_retail(parquet, s, pseudonym_key=KEY1).loaded == 2
    users = set(_q(s, "SELECT DISTINCT user_id FROM user_behavior")["user_id"].astype(int))
    assert users == set(ids.values())  # the same pseudonym from the CSV text and the Parquet float
    for needle in (str(ALICE), str(BOB)):
        assert _where_stored(s, needle) == []


def _cli(*args: str, key: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RECSYS_PSEUDONYM_KEY"}
    env["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")
    if key is not None:
        env["RECSYS_PSEUDONYM_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "ml.cli.app", "data", "import", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )


def test_cli_refuses_pseudonymize_without_a_key_and_uses_it_when_given(clean_db, tmp_path):
    s = clean_db
    path = _write(tmp_path / "ub.csv", [f"{ALICE},5,1,pv,{T0}"])
    out = _cli("taobao", str(path), "--pseudonymize", key=None)
    assert out.returncode == 2 and "RECSYS_PSEUDONYM_KEY" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert int(_q(s, "SELECT COUNT(*) AS n FROM user_behavior")["n"][0]) == 0
    out = _cli("taobao", str(path), "--pseudonymize", key="k3y")
    assert out.returncode == 0, out.stderr
    (uid,) = _q(s, "SELECT user_id FROM user_behavior")["user_id"].astype(int)
    assert uid != ALICE and _where_stored(s, str(ALICE)) == []
