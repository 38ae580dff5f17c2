"""The SQL reads a quality gate needs besides GX itself: which tables exist, the events landed
after a watermark, the active users a top-N must cover, and any small frame (top-N enrichment).

Apart from the stage runner so the queries against the raw and serving databases sit in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ml.config import Settings
from ml.data.gaps import Gap, closable, gaps_in, in_gaps_sql, remaining, server_now

if TYPE_CHECKING:
    import pandas as pd


def read_frame(sql: str, settings: Settings, params: Sequence[Any] | None = None) -> pd.DataFrame:
    """Rows of ``sql`` (``%s`` placeholders bound to ``params``) as a DataFrame."""
    from ml.features.datasets import read_sql

    return read_sql(sql, settings, tuple(params) if params is not None else None)


def existing_tables(settings: Settings, database: str) -> set[str]:
    """Names of the tables (and views) in ``database``."""
    df = read_frame(
        "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = %s", settings, (database,)
    )
    return set(df["t"]) if not df.empty else set()


def landed_events(settings: Settings, since_event_id: int, max_rows: int) -> pd.DataFrame:
    """Events in ``recsys_raw.user_behavior`` with ``event_id > since_event_id`` (oldest first)."""
    return read_frame(
        "SELECT event_id, user_id, item_id, session_id, behavior_type, query_text, ts, ingested_at "
        f"FROM `{settings.raw_db}`.user_behavior WHERE event_id > %s ORDER BY event_id LIMIT %s",
        settings,
        (since_event_id, max_rows),
    )


def landed_batch(
    settings: Settings, since: int, max_rows: int, gaps: list[Gap]
) -> tuple[pd.DataFrame, list[Gap]]:
    """The events after ``since`` plus those that appeared since in ``gaps`` (ids below the watermark
    still uncommitted when it advanced), and the gaps to watch next (see :mod:`ml.data.gaps`)."""
    import pandas as pd

    from ml.db import connect

    conn = connect(settings.raw_db, settings=settings)
    try:
        closed = closable(conn, gaps, server_now(conn))  # before their events are read
        frame = landed_events(settings, since, max_rows)
        seen_at = server_now(conn)
        left = remaining(conn, settings.raw_db, gaps, closed)  # before the late events are read
    finally:
        conn.close()
    if not frame.empty:
        left += gaps_in(frame["event_id"], since, int(frame["event_id"].max()), seen_at)
    if gaps:
        late = read_frame(
            "SELECT event_id, user_id, item_id, session_id, behavior_type, query_text, ts, ingested_at "
            f"FROM `{settings.raw_db}`.user_behavior WHERE {in_gaps_sql(gaps)} ORDER BY event_id",
            settings,
        )
        if not late.empty:
            frame = late if frame.empty else pd.concat([late, frame], ignore_index=True)
    return frame, left


def active_users(settings: Settings, active_days: int) -> list[int]:
    """Users with an event in the ``active_days`` before the newest event (event time, not wall
    clock, so a replayed or simulated history has active users too)."""
    df = read_frame(
        f"SELECT DISTINCT user_id FROM `{settings.raw_db}`.user_behavior "
        f"WHERE ts >= (SELECT MAX(ts) FROM `{settings.raw_db}`.user_behavior) - INTERVAL %s DAY",
        settings,
        (active_days,),
    )
    return [int(u) for u in df["user_id"]] if not df.empty else []
