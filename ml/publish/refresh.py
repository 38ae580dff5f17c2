"""Refresh: rescore only the users with events after the watermark and replace their rows with
DELETE + INSERT in one transaction per batch (readers use autocommit consistent reads, so they see a
user's old rows or the new ones, never none). Safe to run next to a full publish (see locking).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pandas as pd
import pymysql

from ml.config import Settings
from ml.data.gaps import Gap, closable, find_gaps, in_gaps_sql, remaining, server_now
from ml.db import connect
from ml.publish.ab import ArmLists, ChallengerLists, live_experiment, refresh_arms
from ml.publish.common import (
    SETTLE_SECONDS,
    Recommender,
    RefreshBatch,
    RefreshResult,
    ValidationFailed,
    batches,
    new_run_id,
    progress_bar,
    scalar,
)
from ml.publish.fatigue import challenger_alike, with_fatigue
from ml.publish.locking import (
    event_upper_bound,
    lock_name,
    named_lock,
    read_gaps,
    read_watermark,
    save_watermark,
)
from ml.publish.reasons import Explainer
from ml.publish.search import (
    in_stock_items,
    refresh_queries,
    replace_user_rows,
    search_marts_ready,
    user_rows_for_refresh,
)
from ml.publish.tables import intent_rows
from ml.quality.topn import check_topn_frame
from ml.search.lists import BaselineSearchLists, SearchLists

log = logging.getLogger(__name__)


def _changed(low: int, high: int | None, gaps: list[Gap]) -> str:
    """SQL condition on event_id: the new range ``(low, high]`` or inside a gap below ``low``."""
    new = f"(event_id > {int(low)} AND event_id <= {int(high)})" if high is not None else "FALSE"
    return f"({new} OR {in_gaps_sql(gaps)})"


def _users_where(conn: pymysql.connections.Connection, s: Settings, changed: str) -> list[int]:
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT DISTINCT user_id FROM `{s.raw_db}`.user_behavior WHERE {changed} ORDER BY user_id"
        )
        return [int(r[0]) for r in cur.fetchall()]


def in_list(ids: Sequence[int]) -> str:
    return ",".join(str(int(u)) for u in ids)


def _score(part: ArmLists, n: int, explain: Explainer) -> pd.DataFrame:
    try:
        return explain(check_topn_frame(part.recommender.recommend(part.users, n), part.users, n))
    except ValueError as exc:
        raise ValidationFailed(f"recommender output rejected, earlier batches stay committed: {exc}") from exc


def _topn_values(frame: pd.DataFrame, model_version: str, generated_at: datetime) -> list[tuple]:
    k = len(frame)
    return list(
        zip(
            frame["user_id"].tolist(),
            frame["rank"].tolist(),
            frame["item_id"].tolist(),
            frame["score"].tolist(),
            frame["source"].tolist(),
            frame["reason"].tolist(),
            frame["reason_arg"].tolist(),
            [model_version] * k,
            [generated_at] * k,
        )
    )


def _refresh_batch(
    conn,
    s: Settings,
    parts: list[ArmLists],
    n: int,
    batch: list[int],
    changed: str,
    search: SearchLists | None,
    explain: Explainer,
) -> RefreshBatch:
    """Rescore one batch of users and replace their rows (top-N with their reasons — in each user's
    own arm's table, ``parts``, during an A/B experiment — intent and, with ``search``, their search
    lists) in a single transaction."""
    # the search lists on a second thread while the champion scores: each half waits on MariaDB for
    # part of its time (the per-user marts, the evidence, the recent queries), the other computes then.
    # The search provider reads through its own connections; ``conn`` stays on this thread.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="refresh-search") as beside:
        searching = (
            beside.submit(user_rows_for_refresh, search, s, batch, in_stock_items(conn, s))
            if search is not None
            else None
        )
        frames = [(part, _score(part, n, explain)) for part in parts]
        searchers, search_rows = searching.result() if searching is not None else ([], pd.DataFrame())
    scored = sorted({u for _, frame in frames for u in frame["user_id"].tolist()})
    kept = tuple(sorted(set(batch) - set(scored)))
    if kept:
        log.warning(
            "recommender returned no rows for %d user(s) (e.g. %s): their previous rows are kept",
            len(kept),
            kept[:5],
        )
    ids = in_list(batch)
    max_ts = scalar(
        conn,
        f"SELECT MAX(ts) FROM `{s.raw_db}`.user_behavior WHERE {changed} AND user_id IN ({ids})",
    )
    intent = intent_rows(conn, s, batch)
    generated_at = scalar(conn, "SELECT NOW(3)")
    writes = [
        (part.table, frame, _topn_values(frame, part.model_version, generated_at)) for part, frame in frames
    ]
    db = s.serving_db
    conn.begin()
    try:
        with conn.cursor() as cur:
            for table, frame, values in writes:
                if values:
                    users = in_list(sorted(set(frame["user_id"].tolist())))
                    cur.execute(f"DELETE FROM `{db}`.`{table}` WHERE user_id IN ({users})")
                    cur.executemany(
                        f"INSERT INTO `{db}`.`{table}` (user_id, `rank`, item_id, score, source, reason, "
                        "reason_arg, model_version, generated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        values,
                    )
            cur.execute(f"DELETE FROM `{db}`.user_intent_category WHERE user_id IN ({ids})")
            if intent:
                cur.executemany(
                    f"INSERT INTO `{db}`.user_intent_category (user_id, category_id, strength, last_event_ts, category) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    intent,
                )
            if search is not None:
                replace_user_rows(cur, s, searchers, search_rows, search.model_version, generated_at)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    committed_at = scalar(conn, "SELECT NOW(3)")
    return RefreshBatch(
        users=len(scored),
        rows=sum(len(values) for _, _, values in writes),
        max_event_ts=max_ts,
        committed_at=committed_at,
        first_user=batch[0],
        last_user=batch[-1],
        kept_users=kept,
        search_users=len(searchers),
        search_rows=len(search_rows),
    )


def publish_refresh(
    recommender: Recommender,
    model_version: str,
    settings: Settings,
    batch_size: int = 1000,
    *,
    n: int | None = None,
    run_id: str | None = None,
    settle_seconds: float = SETTLE_SECONDS,
    upper_event_id: int | None = None,
    lock_timeout: float = 60.0,
    progress: bool = False,
    search: SearchLists | None = None,
    challenger: ChallengerLists | None = None,
) -> RefreshResult:
    """Rescore users with events after the watermark and replace their rows, batch by batch.

    ``search`` (the search champion; None: :class:`~ml.search.lists.BaselineSearchLists`) re-ranks
    the same users' recent-query lists (``user_query_topn``, in their batch's transaction) and the
    ``query_topn`` lists of frequent queries searched in the range; both only once the dbt search
    marts exist.

    ``upper_event_id`` caps the range at the newest event the recommender's features have seen
    (e.g. the newest event_id read before the realtime dbt models ran): later events are left for
    the next run instead of being marked done with features that do not know them yet.

    Each batch is one transaction (DELETE + INSERT of those users' rows and intent rows) followed
    by a ``publish_log`` row (kind ``refresh``; ``max_event_ts`` → ``finished_at`` is the
    freshness). The watermark advances only after every batch has committed, so a crash means the
    next run redoes the same users — replacing rows is idempotent. Ids in ``(low, high]`` without a
    visible event (a transaction still open) are stored as gaps with the watermark; each run also
    rescores the users of events that have since appeared in a gap (:mod:`ml.data.gaps`). Nothing
    new → a no-op.

    While an A/B experiment runs (``ab_experiment``), each user's list is rewritten in their own arm's
    table; ``challenger`` must then be the run's challenger (:func:`ml.publish.ab.refresh_arms`).
    """
    s, n = settings, n or settings.topn
    run_id = run_id or new_run_id("refresh")
    # a loader connection (local_infile): the users' search rows go in by LOAD DATA, in their batch's transaction
    conn = connect(s.serving_db, settings=s, local_infile=True)
    done: list[RefreshBatch] = []
    try:
        with named_lock(conn, lock_name(s, "publish"), lock_timeout, "refresh"):
            low, old_gaps = read_watermark(conn, s), read_gaps(conn, s)
            closed = closable(conn, old_gaps, server_now(conn))  # before their events are read
            high = event_upper_bound(conn, s, low, settle_seconds)
            if high is not None and upper_event_id is not None:
                high = min(high, upper_event_id) if upper_event_id > low else None
            # what is missing now, read before the users: an id appearing later stays in a gap
            gaps = remaining(conn, s.raw_db, old_gaps, closed)
            if high is not None:
                gaps += find_gaps(conn, s.raw_db, low, high, server_now(conn))
            changed = _changed(low, high, old_gaps)
            users = _users_where(conn, s, changed)
            if not users:  # then high is None too (an event at `high` has a user)
                if gaps != old_gaps:
                    save_watermark(conn, s, None, None, gaps)  # closed gaps go
                waiting = scalar(
                    conn, f"SELECT COUNT(*) FROM `{s.raw_db}`.user_behavior WHERE event_id > %s", (low,)
                )
                msg = f"no events after watermark event_id={low}: nothing to do"
                if waiting:
                    msg += f" ({waiting} newer event(s) ingested under {settle_seconds:g}s ago wait for the next run)"
                return RefreshResult(run_id, low, low if high is None else high, 0, 0, (), msg)
            lists = (search or BaselineSearchLists()) if search_marts_ready(conn, s) else None
            explain = Explainer(conn, s)
            recommender = with_fatigue(conn, s, recommender)  # the N/decay of the live full publish
            challenger = challenger_alike(recommender, challenger)
            live = live_experiment(conn, s)
            with progress_bar(progress) as bar:
                task = bar.add_task("refreshing users", total=len(users))
                for batch in batches(users, batch_size):
                    started = scalar(conn, "SELECT NOW(3)")
                    parts = refresh_arms(live, recommender, model_version, challenger, batch)
                    b = _refresh_batch(conn, s, parts, n, batch, changed, lists, explain)
                    _log_refresh(conn, s, run_id, b, model_version, started)
                    done.append(b)
                    bar.advance(task, len(batch))
            queries, query_rows = refresh_queries(conn, s, lists, changed) if lists is not None else (0, 0)
            newest = max((b.max_event_ts for b in done if b.max_event_ts is not None), default=None)
            save_watermark(conn, s, high, newest, gaps)  # only now: every batch has committed
    finally:
        conn.close()
    kept = sum(len(b.kept_users) for b in done)
    msg = (
        f"refreshed {sum(b.users for b in done)} user(s) for events ({low}, {high if high is not None else low}]"
        f" in {len(done)} batch(es)"
    )
    if old_gaps:
        msg += f"; rechecked {len(old_gaps)} gap(s) of ids below the watermark for late commits"
    if gaps:
        msg += f"; {len(gaps)} gap(s) of ids not committed yet stay watched"
    if kept:
        msg += f"; {kept} user(s) got no rows from the recommender and kept their previous list"
    if lists is not None:
        msg += (
            f"; search lists of {sum(b.search_users for b in done)} user(s) and {queries} frequent "
            "query(ies) replaced"
        )
    return RefreshResult(
        run_id,
        low,
        high if high is not None else low,
        sum(b.users for b in done),
        sum(b.rows for b in done),
        tuple(done),
        msg,
        queries,
        query_rows,
    )


def _log_refresh(
    conn, s: Settings, run_id: str, b: RefreshBatch, model_version: str, started: datetime
) -> None:
    with conn.cursor() as cur:
        cur.execute(
            f"INSERT INTO `{s.serving_db}`.publish_log (run_id, kind, users, `rows`, model_version, started_at, "
            "finished_at, max_event_ts) VALUES (%s, 'refresh', %s, %s, %s, %s, %s, %s)",
            (run_id, b.users, b.rows, model_version, started, b.committed_at, b.max_event_ts),
        )
