"""`recsys data simulate --append` adds a simulated shop next to imported rows: its users and items
are numbered after the loaded ones, so no imported user, item or event is replaced."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from ml.data.importers import import_file
from ml.features.datasets import read_sql

ROOT = Path(__file__).resolve().parents[2]
T0 = 1761998400  # 2025-11-01 12:00:00 UTC


def _q(settings, sql: str) -> pd.DataFrame:
    return read_sql(sql, settings, database=settings.raw_db)


def test_append_numbers_simulated_users_and_items_after_the_imported_ones(clean_db, tmp_path):
    path = tmp_path / "UserBehavior.csv"
    path.write_text(f"1,100,7,pv,{T0}\n2,3,8,buy,{T0 + 60}\n40,2,9,cart,{T0 + 120}\n")
    assert import_file(path, "taobao", clean_db).loaded == 3
    users = _q(clean_db, "SELECT * FROM users ORDER BY user_id")
    items = _q(clean_db, "SELECT * FROM items ORDER BY item_id")
    events = _q(clean_db, "SELECT * FROM user_behavior ORDER BY event_id")
    out = subprocess.run(
        [sys.executable, "-m", "ml.cli.app", "data", "simulate", "--append"]
        + ["--users", "30", "--items", "50", "--days", "1", "--seed", "3", "--start", "2025-10-20"],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        cwd=ROOT,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    # the imported rows are exactly as they were
    pd.testing.assert_frame_equal(
        _q(clean_db, "SELECT * FROM users WHERE user_id <= 40 ORDER BY user_id"), users
    )
    pd.testing.assert_frame_equal(
        _q(clean_db, "SELECT * FROM items WHERE item_id <= 100 ORDER BY item_id"), items
    )
    pd.testing.assert_frame_equal(
        _q(clean_db, f"SELECT * FROM user_behavior WHERE event_id <= {len(events)}"), events
    )
    new_users = _q(clean_db, "SELECT user_id FROM users WHERE user_id > 40").user_id
    new_items = _q(clean_db, "SELECT item_id FROM items WHERE item_id > 100").item_id
    assert new_users.tolist() == list(range(41, 71)) and new_items.tolist() == list(range(101, 151))
    sim = _q(clean_db, f"SELECT user_id, item_id FROM user_behavior WHERE event_id > {len(events)}")
    assert len(sim) > 0 and sim.user_id.min() >= 41 and sim.item_id.dropna().min() >= 101
    assert _q(clean_db, "SELECT MIN(user_id) m FROM sim_session_intent").m[0] >= 41
    assert "new users from id 41, new items from id 101" in " ".join(out.stdout.split())
