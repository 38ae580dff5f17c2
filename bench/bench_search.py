"""``/search`` latency over loopback: known queries (published lists) and unseen ones (BM25 in the reader).

Measures only. Simulates a small shop (``--users``, ``--items``, 7 days; the simulator's titles and
search queries) into its own databases (prefix RECSYS_DB_PREFIX, default ``bench_search_``), builds
SQL stand-ins for the dbt marts the publisher reads (popularity, intent category and the three search
marts, computed from the raw events; this bench measures the reader, not dbt), runs one full publish
with the search baseline (:class:`ml.search.lists.BaselineSearchLists`), starts ``recsys serve``
(uvicorn, ``--workers``) and sends ``/search`` requests open-loop at each ``--rates`` for
``--seconds``: first known queries (a random published query, with a random user id 80% of the time:
the user's own list when they searched it, else the query's list reordered by their intent), then
unseen ones (brand + category words + a number that no query_topn key holds: BM25 over the
catalogue). The load generator is bench_reader's raw keep-alive client. Prints one JSON object with
p50/p90/p99/max per kind and rate, and the sources the reader answered with (checked before the load).

    RECSYS_DB_PREFIX=bench_search_ .venv/bin/python bench/bench_search.py --rates 200 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_publish import FixedRecommender  # noqa: E402
from bench_reader import _RawClient, _start_server  # noqa: E402

WEIGHT = "CASE e.behavior_type WHEN 'browse' THEN 1 WHEN 'fav' THEN 2 WHEN 'cart' THEN 3 WHEN 'purchase' THEN 4 ELSE 0 END"
NORM = "TRIM(LOWER(REGEXP_REPLACE(s.query_text, '[^\\\\p{L}\\\\p{N}]+', ' ')))"


def _stand_in_marts(settings) -> None:
    """The marts the publisher reads, computed from raw events with plain SQL (not dbt's models)."""
    from ml.db import connect

    raw, marts = settings.raw_db, settings.marts_db
    statements = [
        f"""CREATE TABLE `{marts}`.serve_popular_topn AS
        WITH s AS (SELECT e.item_id, i.category_id, SUM({WEIGHT}) AS score FROM `{raw}`.user_behavior e
                   JOIN `{raw}`.items i ON i.item_id = e.item_id WHERE i.in_stock = 1 GROUP BY e.item_id, i.category_id)
        SELECT 'global' AS scope, ROW_NUMBER() OVER (ORDER BY score DESC, item_id) AS `rank`, item_id, score FROM s
        UNION ALL SELECT CONCAT('category:', category_id),
               ROW_NUMBER() OVER (PARTITION BY category_id ORDER BY score DESC, item_id), item_id, score FROM s""",
        f"""CREATE TABLE `{marts}`.serve_user_intent_category AS
        WITH c AS (SELECT e.user_id, i.category_id, SUM({WEIGHT}) AS w, MAX(e.ts) AS last_ts FROM `{raw}`.user_behavior e
                   JOIN `{raw}`.items i ON i.item_id = e.item_id GROUP BY e.user_id, i.category_id),
        r AS (SELECT c.*, SUM(w) OVER (PARTITION BY user_id) AS tot, MAX(last_ts) OVER (PARTITION BY user_id) AS ul,
                     ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY w DESC, category_id) AS rn FROM c)
        SELECT user_id, category_id, w / tot AS strength, ul AS last_event_ts FROM r WHERE rn = 1""",
        f"""CREATE TABLE `{marts}`.ml_query_stats AS
        SELECT {NORM} AS query_norm, COUNT(*) AS n_searches, COUNT(DISTINCT s.user_id) AS n_users,
               COUNT(DISTINCT s.session_id) AS n_sessions_engaged, MAX(s.ts) AS last_ts
        FROM `{raw}`.user_behavior s WHERE s.behavior_type = 'search' GROUP BY 1 HAVING query_norm <> ''""",
        f"""CREATE TABLE `{marts}`.ml_query_item AS
        SELECT {NORM} AS query_norm, e.item_id, SUM(e.behavior_type = 'browse') AS n_browse,
               SUM(e.behavior_type = 'cart') AS n_cart, SUM(e.behavior_type = 'fav') AS n_fav,
               SUM(e.behavior_type = 'purchase') AS n_purchase, COUNT(DISTINCT s.event_id) AS n_searches,
               COUNT(DISTINCT s.user_id) AS n_users, SUM({WEIGHT}) AS weighted, MIN(e.ts) AS first_ts, MAX(e.ts) AS last_ts
        FROM `{raw}`.user_behavior s JOIN `{raw}`.user_behavior e
          ON e.user_id = s.user_id AND e.session_id = s.session_id AND e.ts > s.ts AND e.item_id IS NOT NULL
        WHERE s.behavior_type = 'search' GROUP BY 1, 2 HAVING query_norm <> ''""",
        f"""CREATE TABLE `{marts}`.ml_user_recent_queries AS
        WITH q AS (SELECT s.user_id, {NORM} AS query_norm, MAX(s.ts) AS last_ts FROM `{raw}`.user_behavior s
                   WHERE s.behavior_type = 'search' GROUP BY 1, 2 HAVING query_norm <> '')
        SELECT * FROM (SELECT user_id, query_norm, ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY last_ts DESC, query_norm) AS rn,
                              last_ts FROM q) x WHERE rn <= 5""",
    ]
    conn = connect(settings=settings)
    with conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql)
    conn.close()


