"""Issue 14, item 9: database access of the code itself (real MariaDB/MySQL).

- ``local_infile`` (the server may ask the client for any file) is on only for the loader's connections;
- database and account names from the environment are validated before they reach SQL;
- ``db init`` applies the reader's password every time, whatever characters it holds.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile

import pandas as pd
import pymysql
import pytest
from pymysql.constants import CLIENT

from ml.config import SettingsError, get_settings
from ml.data.load import QUARANTINE_COLUMNS, load_frame
from ml.db import connect, drop_databases, init_db, transaction


def _load_local(conn, table: str) -> None:
    fd, path = tempfile.mkstemp(suffix=".tsv")
    with os.fdopen(fd, "w") as fh:
        fh.write("from a file\tx\n")
    try:
        with conn.cursor() as cur:
            cur.execute(f"LOAD DATA LOCAL INFILE %s INTO TABLE {table} (raw_row, reason)", (path,))
    finally:
        os.unlink(path)


def _quarantine_rows(s) -> list[tuple]:
    conn = connect(s.raw_db, settings=s)
    with conn.cursor() as cur:
        cur.execute("SELECT raw_row FROM user_behavior_quarantine ORDER BY quarantine_id")
        rows = list(cur.fetchall())
    conn.close()
    return rows


def test_plain_connections_refuse_load_data_local(clean_db):
    """A normal connection does not offer the client-file capability, so LOAD DATA LOCAL fails and
    nothing is read from the client; the loader's connection still loads."""
    table = f"`{clean_db.raw_db}`.user_behavior_quarantine"
    for conn in (connect(settings=clean_db), connect(clean_db.raw_db, settings=clean_db, autocommit=False)):
        assert not conn.client_flag & CLIENT.LOCAL_FILES
        with pytest.raises((pymysql.err.OperationalError, RuntimeError)):
            _load_local(conn, table)
        conn.close()
    with transaction(settings=clean_db) as conn:
        assert not conn.client_flag & CLIENT.LOCAL_FILES
    assert _quarantine_rows(clean_db) == []
    assert "local_infile" not in clean_db.sqlalchemy_url(clean_db.raw_db)

    with transaction(settings=clean_db, local_infile=True) as conn:
        assert conn.client_flag & CLIENT.LOCAL_FILES
        _load_local(conn, table)
    assert _quarantine_rows(clean_db) == [("from a file",)]


def test_load_frame_refuses_a_plain_connection_and_loads_on_a_loader_one(clean_db):
    q = pd.DataFrame({"raw_row": ["a"], "reason": ["r"], "detail": [None], "source": ["t"], "line_no": [1]})
    table = f"`{clean_db.raw_db}`.user_behavior_quarantine"
    with pytest.raises(ValueError, match="local_infile=True"), transaction(settings=clean_db) as conn:
        load_frame(conn, table, q, QUARANTINE_COLUMNS)
    with transaction(settings=clean_db, local_infile=True) as conn:
        assert load_frame(conn, table, q, QUARANTINE_COLUMNS) == 1
    assert _quarantine_rows(clean_db) == [("a",)]


