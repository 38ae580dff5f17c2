"""load_reactions (ml.data.sim_react) on MariaDB: a round's events and impressions in one batch, and a
simulation that runs ahead of the wall clock (bench/ab_sim.py) validated against its own clock."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from ml.data.sim_config import SimConfig
from ml.data.sim_react import ReactiveShop, ReactParams, load_reactions
from ml.db import connect

CFG = SimConfig(users=60, items=60, days=2, seed=5, start=datetime(2026, 10, 1))


def _round(start: datetime):
    shop = ReactiveShop(CFG, ReactParams(round_hours=240.0, ctr_max=1.0))  # nearly everyone visits, clicks
    users = np.arange(CFG.users) + CFG.first_user_id
    lists = pd.DataFrame(
        {
            "user_id": np.repeat(users, 5),
            "rank": np.tile(np.arange(1, 6), CFG.users),
            "item_id": np.tile(np.arange(1, 6), CFG.users) + CFG.first_item_id,
        }
    )
    return shop.react(lists, start, 0)


def _count(s, table: str) -> int:
    conn = connect(s.raw_db, settings=s)
    with conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {table}")
        (n,) = cur.fetchone()
    conn.close()
    return int(n)


def test_a_round_in_the_past_loads_events_and_impressions_together(clean_db):
    imps, events = _round(datetime(2026, 10, 3))
    report = load_reactions(imps, events, clean_db)
    assert report.loaded == len(events) > 0 and not report.quarantined
    assert _count(clean_db, "user_behavior") == len(events)
    assert _count(clean_db, "impressions") == len(imps) > 0


def test_a_round_ahead_of_the_wall_clock_needs_the_simulated_clock(clean_db):
    ahead = pd.Timestamp.now(tz="UTC").tz_localize(None).floor("s") + pd.Timedelta(days=3)
    imps, events = _round(ahead.to_pydatetime())
    refused = load_reactions(imps.iloc[:0], events, clean_db)  # the wall clock: all in its future
    assert refused.loaded == 0 and refused.quarantined == {"ts_future": len(events)}
    later = (ahead + pd.Timedelta(days=11)).to_pydatetime()
    report = load_reactions(imps.iloc[:0], events, clean_db, now=later)
    assert report.loaded == len(events) > 0 and not report.quarantined
    assert _count(clean_db, "user_behavior") == len(events) and _count(clean_db, "impressions") == 0
