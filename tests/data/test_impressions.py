"""Impression logging of the serving reader (issue 17): what was served is stored, row for row, through
the INSERT-only impressions account (real MariaDB/MySQL, FastAPI TestClient)."""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from publish_support import RawEventsRecommender, seed_shop
from search_serving_support import drop_search_marts, seed_search_shop

from ml.db import connect
from ml.publish.full import publish_full
from ml.serving.app import create_app
from ml.serving.impressions import ImpressionLogger, now_utc

COLUMNS = "request_id, user_id, item_id, `rank`, model_version, list_source, endpoint"


def _stored(s, where: str = "", args: tuple = ()) -> list[tuple]:
    conn = connect(s.raw_db, settings=s)
    with conn.cursor() as cur:
        cur.execute(f"SELECT {COLUMNS} FROM impressions {where} ORDER BY impression_id", args)
        rows = list(cur.fetchall())
    conn.close()
    return rows


@pytest.fixture()
def shop(clean_db):
    """The shop published at v1 with n = 5 (tests/data/publish_support.py)."""
    seed_shop(clean_db)
    publish_full(RawEventsRecommender(clean_db), "v1", clean_db, n=5)
    return dataclasses.replace(clean_db, topn=5)


def test_recommendations_log_one_row_per_served_item(shop):
    with TestClient(create_app(shop)) as c:
        own = c.get("/recommendations/1", params={"n": 3}, headers={"X-Request-ID": "req-1"})
        fallback = c.get("/recommendations/123456")
        similar = c.get("/similar/29", params={"n": 2})
    assert own.headers["X-Request-ID"] == "req-1"
    generated = fallback.headers["X-Request-ID"]
    assert len(generated) == 32 and generated != similar.headers["X-Request-ID"]  # uuid4 hex each
    expected = [
        ("req-1", 1, it["item_id"], rank, it["model_version"], "user_topn", "/recommendations")
        for rank, it in enumerate(own.json()["items"], 1)
    ]
    expected += [
        (generated, 123456, it["item_id"], rank, "v1", "popular", "/recommendations")
        for rank, it in enumerate(fallback.json()["items"], 1)
    ]
    expected += [
        (similar.headers["X-Request-ID"], None, it["item_id"], rank, "v1", "popular", "/similar")
        for rank, it in enumerate(similar.json()["items"], 1)
    ]
    assert len(expected) == 3 + 5 + 2
    assert _stored(shop) == expected  # the client's exit ran the shutdown, which flushes


def test_bad_request_id_header_is_a_client_error(shop):
    with TestClient(create_app(shop)) as c:
        for bad in ("x" * 65, "has space", "semi;colon"):
            assert c.get("/recommendations/1", headers={"X-Request-ID": bad}).status_code == 422
    assert _stored(shop) == []


def test_search_logs_its_items_with_the_answer_source(clean_db):
    s = dataclasses.replace(clean_db, search_k=5)
    seed_search_shop(s)
    publish_full(RawEventsRecommender(s), "v1", s, n=5)
    try:
        with TestClient(create_app(s)) as c:
            resp = c.get("/search", params={"q": "trainers", "user_id": 1}, headers={"X-Request-ID": "s-1"})
            anon = c.get("/search", params={"q": "TRAINERS"})
    finally:
        drop_search_marts(s)
    body, other = resp.json(), anon.json()
    assert body["items"] and other["items"] and resp.headers["X-Request-ID"] == "s-1"
    expected = [
        ("s-1", 1, it["item_id"], it["rank"], body["model_version"], "search:user", "/search")
        for it in body["items"]
    ]
    expected += [
        (
            anon.headers["X-Request-ID"],
            None,
            it["item_id"],
            it["rank"],
            other["model_version"],
            "search:query",
            "/search",
        )
        for it in other["items"]
    ]
    assert _stored(s) == expected


def test_posted_impressions_are_stored_exactly(shop):
    report = {
        "request_id": "page-7:a",
        "user_id": 7,
        "model_version": "m'1\\ é",  # quote, backslash, non-ASCII: escaped by the driver
        "list_source": "client",
        "items": [{"item_id": 9, "rank": 2}, {"item_id": 5, "rank": 1}, {"item_id": 12, "rank": 4}],
    }
    with TestClient(create_app(shop)) as c:
        resp = c.post("/impressions", json=report)
        minimal = c.post("/impressions", json={"list_source": "client", "items": [{"item_id": 3, "rank": 1}]})
    assert resp.status_code == 202 and resp.json() == {"request_id": "page-7:a", "rows": 3}
    assert minimal.status_code == 202
    made = minimal.json()["request_id"]
    assert _stored(shop) == [
        ("page-7:a", 7, 5, 1, "m'1\\ é", "client", "/impressions"),
        ("page-7:a", 7, 9, 2, "m'1\\ é", "client", "/impressions"),
        ("page-7:a", 7, 12, 4, "m'1\\ é", "client", "/impressions"),
        (made, None, 3, 1, None, "client", "/impressions"),
    ]


GOOD = {"user_id": 1, "list_source": "client", "items": [{"item_id": 1, "rank": 1}]}


