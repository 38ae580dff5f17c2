"""Fatigue demotion in the publisher on MariaDB: a hand-made impression log, the refresh and the full
publish (ml/publish/fatigue.py), and the fit stored in fatigue_params."""

from __future__ import annotations

import zlib
from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest
from publish_support import T0, RawEventsRecommender, add_events, scalar, seed_serving_marts, seed_shop, topn

from ml.db import connect
from ml.publish.full import publish_full
from ml.publish.refresh import publish_refresh
from ml.quality.topn import check_topn_frame

DAY = timedelta(days=1)


def _shows(s, rows) -> None:
    """Insert impressions (user_id, item_id, rank, served_at)."""
    conn = connect(s.raw_db, settings=s)
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO impressions (request_id, user_id, item_id, `rank`, model_version, list_source, endpoint, "
            "served_at) VALUES (CONCAT('t-', %s, '-', %s), %s, %s, %s, 'v1', 'user_topn', '/recommendations', %s)",
            [(u, ts.isoformat(), u, i, r, ts) for u, i, r, ts in rows],
        )
    conn.close()


def _store_fit(s, min_shows, decay, run_id: str | None = None) -> None:
    """A fit row of the last live full publish (``run_id`` None), or of another run."""
    conn = connect(s.serving_db, settings=s)
    with conn.cursor() as cur:
        if run_id is None:
            cur.execute("SELECT run_id FROM publish_log WHERE kind = 'full' ORDER BY id DESC LIMIT 1")
            run_id = cur.fetchone()[0]
        cur.execute(
            "INSERT INTO fatigue_params (run_id, fitted_at, min_shows, decay, impressions, clicks, reason, ctr_table) "
            "VALUES (%s, NOW(3), %s, %s, 0, 0, 'hand-made', '[]')",
            (run_id, min_shows, decay),
        )
    conn.close()


def _items(s, user: int) -> list[int]:
    return [row[2] for row in topn(s, user)]


@pytest.fixture()
def published(clean_db):
    """The tiny shop published at v1 (n=5); then N=2, decay 0.5 stored as the newest fit."""
    seed_shop(clean_db)
    publish_full(RawEventsRecommender(clean_db), "v1", clean_db, n=5)
    # no impressions yet: the full publish stored "no demotion" with its reason
    assert scalar(clean_db, f"SELECT reason FROM `{clean_db.serving_db}`.fatigue_params").startswith(
        "no impressions logged yet"
    )
    _store_fit(clean_db, 2, 0.5)
    return clean_db


def _hand_log(s) -> None:
    """User 1's list is 1, 4, 7, 10, 2: item 1 is shown three times and ignored, item 4 three times
    but browsed after the second show (one unengaged show since), item 7 shown once."""
    day2 = T0 + 2 * DAY
    _shows(s, [(1, 1, 1, day2 + timedelta(hours=h)) for h in (0, 2, 4)])
    _shows(s, [(1, 4, 2, day2 + timedelta(hours=h)) for h in (0, 2, 4)])
    _shows(s, [(1, 7, 3, day2)])
    add_events(s, [(1, 4, "browse", day2 + timedelta(hours=3))])
    seed_serving_marts(s)


def test_refresh_demotes_the_item_shown_n_times_without_engagement(published):
    s = published
    assert _items(s, 1) == [1, 4, 7, 10, 2]
    _hand_log(s)
    undemoted = check_topn_frame(RawEventsRecommender(s).recommend([1], 5), [1], 5)["item_id"].tolist()
    assert undemoted == [1, 4, 7, 10, 2]  # the browse of item 4 ties it with 7 and 10: order kept
    r = publish_refresh(RawEventsRecommender(s), "v2", s, n=5)
    assert r.users == 1
    after = _items(s, 1)
    # item 1 (3 unengaged shows: score × 0.5^2) leaves rank 1; item 4 (engaged) and 7 (one show) move
    # up only by the slot item 1 freed; the list keeps 5 rows and passes the top-N rules
    assert after[0] != 1 and after.index(1) > 0 and len(after) == 5
    assert after[:3] == [4, 7, 10]
    rows = topn(s, 1)
    assert [r[1] for r in rows] == [1, 2, 3, 4, 5]
    assert all(a[3] >= b[3] for a, b in zip(rows, rows[1:]))  # scores never rise with rank
    assert _items(s, 2) == [x[2] for x in topn(s, 2)]  # other users untouched


def test_refresh_ignores_the_fit_of_a_full_publish_that_never_went_live(published):
    """A full publish stores its fit before scoring; when it then fails validation (no publish_log
    row), the refresh keeps the live publish's N = 2, not that run's N = 4."""
    s = published
    _store_fit(s, 4, 0.5, run_id="failed-full-publish")
    _hand_log(s)
    publish_refresh(RawEventsRecommender(s), "v2", s, n=5)
    assert _items(s, 1)[0] != 1  # item 1 (three unengaged shows) demoted under N = 2


