"""LOAD DATA writer round trip on the real MariaDB: awkward text (tabs, newlines, backslashes,
non-ASCII), NULLs, millisecond times and flags arrive unchanged; empty strings load as NULL."""

from __future__ import annotations

import pandas as pd
import pytest

from ml.data.load import QUARANTINE_COLUMNS, USER_COLUMNS, LoadWarning, load_frame
from ml.db import connect, transaction


def test_text_nulls_and_times_round_trip(clean_db):
    raw = f"`{clean_db.raw_db}`"
    q = pd.DataFrame(
        {
            "raw_row": ["a\tb", "line\nbreak\\N", "ünïcødé ✓ 商品", "back\\slash", ""],
            "reason": ["unparseable"] * 5,
            "detail": [None, "x", "y", "z", "w"],
            "source": ["test"] * 5,
            "line_no": [1, 2, None, 4, 5],
        }
    )
    users = pd.DataFrame(
        {
            "user_id": [1, 2],
            "gender": ["F", None],
            "age": pd.array([30, None], dtype="Int64"),
            "location": ["Zürich", None],
            "signup_ts": pd.to_datetime(["2026-10-01 10:00:00.123", "2026-10-02"], format="ISO8601").astype(
                "datetime64[ms]"
            ),
        }
    )
    with transaction(settings=clean_db, local_infile=True) as conn:
        assert load_frame(conn, f"{raw}.user_behavior_quarantine", q, QUARANTINE_COLUMNS) == 5
        assert load_frame(conn, f"{raw}.users", users, USER_COLUMNS) == 2
    conn = connect(clean_db.raw_db, settings=clean_db)
    with conn.cursor() as cur:
        cur.execute("SELECT raw_row, detail, line_no FROM user_behavior_quarantine ORDER BY quarantine_id")
        rows = cur.fetchall()
        cur.execute("SELECT user_id, gender, age, location, signup_ts FROM users ORDER BY user_id")
        got_users = cur.fetchall()
    conn.close()
    assert [r[0] for r in rows] == ["a\tb", "line\nbreak\\N", "ünïcødé ✓ 商品", "back\\slash", None]
    assert [r[1] for r in rows] == [None, "x", "y", "z", "w"]
    assert [r[2] for r in rows] == [1, 2, None, 4, 5]
    assert got_users[0] == (1, "F", 30, "Zürich", pd.Timestamp("2026-10-01 10:00:00.123").to_pydatetime())
    assert got_users[1][1:4] == (None, None, None)


def test_a_value_the_column_would_cut_fails_the_load_and_rolls_back(clean_db):
    """LOAD DATA LOCAL only warns when it cuts a value (strict mode does not apply to it): the
    loader raises instead, and the transaction commits nothing."""
    raw = f"`{clean_db.raw_db}`"
    users = pd.DataFrame({"user_id": [1, 2], "location": ["Bern", "x" * 65]})  # location is VARCHAR(64)
    with (
        pytest.raises(LoadWarning, match=r"users.*1 warning\(s\).*location"),
        transaction(settings=clean_db, local_infile=True) as conn,
    ):
        load_frame(conn, f"{raw}.users", users, ("user_id", "location"))
    conn = connect(clean_db.raw_db, settings=clean_db)
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM users")
        assert cur.fetchone()[0] == 0
    conn.close()