def test_simulated_import_still_loads(clean_db):
    """The importers' write path (ml.data.ingest.write_batch) opens its own loader connection."""
    from ml.data.sim_config import SimConfig
    from ml.data.sim_load import load_simulation
    from ml.data.simulate import simulate

    report = load_simulation(simulate(SimConfig(users=20, items=50, days=2, seed=3)), clean_db)
    assert report.loaded > 0


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RECSYS_RAW_DB", "raw`; DROP DATABASE x; --"),
        ("RECSYS_MARTS_DB", "marts-db"),
        ("RECSYS_SERVING_DB", ""),
        ("RECSYS_SERVING_DB", "s" * 65),
        ("RECSYS_DB_PREFIX", "a.b_"),
        ("RECSYS_READER_USER", "reader'@'%"),
        ("RECSYS_MYSQL_USER", "root "),
    ],
)
def test_names_from_the_environment_are_validated(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        get_settings()


def test_prefixed_name_over_64_characters_is_refused(monkeypatch):
    monkeypatch.setenv("RECSYS_DB_PREFIX", "p" * 60 + "_")
    with pytest.raises(SettingsError, match=r"RECSYS_RAW_DB \(after RECSYS_DB_PREFIX\)"):
        get_settings()


def test_usual_names_pass(monkeypatch):
    monkeypatch.setenv("RECSYS_DB_PREFIX", "test_")
    monkeypatch.setenv("RECSYS_READER_USER", "Reader_2")
    s = get_settings()
    assert s.raw_db == "test_recsys_raw" and s.reader_user == "Reader_2"


def _reader_can_read(s, password: str) -> bool:
    try:
        conn = pymysql.connect(
            host=s.mysql_host,
            port=s.mysql_port,
            user=s.reader_user,
            password=password,
            database=s.serving_db,
            connect_timeout=5,
        )
    except pymysql.err.OperationalError as exc:
        assert exc.args[0] == 1045, exc  # access denied, nothing else
        return False
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM user_topn")
        assert cur.fetchone()[0] >= 0
    conn.close()
    return True


def _drop_reader(s) -> None:
    conn = connect(settings=s)
    with conn.cursor() as cur:
        for host in ("%", "localhost"):
            cur.execute("DROP USER IF EXISTS %s@%s", (s.reader_user, host))
    conn.close()


@pytest.fixture()
def own_reader(settings):
    """Settings with a reader account of this test run's own (the shared one is left alone)."""
    s = dataclasses.replace(settings, reader_user=f"{settings.raw_db[:40]}_rq")
    _drop_reader(s)
    yield s
    _drop_reader(s)


def test_reader_password_is_applied_on_every_init_and_escaped(own_reader):
    s = dataclasses.replace(own_reader, reader_password="it's a \\ \"test\\")
    init_db(s)  # schema already migrated: only the account is (re)applied
    assert _reader_can_read(s, s.reader_password)
    changed = dataclasses.replace(s, reader_password="n3w'\\pass%s")
    init_db(changed)
    assert _reader_can_read(changed, changed.reader_password)
    assert not _reader_can_read(s, s.reader_password)


def test_fresh_install_with_quote_and_backslash_password(own_reader):
    """Migration 0003 creates the account on a fresh install; a password ending in a backslash must
    neither break its statement nor end up different from the one configured."""
    base = own_reader.raw_db.removesuffix("recsys_raw")
    s = dataclasses.replace(
        own_reader,
        raw_db=f"{base}pw_raw",
        marts_db=f"{base}pw_marts",
        serving_db=f"{base}pw_serving",
        reader_password="o'clock\\",
    )
    drop_databases(s, force=True)
    try:
        assert "0003_reader_user.sql" in init_db(s, purpose="test")
        assert _reader_can_read(s, s.reader_password)
    finally:
        drop_databases(s, force=True)


def test_cli_names_the_bad_variable_in_one_line():
    import subprocess
    import sys

    env = {**os.environ, "RECSYS_SERVING_DB": "serving;db", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-m", "ml.cli.app", "db", "status"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "RECSYS_SERVING_DB" in proc.stderr and "Traceback" not in proc.stderr


def test_impressions_account_may_only_insert_impressions(clean_db):
    """Issue 17: the reader's impression writer (migration 0014) can add rows to raw.impressions and do
    nothing else: not read them back, not touch another raw table, not read the serving tables."""
    s = clean_db
    conn = pymysql.connect(
        host=s.mysql_host,
        port=s.mysql_port,
        user=s.impressions_user,
        password=s.impressions_password,
        database=s.raw_db,
        connect_timeout=5,
        autocommit=True,
    )
    denied = {1142, 1143}  # command denied to user (for table / column)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "INSERT INTO impressions (request_id, user_id, item_id, `rank`, list_source, endpoint, served_at)"
                " VALUES ('r', 1, 2, 1, 'client', '/impressions', NOW(3))"
            )
            for stmt in (
                "SELECT COUNT(*) FROM impressions",
                "DELETE FROM impressions",
                "UPDATE impressions SET `rank` = 2",
                "INSERT INTO user_behavior (user_id, item_id, session_id, behavior_type, ts) VALUES (1, 1, 's', 'browse', NOW())",
                "SELECT COUNT(*) FROM users",
                f"SELECT COUNT(*) FROM `{s.serving_db}`.user_topn",
            ):
                with pytest.raises(pymysql.err.OperationalError) as err:
                    cur.execute(stmt)
                assert err.value.args[0] in denied, (stmt, err.value)
    finally:
        conn.close()
    root = connect(s.raw_db, settings=s)
    with root.cursor() as cur:
        cur.execute("SELECT request_id, item_id, `rank` FROM impressions")
        assert cur.fetchall() == (("r", 2, 1),)
    root.close()
