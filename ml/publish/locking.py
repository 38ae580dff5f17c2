"""Serialising writers of the serving tables and tracking what they have published.

A MySQL named lock per serving database serialises refresh runs with the swap of a full publish.
The watermark is a raw ``event_id`` (insertion order), not the event time ``ts``: an event that
arrives late, with an old ``ts``, still gets a new ``event_id`` and is picked up. Only events
ingested at least ``settle_seconds`` ago bound the upper end. A transaction that commits lower ids
after the watermark passed them (a 500k-row import next to the live feed) is not skipped either: the
ids missing below the watermark are kept as gaps (``publish_watermark_gaps``, :mod:`ml.data.gaps`)
and the next refresh rescores whoever their events belong to once they appear.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

import pymysql

from ml.config import Settings
from ml.data.gaps import Gap
from ml.publish.common import WATERMARK_NAME, PublishBusy, scalar


def lock_name(settings: Settings, what: str) -> str:
    """MySQL named-lock name (≤ 64 chars) scoped to one serving database."""
    name = f"recsys:{what}:{settings.serving_db}"
    if len(name) > 64:
        name = f"recsys:{what}:" + hashlib.sha1(settings.serving_db.encode()).hexdigest()[:32]
    return name


@contextlib.contextmanager
def named_lock(
    conn: pymysql.connections.Connection, name: str, timeout: float, purpose: str
) -> Iterator[None]:
    """Hold MySQL ``GET_LOCK(name)`` on ``conn``; raise :class:`PublishBusy` if not granted in time."""
    got = scalar(conn, "SELECT GET_LOCK(%s, %s)", (name, timeout))
    if got != 1:
        holder = scalar(conn, "SELECT IS_USED_LOCK(%s)", (name,))
        raise PublishBusy(f"{purpose}: lock {name!r} held by connection {holder} for more than {timeout:g}s")
    try:
        yield
    finally:
        with contextlib.suppress(pymysql.Error):
            scalar(conn, "SELECT RELEASE_LOCK(%s)", (name,))


def event_upper_bound(
    conn: pymysql.connections.Connection, s: Settings, after: int, settle_seconds: float
) -> int | None:
    """Newest event_id > ``after`` ingested at least ``settle_seconds`` ago (None: nothing new)."""
    value = scalar(
        conn,
        f"SELECT event_id FROM `{s.raw_db}`.user_behavior WHERE event_id > %s "
        "AND ingested_at <= NOW(3) - INTERVAL %s MICROSECOND ORDER BY event_id DESC LIMIT 1",
        (after, int(settle_seconds * 1e6)),
    )
    return int(value) if value is not None else None


def read_watermark(conn: pymysql.connections.Connection, s: Settings) -> int:
    """The stored event_id watermark (0 before the first publish)."""
    value = scalar(
        conn, f"SELECT event_id FROM `{s.serving_db}`.publish_watermark WHERE name=%s", (WATERMARK_NAME,)
    )
    return int(value) if value is not None else 0


def read_gaps(conn: pymysql.connections.Connection, s: Settings) -> list[Gap]:
    """The event-id ranges below the watermark still missing when the watermark passed them."""
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT first_event_id, last_event_id, seen_at FROM `{s.serving_db}`.publish_watermark_gaps "
            "WHERE name = %s ORDER BY first_event_id",
            (WATERMARK_NAME,),
        )
        return [Gap(int(a), int(b), seen) for a, b, seen in cur.fetchall()]


def save_watermark(
    conn: pymysql.connections.Connection, s: Settings, high: int | None, newest: object, gaps: list[Gap]
) -> None:
    """In one transaction: the new watermark (unless ``high`` is None) and the gaps below it."""
    db = s.serving_db
    conn.begin()
    try:
        with conn.cursor() as cur:
            if high is not None:
                cur.execute(
                    f"INSERT INTO `{db}`.publish_watermark (name, event_id, max_event_ts, updated_at) "
                    "VALUES (%s, %s, %s, NOW(3)) ON DUPLICATE KEY UPDATE event_id = VALUES(event_id), "
                    "max_event_ts = VALUES(max_event_ts), updated_at = NOW(3)",
                    (WATERMARK_NAME, high, newest),
                )
            cur.execute(f"DELETE FROM `{db}`.publish_watermark_gaps WHERE name = %s", (WATERMARK_NAME,))
            cur.executemany(
                f"INSERT INTO `{db}`.publish_watermark_gaps (name, first_event_id, last_event_id, seen_at) "
                "VALUES (%s, %s, %s, %s)",
                [(WATERMARK_NAME, g.first, g.last, g.seen_at) for g in gaps],
            )
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
