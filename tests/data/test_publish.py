"""Full publish on MariaDB: contents, validation gate, crash safety, atomic swaps under reads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from publish_support import RawEventsRecommender, scalar, seed_shop, serving_tables, topn

from ml.db import connect
from ml.publish.common import PublishBusy, ValidationFailed
from ml.publish.common import jsonable as _jsonable
from ml.publish.full import publish_full
from ml.publish.locking import lock_name, read_watermark

LIVE = {
    "user_topn",
    "item_similar",
    "popular_topn",
    "user_intent_category",
    "publish_log",
    "publish_watermark",
    "publish_watermark_gaps",
    "query_topn",
    "user_query_topn",
    "search_items",
    "fatigue_params",  # the demotion each full publish fitted (migration 0016)
    "user_topn_challenger",  # A/B (migration 0017): swapped only while an experiment runs or ends
    "ab_experiment",
}


@pytest.fixture()
def shop(clean_db):
    seed_shop(clean_db)
    return clean_db


@pytest.fixture()
def covisitation(settings):
    """A hand-made ``ml_covisitation`` mart (dbt's contract columns); a real one is set aside."""
    conn = connect(settings.marts_db, settings=settings)
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS ml_covisitation__saved")
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema=%s AND table_name='ml_covisitation'",
            (settings.marts_db,),
        )
        saved = cur.fetchone()[0] == 1
        if saved:
            cur.execute("RENAME TABLE ml_covisitation TO ml_covisitation__saved")
        cur.execute(
            "CREATE TABLE ml_covisitation (item_id BIGINT, similar_item_id BIGINT, `rank` INT, score DOUBLE, "
            "score_browse DOUBLE, score_cart DOUBLE, score_purchase DOUBLE)"
        )
        # item 1: itself and out-of-stock item 30 must be dropped; 7 and 10 tie (broken by id)
        rows = [
            (1, 4, 2, 0.9),
            (1, 7, 3, 0.5),
            (1, 30, 1, 0.95),
            (1, 1, 4, 1.0),
            (1, 10, 5, 0.5),
            (2, 5, 1, 0.3),
        ]
        cur.executemany("INSERT INTO ml_covisitation VALUES (%s, %s, %s, %s, 0, 0, 0)", rows)
    yield
    with conn.cursor() as cur:
        cur.execute("DROP TABLE ml_covisitation")
        if saved:
            cur.execute("RENAME TABLE ml_covisitation__saved TO ml_covisitation")
    conn.close()


def test_full_publish_fills_every_serving_table(shop, covisitation):
    s = shop
    r = publish_full(RawEventsRecommender(s), "v1", s, n=5)

    assert r.users == 10 and r.rows == 50 and r.similar_rows == 4
    rows = topn(s)
    assert {u for u, *_ in rows} == set(range(1, 11))
    # user 1 (category 1) carted item 1 and browsed 1, 4, 7, 10: own items first, out-of-stock 30 never
    assert [(rk, i, src) for _, rk, i, _, src, _ in topn(s, 1)] == [
        (1, 1, "repeat"),
        (2, 4, "repeat"),
        (3, 7, "repeat"),
        (4, 10, "repeat"),
        (5, 2, "global_pop"),
    ]
    assert all(mv == "v1" for *_, mv in rows) and all(i != 30 for _, _, i, *_ in rows)
    conn = connect(s.serving_db, settings=s)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT item_id, `rank`, similar_item_id, score FROM item_similar ORDER BY item_id, `rank`"
        )
        assert cur.fetchall() == ((1, 1, 4, 0.9), (1, 2, 7, 0.5), (1, 3, 10, 0.5), (2, 1, 5, 0.3))
        # popular lists and intents are the dbt serving marts' rows, cut at n per scope
        cur.execute("SELECT scope, `rank`, item_id, score FROM popular_topn ORDER BY scope, `rank`")
        popular = cur.fetchall()
        cur.execute(
            f"SELECT scope, `rank`, item_id, score FROM `{s.marts_db}`.serve_popular_topn WHERE `rank` <= 5 "
            "ORDER BY scope, `rank`"
        )
        # 5 global; each category has 4 in-stock items with events (its users' own items)
        assert popular == cur.fetchall() and r.popular_rows == len(popular) == 5 + 3 * 4
        assert {scope for scope, *_ in popular} == {"category:1", "category:2", "category:3", "global"}
        cur.execute("SELECT user_id, category_id FROM user_intent_category ORDER BY user_id")
        assert cur.fetchall() == tuple((u, (u - 1) % 3 + 1) for u in range(1, 11))
        cur.execute("SELECT run_id, kind, users, `rows`, model_version, max_event_ts FROM publish_log")
        assert cur.fetchall() == ((r.run_id, "full", 10, 50, "v1", r.max_event_ts),)
    conn.close()
    assert (
        read_watermark(connect(settings=s), s)
        == r.watermark_event_id
        == scalar(s, f"SELECT MAX(event_id) FROM `{s.raw_db}`.user_behavior")
    )
    assert serving_tables(s) == LIVE
    summary = json.loads(json.dumps(_jsonable(r)))  # what an Airflow task hands to XCom
    assert summary["rows"] == 50 and summary["max_event_ts"] == r.max_event_ts.isoformat()


