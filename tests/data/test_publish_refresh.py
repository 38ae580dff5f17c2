"""Per-user refresh on MariaDB: only touched users change, idempotent, watermark, concurrency."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from publish_support import (
    T0,
    RawEventsRecommender,
    add_events,
    scalar,
    seed_serving_marts,
    seed_shop,
    serving_tables,
    topn,
)

from ml.data.gaps import Gap, closable, oldest_open_transaction, server_now
from ml.db import connect
from ml.publish.common import PublishBusy
from ml.publish.full import publish_full
from ml.publish.locking import lock_name, read_gaps, read_watermark
from ml.publish.refresh import publish_refresh


@pytest.fixture()
def published(clean_db):
    """The tiny shop, fully published at version v1 with n=5."""
    seed_shop(clean_db)
    publish_full(RawEventsRecommender(clean_db), "v1", clean_db, n=5)
    return clean_db


def _state(s, read):
    """``read(conn, settings)`` on a fresh connection (the refresh's watermark or its gaps)."""
    conn = connect(settings=s)
    try:
        return read(conn, s)
    finally:
        conn.close()


def _watermark(s) -> int:
    return _state(s, read_watermark)


def test_refresh_after_new_events_changes_only_that_user(published):
    s = published
    before = topn(s)
    # user 2 (category 2) suddenly carts two category-3 items: they become their first items
    add_events(s, [(2, 3, "cart", T0 + timedelta(days=1)), (2, 6, "cart", T0 + timedelta(days=1, minutes=1))])
    seed_serving_marts(s)  # what the realtime dbt run does before a refresh
    r = publish_refresh(RawEventsRecommender(s), "v2", s, n=5)

    assert (r.users, r.rows, len(r.batches)) == (1, 5, 1)
    after = topn(s)
    assert [row for row in after if row[0] != 2] == [row for row in before if row[0] != 2]
    mine = topn(s, 2)
    assert {row[5] for row in mine} == {"v2"} and [row[1] for row in mine] == [1, 2, 3, 4, 5]
    assert {3, 6} <= {row[2] for row in mine}
    assert (
        _watermark(s) == r.to_event_id == scalar(s, f"SELECT MAX(event_id) FROM `{s.raw_db}`.user_behavior")
    )
    log = scalar(
        s,
        f"SELECT CONCAT(kind, ' ', users, ' ', `rows`, ' ', max_event_ts) FROM `{s.serving_db}`.publish_log "
        "WHERE run_id = %s",
        (r.run_id,),
    )
    assert log == f"refresh 1 5 {(T0 + timedelta(days=1, minutes=1)):%Y-%m-%d %H:%M:%S}.000"
    # the intent row followed the user's new behaviour (two carts in category 3), read from the mart
    assert scalar(s, f"SELECT category_id FROM `{s.serving_db}`.user_intent_category WHERE user_id = 2") == 3
    assert scalar(s, f"SELECT COUNT(*) FROM `{s.serving_db}`.user_intent_category") == 10


def test_rerunning_refresh_is_a_noop(published):
    s = published
    add_events(s, [(5, 9, "purchase", T0 + timedelta(days=1))])
    first = publish_refresh(RawEventsRecommender(s), "v2", s, n=5)
    snapshot, logs = topn(s), scalar(s, f"SELECT COUNT(*) FROM `{s.serving_db}`.publish_log")

    again = publish_refresh(RawEventsRecommender(s), "v3", s, n=5)
    assert first.users == 1 and again.noop and again.users == 0
    assert "nothing to do" in again.message
    assert topn(s) == snapshot and scalar(s, f"SELECT COUNT(*) FROM `{s.serving_db}`.publish_log") == logs


def test_late_event_with_an_old_timestamp_is_not_lost(published):
    """The watermark is event_id, so an event whose ts is days older than everything still counts."""
    s = published
    add_events(s, [(8, 1, "cart", T0 - timedelta(days=3))])
    r = publish_refresh(RawEventsRecommender(s), "v2", s, n=5)
    assert r.users == 1 and {row[5] for row in topn(s, 8)} == {"v2"}
    assert 1 in {row[2] for row in topn(s, 8)}


def test_events_still_settling_wait_for_the_next_run(published):
    s = published
    add_events(s, [(3, 12, "cart", T0 + timedelta(days=1))], ingested_ago_s=0)
    waiting = publish_refresh(RawEventsRecommender(s), "v2", s, n=5, settle_seconds=30)
    assert waiting.noop and "1 newer event(s) ingested under 30s ago" in waiting.message
    r = publish_refresh(RawEventsRecommender(s), "v2", s, n=5, settle_seconds=0)
    assert r.users == 1


def test_user_without_recommendations_keeps_previous_rows(published):
    s = published
    before = topn(s, 4)
    add_events(s, [(4, 13, "cart", T0 + timedelta(days=1))])
    r = publish_refresh(RawEventsRecommender(s, skip_users=[4]), "v2", s, n=5)
    assert r.batches[0].kept_users == (4,) and "kept their previous list" in r.message
    assert topn(s, 4) == before


def test_refresh_batches_commit_separately(published):
    s = published
    add_events(s, [(u, 20, "browse", T0 + timedelta(days=1)) for u in (1, 2, 3, 4, 5)])
    r = publish_refresh(RawEventsRecommender(s), "v2", s, n=5, batch_size=2)
    assert [b.users for b in r.batches] == [2, 2, 1]
    assert scalar(s, f"SELECT COUNT(*) FROM `{s.serving_db}`.publish_log WHERE run_id = %s", (r.run_id,)) == 3
    assert {row[5] for row in topn(s) if row[0] <= 5} == {"v2"} and {
        row[5] for row in topn(s) if row[0] > 5
    } == {"v1"}


def test_refresh_during_a_full_publish_is_not_lost(published):
    """A refresh runs while a full publish is scoring; the swap then rewinds the watermark so the
    next refresh re-applies that user's newer list over the full publish's older one."""
    s = published
    reached, resume = threading.Event(), threading.Event()
    full_error: list[BaseException] = []

    def full() -> None:
        try:
            publish_full(RawEventsRecommender(s, pause=(reached, resume)), "v-full", s, n=5)
        except BaseException as exc:  # noqa: BLE001
            full_error.append(exc)

    thread = threading.Thread(target=full)
    thread.start()
    assert reached.wait(30)  # the full publish has read its event range and is scoring
    add_events(s, [(6, 27, "purchase", T0 + timedelta(days=2))])
    mid = publish_refresh(RawEventsRecommender(s), "v-refresh", s, n=5)
    assert mid.users == 1 and 27 in {row[2] for row in topn(s, 6)}
    resume.set()
    thread.join(60)
    assert full_error == []
    # the swap replaced user 6's rows with the full publish's (scored before event 27 existed) ...
    assert {row[5] for row in topn(s, 6)} == {"v-full"}
    assert _watermark(s) < mid.to_event_id  # ... and rewound the watermark
    again = publish_refresh(RawEventsRecommender(s), "v-refresh", s, n=5)
    assert again.users == 1 and 27 in {row[2] for row in topn(s, 6)}
    assert {row[5] for row in topn(s, 6)} == {"v-refresh"}


def test_full_publish_swap_waits_for_a_running_refresh(published):
    """While a refresh holds the publish lock the swap cannot happen: with a short lock timeout
    the full publish gives up, drops its staging tables and leaves the refreshed rows in place."""
    s = published
    reached, resume = threading.Event(), threading.Event()
    add_events(s, [(9, 21, "cart", T0 + timedelta(days=1))])
    result: list[object] = []
    thread = threading.Thread(
        target=lambda: result.append(
            publish_refresh(RawEventsRecommender(s, pause=(reached, resume)), "v-refresh", s, n=5)
        )
    )
    thread.start()
    try:
        assert reached.wait(30)
        with pytest.raises(PublishBusy, match="full publish swap"):
            publish_full(RawEventsRecommender(s), "v-full", s, n=5, lock_timeout=0.2)
    finally:
        resume.set()
        thread.join(60)
    assert result and result[0].users == 1
    assert {row[5] for row in topn(s)} == {"v1", "v-refresh"} and {row[5] for row in topn(s, 9)} == {
        "v-refresh"
    }
    assert not {t for t in serving_tables(s) if t.endswith(("_new", "_old"))}


def test_refresh_busy_when_lock_is_held(published):
    s = published
    add_events(s, [(1, 2, "cart", T0 + timedelta(days=1))])
    conn = connect(settings=s)
    with conn.cursor() as cur:
        cur.execute("SELECT GET_LOCK(%s, 0)", (lock_name(s, "publish"),))
        with pytest.raises(PublishBusy):
            publish_refresh(RawEventsRecommender(s), "v2", s, n=5, lock_timeout=0.1)
    conn.close()
    assert publish_refresh(RawEventsRecommender(s), "v2", s, n=5).users == 1


def test_reader_never_sees_an_empty_list_while_a_user_is_refreshed(published):
    """Readers (autocommit snapshots) see a user's old or new rows across 40 DELETE+INSERT refreshes."""
    from ml.serving.app import ServingStore

    s = published
    store = ServingStore(s, pool_size=1)
    stop = threading.Event()
    seen: list[int] = []
    errors: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                rows = store.query(
                    "SELECT COUNT(*), MIN(`rank`), MAX(`rank`) FROM user_topn WHERE user_id = 2"
                )[0]
                seen.append(int(rows[0]))
                if rows[0] != 5 or (rows[1], rows[2]) != (1, 5):
                    errors.append(f"partial list {rows}")
            except Exception as exc:  # noqa: BLE001
                errors.append(repr(exc))
            time.sleep(0.0005)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        for k in range(40):
            add_events(s, [(2, 1 + (k % 29), "browse", T0 + timedelta(days=1, minutes=k))])
            assert publish_refresh(RawEventsRecommender(s), f"v{k}", s, n=5).users == 1
    finally:
        stop.set()
        thread.join(30)
    store.pool.close()
    assert errors == [] and len(seen) >= 40


def test_upper_event_id_leaves_later_events_for_the_next_run(published):
    """Events newer than what the features were built from are not marked done."""
    s = published
    add_events(s, [(3, 14, "cart", T0 + timedelta(days=1))])
    features_built_at = scalar(s, f"SELECT MAX(event_id) FROM `{s.raw_db}`.user_behavior")
    add_events(s, [(4, 15, "cart", T0 + timedelta(days=1))])  # lands while dbt is running

    first = publish_refresh(RawEventsRecommender(s), "v2", s, n=5, upper_event_id=features_built_at)
    assert (
        first.users == 1 and first.to_event_id == features_built_at and {r[5] for r in topn(s, 4)} == {"v1"}
    )
    assert publish_refresh(RawEventsRecommender(s), "v2", s, n=5, upper_event_id=features_built_at).noop
    second = publish_refresh(RawEventsRecommender(s), "v3", s, n=5)
    assert second.users == 1 and {r[5] for r in topn(s, 4)} == {"v3"} and {r[5] for r in topn(s, 3)} == {"v2"}


def _open_transaction_with_events(s, rows: list[tuple]):
    """A second connection holding ``rows`` (user, item, behavior, ts) inserted but not committed,
    like an import's 500k-row batch; its ids are allocated now, below the feed's next ones."""
    conn = connect(s.raw_db, settings=s, autocommit=False)
    conn.begin()
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO user_behavior (user_id, item_id, session_id, behavior_type, query_text, ts, ingested_at) "
            "VALUES (%s, %s, %s, %s, NULL, %s, NOW(3) - INTERVAL 60 SECOND)",
            [(u, i, f"import-{u}", b, ts) for u, i, b, ts in rows],
        )
    return conn


