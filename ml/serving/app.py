"""Reference serving reader (FastAPI): top-N per user, similar items, health.

Reads only ``recsys_serving`` with the read-only account (``RECSYS_READER_USER``), through a
small pool of autocommit mysqlclient connections (``MySQLdb``, the C driver: about a fifth of
PyMySQL's CPU per read). Each read is one autocommit statement, so it sees a whole published list
(old or new) across atomic swaps and refresh transactions. Right after a swap a read can fail with
error 1412 ("table definition has changed"); it is retried.

Fallback chain for a user without (enough) published rows: the popularity of the user's
recent-intent category (``user_intent_category``, published because this account cannot read raw
events), then global popularity (``popular_topn`` scope ``global``). Fallback items carry the
``model_version`` of the last full publish, which built the popularity tables.

Endpoints are ``async def`` and run their reads inline on the event loop: each is one to three
indexed point lookups of well under a millisecond, and skipping the thread-pool hop saves about a
third of the CPU per request (the latency budget is 10 ms p99 on two shared cores). The price is
that a stalled database stalls the worker, so connections carry short read timeouts; scale out with
``--workers``. For the same budget the endpoints return their JSON already serialized
(``pydantic_core.to_json``, the serializer behind FastAPI's own response path, so the bytes are the
same): the response models document the shape in OpenAPI but are not validated item by item.
Run: ``recsys serve --host 127.0.0.1 --port 8000 [--workers N]`` (2 by default) or
``uvicorn ml.serving.app:create_app --factory``.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import MySQLdb
from fastapi import FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from pydantic_core import to_json

from ml.config import Settings, get_settings

MAX_ID = 2**63 - 1  # BIGINT: larger ids are a client error, not a database error
RETRY_CODES = {1412}  # table definition changed (a swap happened under this read)
# server gone / lost / commands out of sync / killed (MariaDB 1927) / idle timeout (MySQL 8 4031) / closed
RECONNECT_CODES = {2006, 2013, 2014, 2055, 1927, 4031, 0}
META_TTL_S = 5.0


class ServingUnavailable(RuntimeError):
    """The serving database cannot answer now (→ HTTP 503)."""


class ConnectionPool:
    """A bounded, thread-safe LIFO pool of MySQLdb connections; broken ones are discarded."""

    def __init__(self, factory: Callable[[], MySQLdb.Connection], size: int = 8, wait_s: float = 2.0):
        self._factory, self._size, self._wait_s = factory, size, wait_s
        self._idle: queue.LifoQueue[MySQLdb.Connection] = queue.LifoQueue()
        self._lock = threading.Lock()
        self._open = 0

    def _take(self) -> MySQLdb.Connection:
        with contextlib.suppress(queue.Empty):
            return self._idle.get_nowait()
        with self._lock:
            grow = self._open < self._size
            if grow:
                self._open += 1
        if grow:
            try:
                return self._factory()
            except BaseException:
                with self._lock:
                    self._open -= 1
                raise
        try:
            return self._idle.get(timeout=self._wait_s)
        except queue.Empty:
            raise ServingUnavailable(
                f"all {self._size} database connections busy for {self._wait_s}s"
            ) from None

    @contextlib.contextmanager
    def connection(self) -> Iterator[MySQLdb.Connection]:
        conn = self._take()
        healthy = True
        try:
            yield conn
        except (MySQLdb.OperationalError, MySQLdb.InterfaceError) as exc:
            healthy = bool(exc.args) and exc.args[0] not in RECONNECT_CODES
            raise
        finally:
            if healthy:
                self._idle.put(conn)
            else:
                with self._lock:
                    self._open -= 1
                with contextlib.suppress(Exception):
                    conn.close()

    def close(self) -> None:
        while True:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                return
            with contextlib.suppress(Exception):
                conn.close()
            with self._lock:
                self._open -= 1


class ServingStore:
    """Reads of the serving tables with retries; one autocommit statement per read."""

    def __init__(self, settings: Settings, pool_size: int = 8, retries: int = 3):
        self.settings = settings
        self.retries = retries
        self.retried = 0  # 1412/reconnect retries so far (tests and /health report it)
        self.pool = ConnectionPool(self._connect, pool_size)
        self._meta: tuple[float, dict[str, Any]] = (0.0, {})
        self._meta_lock = threading.Lock()

    def _connect(self) -> MySQLdb.Connection:
        s = self.settings
        try:
            return MySQLdb.connect(
                host=s.mysql_host,
                port=s.mysql_port,
                user=s.reader_user,
                password=s.reader_password,
                database=s.serving_db,
                charset="utf8mb4",
                autocommit=True,
                connect_timeout=3,
                read_timeout=3,
                write_timeout=3,
                multi_statements=False,
            )
        except MySQLdb.OperationalError as exc:
            raise ServingUnavailable(f"cannot connect to the serving database: {exc.args[-1]}") from None

    def query(self, sql: str, args: tuple = ()) -> list[tuple]:
        """Run one read; retry on 1412 and on a dropped connection, else raise ServingUnavailable."""
        for attempt in range(self.retries + 1):
            try:
                with self.pool.connection() as conn:
                    try:
                        with conn.cursor() as cur:
                            cur.execute(sql, args)
                            return list(cur.fetchall())
                    except MySQLdb.OperationalError as exc:
                        if exc.args and exc.args[0] in RETRY_CODES:  # end any snapshot older than the swap
                            with contextlib.suppress(MySQLdb.Error):
                                conn.rollback()
                        raise
            except (MySQLdb.OperationalError, MySQLdb.InterfaceError, MySQLdb.InternalError) as exc:
                code = exc.args[0] if exc.args else 0
                if (code in RETRY_CODES or code in RECONNECT_CODES) and attempt < self.retries:
                    self.retried += 1
                    time.sleep(0.002 * (attempt + 1))
                    continue
                raise ServingUnavailable(
                    f"serving database error {code}: {exc.args[-1] if exc.args else exc}"
                ) from None
            except MySQLdb.ProgrammingError as exc:  # 1146: tables not created (`recsys db init`)
                raise ServingUnavailable(f"serving tables unavailable: {exc.args[-1]}") from None
        raise AssertionError("unreachable")

    def meta(self) -> dict[str, Any]:
        """Last full publish and refresh (cached a few seconds)."""
        now = time.monotonic()
        with self._meta_lock:
            at, cached = self._meta
            if cached and now - at < META_TTL_S:
                return cached
        full = self.query(
            "SELECT finished_at, model_version FROM publish_log WHERE kind = 'full' AND finished_at IS NOT NULL "
            "ORDER BY finished_at DESC LIMIT 1"
        )
        refresh = self.query("SELECT MAX(finished_at) FROM publish_log WHERE kind = 'refresh'")
        meta = {
            "last_full_publish": full[0][0].isoformat() if full else None,
            "last_refresh": refresh[0][0].isoformat() if refresh and refresh[0][0] else None,
            "model_version": full[0][1] if full else None,
        }
        with self._meta_lock:
            self._meta = (now, meta)
        return meta

    def _popular(self, scope: str, n: int, exclude: set[int], source: str) -> list[dict[str, Any]]:
        rows = self.query(
            "SELECT item_id, score FROM popular_topn WHERE scope = %s ORDER BY `rank` LIMIT %s",
            (scope, n + len(exclude)),
        )
        version = self.meta()["model_version"]
        out = []
        for item_id, score in rows:
            if item_id not in exclude and len(out) < n:
                out.append({"item_id": item_id, "score": score, "source": source, "model_version": version})
        return out

    def fallback(self, user_id: int | None, n: int, exclude: set[int]) -> list[dict[str, Any]]:
        """Intent-category popularity for the user, then global popularity; never repeats an item."""
        items: list[dict[str, Any]] = []
        if user_id is not None:
            intent = self.query("SELECT category_id FROM user_intent_category WHERE user_id = %s", (user_id,))
            if intent:
                items = self._popular(f"category:{intent[0][0]}", n, exclude, "intent_pop")
        if len(items) < n:
            seen = exclude | {it["item_id"] for it in items}
            items += self._popular("global", n - len(items), seen, "global_pop")
        return items

    def recommendations(self, user_id: int, n: int) -> list[dict[str, Any]]:
        rows = self.query(
            "SELECT item_id, score, source, model_version FROM user_topn WHERE user_id = %s ORDER BY `rank` LIMIT %s",
            (user_id, n),
        )
        items = [{"item_id": i, "score": s, "source": src, "model_version": mv} for i, s, src, mv in rows]
        if len(items) < n:
            items += self.fallback(user_id, n - len(items), {it["item_id"] for it in items})
        return items

    def similar(self, item_id: int, n: int) -> list[dict[str, Any]]:
        rows = self.query(
            "SELECT similar_item_id, score FROM item_similar WHERE item_id = %s ORDER BY `rank` LIMIT %s",
            (item_id, n),
        )
        version = self.meta()["model_version"] if rows else None
        items = [{"item_id": i, "score": s, "source": "covisit", "model_version": version} for i, s in rows]
        if len(items) < n:
            items += self._popular(
                "global", n - len(items), {item_id} | {it["item_id"] for it in items}, "global_pop"
            )
        return items


def _json(body: dict[str, Any]) -> Response:
    """A 200 JSON response serialized without per-item model validation (same bytes as FastAPI's)."""
    return Response(to_json(body), media_type="application/json")


class Item(BaseModel):
    item_id: int
    score: float
    source: str
    model_version: str | None


class Recommendations(BaseModel):
    user_id: int
    items: list[Item]


class Similar(BaseModel):
    item_id: int
    items: list[Item]


def create_app(settings: Settings | None = None, pool_size: int = 8) -> FastAPI:
    """Build the app (uvicorn ``--factory`` entry). Connections open lazily on the first request."""
    s = settings or get_settings()
    store = ServingStore(s, pool_size=pool_size)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        store.pool.close()

    app = FastAPI(title="recsys serving reader", version="1", lifespan=lifespan)
    app.state.store = store
    max_n = max(1, s.topn)

    @app.exception_handler(ServingUnavailable)
    async def _unavailable(_: Request, exc: ServingUnavailable) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": str(exc)})

    # The store builds exactly the models' fields with their types (ints, floats, str/None), so the
    # handlers serialize them directly; response_model stays for the OpenAPI schema only.
    @app.get("/recommendations/{user_id}", response_model=Recommendations)
    async def recommendations(
        user_id: int = Path(ge=0, le=MAX_ID), n: int = Query(default=min(10, max_n), ge=1, le=max_n)
    ) -> Response:
        """Top-n items for a user: published list, then intent-category and global popularity."""
        return _json({"user_id": user_id, "items": store.recommendations(user_id, n)})

    @app.get("/similar/{item_id}", response_model=Similar)
    async def similar(
        item_id: int = Path(ge=0, le=MAX_ID), n: int = Query(default=min(10, max_n), ge=1, le=max_n)
    ) -> Response:
        """Items co-visited with this one (then global popularity when there are too few)."""
        return _json({"item_id": item_id, "items": store.similar(item_id, n)})

    @app.get("/health")
    async def health() -> JSONResponse:
        """DB ping and the last publish times; 503 when the database does not answer."""
        try:
            store.query("SELECT 1")
            meta = store.meta()
        except ServingUnavailable as exc:
            return JSONResponse(status_code=503, content={"status": "unavailable", "detail": str(exc)})
        return JSONResponse({"status": "ok", "database": s.serving_db, "read_retries": store.retried, **meta})

    return app
