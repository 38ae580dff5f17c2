"""Reference serving reader (FastAPI): top-N per user, similar items, search (:mod:`ml.serving.search`),
health. Reads only ``recsys_serving`` with the read-only account (``RECSYS_READER_USER``) through a small
pool of autocommit mysqlclient connections (:mod:`ml.serving.pool`; the C driver: about a fifth of
PyMySQL's CPU per read). Each read is one autocommit statement, so it sees a whole published list (old or
new) across atomic swaps and refresh transactions; a read failing with 1412 right after a swap is retried.

Fallback for a user without (enough) published rows: popularity of the user's recent-intent category
(``user_intent_category``), then global (``popular_topn``), with the last full publish's ``model_version``.
Every item carries ``reason``/``reason_arg`` (issue 17): published rows their own, fallback items
``popular_in`` + category name or ``popular``, similar items ``viewed_with`` + the item asked about.

Endpoints are plain ``def``: FastAPI runs them, and so every blocking driver call, in its thread pool, so a
stalled database holds one pool thread, never the event loop. Each read is bounded: connect and read
timeouts of ``timeout_s`` (default :data:`DB_TIMEOUT_S`), at most one retry, only when the first attempt
failed fast (1412 or a dropped connection; never a timeout). For the latency budget (10 ms p99 on two
shared cores) the endpoints return JSON already serialized (``pydantic_core.to_json``, FastAPI's own
serializer, so the bytes are the same): the response models document the shape in OpenAPI.

Access (issue 14): with ``RECSYS_API_KEYS`` set (comma-separated), the data endpoints answer 401 unless
``X-API-Key`` holds one of the keys (``/health`` stays open); unset, as in the local demo, no key is asked.
``/docs``, ``/redoc`` and ``/openapi.json`` exist only with ``RECSYS_API_DOCS=1``. A 503 says only that the
database is unavailable; the driver's message goes to the server log. Run: ``recsys serve`` or
``uvicorn ml.serving.app:create_app --factory``."""

from __future__ import annotations

import contextlib
import hmac
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import MySQLdb
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader
from pydantic import BaseModel
from pydantic_core import to_json

from ml.config import Settings, get_settings
from ml.serving.ab import ArmChooser
from ml.serving.impressions import (
    POPULAR_SOURCES,
    ImpressionLogger,
    add_impressions_route,
    request_id_header,
    served_response,
)
from ml.serving.pool import RECONNECT_CODES, ConnectionPool, ServingUnavailable, connect_args
from ml.serving.search import add_search_route

MAX_ID = 2**63 - 1  # BIGINT: larger ids are a client error, not a database error
RETRY_CODES = {1412}  # table definition changed (a swap happened under this read)
META_TTL_S = 5.0
DB_TIMEOUT_S = 2.0  # connect/read/write timeout of a reader connection, and the pool wait
UNAVAILABLE = "serving database unavailable"  # the whole 503 detail: nothing of the driver's message
log = logging.getLogger(__name__)


