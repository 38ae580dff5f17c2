"""`recsys db init` against the real MariaDB: idempotent, complete, and clear when MySQL is away."""

import subprocess
import sys

import pytest

from ml.db import connect, db_status, init_db, split_statements


def _schema_snapshot(settings):
    conn = connect(settings=settings)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT table_schema, table_name, column_name, column_type, is_nullable FROM information_schema.columns "
            "WHERE table_schema IN (%s, %s) ORDER BY 1, 2, 3",
            (settings.raw_db, settings.serving_db),
        )
        cols = cur.fetchall()
        cur.execute(
            "SELECT table_schema, table_name, index_name, column_name FROM information_schema.statistics "
            "WHERE table_schema IN (%s, %s) ORDER BY 1, 2, 3, 4",
            (settings.raw_db, settings.serving_db),
        )
        idx = cur.fetchall()
        cur.execute(f"SELECT version, checksum FROM `{settings.raw_db}`.schema_migrations ORDER BY 1")
        migs = cur.fetchall()
    conn.close()
    return cols, idx, migs


def test_init_twice_changes_nothing(settings):
    before = _schema_snapshot(settings)
    assert init_db(settings) == []
    assert _schema_snapshot(settings) == before


def test_contract_tables_and_indexes(settings):
    st = db_status(settings)
    for t in ("users", "items", "user_behavior", "user_behavior_quarantine"):
        assert f"{settings.raw_db}.{t}" in st["tables"]
    for t in ("user_topn", "item_similar", "popular_topn", "publish_log"):
        assert f"{settings.serving_db}.{t}" in st["tables"]
    _, idx, _ = _schema_snapshot(settings)
    ub = {(i[2], i[3]) for i in idx if i[1] == "user_behavior"}
    assert {
        ("ix_ub_ts", "ts"),
        ("ix_ub_user_ts", "user_id"),
        ("ix_ub_user_ts", "ts"),
        ("ix_ub_user_ts", "item_id"),  # the staging dedup probe (migration 0008)
        ("ix_ub_item", "item_id"),
    } <= ub
    topn_pk = [i[3] for i in idx if i[1] == "user_topn" and i[2] == "PRIMARY"]
    assert sorted(topn_pk) == ["rank", "user_id"]


def test_reader_user_is_read_only(settings):
    import pymysql

    conn = pymysql.connect(
        host=settings.mysql_host,
        port=settings.mysql_port,
        user=settings.reader_user,
        password=settings.reader_password,
        database=settings.serving_db,
        autocommit=True,
    )
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM user_topn")
        with pytest.raises(pymysql.err.OperationalError) as e:
            cur.execute("DELETE FROM user_topn")
        assert e.value.args[0] in (1142, 1044)  # command denied
        with pytest.raises(pymysql.err.OperationalError):
            cur.execute(f"SELECT COUNT(*) FROM `{settings.raw_db}`.user_behavior")
    conn.close()


def test_unreachable_mysql_gives_one_line_error(monkeypatch):
    monkeypatch.setenv("RECSYS_MYSQL_PORT", "1")  # nothing listens there
    proc = subprocess.run(
        [sys.executable, "-m", "ml.cli", "db", "status"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert "Traceback" not in err and "Traceback" not in proc.stdout
    assert "cannot reach MySQL at 127.0.0.1:1" in err
    assert "docker compose up -d mysql" in err


def test_wrong_password_gives_one_line_error(monkeypatch, settings):
    monkeypatch.setenv("RECSYS_MYSQL_USER", settings.reader_user)
    monkeypatch.setenv("RECSYS_MYSQL_PASSWORD", "definitely-wrong")
    proc = subprocess.run(
        [sys.executable, "-m", "ml.cli", "db", "init"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "RECSYS_MYSQL_PASSWORD" in proc.stderr


def test_split_statements_ignores_comments():
    sql = "-- a comment; with semicolon\nCREATE TABLE a (x INT);\n\n-- two\nCREATE TABLE b (y INT);\n"
    assert split_statements(sql) == ["CREATE TABLE a (x INT)", "CREATE TABLE b (y INT)"]


def test_ddl_behind_an_open_transaction_fails_instead_of_waiting_a_year(settings, monkeypatch):
    """A transaction left open on a table (a crashed task's connection) makes DDL on it wait for the
    metadata lock; our connections give up after ml.db.LOCK_WAIT_S with error 1205, not the server's year."""
    import pymysql

    import ml.db

    setup = connect(settings.raw_db, settings=settings)
    with setup.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS lock_probe")
        cur.execute("CREATE TABLE lock_probe (x INT)")
    holder = connect(settings.raw_db, settings=settings, autocommit=False)
    monkeypatch.setattr(ml.db, "LOCK_WAIT_S", 1)
    ddl = connect(settings.raw_db, settings=settings)
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM lock_probe")  # holds the table's metadata lock until commit
        with ddl.cursor() as cur, pytest.raises(pymysql.err.OperationalError) as err:
            cur.execute("ALTER TABLE lock_probe ADD COLUMN y INT")
        assert err.value.args[0] == 1205
    finally:
        holder.rollback()
        for c in (holder, ddl):
            c.close()
        with setup.cursor() as cur:
            cur.execute("DROP TABLE lock_probe")
        setup.close()
