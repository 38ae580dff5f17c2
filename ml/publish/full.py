"""Full publish: score every active user with one model, fill every serving table as ``*_new``,
validate (built-in invariants, then the GX top-N suite), and swap all of them in one atomic RENAME.

The swap rewinds the refresh watermark to the newest event the full publish read (``LEAST`` with
the current one), so rows a refresh wrote to the old tables while the full publish was scoring
are rescored by the next refresh, not lost.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import pymysql

from ml.config import Settings
from ml.db import connect
from ml.experiment import Experiment
from ml.publish.ab import ChallengerLists, ab_tables, live_experiment, planned_experiment, stage_experiment
from ml.publish.common import (
    LOCK_WAIT_TIMEOUT_S,
    SETTLE_SECONDS,
    PublishError,
    PublishResult,
    Recommender,
    ValidationFailed,
    Validator,
    new_run_id,
    scalar,
)
from ml.publish.fatigue import challenger_alike, with_fatigue
from ml.publish.loader import BatchLoader, score_and_load
from ml.publish.locking import event_upper_bound, lock_name, named_lock
from ml.publish.reasons import Explainer
from ml.publish.search import SEARCH_TABLES, SearchCounts, build_search
from ml.publish.tables import (
    build_intent,
    build_popular,
    build_similar,
    create_staging,
    drop_staging,
    rebuilt_tables,
    swap_tables,
)
from ml.quality.topn import topn_invariants_validator
from ml.search.lists import BaselineSearchLists, SearchLists


@dataclass(frozen=True)
class _FullJob:
    """What one full publish read before scoring: its event range, users and tables to rebuild."""

    settings: Settings
    model_version: str
    n: int
    users: list[int]
    upper: int  # newest event_id read (the watermark it publishes)
    max_ts: datetime
    tables: list[str]
    experiment: Experiment | None = None  # the A/B run to serve (None: champion only)
    live_experiment: Experiment | None = None  # the run serving now


def publish_full(
    recommender: Recommender,
    model_version: str,
    settings: Settings,
    n: int | None = None,
    run_id: str | None = None,
    validate: Validator | None = None,
    *,
    batch_size: int = 5000,
    settle_seconds: float = SETTLE_SECONDS,
    lock_timeout: float = 300.0,
    progress: bool = False,
    search: SearchLists | None = None,
    challenger: ChallengerLists | None = None,
) -> PublishResult:
    """Score all active users and atomically replace the serving tables.

    ``search`` ranks the search lists (``query_topn``, ``user_query_topn``; the search champion);
    None publishes :class:`~ml.search.lists.BaselineSearchLists`. The search tables are rebuilt
    only when the dbt search marts exist, and are checked by their own invariants before the swap.

    ``validate`` (e.g. the GX top-N suite) runs on ``<serving_db>.user_topn_new`` after the
    built-in invariants pass and before the swap; on any failure the ``*_new`` tables are dropped,
    :class:`ValidationFailed` is raised and the live tables stay as they were. ``lock_timeout`` is
    how long the swap waits for a running refresh to finish.

    ``challenger`` (A/B, issue 17; used only when ``settings.ab_on``): its lists for every active
    user go to ``user_topn_challenger`` and the run to ``ab_experiment``, checked like the champion's
    and swapped in the same RENAME (:mod:`ml.publish.ab`).
    """
    s = settings
    run_id = run_id or new_run_id("full")
    conn = connect(s.serving_db, settings=s)
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION lock_wait_timeout = %s", (LOCK_WAIT_TIMEOUT_S,))
        started = scalar(conn, "SELECT NOW(3)")
        with named_lock(conn, lock_name(s, "full"), 0, "full publish"):
            drop_staging(conn, s)
            recommender = with_fatigue(conn, s, recommender, fit_run_id=run_id)  # fits N/decay, stores them
            challenger = challenger_alike(recommender, challenger)
            job = _plan_full(conn, s, model_version, n or s.topn, settle_seconds, challenger)
            create_staging(conn, s, job.tables)
            try:
                result = _build_and_swap(
                    conn,
                    job,
                    recommender,
                    search or BaselineSearchLists(),
                    validate,
                    challenger,
                    batch_size,
                    lock_timeout,
                    progress,
                )
            except BaseException:
                with contextlib.suppress(pymysql.Error):
                    drop_staging(conn, s)
                raise
        finished = scalar(conn, "SELECT NOW(3)")
        with conn.cursor() as cur:
            cur.execute(
                f"INSERT INTO `{s.serving_db}`.publish_log (run_id, kind, users, `rows`, model_version, started_at, "
                "finished_at, max_event_ts) VALUES (%s, 'full', %s, %s, %s, %s, %s, %s)",
                (run_id, len(job.users), result["rows"], model_version, started, finished, job.max_ts),
            )
    finally:
        conn.close()
    return PublishResult(
        run_id=run_id,
        model_version=model_version,
        users=len(job.users),
        watermark_event_id=job.upper,
        max_event_ts=job.max_ts,
        started_at=started,
        finished_at=finished,
        **result,
    )


def _plan_full(
    conn, s: Settings, model_version: str, n: int, settle_seconds: float, challenger: ChallengerLists | None
) -> _FullJob:
    upper = event_upper_bound(conn, s, 0, settle_seconds)
    if upper is None:
        raise PublishError(f"no settled events in {s.raw_db}.user_behavior: nothing to publish")
    max_ts = scalar(conn, f"SELECT MAX(ts) FROM `{s.raw_db}`.user_behavior WHERE event_id <= %s", (upper,))
    live, new = live_experiment(conn, s), planned_experiment(s, model_version, challenger)
    tables = rebuilt_tables(conn, s) + ab_tables(new, live)
    return _FullJob(s, model_version, n, _active_users(conn, s, upper), upper, max_ts, tables, new, live)


def _active_users(conn: pymysql.connections.Connection, s: Settings, upper: int) -> list[int]:
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT DISTINCT user_id FROM `{s.raw_db}`.user_behavior WHERE event_id <= %s ORDER BY user_id",
            (upper,),
        )
        return [int(r[0]) for r in cur.fetchall()]


def _build_and_swap(
    conn,
    job: _FullJob,
    recommender: Recommender,
    search: SearchLists,
    validate: Validator | None,
    challenger: ChallengerLists | None,
    batch_size: int,
    lock_timeout: float,
    progress: bool,
) -> dict:
    """Fill the ``*_new`` tables, validate them, swap. Returns the counts for :class:`PublishResult`."""
    s, n = job.settings, job.n
    explain = Explainer(conn, s, job.upper)
    loader = BatchLoader(s, job.model_version, scalar(conn, "SELECT NOW(3)"))
    # the search tables on a second thread (and connection) while the champion scores every user:
    # both halves are a mix of Python and waits on MariaDB, and one alone left a core idle
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="publish-search") as beside:
        searching = (
            beside.submit(_build_search_apart, s, search, job.users, loader.generated_at, batch_size)
            if set(SEARCH_TABLES) <= set(job.tables)
            else None
        )
        rows, write_s = score_and_load(recommender, job.users, n, batch_size, loader, progress, explain)
        popular = build_popular(conn, s, n)
        if popular == 0:
            raise ValidationFailed(
                "popular_topn_new is empty: no in-stock item had events in the popularity window"
            )
        intent = build_intent(conn, s)
        similar = build_similar(conn, s, n) if "item_similar" in job.tables else None
        found = searching.result() if searching is not None else None
    table = f"{s.serving_db}.user_topn_new"
    ok, summary = topn_invariants_validator(s, job.upper)(table)
    if ok and validate is not None:
        ok, extra = validate(table)
        summary = f"{summary}; {extra}"
    if not ok:
        raise ValidationFailed(f"user_topn_new failed validation, nothing swapped: {summary}")
    challenger_rows = None
    if job.experiment is not None and challenger is not None:
        challenger_rows, checked = _build_challenger(
            job, challenger, explain, loader.generated_at, batch_size, progress
        )
        summary = f"{summary}; challenger ({challenger_rows} rows): {checked}"
    run = (
        stage_experiment(conn, s, job.experiment, job.live_experiment)
        if "ab_experiment" in job.tables
        else None
    )
    swap_tables(conn, s, job.tables, job.upper, job.max_ts, lock_timeout)
    return {
        "rows": rows,
        "popular_rows": popular,
        "intent_rows": intent,
        "similar_rows": similar,
        "write_seconds": write_s,
        "validation": summary,
        "search_model_version": search.model_version if found is not None else None,
        "queries": found.queries if found is not None else None,
        "query_rows": found.query_rows if found is not None else None,
        "user_query_rows": found.user_query_rows if found is not None else None,
        "experiment": run.name if run is not None else None,
        "challenger_model_version": run.challenger_version if run is not None else None,
        "challenger_rows": challenger_rows,
    }


def _build_search_apart(
    s: Settings, search: SearchLists, users: list[int], generated_at: datetime, batch_size: int
) -> SearchCounts:
    """:func:`build_search` on a connection of its own (the caller's stays on its thread)."""
    conn = connect(s.serving_db, settings=s)
    try:
        return build_search(conn, s, search, users, generated_at, batch_size)
    finally:
        conn.close()


def _build_challenger(
    job: _FullJob,
    challenger: ChallengerLists,
    explain: Explainer,
    generated_at: datetime,
    batch_size: int,
    progress: bool,
) -> tuple[int, str]:
    """Score every active user with the challenger into ``user_topn_challenger_new`` and check it like
    ``user_topn_new`` (built-in invariants, then ``challenger.validate``). Returns (rows, check summary)."""
    s = job.settings
    table = "user_topn_challenger_new"
    loader = BatchLoader(s, challenger.model_version, generated_at, table)
    rows, _ = score_and_load(challenger.recommender, job.users, job.n, batch_size, loader, progress, explain)
    ok, summary = topn_invariants_validator(s, job.upper)(f"{s.serving_db}.{table}")
    if ok and challenger.validate is not None:
        ok, extra = challenger.validate(f"{s.serving_db}.{table}")
        summary = f"{summary}; {extra}"
    if not ok:
        raise ValidationFailed(f"{table} failed validation, nothing swapped: {summary}")
    return rows, summary
