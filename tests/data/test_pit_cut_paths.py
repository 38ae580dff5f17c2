"""The point-in-time cut as training reads it (``load_cut``: only the models it reads; then
``load_session_cut``: the evaluated users recomputed on top of that build) against the full path it
replaced (every pit model with ``--full-refresh``, then a full "rest of session" rebuild), on the
small simulated shop: every frame of the cut and of its session variant is identical. (dbt writes
its artifacts under the session's own RECSYS_HOME.)
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


def test_training_cut_and_session_cut_equal_the_full_rebuilds(sim_small_db, settings):
    from ml.features.datasets import load_cut, load_session_cut
    from ml.features.dbt import _set_pit_build, build_point_in_time
    from ml.features.protocol import session_cuts

    cut = (pd.Timestamp(sim_small_db.events["ts"].min()) + pd.Timedelta(days=4)).floor("h")
    build_point_in_time(cut, 24, settings)  # the full build leaves ml_training_set behind
    day = load_cut(settings, cut, 24)  # the training selection: ml_training_set not built, dropped
    assert "ml_training_set" not in _pit_tables(settings)
    cuts = session_cuts(day.window, day.users["user_id"].astype("int64").unique(), seed=3)
    assert 0 < cuts["user_id"].nunique() < len(day.users)  # some users recomputed, others kept
    sess = load_session_cut(settings, day, cuts)  # on top of the plain build: the listed users only
    again = load_session_cut(settings, day, cuts)  # on top of a session build: every user again

    build_point_in_time(cut, 24, settings)  # the full path: every pit model, --full-refresh
    ref_day = load_cut(settings, cut, 24, build=False)
    _set_pit_build(settings, None)  # unknown state: the session build redoes everything
    ref_sess = load_session_cut(settings, ref_day, cuts)

    _assert_same_cut(day, ref_day)
    _assert_same_cut(sess, ref_sess)
    _assert_same_cut(again, ref_sess)
    assert len(sess.labels) > 0 and not sess.intent.equals(day.intent)