def seed_and_publish(settings, users: int, items: int) -> dict:
    from ml.data.sim_config import SimConfig
    from ml.data.sim_load import load_simulation
    from ml.data.simulate import simulate
    from ml.db import drop_databases, init_db
    from ml.publish.full import publish_full

    drop_databases(settings)
    init_db(settings)
    load_simulation(
        simulate(SimConfig(users=users, items=items, days=7, seed=7, start=datetime(2026, 10, 1))), settings
    )
    _stand_in_marts(settings)
    t0 = time.perf_counter()
    r = publish_full(FixedRecommender(items), "bench", settings, n=50, settle_seconds=0)
    return {
        "publish_s": round(time.perf_counter() - t0, 2),
        "queries": r.queries,
        "query_rows": r.query_rows,
        "user_query_rows": r.user_query_rows,
    }


def _workload(settings, seed_: int) -> tuple[list[str], list[str], int, list[tuple[int, str]]]:
    """(published queries, unseen queries, max user id, (user, query) pairs with a user list)."""
    from ml.db import connect

    conn = connect(settings.serving_db, settings=settings)
    with conn.cursor() as cur:
        cur.execute("SELECT DISTINCT query_norm FROM query_topn")
        known = [r[0] for r in cur.fetchall()]
        cur.execute("SELECT DISTINCT brand, category FROM search_items WHERE in_stock = 1")
        pairs = [(str(b), str(c).replace("_", " ")) for b, c in cur.fetchall()]
        cur.execute(f"SELECT MAX(user_id) FROM `{settings.raw_db}`.users")
        max_user = int(cur.fetchone()[0])
        cur.execute("SELECT DISTINCT user_id, query_norm FROM user_query_topn")
        own = [(int(u), str(q)) for u, q in cur.fetchall()]
    conn.close()
    rng = random.Random(seed_)
    taken = set(known)
    unseen = []
    while len(unseen) < 2000:
        brand, category = rng.choice(pairs)
        q = f"{brand} {category} {rng.randint(1000, 9999)}"
        if q not in taken:
            unseen.append(q)
    return known, unseen, max_user, own