def _gaps(s):
    return _state(s, read_gaps)


def test_a_gap_stays_open_while_a_transaction_older_than_it_is_open(published):
    s = published
    conn = connect(settings=s)
    long_tx = _open_transaction_with_events(s, [(7, 2, "cart", T0)])
    try:
        seen = server_now(conn)
        assert closable(conn, [Gap(1, 1, seen)], seen) == []
        long_tx.rollback()  # the holder is gone: nothing can fill a gap seen before this point
        gone = closable(conn, [Gap(1, 1, seen)], seen)
        readable, oldest = oldest_open_transaction(conn)
        assert not readable or gone or (oldest is not None and oldest <= seen)  # else another session's
    finally:
        long_tx.close()
        conn.close()


def test_ids_committed_after_the_watermark_passed_them_are_rescored(published):
    """A long transaction holds low ids; the feed commits higher ones; a refresh runs and advances
    past them; the transaction commits: the next refresh rescores its user (issue 14, item 3)."""
    s = published
    long_tx = _open_transaction_with_events(s, [(7, 2, "cart", T0 + timedelta(days=1)) for _ in range(3)])
    try:
        add_events(s, [(3, 14, "cart", T0 + timedelta(days=1))])  # the live feed, committed
        first = publish_refresh(RawEventsRecommender(s), "v2", s, n=5)
        assert (
            first.users == 1 and {r[5] for r in topn(s, 3)} == {"v2"} and {r[5] for r in topn(s, 7)} == {"v1"}
        )
        held = scalar(s, f"SELECT COUNT(*) FROM `{s.raw_db}`.user_behavior WHERE user_id = 7 AND item_id = 2")
        gaps = [(g.first, g.last) for g in _gaps(s)]
        assert held == 0 and gaps and first.to_event_id > max(b for _, b in gaps)  # its ids: a watched gap
        long_tx.commit()
    finally:
        long_tx.close()
    second = publish_refresh(RawEventsRecommender(s), "v3", s, n=5)
    assert second.users == 1 and {r[5] for r in topn(s, 7)} == {"v3"}, second.message
    assert 2 in {r[2] for r in topn(s, 7)}  # the late events' item, from the recommender that read them
    assert {r[5] for r in topn(s, 3)} == {"v2"}


