"""The point-in-time cut as training reads it (``load_cut``: only the models it reads; then
``load_session_cut``: the session models rebuilt for the evaluated users on top of that build)
against the full path it replaced (every pit model with ``--full-refresh``, then a full "rest of
session" rebuild), on the small simulated shop: every frame of the cut and of its session variant is
identical, except that a training cut computes the session intent and the candidates only for the
users who act in its label window (their rows identical, nobody else's). (dbt writes its artifacts
under the session's own RECSYS_HOME.)
"""

from __future__ import annotations

from dataclasses import fields

import pandas as pd


def _assert_same_cut(got, want) -> None:
    for f in fields(got):
        a, b = getattr(got, f.name), getattr(want, f.name)
        if isinstance(a, pd.DataFrame):
            pd.testing.assert_frame_equal(a, b, check_exact=True, obj=f.name)
        elif f.name == "extra":
            assert a.keys() == b.keys()
            for name in a:
                pd.testing.assert_frame_equal(a[name], b[name], check_exact=True, obj=name)
        else:
            assert a == b, f.name


def _pit_tables(settings) -> set[str]:
    from ml.features.datasets import pit_db, read_sql

    sql = "SELECT table_name AS t FROM information_schema.tables WHERE table_schema=%s"
    return set(read_sql(sql, settings, (pit_db(settings),))["t"])


def _window_users_only(cut, users: set[int]):
    """The cut with its per-user realtime frames (intent, candidates) narrowed to ``users``."""
    from dataclasses import replace

    def only(df: pd.DataFrame) -> pd.DataFrame:
        return df[df["user_id"].astype("int64").isin(users)].reset_index(drop=True)

    return replace(cut, intent=only(cut.intent), candidates=only(cut.candidates))


def test_training_cut_and_session_cut_equal_the_full_rebuilds(sim_small_db, settings):
    from dataclasses import replace

    import pytest

    from ml.features.datasets import EventSpan, load_cut, load_session_cut
    from ml.features.dbt import PLAIN, _pit_build, _set_pit_build, build_point_in_time
    from ml.features.protocol import session_cuts

    cut = (pd.Timestamp(sim_small_db.events["ts"].min()) + pd.Timedelta(days=4)).floor("h")
    build_point_in_time(cut, 24, settings)  # the full build leaves ml_training_set behind
    day = load_cut(settings, cut, 24)  # the training selection: ml_training_set not built, dropped
    assert "ml_training_set" not in _pit_tables(settings)
    cuts = session_cuts(day.window, day.users["user_id"].astype("int64").unique(), seed=3)
    assert 0 < cuts["user_id"].nunique() < len(day.users)  # some users have a session cut, others not
    assert _pit_build(settings)[2] == PLAIN  # the realtime rows are the plain build's
    sess = load_session_cut(settings, day, cuts)  # on top of the plain build: the listed users only
    assert _pit_build(settings)[2] is None  # now a session build's (its revealed events among them)
    again = load_session_cut(settings, day, cuts)  # on top of a session build of the same cut
    other_cuts = session_cuts(day.window, day.users["user_id"].astype("int64").unique(), seed=4)
    assert not other_cuts.equals(cuts)
    other = load_session_cut(settings, day, other_cuts)  # other cuts, on top of a session build
    load_cut(settings, cut, 24)
    other_on_plain = load_session_cut(settings, day, other_cuts)  # the same, on top of the plain build

    build_point_in_time(cut, 24, settings)  # the full path: every pit model, --full-refresh
    ref_day = load_cut(settings, cut, 24, build=False)
    # a training run's cuts slice their history and label window from one read of the events
    span = EventSpan.read(settings, cut - pd.Timedelta(days=31), cut + pd.Timedelta(days=2))
    _assert_same_cut(load_cut(settings, cut, 24, build=False, events=span), ref_day)
    with pytest.raises(ValueError, match="not inside the events read"):
        load_cut(settings, cut, 24, build=False, events=replace(span, start=cut - pd.Timedelta(days=29)))
    _set_pit_build(settings, None)  # unknown state: the session build redoes everything
    ref_sess = load_session_cut(settings, ref_day, cuts)
    _set_pit_build(settings, None)
    ref_other = load_session_cut(settings, ref_day, other_cuts)

    # the training cut's realtime frames hold the label window's users, each with the full build's rows
    window_users = set(day.window["user_id"].astype("int64"))
    assert set(day.labels["user_id"].astype("int64")) <= set(day.candidates["user_id"].astype("int64"))
    assert set(day.intent["user_id"].astype("int64")) <= window_users
    assert ref_day.intent["user_id"].nunique() > day.intent["user_id"].nunique() > 0  # someone was left out
    assert len(ref_day.users) == len(day.users)  # dim_users keeps everyone
    _assert_same_cut(day, _window_users_only(ref_day, window_users))
    _assert_same_cut(sess, ref_sess)
    _assert_same_cut(again, ref_sess)
    _assert_same_cut(other, ref_other)
    _assert_same_cut(other_on_plain, ref_other)
    assert len(sess.labels) > 0 and not sess.intent.equals(day.intent)
    # a session cut's realtime frames hold the users with a session cut (nobody else has a label there)
    listed = set(cuts["user_id"].astype("int64"))
    assert set(sess.intent["user_id"].astype("int64")) == listed
    assert set(sess.candidates["user_id"].astype("int64")) <= listed