class ServingStore:
    """Reads of the serving tables with retries; one autocommit statement per read."""

    def __init__(
        self, settings: Settings, pool_size: int = 8, retries: int = 1, timeout_s: float = DB_TIMEOUT_S
    ):
        self.settings = settings
        self.retries = retries
        self.timeout_s = timeout_s
        self.retried = 0  # 1412/reconnect retries so far (tests and /health report it)
        self.pool = ConnectionPool(self._connect, pool_size, wait_s=timeout_s)
        self._meta: tuple[float, dict[str, Any]] = (0.0, {})
        self._meta_lock = threading.Lock()

    def connect_args(self) -> dict[str, Any]:
        """MySQLdb.connect arguments: the read-only account, autocommit, whole-second timeouts."""
        s = self.settings
        return connect_args(
            s.mysql_host, s.mysql_port, s.reader_user, s.reader_password, s.serving_db, self.timeout_s
        )

    def _connect(self) -> MySQLdb.Connection:
        try:
            return MySQLdb.connect(**self.connect_args())
        except MySQLdb.OperationalError as exc:
            raise ServingUnavailable(f"cannot connect to the serving database: {exc.args[-1]}") from None

    def query(self, sql: str, args: tuple = ()) -> list[tuple]:
        """Run one read; retry on 1412 and on a dropped connection when that failure came fast (within
        ``timeout_s``, at most ``retries`` times), else raise ServingUnavailable."""
        deadline = time.monotonic() + self.timeout_s
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
                retryable = code in RETRY_CODES or code in RECONNECT_CODES
                if retryable and attempt < self.retries and time.monotonic() < deadline:
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

    def _popular(
        self, scope: str, n: int, exclude: set[int], source: str, reason: tuple[str, str] = ("popular", "")
    ) -> list[dict[str, Any]]:
        rows = self.query(
            "SELECT item_id, score FROM popular_topn WHERE scope = %s ORDER BY `rank` LIMIT %s",
            (scope, n + len(exclude)),
        )
        version = self.meta()["model_version"]
        out = []
        for item_id, score in rows:
            if item_id not in exclude and len(out) < n:
                out.append(
                    {
                        "item_id": item_id,
                        "score": score,
                        "source": source,
                        "model_version": version,
                        "reason": reason[0],
                        "reason_arg": reason[1],
                    }
                )
        return out

    def fallback(self, user_id: int | None, n: int, exclude: set[int]) -> list[dict[str, Any]]:
        """Intent-category popularity for the user (reason ``popular_in`` + the category's name), then
        global popularity (``popular``); never repeats an item."""
        items: list[dict[str, Any]] = []
        if user_id is not None:
            intent = self.query(
                "SELECT category_id, category FROM user_intent_category WHERE user_id = %s", (user_id,)
            )
            if intent:
                category_id, name = intent[0]
                reason = ("popular_in", name or str(category_id))
                items = self._popular(f"category:{category_id}", n, exclude, "intent_pop", reason)
        if len(items) < n:
            seen = exclude | {it["item_id"] for it in items}
            items += self._popular("global", n - len(items), seen, "global_pop")
        return items

    def recommendations(self, user_id: int, n: int, table: str = "user_topn") -> list[dict[str, Any]]:
        """The user's list from ``table`` (``user_topn``, or an A/B arm's, :mod:`ml.serving.ab`), then fallbacks."""
        rows = self.query(
            f"SELECT item_id, score, source, model_version, reason, reason_arg FROM {table} WHERE user_id = %s "
            "ORDER BY `rank` LIMIT %s",
            (user_id, n),
        )
        items = [
            {"item_id": i, "score": s, "source": src, "model_version": mv, "reason": r, "reason_arg": arg}
            for i, s, src, mv, r, arg in rows
        ]
        if len(items) < n:
            items += self.fallback(user_id, n - len(items), {it["item_id"] for it in items})
        return items

    def similar(self, item_id: int, n: int) -> list[dict[str, Any]]:
        rows = self.query(
            "SELECT similar_item_id, score FROM item_similar WHERE item_id = %s ORDER BY `rank` LIMIT %s",
            (item_id, n),
        )
        version = self.meta()["model_version"] if rows else None
        items = [
            {
                "item_id": i,
                "score": s,
                "source": "covisit",
                "model_version": version,
                "reason": "viewed_with",
                "reason_arg": str(item_id),
            }
            for i, s in rows
        ]
        if len(items) < n:
            items += self._popular(
                "global", n - len(items), {item_id} | {it["item_id"] for it in items}, "global_pop"
            )
        return items


def _rec_source(item: dict[str, Any]) -> str:
    """The impression ``list_source`` of a /recommendations item: the published list or a fallback."""
    return "popular" if item["source"] in POPULAR_SOURCES else "user_topn"


def _similar_source(item: dict[str, Any]) -> str:
    return "popular" if item["source"] in POPULAR_SOURCES else "item_similar"


def _json(body: dict[str, Any]) -> Response:
    """A 200 JSON response serialized without per-item model validation (same bytes as FastAPI's)."""
    return Response(to_json(body), media_type="application/json")


class Item(BaseModel):
    item_id: int
    score: float
    source: str
    model_version: str | None
    # why the item is listed (issue 17): a code of ml.contracts.REASON_CODES and its argument
    reason: str = ""
    reason_arg: str = ""


class Recommendations(BaseModel):
    user_id: int
    items: list[Item]


