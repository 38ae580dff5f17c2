"""Live feed against the real MariaDB, on a replaceable clock (no wall-clock waits): committed
batches of current events, ground truth for the sessions it starts, continuation of a user's
open session, new users."""

from __future__ import annotations

import pandas as pd

from ml.data.feed import LiveFeed, run_feed
from ml.data.importers import import_file
from ml.data.sim_config import SimConfig
from ml.data.sim_load import load_simulation
from ml.data.simulate import simulate
from ml.db import connect

NOW = pd.Timestamp("2026-11-20 12:00:00")


def _q(settings, sql: str, args: tuple = ()) -> pd.DataFrame:
    conn = connect(settings.raw_db, settings=settings)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return pd.DataFrame(cur.fetchall(), columns=[d[0] for d in cur.description])
    finally:
        conn.close()


class FakeClock:
    """A clock that moves only when the feed sleeps."""

    def __init__(self, t: pd.Timestamp):
        self.t = t

    def __call__(self) -> pd.Timestamp:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += pd.Timedelta(seconds=seconds)


def test_feed_appends_committed_batches_with_ground_truth(clean_db):
    data = simulate(
        SimConfig(users=150, items=80, days=3, seed=2, start=(NOW - pd.Timedelta(days=3)).to_pydatetime())
    )
    load_simulation(data, clean_db)
    clock = FakeClock(NOW)
    report = run_feed(30, 20, clean_db, seed=4, clock=clock, sleep=clock.sleep)
    assert report.batches == 20 and 400 <= report.events <= 800 and not report.quarantined
    ev = _q(clean_db, "SELECT * FROM user_behavior WHERE ts >= %s ORDER BY ts", (NOW.to_pydatetime(),))
    assert len(ev) == report.events
    assert ev.ts.max() <= clock.t and ev.ts.min() > NOW
    assert set(ev.behavior_type) >= {"search", "browse", "cart"}
    assert ev.loc[ev.behavior_type == "search", "query_text"].notna().all()
    assert ev.loc[ev.behavior_type != "search", "item_id"].notna().all()
    assert (ev.behavior_type == "browse").sum() > 5 * (ev.behavior_type == "cart").sum()
    gt = _q(clean_db, "SELECT * FROM sim_session_intent WHERE start_ts >= %s", (NOW.to_pydatetime(),))
    assert len(gt) == report.sessions_new > 0
    started = ev[ev.session_id.isin(gt.session_id)]
    first = started.groupby("session_id").head(1).merge(gt, on="session_id")
    assert ((first.behavior_type == "search") == first.query_text_y.notna()).all()
    # each session's query has its planted truth, committed with it
    queries = _q(clean_db, "SELECT * FROM sim_query_intent WHERE session_id IN %s", (tuple(gt.session_id),))
    searched = gt[gt.query_text.notna()].merge(queries, on="session_id", suffixes=("", "_q"))
    assert len(searched) == gt.query_text.notna().sum() == len(queries) > 0
    assert (searched.query_text == searched.query_text_q).all()
    assert (searched.category_id == searched.intent_category_id).all()
    # browsing follows the planted intent
    items = _q(clean_db, "SELECT item_id, category_id FROM items")
    br = started[started.behavior_type == "browse"].merge(items, on="item_id").merge(gt, on="session_id")
    assert (br.category_id == br.intent_category_id).mean() > 0.6
    # new users are registered with the batch that starts their first session
    new_users = _q(clean_db, "SELECT user_id FROM users WHERE user_id > 150")
    assert 0 < len(new_users) == report.users_new < 0.2 * report.sessions_new
    assert set(new_users.user_id) <= set(gt.user_id)


def test_feed_continues_a_recent_session(clean_db, tmp_path):
    t = int((NOW - pd.Timedelta(minutes=5)).timestamp())
    path = tmp_path / "ub.csv"
    path.write_text(f"1,100,7,pv,{t - 60}\n1,101,7,pv,{t}\n1,102,8,pv,{t - 86400}\n")
    import_file(path, "taobao", clean_db)
    feed = LiveFeed(clean_db, seed=1)
    try:
        events, users, intents, queries = feed.batch(5, NOW, pd.Timedelta(seconds=1))
    finally:
        feed.close()
    own = events[events.user_id == 1]
    assert len(own) > 0 and set(own.session_id) == {f"1-{t - 60}"}
    assert (own.behavior_type != "search").all()  # a continued session does not search again
    assert f"1-{t - 60}" not in set(intents.session_id) | set(queries.session_id)
    assert (events.ts <= NOW).all() and events.ts.is_monotonic_increasing


def test_feed_on_an_empty_database_says_what_to_do(clean_db):
    import pytest

    with pytest.raises(RuntimeError, match=r"items is empty: load a simulation or import a file"):
        LiveFeed(clean_db, seed=1)
