"""Serving-reader latency over loopback: an open-loop load generator against `recsys serve` (uvicorn).

Measures only. Publishes ``--users`` × 50 rows into its own databases (prefix RECSYS_DB_PREFIX,
default ``bench_reader_``), starts the reader as a subprocess, then for each rate sends requests on a
fixed schedule (open loop: a slow answer does not slow the sender, so queueing shows up in the
latency) with at most ``--max-inflight`` in flight (more would be counted as dropped). 95% of
requests ask for published users, 5% for unknown users (fallback path). Latency is measured from the
scheduled send time (and, separately, from the actual send). A request is never sent before its
scheduled time (the stdlib asyncio loop rounds timer waits up, and the sender re-checks the clock).

The sender is a minimal HTTP/1.1 keep-alive client on raw asyncio sockets (one request per
connection at a time, ``Content-Length`` bodies, the status checked, 5 s timeout): it costs a small
fraction of httpx's CPU per request, which matters because the sender shares the box with the reader
(with httpx, even two sender processes could not keep 500 req/s on a busy 2-core box). ``--procs``
splits the sender over processes, ``--workers`` runs the reader with several uvicorn workers. Prints
one JSON object with p50/p90/p99/max per rate.

    RECSYS_DB_PREFIX=bench_reader_ .venv/bin/python bench/bench_reader.py --rates 200 500 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_publish import FixedRecommender, seed  # noqa: E402


class _HttpConn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection carrying one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.waiter: asyncio.Future | None = None
        self.reusable = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None or self.waiter.done():
            return
        head = self.buf[:end].lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            self.reusable = False
            self.waiter.set_exception(ConnectionError("response without content-length"))
            return
        stop = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : stop if stop > 0 else len(head)])
        if len(self.buf) - end - 4 < length:
            return
        self.reusable = b"\r\nconnection: close" not in head
        status = int(self.buf[9:12])
        self.buf = self.buf[end + 4 + length :]
        self.waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("connection closed"))


class _RawClient:
    """GET over a LIFO pool of keep-alive connections (the caller bounds how many are in flight)."""

    def __init__(self, host: str, port: int, timeout: float = 5.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.idle: list[_HttpConn] = []

    async def get(self, path: str) -> int:
        loop = asyncio.get_running_loop()
        conn = None
        while self.idle and conn is None:  # the server closes connections idle for 5 s (keep-alive timeout)
            conn = self.idle.pop()
            if not conn.reusable or conn.transport.is_closing():
                conn.transport.close()
                conn = None
        if conn is None:
            conn = (await loop.create_connection(_HttpConn, self.host, self.port))[1]
        conn.waiter = waiter = loop.create_future()
        timer = loop.call_later(self.timeout, lambda: waiter.done() or waiter.set_exception(TimeoutError()))
        conn.transport.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
        try:
            status = await waiter
        except BaseException:
            conn.transport.close()
            raise
        finally:
            timer.cancel()
        if conn.reusable:
            self.idle.append(conn)
        else:
            conn.transport.close()
        return status

    def close(self) -> None:
        for conn in self.idle:
            conn.transport.close()
        self.idle.clear()


async def _run_rate(
    base: str, rate: float, seconds: float, users: int, max_inflight: int, seed_: int
) -> dict:
    rng = random.Random(seed_)
    total = int(rate * seconds)
    lat: list[float] = []  # from the scheduled send time (includes the sender's own lateness)
    svc: list[float] = []  # from the actual send
    errors: dict[str, int] = {}
    dropped = 0
    inflight = 0
    host, port = base.removeprefix("http://").rsplit(":", 1)
    client = _RawClient(host, int(port))

    async def one(path: str, due: float) -> None:
        nonlocal inflight
        try:
            sent = time.perf_counter()
            status = await client.get(path)
            if status != 200:
                errors[str(status)] = errors.get(str(status), 0) + 1
            else:
                done = time.perf_counter()
                lat.append(done - due)
                svc.append(done - sent)
        except (OSError, TimeoutError, ValueError) as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
        finally:
            inflight -= 1

    tasks = []
    t0 = time.perf_counter() + 0.05
    for i in range(total):
        due = t0 + i / rate
        while (delay := due - time.perf_counter()) > 0:  # never early: the latency counts from `due`
            await asyncio.sleep(delay)
        if inflight >= max_inflight:
            dropped += 1
            continue
        user = rng.randint(1, users) if rng.random() < 0.95 else users + rng.randint(1, 10**6)
        inflight += 1
        tasks.append(asyncio.create_task(one(f"/recommendations/{user}?n=20", due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    client.close()
    return {
        "lat": lat,
        "svc": svc,
        "errors": errors,
        "dropped": dropped,
        "sent": total - dropped,
        "elapsed": elapsed,
    }


def _sender(args: tuple) -> dict:
    """One load-generator process: its share of the rate, on its own event loop."""
    return asyncio.run(_run_rate(*args))


def _measure(base: str, rate: int, seconds: float, users: int, max_inflight: int, procs: int) -> dict:
    """Run ``procs`` sender processes at rate/procs each and merge their latencies."""
    from concurrent.futures import ProcessPoolExecutor

    shares = [
        (base, rate / procs, seconds, users, max(1, max_inflight // procs), rate * 100 + k)
        for k in range(procs)
    ]
    if procs == 1:
        parts = [_sender(shares[0])]
    else:
        with ProcessPoolExecutor(procs) as pool:
            parts = list(pool.map(_sender, shares))
    lat = [x for p in parts for x in p["lat"]]
    svc = [x for p in parts for x in p["svc"]]
    errors: dict[str, int] = {}
    for p in parts:
        for k, v in p["errors"].items():
            errors[k] = errors.get(k, 0) + v
    ms = np.array(lat) * 1000
    pct = {f"p{q}": round(float(np.percentile(ms, q)), 2) for q in (50, 90, 99)} if len(ms) else {}
    if svc:
        sv = np.array(svc) * 1000
        pct.update({f"sent_to_done_p{q}": round(float(np.percentile(sv, q)), 2) for q in (50, 99)})
    elapsed = max(p["elapsed"] for p in parts)
    return {
        "rate": rate,
        "sent": sum(p["sent"] for p in parts),
        "ok": len(lat),
        "dropped": sum(p["dropped"] for p in parts),
        "errors": errors,
        "achieved_rps": round(len(lat) / elapsed, 1),
        **pct,
        "max_ms": round(float(ms.max()), 2) if len(ms) else None,
    }


def _store_latency(settings, users: int, count: int = 3000) -> dict:
    """The same reads without HTTP: ServingStore.recommendations in a loop (DB + Python only)."""
    from ml.serving.app import ServingStore

    store = ServingStore(settings, pool_size=1)
    rng = random.Random(1)
    lat = []
    for _ in range(count):
        t0 = time.perf_counter()
        store.recommendations(rng.randint(1, users), 20)
        lat.append(time.perf_counter() - t0)
    store.pool.close()
    ms = np.array(lat) * 1000
    return {f"p{p}": round(float(np.percentile(ms, p)), 3) for p in (50, 99)}


def _impressions_stored(settings) -> int:
    from ml.db import connect
    from ml.publish.common import scalar

    conn = connect(settings.raw_db, settings=settings)
    try:
        return int(scalar(conn, "SELECT COUNT(*) FROM impressions"))
    finally:
        conn.close()


def _start_server(port: int, workers: int) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "ml.serving.app:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, env=dict(os.environ))
    for _ in range(200):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("reader did not become healthy")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=5000)
    ap.add_argument("--rates", type=int, nargs="+", default=[200, 500])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--max-inflight", type=int, default=64)
    ap.add_argument("--port", type=int, default=18765)
    ap.add_argument(
        "--workers", type=int, default=2, help="uvicorn worker processes (recsys serve --workers, default 2)"
    )
    ap.add_argument("--procs", type=int, default=1, help="load-generator processes (each sends rate/procs)")
    args = ap.parse_args()
    os.environ.setdefault("RECSYS_DB_PREFIX", "bench_reader_")
    from ml.config import get_settings
    from ml.publish.full import publish_full

    s = get_settings()
    seed(s, args.users, 5000)
    publish_full(FixedRecommender(5000), "bench", s, n=50)
    before = _impressions_stored(s)
    proc = _start_server(args.port, args.workers)
    try:
        base = f"http://127.0.0.1:{args.port}"
        warm = _measure(base, 100, 2.0, args.users, args.max_inflight, 1)  # warm-up: pools, caches
        results = [
            _measure(base, r, args.seconds, args.users, args.max_inflight, args.procs) for r in args.rates
        ]
    finally:
        proc.terminate()  # the reader's shutdown writes the impressions still queued
        proc.wait(30)
    # with impression logging on (RECSYS_IMPRESSIONS, default 1) every answered request's 20 items
    # must be stored: count in = count stored
    served = 20 * (warm["ok"] + sum(r["ok"] for r in results))
    impressions = {
        "logging": s.impressions,
        "items_served": served,
        "rows_stored": _impressions_stored(s) - before,
    }
    print(
        json.dumps(
            {
                "bench": "reader_latency",
                "endpoint": "/recommendations/{user}?n=20",
                "seconds": args.seconds,
                "workers": args.workers,
                "sender_procs": args.procs,
                "load_avg_1m": os.getloadavg()[0],
                "store_without_http_ms": _store_latency(s, args.users),
                "impressions": impressions,
                "results": results,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