class Similar(BaseModel):
    item_id: int
    items: list[Item]


def _key_check(keys: tuple[str, ...]) -> Callable[[str | None], None]:
    """A dependency that answers 401 unless the ``X-API-Key`` header holds one of ``keys``."""
    header = APIKeyHeader(name="X-API-Key", auto_error=False)
    encoded = [k.encode() for k in keys]

    def check(key: str | None = Depends(header)) -> None:
        given = (key or "").encode()
        # compare with every key (constant time each), so the answer time says nothing about a key
        if not any([hmac.compare_digest(given, k) for k in encoded]):
            raise HTTPException(status_code=401, detail="missing or invalid X-API-Key")

    return check


def create_app(
    settings: Settings | None = None,
    pool_size: int = 8,
    timeout_s: float = DB_TIMEOUT_S,
    *,
    warm: bool = True,
) -> FastAPI:
    """Build the app (uvicorn ``--factory`` entry). Connections open on the first request; with ``warm`` the
    search index is built in the background at startup. ``timeout_s`` bounds each database wait."""
    s = settings or get_settings()
    store = ServingStore(s, pool_size=pool_size, timeout_s=timeout_s)
    impressions = ImpressionLogger.for_settings(s, timeout_s) if s.impressions else None

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        if warm:
            searcher.lexical.warm()
        yield
        store.pool.close()
        if impressions is not None:
            impressions.close()  # writes what is still queued

    docs = {} if s.api_docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = FastAPI(title="recsys serving reader", version="1", lifespan=lifespan, **docs)
    app.state.store = store
    app.state.impressions = impressions
    arms = app.state.arms = ArmChooser(store.query)  # A/B arm of a user (issue 17)
    max_n = max(1, s.topn)

    @app.exception_handler(ServingUnavailable)
    async def _unavailable(request: Request, exc: ServingUnavailable) -> JSONResponse:
        log.warning("503 for %s: %s", request.url.path, exc)
        return JSONResponse(status_code=503, content={"detail": UNAVAILABLE})

    guarded = [Depends(_key_check(s.api_keys))] if s.api_keys else []

    # The store builds exactly the models' fields with their types (ints, floats, str/None), so the
    # handlers serialize them directly; response_model stays for the OpenAPI schema only.
    @app.get("/recommendations/{user_id}", response_model=Recommendations, dependencies=guarded)
    def recommendations(
        user_id: int = Path(ge=0, le=MAX_ID),
        n: int = Query(default=min(10, max_n), ge=1, le=max_n),
        request_id: str = Depends(request_id_header),
    ) -> Response:
        """Top-n items for a user: published list (their A/B arm's), then intent-category and global popularity."""
        arm = arms.arm(user_id)
        body = {"user_id": user_id, "items": store.recommendations(user_id, n, arms.table(arm))}
        return served_response(impressions, body, request_id, user_id, _rec_source, "/recommendations", arm)

    @app.get("/similar/{item_id}", response_model=Similar, dependencies=guarded)
    def similar(
        item_id: int = Path(ge=0, le=MAX_ID),
        n: int = Query(default=min(10, max_n), ge=1, le=max_n),
        request_id: str = Depends(request_id_header),
    ) -> Response:
        """Items co-visited with this one (then global popularity when there are too few)."""
        body = {"item_id": item_id, "items": store.similar(item_id, n)}
        return served_response(impressions, body, request_id, None, _similar_source, "/similar")

    searcher = add_search_route(app, store, guarded, max(1, s.search_k), impressions)
    if impressions is not None:
        add_impressions_route(app, impressions, guarded)

    @app.get("/health")
    def health() -> JSONResponse:
        """DB ping and the last publish times; 503 when the database does not answer (open without a key)."""
        try:
            store.query("SELECT 1")
            meta = store.meta()
        except ServingUnavailable as exc:
            log.warning("health: %s", exc)
            return JSONResponse(status_code=503, content={"status": "unavailable", "detail": UNAVAILABLE})
        body = {"status": "ok", "database": s.serving_db, "read_retries": store.retried, **meta}
        if impressions is not None:  # dropped/failed > 0: impressions were lost (buffer full, DB refused)
            body["impressions"] = impressions.stats()
        return JSONResponse(body)

    return app