def test_item_similar_kept_when_the_mart_is_missing(shop):
    s = shop
    conn = connect(s.serving_db, settings=s)
    with conn.cursor() as cur:
        cur.execute("INSERT INTO item_similar VALUES (3, 1, 6, 0.7)")
    r = publish_full(RawEventsRecommender(s), "v1", s, n=5)
    assert r.similar_rows is None
    assert scalar(s, f"SELECT similar_item_id FROM `{s.serving_db}`.item_similar WHERE item_id = 3") == 6
    assert serving_tables(s) == LIVE


def test_failed_validation_swaps_nothing(shop):
    s = shop
    publish_full(RawEventsRecommender(s), "v1", s, n=5)
    seen: list[str] = []

    def gx_suite(table: str) -> tuple[bool, str]:
        seen.append(table)
        return False, "expect_column_values_to_be_between failed"

    with pytest.raises(ValidationFailed, match="expect_column_values_to_be_between"):
        publish_full(RawEventsRecommender(s), "v2", s, n=5, validate=gx_suite)
    assert seen == [f"{s.serving_db}.user_topn_new"]
    assert {mv for *_, mv in topn(s)} == {"v1"} and len(topn(s)) == 50
    assert serving_tables(s) == LIVE


def test_builtin_invariants_reject_a_user_without_rows(shop):
    s = shop
    publish_full(RawEventsRecommender(s), "v1", s, n=5)
    with pytest.raises(ValidationFailed, match="users_without_rows=1"):
        publish_full(RawEventsRecommender(s, skip_users=[4]), "v2", s, n=5)
    assert {mv for *_, mv in topn(s)} == {"v1"}
    assert serving_tables(s) == LIVE


class _NaNRecommender(RawEventsRecommender):
    def recommend(self, user_ids, n):
        df = super().recommend(user_ids, n)
        df.loc[df.index[-1], "score"] = float("nan")
        return df


def test_non_finite_scores_are_rejected_before_loading(shop):
    s = shop
    with pytest.raises(ValidationFailed, match="non-finite score"):
        publish_full(_NaNRecommender(s), "v1", s, n=5)
    assert topn(s) == [] and serving_tables(s) == LIVE


def test_exception_mid_publish_keeps_old_tables(shop):
    s = shop
    publish_full(RawEventsRecommender(s), "v1", s, n=5)
    before = topn(s)
    with pytest.raises(RuntimeError, match="injected crash"):
        publish_full(RawEventsRecommender(s, fail_on_call=2), "v2", s, n=5, batch_size=3)
    assert topn(s) == before and serving_tables(s) == LIVE


_KILLED_PUBLISH = """
import sys, time
from pathlib import Path
sys.path.insert(0, {support!r})
from ml.config import get_settings
from ml.publish.full import publish_full
from publish_support import RawEventsRecommender

class Stalls(RawEventsRecommender):
    def recommend(self, user_ids, n):
        if self.calls >= 1:
            Path({marker!r}).write_text("scoring")
            time.sleep(120)
        return super().recommend(user_ids, n)

publish_full(Stalls(get_settings()), "v-killed", get_settings(), n=5, batch_size=3)
"""


