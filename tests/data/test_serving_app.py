"""The reference serving reader over real published tables (FastAPI TestClient, read-only account)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from publish_support import T0, RawEventsRecommender, add_events, seed_serving_marts, seed_shop

from ml.db import connect
from ml.publish.full import publish_full
from ml.publish.refresh import publish_refresh
from ml.serving.app import create_app


@pytest.fixture()
def client(clean_db):
    """Shop published at v1 (n=5) plus user 42, whose events came after: the refresh wrote their
    intent row (category 2) but the recommender returned nothing for them."""
    s = clean_db
    seed_shop(s)
    publish_full(RawEventsRecommender(s), "v1", s, n=5)
    conn = connect(s.serving_db, settings=s)
    with conn.cursor() as cur:
        cur.execute("INSERT INTO item_similar VALUES (1, 1, 4, 0.9), (1, 2, 7, 0.5)")
    conn.close()
    add_events(
        s, [(42, 5, "cart", T0 + timedelta(days=1)), (42, 8, "browse", T0 + timedelta(days=1, minutes=1))]
    )
    seed_serving_marts(s)  # the realtime dbt run before the refresh
    publish_refresh(RawEventsRecommender(s, skip_users=[42]), "v1", s, n=5)
    with TestClient(create_app(dataclasses.replace(s, topn=5))) as c:
        yield c


def test_known_user_gets_published_list(client):
    body = client.get("/recommendations/1", params={"n": 3}).json()
    assert body["user_id"] == 1
    assert [(it["item_id"], it["source"], it["model_version"]) for it in body["items"]] == [
        (1, "repeat", "v1"),
        (4, "repeat", "v1"),
        (7, "repeat", "v1"),
    ]
    assert body["items"][0]["score"] == 104.0


def test_user_with_intent_but_no_list_gets_intent_category_popularity(client):
    items = client.get("/recommendations/42", params={"n": 5}).json()["items"]
    assert len(items) == 5 and len({it["item_id"] for it in items}) == 5
    cat2 = [it for it in items if it["source"] == "intent_pop"]
    assert cat2 and all((it["item_id"] - 1) % 3 + 1 == 2 for it in cat2)  # items of category 2
    assert items[: len(cat2)] == cat2  # intent first, then global popularity fills up
    assert {it["source"] for it in items[len(cat2) :]} <= {"global_pop"}
    assert all(it["model_version"] == "v1" for it in items)


def test_unknown_user_gets_global_popularity(client):
    items = client.get("/recommendations/123456").json()["items"]
    assert len(items) == 5 and {it["source"] for it in items} == {"global_pop"}
    assert 30 not in {it["item_id"] for it in items}  # out of stock never served
    scores = [it["score"] for it in items]
    assert scores == sorted(scores, reverse=True)


def test_similar_items_then_popularity(client):
    items = client.get("/similar/1", params={"n": 4}).json()["items"]
    assert [(it["item_id"], it["source"]) for it in items[:2]] == [(4, "covisit"), (7, "covisit")]
    assert {it["source"] for it in items[2:]} == {"global_pop"} and 1 not in {it["item_id"] for it in items}
    assert {it["source"] for it in client.get("/similar/29").json()["items"]} == {"global_pop"}


def test_every_item_says_why_it_is_listed(client):
    """Published rows carry their own reasons; the popularity fallback says ``popular_in`` + the
    intent category's name, then ``popular``; similar items are ``viewed_with`` the item asked about."""

    def reasons(path: str) -> list[tuple[int, str, str]]:
        return [(it["item_id"], it["reason"], it["reason_arg"]) for it in client.get(path).json()["items"]]

    # user 1 carted item 1 and browsed items 4 and 7
    assert reasons("/recommendations/1?n=3") == [
        (1, "carted", ""),
        (4, "viewed_before", ""),
        (7, "viewed_before", ""),
    ]
    fallback = reasons("/recommendations/42")  # no published list: intent category 2, then global
    intent = [r for r in fallback if r[1] == "popular_in"]
    assert intent and all(arg == "cat2" and (i - 1) % 3 + 1 == 2 for i, _, arg in intent)
    assert fallback[: len(intent)] == intent and {r[1:] for r in fallback[len(intent) :]} <= {("popular", "")}
    assert {r[1:] for r in reasons("/recommendations/123456")} == {("popular", "")}
    assert reasons("/similar/1?n=3")[:2] == [(4, "viewed_with", "1"), (7, "viewed_with", "1")]