async def _drive(base: str, rate: float, seconds: float, paths: list[str], max_inflight: int) -> dict:
    """Open loop: request i is due at t0 + i/rate whatever the answers before it; latency from due."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    client = _RawClient(host, int(port))
    lat: list[float] = []
    errors: dict[str, int] = {}
    inflight = dropped = 0

    async def one(path: str, due: float) -> None:
        nonlocal inflight
        try:
            status = await client.get(path)
            if status == 200:
                lat.append(time.perf_counter() - due)
            else:
                errors[str(status)] = errors.get(str(status), 0) + 1
        except (OSError, TimeoutError, ValueError) as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
        finally:
            inflight -= 1

    tasks = []
    total = int(rate * seconds)
    t0 = time.perf_counter() + 0.05
    for i in range(total):
        due = t0 + i / rate
        while (delay := due - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
        if inflight >= max_inflight:
            dropped += 1
            continue
        inflight += 1
        tasks.append(asyncio.create_task(one(paths[i % len(paths)], due)))
    await asyncio.gather(*tasks)
    client.close()
    ms = np.array(lat) * 1000
    out = {"rate": rate, "sent": total - dropped, "ok": len(lat), "dropped": dropped, "errors": errors}
    if len(ms):
        out.update({f"p{q}": round(float(np.percentile(ms, q)), 2) for q in (50, 90, 99)})
        out["max_ms"] = round(float(ms.max()), 2)
    return out


def _requests(
    kind: str, work: tuple[list[str], list[str], int, list[tuple[int, str]]], count: int, seed_: int
) -> list[tuple[str, int | None]]:
    """(q, user_id) pairs. Known: 20% a user's own recent query (their list), 60% a published query with
    a random user (read-time intent reorder), 20% without a user. Unseen: 80% with a random user."""
    known, unseen, max_user, own = work
    rng = random.Random(seed_)
    out: list[tuple[str, int | None]] = []
    for _ in range(count):
        draw = rng.random()
        if kind == "known" and draw < 0.2 and own:
            user, q = rng.choice(own)
            out.append((q, user))
        else:
            q = rng.choice(known if kind == "known" else unseen)
            out.append((q, rng.randint(1, max_user) if draw < 0.8 else None))
    return out


def _path(q: str, user: int | None) -> str:
    params: dict[str, object] = {"q": q, "n": 20}
    if user is not None:
        params["user_id"] = user
    return "/search?" + urlencode(params)


def _store_latency(settings, work, count: int = 2000) -> dict:
    """The same reads without HTTP: ServingStore.search in a loop (DB + BM25 + Python only)."""
    from ml.search.text import normalize_query
    from ml.serving.app import ServingStore
    from ml.serving.search import SearchReader

    store = ServingStore(settings, pool_size=1)
    searcher = SearchReader(store)
    searcher.lexical.get()  # build once, outside the timing
    out = {}
    for kind in ("known", "unseen"):
        lat = []
        for q, user in _requests(kind, work, count, 7):
            t0 = time.perf_counter()
            searcher.search(normalize_query(q), user, 20)
            lat.append(time.perf_counter() - t0)
        ms = np.array(lat) * 1000
        out[kind] = {f"p{p}": round(float(np.percentile(ms, p)), 3) for p in (50, 99)}
    store.pool.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--items", type=int, default=10000)
    ap.add_argument("--rates", type=int, nargs="+", default=[200])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--max-inflight", type=int, default=64)
    ap.add_argument("--port", type=int, default=18766)
    ap.add_argument(
        "--workers", type=int, default=2, help="uvicorn worker processes (recsys serve default 2)"
    )
    ap.add_argument("--reuse", action="store_true", help="measure the shop an earlier run published")
    args = ap.parse_args()
    os.environ.setdefault("RECSYS_DB_PREFIX", "bench_search_")
    from ml.config import get_settings

    s = get_settings()
    published = {} if args.reuse else seed_and_publish(s, args.users, args.items)
    work = _workload(s, 1)
    proc = _start_server(args.port, args.workers)
    base = f"http://127.0.0.1:{args.port}"
    try:
        # every worker builds its BM25 index at startup; wait until unseen queries answer from it
        sources: dict[str, dict[str, int]] = {"known": {}, "unseen": {}}
        for kind in ("known", "unseen"):
            for q, user in _requests(kind, work, 300, 99):
                body = httpx.get(base + _path(q, user), timeout=30).json()
                sources[kind][body["source"]] = sources[kind].get(body["source"], 0) + 1
        results = []
        for rate in args.rates:
            for kind in ("known", "unseen"):
                paths = [_path(q, u) for q, u in _requests(kind, work, int(rate * args.seconds), rate)]
                results.append(
                    {"kind": kind, **asyncio.run(_drive(base, rate, args.seconds, paths, args.max_inflight))}
                )
    finally:
        proc.terminate()
        proc.wait(10)
    print(
        json.dumps(
            {
                "bench": "search_latency",
                "endpoint": "/search?q=&user_id=&n=20",
                "shop": {"users": args.users, "items": args.items, "days": 7, **published},
                "seconds": args.seconds,
                "workers": args.workers,
                "cpus": os.cpu_count(),
                "load_avg_1m": os.getloadavg()[0],
                "sources_seen": sources,
                "store_without_http_ms": _store_latency(s, work),
                "results": results,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