def test_fatigue_off_leaves_the_refreshed_list_as_the_recommender_ranked_it(published):
    s = replace(published, fatigue=False)
    _hand_log(s)
    publish_refresh(RawEventsRecommender(s), "v2", s, n=5)
    assert _items(s, 1) == [1, 4, 7, 10, 2]


def test_item_shown_below_n_times_is_not_demoted(published):
    s = published
    _store_fit(s, 4, 0.5)  # newest fit: N = 4, item 1's three shows are below it
    _hand_log(s)
    publish_refresh(RawEventsRecommender(s), "v2", s, n=5)
    assert _items(s, 1) == [1, 4, 7, 10, 2]


def _fatigued_log(s, users=range(101, 401), rounds=6, seed=3):
    """Users 101..400 see items 11..18 in a random order once a day; clicks (browse 5 minutes after
    the show) at 0.3/rank, halved per unengaged show from the second one on (N = 2, decay 0.5)."""
    rng = np.random.default_rng(seed)
    users = np.array(list(users))
    shows = np.zeros((len(users), 8), dtype=int)
    imps, events = [], []
    for day in range(rounds):
        at = T0 + (3 + day) * DAY
        rank = np.argsort(rng.random((len(users), 8)), axis=1) + 1
        p = 0.3 / rank * np.where(shows >= 2, 0.5 ** (shows - 1.0), 1.0)
        click = rng.random(p.shape) < p
        for a, b in zip(*np.nonzero(np.ones_like(click))):
            imps.append((int(users[a]), 11 + int(b), int(rank[a, b]), at))
        events += [
            (int(users[a]), 11 + int(b), "browse", at + timedelta(minutes=5))
            for a, b in zip(*np.nonzero(click))
        ]
        shows = np.where(click, 0, shows + 1)
    _shows(s, imps)
    add_events(s, events)


def test_full_publish_fits_n_and_decay_stores_them_and_demotes(clean_db):
    s = clean_db
    seed_shop(s)
    _fatigued_log(s)
    late = T0 + 12 * DAY
    _shows(s, [(1, 1, 1, late + timedelta(hours=h)) for h in (0, 2, 4)])  # user 1 ignores item 1 three times
    seed_serving_marts(s)
    publish_full(RawEventsRecommender(s), "v1", s, n=5)
    n, decay, imps = [
        scalar(s, f"SELECT {c} FROM `{s.serving_db}`.fatigue_params ORDER BY id DESC LIMIT 1")
        for c in ("min_shows", "decay", "impressions")
    ]
    assert n == 2 and decay == pytest.approx(0.5, abs=0.12) and imps > 10_000
    ranked = RawEventsRecommender(s).recommend([1, 2], 5)
    assert ranked[ranked["user_id"] == 1]["item_id"].tolist()[:4] == [1, 4, 7, 10]
    # item 1 (three ignored shows, score × 0.25 within the 25 candidates) falls out of user 1's top 5;
    # user 2, never shown anything, keeps the recommender's list
    assert 1 not in _items(s, 1) and _items(s, 1)[:3] == [4, 7, 10] and len(_items(s, 1)) == 5
    assert _items(s, 2) == ranked[ranked["user_id"] == 2]["item_id"].tolist()


def test_full_publish_on_a_small_log_stores_no_demotion_with_the_reason(clean_db):
    s = clean_db
    seed_shop(s)
    _shows(s, [(1, 1, 1, T0 + DAY + timedelta(hours=h)) for h in range(5)])
    publish_full(RawEventsRecommender(s), "v1", s, n=5)
    row = [
        scalar(s, f"SELECT {c} FROM `{s.serving_db}`.fatigue_params ORDER BY id DESC LIMIT 1")
        for c in ("min_shows", "reason")
    ]
    assert row[0] is None and row[1].startswith("too few impressions to fit fatigue")
    assert _items(s, 1)[0] == 1  # nothing demoted


def test_fit_reads_a_hash_sample_of_whole_users_when_the_log_is_large(clean_db):
    """300 users × 8 items × 6 days = 14,400 shows; capped at 4,000 the fit reads the users with
    CRC32(user_id) % 4 = 0 — every show of each (exposure counts stay exact) and nobody else's."""
    from ml.publish.fatigue import read_log, user_sample_modulus

    s = clean_db
    seed_shop(s)
    _fatigued_log(s)
    conn = connect(s.serving_db, settings=s)
    try:
        since = T0
        assert user_sample_modulus(conn, s, since, 100_000) == 1
        m = user_sample_modulus(conn, s, since, 4_000)
        assert m == 4  # ceil(14,400 / 4,000)
        full, _ = read_log(conn, s, since)
        part, events = read_log(conn, s, since, m)
    finally:
        conn.close()
    assert len(full) == 14_400
    picked = set(part["user_id"])
    assert picked and picked == {u for u in range(101, 401) if zlib.crc32(str(u).encode()) % m == 0}
    assert len(part) == 48 * len(picked)  # all 8 items × 6 days of each sampled user
    assert set(events["user_id"]) <= picked