def _violations(settings, target) -> list[str]:
    """The rows the leakage test's compiled query returns now (one per violation)."""
    from ml.db import connect

    sql = next((target / "compiled").rglob("assert_no_feature_uses_events_at_or_after_cut.sql")).read_text()
    conn = connect(settings=settings)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return sorted(str(r[0]) for r in cur.fetchall())
    finally:
        conn.close()


def test_the_leakage_test_fails_on_a_feature_from_the_future_and_on_a_lost_event(
    sim_small_db, settings, tmp_path, monkeypatch
):
    """The singular dbt test of every cut build (run warm, as training runs it) catches a feature that
    saw an event at or after the cut and a feature table that lost an event; clean, it passes."""
    import pytest

    from ml.db import connect
    from ml.features.datasets import CUT_MODELS, pit_db
    from ml.features.dbt import DbtError, build_point_in_time, pit_vars, run_dbt

    monkeypatch.setenv("DBT_TARGET_PATH", str(tmp_path / "target"))
    cut = (pd.Timestamp(sim_small_db.events["ts"].min()) + pd.Timedelta(days=4)).floor("h")
    build_point_in_time(cut, 24, settings, models=CUT_MODELS, label_window_users=True)
    test = ["test", "--select", "assert_no_feature_uses_events_at_or_after_cut"]
    vars_ = pit_vars(cut.strftime("%Y-%m-%d %H:%M:%S"), 24, True)
    run_dbt(test, vars=vars_, settings=settings, warm=True)  # clean: passes
    assert _violations(settings, tmp_path / "target") == []

    db = pit_db(settings)
    conn = connect(db, settings=settings)
    with conn.cursor() as cur:
        cur.execute("SELECT user_id, last_event_ts FROM fct_session_intent ORDER BY user_id LIMIT 1")
        user, last = cur.fetchone()
        cur.execute("UPDATE fct_session_intent SET last_event_ts = %s WHERE user_id = %s", (cut, user))
    with pytest.raises(DbtError, match="assert_no_feature_uses_events_at_or_after_cut"):
        run_dbt(test, vars=vars_, settings=settings, warm=True)
    assert _violations(settings, tmp_path / "target") == ["fct_session_intent"]

    with conn.cursor() as cur:
        cur.execute("UPDATE fct_session_intent SET last_event_ts = %s WHERE user_id = %s", (last, user))
        cur.execute("DELETE FROM int_events_enriched ORDER BY event_id DESC LIMIT 1")
    conn.close()
    with pytest.raises(DbtError, match="assert_no_feature_uses_events_at_or_after_cut"):
        run_dbt(test, vars=vars_, settings=settings, warm=True)
    assert _violations(settings, tmp_path / "target") == [
        "int_events_enriched: event count differs from raw events before the cut"
    ]


