"""Issue 14, item 10: `recsys user forget` removes a user from every layer (raw with quarantine and
source_keys, the dbt marts incremental ones included, the point-in-time tables, serving) and a
re-import of an old file does not bring the user back (real MariaDB/MySQL and dbt)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import datetime

import pandas as pd
import pytest

from ml.data.importers import import_file
from ml.db import connect
from ml.features.datasets import read_sql
from ml.features.dbt import build_point_in_time, pit_database, run_dbt

TS = 1_700_000_000  # 2023-11-14, before now and after 2000


def _rows(s, sql: str, params=()) -> list[tuple]:
    return list(read_sql(sql, s, tuple(params)).itertuples(index=False, name=None))


def _user_tables(s) -> list[tuple[str, str]]:
    dbs = (s.raw_db, s.marts_db, pit_database(s), s.serving_db)
    return _rows(
        s,
        "SELECT c.table_schema, c.table_name FROM information_schema.columns c JOIN information_schema.tables t "
        "USING (table_schema, table_name) WHERE c.column_name = 'user_id' AND t.table_type = 'BASE TABLE' "
        f"AND c.table_schema IN ({', '.join(['%s'] * len(dbs))})",
        dbs,
    )


def _counts(s, user: int) -> dict[str, tuple[int, int]]:
    """Per table with a user_id: (rows of ``user``, rows of everyone else)."""
    out = {}
    for db, t in _user_tables(s):
        ((mine, others),) = _rows(
            s,
            f"SELECT COALESCE(SUM(user_id = %s), 0), COALESCE(SUM(user_id <> %s), 0) FROM `{db}`.`{t}`",
            (user, user),
        )
        out[f"{db}.{t}"] = (int(mine), int(others))
    return out


def _taobao(tmp_path, name: str, lines: list[str]):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def shop(sim_small_module, settings, tmp_path_factory):
    """The small shop with marts (dbt run, incremental models included), one point-in-time build, serving
    rows, a quarantined line and a source_keys mapping for the victim; returns (victim, other, file)."""
    s = settings
    events = sim_small_module.events
    run_dbt(["run", "--full-refresh", "--exclude", "tag:pit"], settings=s)
    cut = (pd.Timestamp(events["ts"].min()) + pd.Timedelta(days=5)).floor("h").to_pydatetime()
    build_point_in_time(cut, 24, s)
    before = events[events["ts"] < cut]["user_id"].value_counts()
    victim, other = int(before.index[0]), int(before.index[1])
    conn = connect(settings=s)
    try:
        with conn.cursor() as cur:
            now = datetime(2026, 11, 1)
            # a publish test on the same worker may have left these users' rows: start from ours only
            cur.execute(f"DELETE FROM `{s.serving_db}`.user_topn WHERE user_id IN (%s, %s)", (victim, other))
            for u in (victim, other):
                cur.executemany(
                    f"INSERT INTO `{s.serving_db}`.user_topn "
                    "(user_id, `rank`, item_id, score, source, model_version, generated_at) "
                    "VALUES (%s, %s, %s, 1.0, 'test', 'v1', %s)",
                    [(u, r, 100 + r, now) for r in (1, 2)],
                )
            cur.execute(
                f"INSERT INTO `{s.raw_db}`.source_keys (source, kind, source_key, id) VALUES ('shopx', 'user', 'C-1', %s)",
                (victim,),
            )
        conn.commit()
    finally:
        conn.close()
    old = _taobao(
        tmp_path_factory.mktemp("forget"),
        "old.csv",
        [
            f"{victim},5,1,pv,{TS}",
            f"{victim},6,1,cart,{TS + 60}",
            f"{victim},7,1,teleport,{TS + 120}",  # quarantined: unknown behaviour
            f"{other},5,1,pv,{TS}",
        ],
    )
    rep = import_file(old, "taobao", s)
    assert rep.loaded == 3 and rep.quarantined == {"unknown_behavior": 1}
    return victim, other, old


def test_forget_removes_the_user_everywhere_and_a_reimport_adds_nothing(shop, settings):
    s = settings
    victim, other, old = shop
    before = _counts(s, victim)
    layers = {name.split(".")[0] for name, (mine, _) in before.items() if mine}
    assert layers == {s.raw_db, s.marts_db, pit_database(s), s.serving_db}, before
    assert before[f"{s.marts_db}.fct_session_intent"][0] > 0  # an incremental (tag:realtime) mart
    assert _rows(
        s,
        f"SELECT COUNT(*) FROM `{s.raw_db}`.user_behavior_quarantine WHERE raw_row LIKE %s",
        (f"{victim},7,%",),
    ) == [(1,)]

    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-m", "ml.cli.app", "user", "forget", str(victim)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

    after = _counts(s, victim)
    assert {t: mine for t, (mine, _) in after.items() if mine} == {}
    assert {t: others for t, (_, others) in after.items()} == {t: others for t, (_, others) in before.items()}
    quarantined = _rows(s, f"SELECT raw_row FROM `{s.raw_db}`.user_behavior_quarantine")
    assert not [r for (r,) in quarantined if r and r.startswith(f"{victim},")]
    assert _rows(
        s, f"SELECT COUNT(*) FROM `{s.raw_db}`.source_keys WHERE kind = 'user' AND id = %s", (victim,)
    ) == [(0,)]
    (stored,) = _rows(s, f"SELECT user_hash, forgotten_at FROM `{s.raw_db}`.forgotten_users")
    assert re.fullmatch(r"[0-9a-f]{64}", stored[0]) and stored[1] is not None  # a hash and a time, no id

    rep = import_file(old, "taobao", s)  # the old file again: nothing of the victim comes back
    assert rep.loaded == 0
    assert rep.quarantined == {"forgotten_user": 3, "duplicate_of_loaded": 1}
    assert _rows(s, f"SELECT COUNT(*) FROM `{s.raw_db}`.user_behavior WHERE user_id = %s", (victim,)) == [
        (0,)
    ]
    assert _rows(s, f"SELECT COUNT(*) FROM `{s.raw_db}`.users WHERE user_id = %s", (victim,)) == [(0,)]
    withheld = _rows(
        s,
        f"SELECT raw_row, detail FROM `{s.raw_db}`.user_behavior_quarantine WHERE reason = 'forgotten_user'",
    )
    assert len(withheld) == 3 and all(r is None and str(victim) not in d for r, d in withheld)


def test_forget_refuses_a_negative_id_in_one_line(settings):
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-m", "ml.cli.app", "user", "forget", "--", "-3"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "non-negative" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
