"""Event-id watermarks that never skip a late commit.

``event_id`` is allocated when a row is inserted, not when its transaction commits: an import or the
simulator can hold 200k–500k rows (low ids) in one open transaction while the live feed commits
higher ids. A reader that advances a watermark to the newest visible id would pass those low ids
for good. So a watermark keeps, next to its newest id, the *gaps* below it: id ranges that had no
visible event when it advanced (each with the server time it was seen). Every later run reads the
events that have appeared inside its gaps (rescoring / revalidating is idempotent) and keeps what is
still missing.

A gap is closed (dropped) once no transaction that could hold its ids can still commit: the holder
of a missing id allocated it before the gap was seen, so when every open InnoDB transaction started
after ``seen_at`` (``information_schema.INNODB_TRX``) the holder has committed or rolled back. That
check is made before the gap's events are read for the last time. Without the PROCESS privilege
INNODB_TRX cannot be read; gaps then close after :data:`GAP_MAX_AGE`, with a warning naming them.
Ranges left by rolled-back batches or deleted rows are gaps too; they close the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import pymysql

log = logging.getLogger(__name__)

GAP_MAX_AGE = timedelta(hours=24)


@dataclass(frozen=True)
class Gap:
    """Event ids ``first..last`` (inclusive) that had no visible event at ``seen_at`` (server time)."""

    first: int
    last: int
    seen_at: datetime


def server_now(conn: pymysql.connections.Connection) -> datetime:
    with conn.cursor() as cur:
        cur.execute("SELECT NOW(3)")
        return cur.fetchone()[0]


def find_gaps(
    conn: pymysql.connections.Connection, raw_db: str, low: int, high: int, seen_at: datetime
) -> list[Gap]:
    """The id ranges in ``(low, high]`` without a visible event (``seen_at``: a server time taken
    after this read)."""
    if high <= low:
        return []
    with conn.cursor() as cur:
        cur.execute(
            "SELECT prev + 1, event_id - 1 FROM (SELECT event_id, "
            "COALESCE(LAG(event_id) OVER (ORDER BY event_id), %s) AS prev "
            f"FROM `{raw_db}`.user_behavior WHERE event_id > %s AND event_id <= %s) t "
            "WHERE event_id > prev + 1 ORDER BY event_id",
            (low, low, high),
        )
        gaps = [Gap(int(a), int(b), seen_at) for a, b in cur.fetchall()]
        cur.execute(
            f"SELECT COALESCE(MAX(event_id), %s) FROM `{raw_db}`.user_behavior WHERE event_id > %s AND event_id <= %s",
            (low, low, high),
        )
        top = int(cur.fetchone()[0])
    if top < high:
        gaps.append(Gap(top + 1, high, seen_at))
    return gaps


def gaps_in(ids, low: int, high: int, seen_at: datetime) -> list[Gap]:
    """The ranges of ``(low, high]`` missing from ``ids`` (every visible id of that range, as read)."""
    gaps, prev = [], low
    for i in sorted(int(x) for x in ids):
        if i > prev + 1:
            gaps.append(Gap(prev + 1, i - 1, seen_at))
        prev = max(prev, i)
    if prev < high:
        gaps.append(Gap(prev + 1, high, seen_at))
    return gaps


def in_gaps_sql(gaps: list[Gap], column: str = "event_id") -> str:
    """A SQL condition true for ids inside ``gaps`` (``FALSE`` when there are none)."""
    if not gaps:
        return "FALSE"
    return "(" + " OR ".join(f"{column} BETWEEN {int(g.first)} AND {int(g.last)}" for g in gaps) + ")"


def oldest_open_transaction(conn: pymysql.connections.Connection) -> tuple[bool, datetime | None]:
    """(readable, start of the oldest InnoDB transaction of another connection or None)."""
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT MIN(trx_started) FROM information_schema.INNODB_TRX "
                "WHERE trx_mysql_thread_id <> CONNECTION_ID()"
            )
            return True, cur.fetchone()[0]
    except pymysql.err.OperationalError as exc:  # 1227: needs the PROCESS privilege
        if exc.args[0] not in (1227, 1142):
            raise
        return False, None


def closable(conn: pymysql.connections.Connection, gaps: list[Gap], now: datetime) -> list[Gap]:
    """The gaps no open transaction can fill any more (call before reading their events)."""
    if not gaps:
        return []
    readable, oldest = oldest_open_transaction(conn)
    if readable:
        return [g for g in gaps if oldest is None or oldest > g.seen_at]
    old = [g for g in gaps if now - g.seen_at > GAP_MAX_AGE]
    for g in old:
        log.warning(
            "event ids %d..%d still missing after %s (INNODB_TRX unreadable): no longer watched",
            g.first,
            g.last,
            GAP_MAX_AGE,
        )
    return old


def remaining(
    conn: pymysql.connections.Connection, raw_db: str, gaps: list[Gap], closed: list[Gap]
) -> list[Gap]:
    """What is still missing of the open gaps (keeping when each was first seen)."""
    left: list[Gap] = []
    for g in gaps:
        if g in closed:
            continue
        left.extend(
            Gap(x.first, x.last, g.seen_at) for x in find_gaps(conn, raw_db, g.first - 1, g.last, g.seen_at)
        )
    return left