@pytest.mark.parametrize(
    "change",
    [
        {"items": []},
        {"items": [{"item_id": i, "rank": i} for i in range(1, 202)]},  # 201 > 200
        {"items": [{"item_id": 1, "rank": 0}]},
        {"items": [{"item_id": 1, "rank": 1}, {"item_id": 2, "rank": 1}]},  # duplicate rank
        {"items": [{"item_id": 0, "rank": 1}]},
        {"items": [{"item_id": 2**63, "rank": 1}]},
        {"items": [{"item_id": "abc", "rank": 1}]},
        {"user_id": -1},
        {"user_id": 0},
        {"request_id": "x" * 65},
        {"request_id": "no spaces"},
        {"list_source": ""},
        {"list_source": "a b"},
        {"list_source": "x" * 33},
        {"model_version": "m" * 65},
        {"list_source": None},
    ],
)
def test_bad_impression_reports_are_rejected(shop, change):
    with TestClient(create_app(shop)) as c:
        assert c.post("/impressions", json={**GOOD, **change}).status_code == 422
        assert (
            c.post(
                "/impressions", content=b"not json", headers={"content-type": "application/json"}
            ).status_code
            == 422
        )
    assert _stored(shop) == []


def test_post_impressions_asks_for_the_api_key(shop):
    with TestClient(create_app(dataclasses.replace(shop, api_keys=("k1",)))) as c:
        assert c.post("/impressions", json=GOOD).status_code == 401
        assert c.post("/impressions", json=GOOD, headers={"X-API-Key": "k1"}).status_code == 202
    assert len(_stored(shop)) == 1


def test_turned_off_nothing_is_logged(shop):
    with TestClient(create_app(dataclasses.replace(shop, impressions=False))) as c:
        resp = c.get("/recommendations/1")
        assert resp.status_code == 200 and "X-Request-ID" not in resp.headers
        assert c.post("/impressions", json=GOOD).status_code in (404, 405)
        assert "impressions" not in c.get("/health").json()
    assert _stored(shop) == []


def test_count_in_equals_count_stored_under_concurrent_load(shop):
    """2,000 requests from 16 threads through the app: every served item is stored exactly once."""
    with TestClient(create_app(shop)) as c:

        def call(k: int) -> tuple[str, int]:
            resp = c.get(f"/recommendations/{k % 40}", params={"n": 5}, headers={"X-Request-ID": f"load-{k}"})
            assert resp.status_code == 200
            return resp.headers["X-Request-ID"], len(resp.json()["items"])

        with ThreadPoolExecutor(16) as pool:
            served = dict(pool.map(call, range(2000)))
        logged = c.app.state.impressions.stats()
    assert len(served) == 2000 and sum(served.values()) == 2000 * 5
    stats = c.app.state.impressions.stats()
    assert (
        logged["logged"] == 10_000 and stats["written"] == 10_000 and stats["dropped"] == stats["failed"] == 0
    )
    conn = connect(shop.raw_db, settings=shop)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT request_id, COUNT(*), MIN(`rank`), MAX(`rank`) FROM impressions GROUP BY request_id"
        )
        per_request = {rid: (n, lo, hi) for rid, n, lo, hi in cur.fetchall()}
    conn.close()
    assert per_request == {rid: (n, 1, n) for rid, n in served.items()}


def test_full_buffer_counts_drops_and_health_reports_them(shop):
    with TestClient(create_app(shop)) as c:
        logger = c.app.state.impressions
        logger.max_pending_rows = 0  # nothing fits: every row is dropped, and counted
        assert c.get("/recommendations/1", params={"n": 4}).status_code == 200  # the request is still served
        assert c.post("/impressions", json=GOOD).status_code == 503
        health = c.get("/health").json()
    assert health["impressions"]["dropped"] == 5 and health["impressions"]["logged"] == 0
    assert _stored(shop) == []


def _row(k: int) -> tuple:
    return (f"r{k}", 1, k, 1, "v1", "client", "/impressions", now_utc(), None)


def test_logger_drops_beyond_its_bound_while_the_database_is_slow(shop):
    """The writer is stuck (its connect waits): requests still return at once, rows beyond the bound
    are counted as dropped, and once the database answers everything accepted is written."""
    entered, release = threading.Event(), threading.Event()
    probe = ImpressionLogger.for_settings(shop)
    real = probe._connect
    probe.close()

    def slow_connect():
        entered.set()
        release.wait()
        return real()

    logger = ImpressionLogger(slow_connect, max_pending_rows=10, batch_rows=4, flush_s=0.01)
    assert logger.log([_row(k) for k in range(1, 5)])
    entered.wait()  # the writer took these 4 and is stuck connecting
    assert all(logger.log([_row(k)]) for k in range(5, 15))  # 10 waiting: the bound
    assert not logger.log([_row(15), _row(16)])
    assert logger.stats()["dropped"] == 2
    release.set()
    logger.close()
    assert logger.stats() == {"logged": 14, "written": 14, "pending": 0, "dropped": 2, "failed": 0}
    assert sorted(r[2] for r in _stored(shop)) == list(range(1, 15))


def test_shutdown_flushes_what_is_waiting(shop):
    """Rows logged just before close are written by close, not left to a timer that never fires."""
    logger = ImpressionLogger.for_settings(shop, flush_s=3600, batch_rows=10_000)
    assert logger.log([_row(k) for k in range(1, 8)])
    logger.close()
    assert logger.stats()["written"] == 7 and len(_stored(shop)) == 7
    assert not logger.log([_row(99)]) and logger.stats()["dropped"] == 1  # closed: counted, not lost silently


def test_rows_the_database_refuses_are_counted_as_failed(shop):
    bad = ImpressionLogger.for_settings(dataclasses.replace(shop, impressions_password="wrong"))
    assert bad.log([_row(1), _row(2)])
    bad.close()
    assert bad.stats()["failed"] == 2 and bad.stats()["written"] == 0
