"""``GET /search`` of the serving reader over real published search tables (TestClient, read-only account)."""

from __future__ import annotations

import dataclasses
import time

import pytest
from fastapi.testclient import TestClient
from publish_support import RawEventsRecommender
from search_serving_support import drop_search_marts, seed_search_shop

from ml.db import connect
from ml.publish.full import publish_full
from ml.search.lists import BaselineSearchLists
from ml.serving.app import create_app
from ml.serving.search import SearchResults

BASE = BaselineSearchLists.model_version


@pytest.fixture()
def client(clean_db):
    """The search shop (tests/data/search_serving_support.py) published at v1 with K = 5."""
    s = dataclasses.replace(clean_db, search_k=5)
    seed_search_shop(s)
    publish_full(RawEventsRecommender(s), "v1", s, n=5)
    with TestClient(create_app(s)) as c:
        yield c
    drop_search_marts(s)


def _get(client, **params) -> dict:
    resp = client.get("/search", params=params)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert SearchResults.model_validate(body).model_dump(mode="json") == body  # the documented shape
    return body


def _ids(body: dict) -> list[int]:
    assert [it["rank"] for it in body["items"]] == list(range(1, len(body["items"]) + 1))
    return [it["item_id"] for it in body["items"]]


def test_the_users_own_list_comes_first(client):
    body = _get(client, q="  Trainers!! ", user_id=1)
    assert (body["query"], body["query_norm"], body["user_id"]) == ("  Trainers!! ", "trainers", 1)
    assert (body["source"], body["model_version"]) == ("user", BASE)
    assert _ids(body) == [1, 7, 2, 3]
    assert body["items"][0]["score"] == 3.6
    assert _ids(_get(client, q="trainers", user_id=1, n=2)) == [1, 7]


def test_query_list_without_a_user(client):
    body = _get(client, q="TRAINERS")
    assert (body["source"], body["model_version"], body["user_id"]) == ("query", BASE, None)
    assert _ids(body) == [2, 1, 7, 3]
    assert [it["score"] for it in body["items"]] == [2.0, 1.6, 1.2, 1.0]


def test_intent_category_moves_up_at_read_time(client):
    """User 3 (intent category 3, no list of their own for "trainers") sees the category-3 item
    first; a user without an intent row sees the published order."""
    mine = _get(client, q="trainers", user_id=3)
    assert mine["source"] == "query+intent" and _ids(mine) == [3, 2, 1, 7]
    nobody = _get(client, q="trainers", user_id=999)
    assert nobody["source"] == "query" and _ids(nobody) == [2, 1, 7, 3]
    assert _ids(mine).index(3) < _ids(nobody).index(3)
    # the reorder picks from the whole list, then cuts at n
    assert _ids(_get(client, q="trainers", user_id=3, n=2)) == [3, 2]


def test_unseen_query_gets_bm25_over_in_stock_titles(client):
    body = _get(client, q="kids")
    assert (body["source"], body["model_version"]) == ("lexical", None)
    assert _ids(body) == [3] and body["items"][0]["score"] > 0
    # "deluxe" only matches out-of-stock item 30: nothing to show
    assert _get(client, q="Deluxe", user_id=2) == {
        "query": "Deluxe",
        "query_norm": "deluxe",
        "user_id": 2,
        "source": "lexical",
        "model_version": None,
        "items": [],
    }
    assert _get(client, q="zzz unknown words")["items"] == []


@pytest.mark.parametrize("q", ["!!!", "   ", "¿¡…", "\t\n"])
def test_a_query_with_no_letters_or_digits_gets_an_empty_list(client, q):
    body = _get(client, q=q)
    assert (body["query_norm"], body["source"], body["items"]) == ("", "empty", [])


def test_the_longest_accepted_query(client):
    body = _get(client, q="trainers " * 22)  # 198 characters; the key keeps 100
    assert len(body["query_norm"]) <= 100 and body["source"] == "lexical"


@pytest.mark.parametrize(
    "query, message",
    [
        ("", "Field required"),
        ("q=", "at least 1 character"),
        ("q=" + "a" * 201, "at most 200 characters"),
        ("q=shoes&n=0", "greater than or equal to 1"),
        ("q=shoes&n=6", "less than or equal to 5"),
        ("q=shoes&n=x", "valid integer"),
        ("q=shoes&user_id=-1", "greater than or equal to 0"),
        ("q=shoes&user_id=abc", "valid integer"),
        (f"q=shoes&user_id={2**63}", "less than or equal to"),
    ],
)
def test_bad_input_is_a_clear_422(client, query, message):
    resp = client.get(f"/search?{query}")
    assert resp.status_code == 422, resp.text
    assert message in resp.text


def test_database_trouble_is_503_not_500(settings):
    bad = dataclasses.replace(settings, reader_password="wrong-password")
    with TestClient(create_app(bad)) as c:
        for q in ("trainers", "never searched"):
            resp = c.get("/search", params={"q": q, "user_id": 1})
            assert resp.status_code == 503 and resp.json() == {"detail": "serving database unavailable"}


def test_lexical_index_is_rebuilt_after_a_full_publish(clean_db):
    """A title changed in the catalogue reaches the reader's BM25 index after the next full publish."""
    from ml.serving.app import ServingStore
    from ml.serving.search import LexicalCache, SearchReader

    s = clean_db
    seed_search_shop(s)
    publish_full(RawEventsRecommender(s), "v1", s, n=5)
    store = ServingStore(s, pool_size=1)
    lexical = LexicalCache(store, check_s=0)
    searcher = SearchReader(store, lexical)
    assert searcher.search("sandals", None, 5)["items"] == [] and lexical.builds == 1
    conn = connect(s.raw_db, settings=s)
    with conn.cursor() as cur:
        cur.execute("UPDATE items SET title = 'beach sandals' WHERE item_id = 8")
    conn.close()
    assert searcher.search("sandals", None, 5)["items"] == []  # not published yet: same index
    publish_full(RawEventsRecommender(s), "v2", s, n=5)
    lexical.get()  # sees the new publish, rebuilds in the background while the old index serves
    for _ in range(500):
        if lexical.builds == 2:
            break
        time.sleep(0.01)
    assert lexical.builds == 2
    assert [it["item_id"] for it in searcher.search("sandals", None, 5)["items"]] == [8]
    store.pool.close()
    drop_search_marts(s)