def _engines(settings, db: str) -> dict[str, str]:
    from ml.features.datasets import read_sql

    sql = (
        "SELECT table_name AS t, engine AS e FROM information_schema.tables "
        "WHERE table_schema=%s AND table_type='BASE TABLE'"
    )
    return dict(zip(*read_sql(sql, settings, (db,)).pipe(lambda f: (f["t"], f["e"]))))


def test_point_in_time_tables_are_scratch_aria_tables_unless_told_otherwise(sim_small_db, settings):
    """A point-in-time build writes its tables as Aria without transaction logging on a server that
    has Aria (MariaDB, as here); var pit_engine 'default' keeps the server's default engine, and an
    engine the server lacks is a compile error that names the var. The serving marts are untouched."""
    import pytest

    from ml.features.datasets import pit_db
    from ml.features.dbt import DbtError, pit_vars, run_dbt

    cut = (pd.Timestamp(sim_small_db.events["ts"].min()) + pd.Timedelta(days=4)).floor("h")
    vars_ = pit_vars(cut.strftime("%Y-%m-%d %H:%M:%S"), 24, True)
    one = ["run", "--select", "int_events_enriched", "--full-refresh"]
    run_dbt(one, vars=vars_, settings=settings, warm=True)
    assert _engines(settings, pit_db(settings))["int_events_enriched"] == "Aria"
    from ml.features.datasets import read_sql

    opts = read_sql(
        "SELECT create_options AS o FROM information_schema.tables WHERE table_schema=%s AND table_name=%s",
        settings,
        (pit_db(settings), "int_events_enriched"),
    )["o"].iloc[0]
    assert "transactional=0" in opts

    run_dbt(one, vars={**vars_, "pit_engine": "default"}, settings=settings, warm=True)
    assert _engines(settings, pit_db(settings))["int_events_enriched"] == "InnoDB"

    with pytest.raises(DbtError, match="pit_engine"):
        run_dbt(one, vars={**vars_, "pit_engine": "NoSuchEngine"}, settings=settings, warm=True)

    marts = _engines(settings, settings.marts_db)
    assert set(marts.values()) <= {"InnoDB"}  # serving marts: the server's transactional default


def test_dbt_tables_are_read_in_primary_key_order_whatever_order_they_were_written(settings):
    """An Aria table returns its rows in the order they were written; the reads of the ML code
    (``read_dbt_tables``, ``with_users``, the session cut) give them in primary-key order."""
    from ml.db import connect
    from ml.features.datasets import _read_model, pit_db, primary_keys, read_sql

    db = pit_db(settings)
    conn = connect(settings=settings)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{db}`")
            cur.execute(f"DROP TABLE IF EXISTS `{db}`.zz_key_order")
            cur.execute(
                f"CREATE TABLE `{db}`.zz_key_order (user_id BIGINT, item_id BIGINT, score DOUBLE, "
                "PRIMARY KEY (user_id, item_id)) ENGINE=Aria TRANSACTIONAL=0"
            )
            rows = [(3, 1, 0.1), (1, 9, 0.2), (2, 5, 0.3), (1, 2, 0.4), (3, 0, 0.5)]
            cur.executemany(f"INSERT INTO `{db}`.zz_key_order VALUES (%s, %s, %s)", rows)
        # written order comes back from a plain scan (all columns: no covering index): the ORDER BY sorts
        plain = read_sql(f"SELECT * FROM `{db}`.zz_key_order", settings)
        assert list(zip(plain["user_id"], plain["item_id"])) == [(u, i) for u, i, _ in rows]
        key = primary_keys(settings, db)["zz_key_order"]
        assert key == ["user_id", "item_id"]
        got = _read_model(settings, db, "zz_key_order", None, binary=True, key=key)
        assert list(zip(got["user_id"], got["item_id"])) == sorted((u, i) for u, i, _ in rows)
        some = _read_model(settings, db, "zz_key_order", [3, 1], binary=True, key=key)
        assert list(zip(some["user_id"], some["item_id"])) == [(1, 2), (1, 9), (3, 0), (3, 1)]
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS `{db}`.zz_key_order")
        conn.close()
