"""Issue 14, item 8: access to the serving reader (FastAPI TestClient, real MariaDB/MySQL).

API keys when configured (health stays open), 503 bodies that say nothing of the database, API docs
only when asked, and a hung database that holds one request without blocking the others.
"""

from __future__ import annotations

import dataclasses
import socket
import threading

import pytest
from fastapi.testclient import TestClient

from ml.config import get_settings
from ml.serving.app import DB_TIMEOUT_S, create_app

KEYS = ("k-one", "k-two")
UNAVAILABLE = {"detail": "serving database unavailable"}


@pytest.fixture()
def keyed(clean_db):
    with TestClient(create_app(dataclasses.replace(clean_db, api_keys=KEYS))) as c:
        yield c


def test_keys_from_the_environment(monkeypatch):
    monkeypatch.setenv("RECSYS_API_KEYS", " k-one, k-two ,,")
    assert get_settings().api_keys == KEYS
    assert "k-one" not in repr(get_settings())
    monkeypatch.delenv("RECSYS_API_KEYS")
    assert get_settings().api_keys == () and get_settings().api_docs is False


@pytest.mark.parametrize("path", ["/recommendations/1", "/similar/1", "/search?q=shoes&user_id=1"])
@pytest.mark.parametrize("headers", [{}, {"X-API-Key": ""}, {"X-API-Key": "k-on"}, {"X-API-Key": "K-ONE"}])
def test_data_endpoints_need_a_key(keyed, path, headers):
    resp = keyed.get(path, headers=headers)
    assert resp.status_code == 401, resp.text
    assert "items" not in resp.json()


@pytest.mark.parametrize("key", KEYS)
def test_any_configured_key_opens_them(keyed, key):
    for path in ("/recommendations/1", "/similar/1", "/search?q=shoes&user_id=1"):
        resp = keyed.get(path, headers={"X-API-Key": key})
        assert resp.status_code == 200 and resp.json()["items"] == [], resp.text


def test_health_stays_open_with_keys(keyed):
    resp = keyed.get("/health")
    assert resp.status_code == 200 and resp.json()["status"] == "ok"


def test_without_keys_nothing_is_asked(clean_db):
    """The local demo runs the reader without RECSYS_API_KEYS."""
    with TestClient(create_app(clean_db)) as c:
        assert c.get("/recommendations/1").status_code == 200


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"])
def test_api_docs_are_off_unless_asked(clean_db, path):
    with TestClient(create_app(clean_db)) as c:
        assert c.get(path).status_code == 404
    with TestClient(create_app(dataclasses.replace(clean_db, api_docs=True))) as c:
        assert c.get(path).status_code == 200


def test_503_bodies_carry_no_database_message(settings):
    """Wrong password, unknown database: the body says only 'unavailable' (no account, host, code)."""
    for bad in (
        dataclasses.replace(settings, reader_password="wrong-password"),
        dataclasses.replace(settings, serving_db="no_such_db_14"),
    ):
        with TestClient(create_app(dataclasses.replace(bad, api_keys=KEYS))) as c:
            for path in ("/recommendations/1", "/similar/3", "/search?q=shoes", "/health"):
                resp = c.get(path, headers={"X-API-Key": KEYS[0]})
                assert resp.status_code == 503
                text = resp.text.lower()
                for leak in (
                    "denied",
                    settings.reader_user,
                    settings.mysql_host,
                    "no_such_db",
                    "error",
                    "1045",
                ):
                    assert leak.lower() not in text, (path, resp.text)


class HungServer:
    """A TCP listener that accepts and never answers the first connection (until released) and
    closes every later one at once, like a database that hangs and then refuses."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.holding = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if not self.held:
                self.held.append(conn)
                self.holding.set()
            else:
                conn.close()

    def release(self) -> None:
        for conn in self.held:
            conn.close()
        self.sock.close()


def test_hung_database_holds_one_request_not_the_server(settings):
    """Request A hangs in the database (connect never answered); meanwhile /health is answered
    (503: the database refuses it) and so is a bad request. When the database lets go, A ends as a
    503 without any database message."""
    server = HungServer()
    s = dataclasses.replace(settings, mysql_host="127.0.0.1", mysql_port=server.port)
    # a long timeout, so that A is certainly still waiting when the other requests are answered; no
    # search index warm-up at startup, so A's is the first connection the database holds
    with TestClient(create_app(s, timeout_s=120, warm=False)) as c:
        got: dict[str, object] = {}
        a = threading.Thread(target=lambda: got.update(a=c.get("/recommendations/1")), daemon=True)
        a.start()
        assert server.holding.wait(60), "request A never reached the database"
        health = c.get("/health")
        assert health.status_code == 503 and health.json() == {"status": "unavailable", **UNAVAILABLE}
        assert c.get("/recommendations/abc").status_code == 422
        assert a.is_alive() and "a" not in got  # A is still held by the database
        server.release()
        a.join(120)
        assert not a.is_alive()
        resp = got["a"]
        assert resp.status_code == 503 and resp.json() == UNAVAILABLE  # type: ignore[attr-defined]


def test_database_waits_are_bounded_by_default(clean_db):
    """The configured bounds (asserted as settings, not timed): short driver timeouts, one retry,
    a bounded wait for a pooled connection."""
    store = create_app(clean_db).state.store
    assert store.timeout_s == DB_TIMEOUT_S <= 3 and store.retries == 1
    assert store.pool._wait_s == DB_TIMEOUT_S
    args = store.connect_args()
    assert all(1 <= args[k] <= 3 for k in ("connect_timeout", "read_timeout", "write_timeout"))
    assert args["user"] == clean_db.reader_user != clean_db.mysql_user