def test_refresh_waits_until_the_champions_full_publish_passed(published, monkeypatch):
    """A new champion (v2) registered while serving still holds v1's full publish: the refresh refuses
    (and the DAG's guard skips) until v2's own full publish swapped in."""
    from airflow.sdk.exceptions import AirflowSkipException

    from ml.orchestration import tasks
    from ml.publish import run
    from ml.publish.common import ChampionNotPublished

    s = published
    add_events(s, [(2, 3, "cart", T0 + timedelta(days=1))])
    seed_serving_marts(s)
    monkeypatch.setattr(run, "_load_registered", lambda _s, **_: ((RawEventsRecommender(s), "v2"), None))
    monkeypatch.setattr(run, "champion_version", lambda _s: "v2")  # the guard reads the registry only
    before, mark = topn(s), _watermark(s)
    with pytest.raises(ChampionNotPublished, match="champion v2 has no passed full publish yet .serving: v1"):
        run.publish_champion_refresh(s, n=5)
    assert topn(s) == before and _watermark(s) == mark  # nothing written
    with pytest.raises(AirflowSkipException, match="champion v2 has no passed full publish"):
        tasks.refresh_guard()
    publish_full(RawEventsRecommender(s), "v2", s, n=5)
    add_events(s, [(2, 6, "cart", T0 + timedelta(days=1, minutes=1))])
    seed_serving_marts(s)
    out = run.publish_champion_refresh(s, n=5)
    assert out["noop"] is False and {row[5] for row in topn(s, 2)} == {"v2"}