def test_killed_publish_leaves_old_tables_served_and_next_publish_works(shop, tmp_path):
    s = shop
    publish_full(RawEventsRecommender(s), "v1", s, n=5)
    before = topn(s)
    marker = tmp_path / "marker"
    code = _KILLED_PUBLISH.format(support=str(Path(__file__).parent), marker=str(marker))
    proc = subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ))
    try:
        for _ in range(600):
            if marker.exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert marker.exists(), f"publisher exited early with {proc.returncode}"
        assert "user_topn_new" in serving_tables(s)  # it was mid-publish, with staging tables
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert topn(s) == before  # readers still get the old lists
    for _ in range(100):  # the server frees the dead session's named lock when it notices the socket closed
        if scalar(s, "SELECT IS_FREE_LOCK(%s)", (lock_name(s, "full"),)) == 1:
            break
        time.sleep(0.05)
    r = publish_full(RawEventsRecommender(s), "v2", s, n=5)
    assert r.rows == 50 and {mv for *_, mv in topn(s)} == {"v2"}
    assert serving_tables(s) == LIVE


def test_second_full_publish_at_once_is_refused(shop):
    s = shop
    conn = connect(settings=s)
    with conn.cursor() as cur:
        cur.execute("SELECT GET_LOCK(%s, 0)", (lock_name(s, "full"),))
        with pytest.raises(PublishBusy, match="full publish"):
            publish_full(RawEventsRecommender(s), "v1", s, n=5)
    conn.close()
    assert topn(s) == [] and serving_tables(s) == LIVE


def test_reader_sees_whole_lists_during_100_full_publishes(shop):
    """A reader thread hammers the serving store while 100 full publishes swap the tables."""
    from ml.serving.app import ServingStore

    s = shop
    rec = RawEventsRecommender(s)
    publish_full(rec, "v0", s, n=5)
    store = ServingStore(s, pool_size=2)
    stop = threading.Event()
    errors: list[str] = []
    partial: list[object] = []
    versions: set[str] = set()
    reads = 0

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            try:
                for user in (1, 7, 999):  # 999 has no events: the global-popularity fallback
                    items = store.recommendations(user, 5)
                    mvs = {it["model_version"] for it in items}
                    srcs = {it["source"] for it in items}
                    ok_src = srcs == {"global_pop"} if user == 999 else srcs <= {"repeat", "global_pop"}
                    if (
                        len(items) != 5
                        or len(mvs) != 1
                        or not ok_src
                        or len({it["item_id"] for it in items}) != 5
                    ):
                        partial.append((user, items))
                    if user != 999:
                        versions.update(mvs)
                    reads += 1
            except Exception as exc:  # noqa: BLE001 - every failure is the test's finding
                errors.append(repr(exc))
            time.sleep(0.0005)  # yield the GIL: a tight loop would starve the publisher (convoy effect)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        for i in range(1, 101):
            publish_full(rec, f"v{i}", s, n=5)
    finally:
        stop.set()
        thread.join(30)
    store.pool.close()
    assert errors == [] and partial == []
    assert reads >= 300 and len(versions) >= 10, (reads, len(versions))  # reads really spanned many swaps
    print(f"{reads} reads over 100 swaps, {store.retried} retried (1412 or reconnect), 0 errors")
    assert scalar(s, f"SELECT COUNT(*) FROM `{s.serving_db}`.publish_log WHERE kind = 'full'") == 101
    assert serving_tables(s) == LIVE
    assert pd.Series([mv for *_, mv in topn(s)]).eq("v100").all()


class _ShortListFor(RawEventsRecommender):
    """Gives user 3 one item fewer: the built-in invariants accept it, the GX suite (exactly N) not."""

    def recommend(self, user_ids, n):
        df = super().recommend(user_ids, n)
        return df[~((df.user_id == 3) & (df["rank"] == n))]


def test_gx_topn_suite_gates_the_swap(shop):
    from ml.quality.topn import gx_topn_validator

    s = shop
    ok = publish_full(RawEventsRecommender(s), "v1", s, n=5, validate=gx_topn_validator(s, 5))
    assert "PASSED" in ok.validation
    with pytest.raises(ValidationFailed, match="FAILED"):
        publish_full(_ShortListFor(s), "v2", s, n=5, validate=gx_topn_validator(s, 5))
    assert {mv for *_, mv in topn(s)} == {"v1"} and serving_tables(s) == LIVE