@pytest.mark.parametrize(
    "path",
    [
        "/recommendations/abc",
        "/recommendations/-1",
        "/recommendations/1.5",
        "/recommendations/1?n=0",
        "/recommendations/1?n=6",
        "/recommendations/1?n=x",
        f"/recommendations/{2**63}",
        "/recommendations/1?n=-3",
        "/similar/abc",
        "/similar/-7",
        f"/similar/{2**64}",
        "/similar/1?n=1000",
    ],
)
def test_bad_ids_are_client_errors(client, path):
    resp = client.get(path)
    assert 400 <= resp.status_code < 500, (path, resp.status_code, resp.text)


def test_health_reports_last_publish(client):
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["model_version"] == "v1"
    assert body["last_full_publish"] and body["last_refresh"]


def test_database_trouble_is_503_not_500(settings):
    bad = dataclasses.replace(settings, reader_password="wrong-password")
    with TestClient(create_app(bad)) as c:
        assert c.get("/health").status_code == 503
        assert c.get("/recommendations/1").status_code == 503
        assert c.get("/recommendations/1").json() == {"detail": "serving database unavailable"}


def test_read_after_a_swap_retries_error_1412(clean_db):
    """A pooled connection whose snapshot predates a swap gets 1412; the store ends the stale
    snapshot and retries instead of failing the request."""
    from ml.serving.app import ServingStore

    s = clean_db
    seed_shop(s)
    publish_full(RawEventsRecommender(s), "v1", s, n=5)
    store = ServingStore(s, pool_size=1)
    with store.pool.connection() as conn, conn.cursor() as cur:
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")  # a snapshot from before the swap
    publish_full(RawEventsRecommender(s), "v2", s, n=5)
    items = store.recommendations(1, 5)
    assert store.retried == 1 and len(items) == 5 and {it["model_version"] for it in items} == {"v2"}
    store.pool.close()


def test_killed_reader_connection_is_replaced(clean_db):
    """A pooled connection the server dropped (restart, wait_timeout, KILL) is discarded and the read retried."""
    from ml.serving.app import ServingStore

    s = clean_db
    seed_shop(s)
    publish_full(RawEventsRecommender(s), "v1", s, n=5)
    store = ServingStore(s, pool_size=1)
    ((conn_id,),) = store.query("SELECT CONNECTION_ID()")
    root = connect(settings=s)
    with root.cursor() as cur:
        cur.execute(f"KILL {int(conn_id)}")
    root.close()
    assert len(store.recommendations(1, 5)) == 5 and store.retried == 1
    assert store.query("SELECT CONNECTION_ID()")[0][0] != conn_id
    store.pool.close()


def test_responses_match_the_documented_models(client):
    """The endpoints serialize without FastAPI's response validation: every body must still be exactly
    what the response models (kept for OpenAPI) describe."""
    from ml.serving.app import Recommendations, Similar

    for path, model in [
        ("/recommendations/1", Recommendations),
        ("/recommendations/42", Recommendations),
        ("/recommendations/123456", Recommendations),
        ("/similar/1", Similar),
    ]:
        resp = client.get(path)
        assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
        assert model.model_validate_json(resp.content).model_dump(mode="json") == resp.json(), path
    schema = create_app(dataclasses.replace(client.app.state.store.settings, api_docs=True)).openapi()
    ok = schema["paths"]["/recommendations/{user_id}"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]
    assert ok["schema"]["$ref"].endswith("/Recommendations") and "Item" in schema["components"]["schemas"]
