"""Publish top-N recommendations to the serving tables (``recsys_serving``); the only writer there.

Two ways in, both safe to run at the same time:

* :func:`publish_full` scores every active user, builds ``user_topn``, ``item_similar``,
  ``popular_topn`` and ``user_intent_category`` as ``*_new`` tables (LOAD DATA LOCAL INFILE or
  INSERT … SELECT), validates them, then swaps all of them in one atomic ``RENAME TABLE``. A reader
  sees the old lists or the new ones, never a missing table or a half-written list.
* :func:`publish_refresh` rescores only users with events after the stored watermark and replaces
  their rows with DELETE + INSERT in one transaction per batch (readers use autocommit consistent
  reads, so they see a user's old rows or the new ones, never none).

The watermark is a raw ``event_id`` (insertion order), not the event time ``ts``: an event that
arrives late, with an old ``ts``, still gets a new ``event_id`` and is picked up. Only events
ingested at least ``settle_seconds`` ago bound the upper end, so a loader transaction still in
flight (ids are allocated before commit) is not skipped; it must commit within that time.

Concurrency: a MySQL named lock per serving database serialises refresh runs with the swap of a
full publish (a full publish holds it only for the swap). The swap rewinds the watermark to the
newest event the full publish read (``LEAST`` with the current one), so rows a refresh wrote to the
old tables while the full publish was scoring are rescored by the next refresh, not lost.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import queue
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np
import pandas as pd
import pymysql

from ml.config import Settings
from ml.db import connect

log = logging.getLogger(__name__)

TOPN_COLUMNS = ["user_id", "rank", "item_id", "score", "source"]
#: Tables a full publish rebuilds and swaps (item_similar only when the dbt mart exists).
SWAPPED_TABLES = ("user_topn", "item_similar", "popular_topn", "user_intent_category")
WATERMARK_NAME = "user_topn"
#: Weight of each behaviour in recent popularity and in a user's intent category.
BEHAVIOR_WEIGHTS = {"browse": 1.0, "fav": 2.0, "cart": 3.0, "purchase": 4.0}
POPULAR_DAYS = 7  # popularity window, counted back from the newest event (data time, not wall clock)
INTENT_DAYS = 7  # users without an item event in this window get no intent row (global fallback)
INTENT_EVENTS = 20  # a user's intent is read from their last N item events ...
INTENT_DECAY = 0.85  # ... each weighted DECAY ** position (most recent first)
SETTLE_SECONDS = 5.0
LOCK_WAIT_TIMEOUT_S = 5  # DDL (RENAME) gives up quickly instead of queueing readers behind it
_SOURCE_RE = re.compile(r"^[A-Za-z0-9_:.,+\-]{1,32}$")


class Recommender(Protocol):
    """Anything that ranks items for users (docs/contracts.md, "Scoring and publishing")."""

    def recommend(self, user_ids: list[int], n: int) -> pd.DataFrame: ...


#: A pre-swap check: called with ``"<serving_db>.user_topn_new"``, returns (ok, summary).
Validator = Callable[[str], tuple[bool, str]]


class PublishError(RuntimeError):
    """Publishing stopped; the live serving tables are unchanged."""


class ValidationFailed(PublishError):
    """The new tables broke an invariant; nothing was swapped."""


class PublishBusy(PublishError):
    """Another publish holds the lock this one needs."""


@dataclass(frozen=True)
class PublishResult:
    """What a full publish swapped in."""

    run_id: str
    model_version: str
    users: int
    rows: int
    popular_rows: int
    intent_rows: int
    similar_rows: int | None  # None: no ml_covisitation mart yet, live item_similar kept
    watermark_event_id: int
    max_event_ts: datetime | None
    started_at: datetime
    finished_at: datetime
    write_seconds: float  # TSV spool + LOAD DATA of user_topn, recommender time excluded
    validation: str

    @property
    def write_rows_per_s(self) -> float:
        return self.rows / self.write_seconds if self.write_seconds > 0 else float("inf")


@dataclass(frozen=True)
class RefreshBatch:
    """One committed refresh transaction."""

    users: int
    rows: int
    max_event_ts: datetime | None
    committed_at: datetime
    first_user: int  # batches cover consecutive user ids (users are refreshed in id order)
    last_user: int
    kept_users: tuple[int, ...] = ()  # users the recommender returned nothing for: old rows kept


@dataclass(frozen=True)
class RefreshResult:
    """What a refresh did; ``noop`` when there was nothing after the watermark."""

    run_id: str
    from_event_id: int
    to_event_id: int
    users: int
    rows: int
    batches: tuple[RefreshBatch, ...] = field(default_factory=tuple)
    message: str = ""

    @property
    def noop(self) -> bool:
        return not self.batches


class NoChampion(PublishError):
    """No registered champion model to publish from."""


# ----------------------------------------------------------------------------- champion entry points


def load_champion_recommender(settings: Settings) -> tuple[Recommender, str]:
    """The champion recommender and its ``model_version`` from ``ml.registry.load_champion``.

    Raises :class:`NoChampion` with a message a person can act on when the registry is not
    available or holds no champion.
    """
    try:
        from ml.registry import load_champion
    except ImportError as exc:
        raise NoChampion(f"no model registry available ({exc}): train and register a champion first (`recsys train`)") from None
    try:
        recommender = load_champion(settings)
    except LookupError as exc:
        raise NoChampion(f"no champion model registered: {exc}") from None
    version = getattr(recommender, "model_version", None)
    if recommender is None or not version:
        raise NoChampion("the registry returned no champion with a model_version; promote one to the 'champion' alias")
    return recommender, str(version)


def _jsonable(obj: object) -> dict:
    from dataclasses import asdict

    def conv(v: object) -> object:
        if isinstance(v, datetime):
            return v.isoformat()
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v

    return conv(asdict(obj))  # type: ignore[arg-type, return-value]


def publish_champion_full(settings: Settings, n: int | None = None, *, gx: bool = True, progress: bool = False) -> dict:
    """Task entry (Airflow, CLI): full publish of the champion, gated by the GX top-N suite.

    Returns a JSON-able summary; raises :class:`PublishError` (``NoChampion``, ``ValidationFailed``...).
    """
    recommender, version = load_champion_recommender(settings)
    validate = gx_topn_validator(settings, n) if gx else None
    return _jsonable(publish_full(recommender, version, settings, n=n, validate=validate, progress=progress))


def publish_champion_refresh(settings: Settings, batch_size: int = 1000, n: int | None = None, *,
                             upper_event_id: int | None = None, progress: bool = False) -> dict:
    """Task entry (Airflow, CLI): refresh users with new events using the champion; JSON-able summary.

    Pass ``upper_event_id`` = the newest event_id read before the realtime dbt models ran."""
    recommender, version = load_champion_recommender(settings)
    result = publish_refresh(recommender, version, settings, batch_size=batch_size, n=n,
                             upper_event_id=upper_event_id, progress=progress)
    return {**_jsonable(result), "noop": result.noop}


# ----------------------------------------------------------------------------- pure helpers


def new_run_id(kind: str) -> str:
    """A sortable, unique run id such as ``full-20261128T001500-1a2b3c``."""
    return f"{kind}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:6]}"


def lock_name(settings: Settings, what: str) -> str:
    """MySQL named-lock name (≤ 64 chars) scoped to one serving database."""
    name = f"recsys:{what}:{settings.serving_db}"
    if len(name) > 64:
        name = f"recsys:{what}:" + hashlib.sha1(settings.serving_db.encode()).hexdigest()[:32]
    return name


def batches(seq: Sequence[int], size: int) -> Iterator[list[int]]:
    """Consecutive slices of ``seq`` of at most ``size`` items."""
    if size < 1:
        raise ValueError(f"batch size must be >= 1, got {size}")
    for i in range(0, len(seq), size):
        yield list(seq[i : i + size])


def check_topn_frame(frame: pd.DataFrame, user_ids: Sequence[int], n: int) -> pd.DataFrame:
    """Validate one recommender answer and return it as a clean ``TOPN_COLUMNS`` frame.

    Raises ``ValueError`` naming the first broken rule: missing columns, users that were not asked
    for, ranks not 1..k contiguous (k ≤ n), an item twice for a user, non-finite scores, scores
    rising with rank, or a ``source`` label that is not a short token. Users with no rows at all are
    allowed here; callers decide (a full publish fails validation, a refresh keeps the old rows).
    """
    missing = [c for c in TOPN_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"recommender frame lacks columns {missing}; needs {TOPN_COLUMNS}")
    df = frame[TOPN_COLUMNS].copy()
    if df.empty:
        return df.astype({"user_id": "int64", "rank": "int64", "item_id": "int64", "score": "float64", "source": "object"})
    for col in ("user_id", "rank", "item_id"):
        if df[col].isna().any():
            raise ValueError(f"recommender frame has NULL {col}")
        df[col] = df[col].astype("int64")
    df["score"] = df["score"].astype("float64")
    df["source"] = df["source"].astype(str)
    unknown = set(df["user_id"].unique().tolist()) - set(int(u) for u in user_ids)
    if unknown:
        raise ValueError(f"recommender returned users it was not asked for: {sorted(unknown)[:5]}")
    df = df.sort_values(["user_id", "rank"], kind="stable").reset_index(drop=True)
    expected_rank = df.groupby("user_id", sort=False).cumcount().to_numpy() + 1
    bad = np.flatnonzero(df["rank"].to_numpy() != expected_rank)
    if bad.size:
        u = int(df["user_id"].iat[bad[0]])
        raise ValueError(f"ranks for user {u} are not 1..k contiguous")
    if int(df["rank"].max()) > n:
        raise ValueError(f"recommender returned rank {int(df['rank'].max())} > n={n}")
    dup = df.duplicated(["user_id", "item_id"])
    if dup.any():
        row = df[dup].iloc[0]
        raise ValueError(f"item {int(row.item_id)} appears twice for user {int(row.user_id)}")
    score = df["score"].to_numpy()
    if not np.isfinite(score).all():
        u = int(df["user_id"].iat[int(np.flatnonzero(~np.isfinite(score))[0])])
        raise ValueError(f"non-finite score for user {u}")
    users = df["user_id"].to_numpy()
    rising = np.flatnonzero((users[1:] == users[:-1]) & (score[1:] > score[:-1]))
    if rising.size:
        raise ValueError(f"scores rise with rank for user {int(users[rising[0] + 1])}")
    bad_sources = [s for s in df["source"].unique().tolist() if not _SOURCE_RE.match(s)]
    if bad_sources:
        raise ValueError(f"source labels must be short tokens [A-Za-z0-9_:.,+-]{{1,32}}: {bad_sources[:3]}")
    return df


def write_topn_tsv(df: pd.DataFrame, fh) -> None:
    """Append a checked frame to an open text file in the LOAD DATA layout (tab separated)."""
    df.to_csv(fh, sep="\t", header=False, index=False, lineterminator="\n", float_format="%.17g")


# ----------------------------------------------------------------------------- SQL helpers


def _weight_case(col: str) -> str:
    whens = " ".join(f"WHEN '{b}' THEN {w}" for b, w in BEHAVIOR_WEIGHTS.items())
    return f"(CASE {col} {whens} ELSE 0 END)"


def _scalar(conn: pymysql.connections.Connection, sql: str, args: object = None) -> object:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        row = cur.fetchone()
    return row[0] if row else None


def _table_exists(conn: pymysql.connections.Connection, db: str, table: str) -> bool:
    return bool(
        _scalar(conn, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema=%s AND table_name=%s", (db, table))
    )


@contextlib.contextmanager
def named_lock(conn: pymysql.connections.Connection, name: str, timeout: float, purpose: str) -> Iterator[None]:
    """Hold MySQL ``GET_LOCK(name)`` on ``conn``; raise :class:`PublishBusy` if not granted in time."""
    got = _scalar(conn, "SELECT GET_LOCK(%s, %s)", (name, timeout))
    if got != 1:
        holder = _scalar(conn, "SELECT IS_USED_LOCK(%s)", (name,))
        raise PublishBusy(f"{purpose}: lock {name!r} held by connection {holder} for more than {timeout:g}s")
    try:
        yield
    finally:
        with contextlib.suppress(pymysql.Error):
            _scalar(conn, "SELECT RELEASE_LOCK(%s)", (name,))


def _event_upper_bound(conn: pymysql.connections.Connection, s: Settings, after: int, settle_seconds: float) -> int | None:
    """Newest event_id > ``after`` ingested at least ``settle_seconds`` ago (None: nothing new)."""
    value = _scalar(
        conn,
        f"SELECT event_id FROM `{s.raw_db}`.user_behavior WHERE event_id > %s "
        "AND ingested_at <= NOW(3) - INTERVAL %s MICROSECOND ORDER BY event_id DESC LIMIT 1",
        (after, int(settle_seconds * 1e6)),
    )
    return int(value) if value is not None else None


def read_watermark(conn: pymysql.connections.Connection, s: Settings) -> int:
    """The stored event_id watermark (0 before the first publish)."""
    value = _scalar(conn, f"SELECT event_id FROM `{s.serving_db}`.publish_watermark WHERE name=%s", (WATERMARK_NAME,))
    return int(value) if value is not None else 0


def _intent_select(s: Settings, where: str) -> str:
    """SELECT user_id, category_id, strength, last_event_ts: each user's recent-intent category."""
    return f"""
        WITH recent AS (
          SELECT e.user_id, i.category_id, e.ts, {_weight_case('e.behavior_type')} AS w,
                 ROW_NUMBER() OVER (PARTITION BY e.user_id ORDER BY e.ts DESC, e.event_id DESC) AS pos
          FROM `{s.raw_db}`.user_behavior e JOIN `{s.raw_db}`.items i ON i.item_id = e.item_id
          WHERE e.item_id IS NOT NULL AND {where}
        ), per_cat AS (
          SELECT user_id, category_id, SUM(w * POW({INTENT_DECAY}, pos - 1)) AS w, MAX(ts) AS last_ts
          FROM recent WHERE pos <= {INTENT_EVENTS} GROUP BY user_id, category_id
        ), ranked AS (
          SELECT user_id, category_id, w, last_ts, SUM(w) OVER (PARTITION BY user_id) AS tot,
                 ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY w DESC, last_ts DESC, category_id) AS rn
          FROM per_cat
        )
        SELECT user_id, category_id, w / tot, last_ts FROM ranked WHERE rn = 1 AND tot > 0"""


# ----------------------------------------------------------------------------- validation


def topn_invariants_validator(settings: Settings, upper_event_id: int) -> Validator:
    """The hard invariants of a top-N table, checked in SQL before any swap.

    Every user with an event up to ``upper_event_id`` has rows; ranks are 1..k contiguous; no
    item twice for a user; scores never rise with rank. (Finiteness is checked on the frames:
    MySQL cannot store NaN.)
    """

    def validate(table: str) -> tuple[bool, str]:
        db, name = table.split(".", 1)
        conn = connect(settings=settings)
        try:
            rows = int(_scalar(conn, f"SELECT COUNT(*) FROM `{db}`.`{name}`") or 0)
            missing = int(
                _scalar(
                    conn,
                    f"SELECT COUNT(*) FROM (SELECT DISTINCT user_id FROM `{settings.raw_db}`.user_behavior "
                    f"WHERE event_id <= %s) a LEFT JOIN `{db}`.`{name}` t ON t.user_id = a.user_id AND t.`rank` = 1 "
                    "WHERE t.user_id IS NULL",
                    (upper_event_id,),
                )
                or 0
            )
            bad_lists = int(
                _scalar(
                    conn,
                    f"SELECT COUNT(*) FROM (SELECT MIN(`rank`) mn, MAX(`rank`) mx, COUNT(*) c, COUNT(DISTINCT item_id) d "
                    f"FROM `{db}`.`{name}` GROUP BY user_id) g WHERE mn <> 1 OR mx <> c OR d <> c",
                )
                or 0
            )
            rising = int(
                _scalar(
                    conn,
                    f"SELECT COUNT(*) FROM (SELECT score, LAG(score) OVER (PARTITION BY user_id ORDER BY `rank`) AS prev "
                    f"FROM `{db}`.`{name}`) x WHERE prev < score",
                )
                or 0
            )
        finally:
            conn.close()
        ok = missing == 0 and bad_lists == 0 and rising == 0 and rows > 0
        summary = f"rows={rows} users_without_rows={missing} lists_with_rank_gaps_or_duplicates={bad_lists} score_rises={rising}"
        return ok, summary

    return validate


def gx_topn_validator(settings: Settings, n: int | None = None) -> Validator:
    """The Great Expectations top-N suite (``ml.quality`` stage ``topn``) as a pre-swap validator."""

    def validate(table: str) -> tuple[bool, str]:
        from ml.quality import run_stage

        db, name = table.split(".", 1)
        if db != settings.serving_db:
            raise ValueError(f"GX top-N suite reads the serving database {settings.serving_db}, not {db}")
        result = run_stage("topn", settings, build_docs=False, table=name, n=n or settings.topn)
        return result.success, result.summary

    return validate


# ----------------------------------------------------------------------------- full publish


def _drop_staging(conn: pymysql.connections.Connection, s: Settings) -> None:
    """Drop ``*_new``/``*_old`` leftovers of an earlier crashed publish."""
    wanted = [f"{t}_{suffix}" for t in SWAPPED_TABLES for suffix in ("new", "old")]
    with conn.cursor() as cur:
        cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_name IN %s",
            (s.serving_db, wanted),
        )
        found = [r[0] for r in cur.fetchall()]
        if found:  # DROP IF EXISTS of absent tables still costs a DDL round (~10 ms each)
            cur.execute("DROP TABLE IF EXISTS " + ", ".join(f"`{s.serving_db}`.`{t}`" for t in found))


def _rebuilt_tables(conn: pymysql.connections.Connection, s: Settings) -> list[str]:
    """The tables this publish rebuilds: item_similar only when its dbt mart exists."""
    if _table_exists(conn, s.marts_db, "ml_covisitation"):
        return list(SWAPPED_TABLES)
    log.warning("%s.ml_covisitation does not exist yet: item_similar left as it is", s.marts_db)
    return [t for t in SWAPPED_TABLES if t != "item_similar"]


def _create_staging(conn: pymysql.connections.Connection, s: Settings, tables: Sequence[str]) -> None:
    with conn.cursor() as cur:
        for t in tables:
            if not _table_exists(conn, s.serving_db, t):
                raise PublishError(f"serving table {s.serving_db}.{t} is missing: run `recsys db init`")
            cur.execute(f"CREATE TABLE `{s.serving_db}`.`{t}_new` LIKE `{s.serving_db}`.`{t}`")


def _active_users(conn: pymysql.connections.Connection, s: Settings, upper: int) -> list[int]:
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT DISTINCT user_id FROM `{s.raw_db}`.user_behavior WHERE event_id <= %s ORDER BY user_id", (upper,)
        )
        return [int(r[0]) for r in cur.fetchall()]


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), disable=not enabled
    )


class _BatchLoader:
    """LOAD DATA spooled batch files into ``user_topn_new`` on a second connection, so the server
    inserts batch i while Python scores and formats batch i+1 (formatting is the slow half).

    All loads are one transaction with unique_checks off, which lets InnoDB use its bulk path for
    an empty table; (user_id, rank) is unique by construction and a duplicate still warns (1062),
    which aborts the publish.
    """

    def __init__(self, s: Settings, model_version: str, generated_at: datetime):
        self._args = (s, model_version, generated_at)
        self._conn = connect(s.serving_db, settings=s, autocommit=False)
        with self._conn.cursor() as cur:
            cur.execute("SET SESSION unique_checks = 0, foreign_key_checks = 0")
        self._queue: queue.Queue[str | None] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="user_topn-loader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (path := self._queue.get()) is not None:
            try:
                if self._error is None:
                    _load_topn(self._conn, self._args[0], path, *self._args[1:])
            except BaseException as exc:  # handed to the caller in submit()/finish()
                self._error = exc
            finally:
                os.unlink(path)

    def submit(self, path: str) -> None:
        if self._error is not None:
            os.unlink(path)
            raise self._error
        self._queue.put(path)

    def finish(self) -> None:
        """Wait for every submitted file; re-raise the first load error. Always closes."""
        self._queue.put(None)
        self._thread.join()
        try:
            if self._error is None:
                self._conn.commit()
            else:
                with contextlib.suppress(pymysql.Error):
                    self._conn.rollback()
        finally:
            with contextlib.suppress(pymysql.Error):
                self._conn.close()
        if self._error is not None:
            raise self._error


def _score_and_load(recommender: Recommender, users: list[int], n: int, batch_size: int, loader: _BatchLoader,
                    progress: bool) -> tuple[int, float]:
    """Score users batch by batch, spool each checked batch and hand it to the loader.

    Returns (rows, write seconds): time spent formatting, waiting for the loader queue and for the
    last loads — the publisher's own cost, without the recommender's.
    """
    rows, write_s = 0, 0.0
    try:
        with _progress(progress) as bar:
            task = bar.add_task("scoring users", total=len(users))
            for batch in batches(users, batch_size):
                try:
                    frame = check_topn_frame(recommender.recommend(batch, n), batch, n)
                except ValueError as exc:
                    raise ValidationFailed(f"recommender output rejected, nothing swapped: {exc}") from exc
                t0 = time.perf_counter()
                fd, path = tempfile.mkstemp(prefix="user_topn_", suffix=".tsv")
                with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
                    write_topn_tsv(frame, fh)
                loader.submit(path)
                write_s += time.perf_counter() - t0
                rows += len(frame)
                bar.advance(task, len(batch))
    finally:
        t0 = time.perf_counter()
        loader.finish()
        write_s += time.perf_counter() - t0
    return rows, write_s


def _load_topn(conn: pymysql.connections.Connection, s: Settings, path: str, model_version: str, generated_at: datetime) -> None:
    """LOAD DATA the spooled TSV into ``user_topn_new``; any server warning aborts the publish."""
    with conn.cursor() as cur:
        cur.execute(
            f"LOAD DATA LOCAL INFILE %s INTO TABLE `{s.serving_db}`.user_topn_new CHARACTER SET utf8mb4 "
            "FIELDS TERMINATED BY '\\t' LINES TERMINATED BY '\\n' "
            "(user_id, `rank`, item_id, score, source) SET model_version = %s, generated_at = %s",
            (path, model_version, generated_at),
        )
        cur.execute("SHOW WARNINGS LIMIT 3")
        warnings = cur.fetchall()
    if warnings:
        raise PublishError(f"LOAD DATA into user_topn_new warned (data would be altered): {warnings}")


def _build_popular(conn: pymysql.connections.Connection, s: Settings, k: int, upper: int, max_ts: datetime) -> int:
    """Recent popularity of in-stock items, globally and per category, into ``popular_topn_new``."""
    with conn.cursor() as cur:
        return cur.execute(
            f"""INSERT INTO `{s.serving_db}`.popular_topn_new (scope, `rank`, item_id, score)
            WITH s AS (
              SELECT e.item_id, i.category_id, SUM({_weight_case('e.behavior_type')}) AS score
              FROM `{s.raw_db}`.user_behavior e JOIN `{s.raw_db}`.items i ON i.item_id = e.item_id
              WHERE e.ts >= %s - INTERVAL {POPULAR_DAYS} DAY AND e.event_id <= %s AND i.in_stock = 1
              GROUP BY e.item_id, i.category_id
            ), r AS (
              SELECT 'global' AS scope, ROW_NUMBER() OVER (ORDER BY score DESC, item_id) AS rk, item_id, score FROM s
              UNION ALL
              SELECT CONCAT('category:', category_id),
                     ROW_NUMBER() OVER (PARTITION BY category_id ORDER BY score DESC, item_id), item_id, score FROM s
            )
            SELECT scope, rk, item_id, score FROM r WHERE rk <= %s AND score > 0""",
            (max_ts, upper, k),
        )


def _build_intent(conn: pymysql.connections.Connection, s: Settings, upper: int, max_ts: datetime) -> int:
    where = f"e.event_id <= {int(upper)} AND e.ts >= %s - INTERVAL {INTENT_DAYS} DAY"
    with conn.cursor() as cur:
        return cur.execute(
            f"INSERT INTO `{s.serving_db}`.user_intent_category_new (user_id, category_id, strength, last_event_ts) "
            + _intent_select(s, where),
            (max_ts,),
        )


def _build_similar(conn: pymysql.connections.Connection, s: Settings, k: int) -> int:
    """Top-k in-stock co-visited items per item from the dbt mart ``ml_covisitation``."""
    with conn.cursor() as cur:
        return cur.execute(
            f"""INSERT INTO `{s.serving_db}`.item_similar_new (item_id, `rank`, similar_item_id, score)
            SELECT item_id, rk, similar_item_id, score FROM (
              SELECT c.item_id, c.similar_item_id, c.score,
                     ROW_NUMBER() OVER (PARTITION BY c.item_id ORDER BY c.score DESC, c.similar_item_id) AS rk
              FROM `{s.marts_db}`.ml_covisitation c JOIN `{s.raw_db}`.items i ON i.item_id = c.similar_item_id
              WHERE i.in_stock = 1 AND c.similar_item_id <> c.item_id AND c.score IS NOT NULL
            ) x WHERE rk <= %s""",
            (k,),
        )


def _swap(conn: pymysql.connections.Connection, s: Settings, tables: Sequence[str], upper: int,
          max_ts: datetime | None, lock_timeout: float) -> None:
    """Under the publish lock: rewind the watermark, then one atomic RENAME of every rebuilt table."""
    db = s.serving_db
    renames = ", ".join(f"`{db}`.`{t}` TO `{db}`.`{t}_old`, `{db}`.`{t}_new` TO `{db}`.`{t}`" for t in tables)
    with named_lock(conn, lock_name(s, "publish"), lock_timeout, "full publish swap"), conn.cursor() as cur:
        # rewind first: if the RENAME then fails, the only cost is rescoring a few users again
        cur.execute(
            f"INSERT INTO `{db}`.publish_watermark (name, event_id, max_event_ts, updated_at) VALUES (%s, %s, %s, NOW(3)) "
            "ON DUPLICATE KEY UPDATE max_event_ts = IF(VALUES(event_id) < event_id, VALUES(max_event_ts), max_event_ts), "
            "event_id = LEAST(event_id, VALUES(event_id)), updated_at = NOW(3)",
            (WATERMARK_NAME, upper, max_ts),
        )
        for attempt in range(3):
            try:
                cur.execute(f"RENAME TABLE {renames}")
                break
            except pymysql.err.OperationalError as exc:  # 1205: lock wait timeout behind a long reader
                if exc.args[0] != 1205 or attempt == 2:
                    raise
                log.warning("RENAME waited %ss for a metadata lock; retrying", LOCK_WAIT_TIMEOUT_S)
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS " + ", ".join(f"`{db}`.`{t}_old`" for t in tables))


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
) -> PublishResult:
    """Score all active users and atomically replace the serving tables.

    ``validate`` (e.g. the GX top-N suite) runs on ``<serving_db>.user_topn_new`` after the
    built-in invariants pass and before the swap; on any failure the ``*_new`` tables are dropped,
    :class:`ValidationFailed` is raised and the live tables stay as they were. ``lock_timeout`` is
    how long the swap waits for a running refresh to finish.
    """
    s = settings
    run_id = run_id or new_run_id("full")
    conn = connect(s.serving_db, settings=s)
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION lock_wait_timeout = %s", (LOCK_WAIT_TIMEOUT_S,))
        started = _scalar(conn, "SELECT NOW(3)")
        with named_lock(conn, lock_name(s, "full"), 0, "full publish"):
            _drop_staging(conn, s)
            job = _plan_full(conn, s, model_version, n or s.topn, settle_seconds)
            _create_staging(conn, s, job.tables)
            try:
                result = _build_and_swap(conn, job, recommender, validate, batch_size, lock_timeout, progress)
            except BaseException:
                with contextlib.suppress(pymysql.Error):
                    _drop_staging(conn, s)
                raise
        finished = _scalar(conn, "SELECT NOW(3)")
        with conn.cursor() as cur:
            cur.execute(
                f"INSERT INTO `{s.serving_db}`.publish_log (run_id, kind, users, `rows`, model_version, started_at, "
                "finished_at, max_event_ts) VALUES (%s, 'full', %s, %s, %s, %s, %s, %s)",
                (run_id, len(job.users), result["rows"], model_version, started, finished, job.max_ts),
            )
    finally:
        conn.close()
    return PublishResult(
        run_id=run_id, model_version=model_version, users=len(job.users), watermark_event_id=job.upper,
        max_event_ts=job.max_ts, started_at=started, finished_at=finished, **result,
    )


def _plan_full(conn, s: Settings, model_version: str, n: int, settle_seconds: float) -> _FullJob:
    upper = _event_upper_bound(conn, s, 0, settle_seconds)
    if upper is None:
        raise PublishError(f"no settled events in {s.raw_db}.user_behavior: nothing to publish")
    max_ts = _scalar(conn, f"SELECT MAX(ts) FROM `{s.raw_db}`.user_behavior WHERE event_id <= %s", (upper,))
    return _FullJob(s, model_version, n, _active_users(conn, s, upper), upper, max_ts, _rebuilt_tables(conn, s))


def _build_and_swap(conn, job: _FullJob, recommender: Recommender, validate: Validator | None, batch_size: int,
                    lock_timeout: float, progress: bool) -> dict:
    """Fill the ``*_new`` tables, validate them, swap. Returns the counts for :class:`PublishResult`."""
    s, n = job.settings, job.n
    loader = _BatchLoader(s, job.model_version, _scalar(conn, "SELECT NOW(3)"))
    rows, write_s = _score_and_load(recommender, job.users, n, batch_size, loader, progress)
    popular = _build_popular(conn, s, n, job.upper, job.max_ts)
    if popular == 0:
        raise ValidationFailed("popular_topn_new is empty: no in-stock item had events in the popularity window")
    intent = _build_intent(conn, s, job.upper, job.max_ts)
    similar = _build_similar(conn, s, n) if "item_similar" in job.tables else None
    table = f"{s.serving_db}.user_topn_new"
    ok, summary = topn_invariants_validator(s, job.upper)(table)
    if ok and validate is not None:
        ok, extra = validate(table)
        summary = f"{summary}; {extra}"
    if not ok:
        raise ValidationFailed(f"user_topn_new failed validation, nothing swapped: {summary}")
    _swap(conn, s, job.tables, job.upper, job.max_ts, lock_timeout)
    return {"rows": rows, "popular_rows": popular, "intent_rows": intent, "similar_rows": similar,
            "write_seconds": write_s, "validation": summary}


# ----------------------------------------------------------------------------- refresh


def _users_after(conn: pymysql.connections.Connection, s: Settings, low: int, high: int) -> list[int]:
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT DISTINCT user_id FROM `{s.raw_db}`.user_behavior WHERE event_id > %s AND event_id <= %s ORDER BY user_id",
            (low, high),
        )
        return [int(r[0]) for r in cur.fetchall()]


def _in_list(ids: Sequence[int]) -> str:
    return ",".join(str(int(u)) for u in ids)


def _refresh_batch(conn, s: Settings, recommender: Recommender, model_version: str, n: int, batch: list[int],
                   low: int, high: int) -> RefreshBatch:
    """Rescore one batch of users and replace their rows in a single transaction."""
    try:
        frame = check_topn_frame(recommender.recommend(batch, n), batch, n)
    except ValueError as exc:
        raise ValidationFailed(f"recommender output rejected, earlier batches stay committed: {exc}") from exc
    scored = sorted(set(frame["user_id"].tolist()))
    kept = tuple(sorted(set(batch) - set(scored)))
    if kept:
        log.warning("recommender returned no rows for %d user(s) (e.g. %s): their previous rows are kept", len(kept), kept[:5])
    ids = _in_list(batch)
    max_ts = _scalar(
        conn,
        f"SELECT MAX(ts) FROM `{s.raw_db}`.user_behavior WHERE event_id > %s AND event_id <= %s AND user_id IN ({ids})",
        (low, high),
    )
    with conn.cursor() as cur:
        cur.execute(_intent_select(s, f"e.user_id IN ({ids}) AND e.ts >= %s - INTERVAL {INTENT_DAYS} DAY"), (max_ts,))
        intent = [tuple(r) for r in cur.fetchall()]
    generated_at = _scalar(conn, "SELECT NOW(3)")
    k = len(frame)
    values = list(zip(frame["user_id"].tolist(), frame["rank"].tolist(), frame["item_id"].tolist(),
                      frame["score"].tolist(), frame["source"].tolist(), [model_version] * k, [generated_at] * k))
    db = s.serving_db
    conn.begin()
    try:
        with conn.cursor() as cur:
            if scored:
                cur.execute(f"DELETE FROM `{db}`.user_topn WHERE user_id IN ({_in_list(scored)})")
                cur.executemany(
                    f"INSERT INTO `{db}`.user_topn (user_id, `rank`, item_id, score, source, model_version, generated_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    values,
                )
            cur.execute(f"DELETE FROM `{db}`.user_intent_category WHERE user_id IN ({ids})")
            if intent:
                cur.executemany(
                    f"INSERT INTO `{db}`.user_intent_category (user_id, category_id, strength, last_event_ts) "
                    "VALUES (%s, %s, %s, %s)",
                    intent,
                )
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    committed_at = _scalar(conn, "SELECT NOW(3)")
    return RefreshBatch(users=len(scored), rows=len(values), max_event_ts=max_ts, committed_at=committed_at,
                        first_user=batch[0], last_user=batch[-1], kept_users=kept)


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
) -> RefreshResult:
    """Rescore users with events after the watermark and replace their rows, batch by batch.

    ``upper_event_id`` caps the range at the newest event the recommender's features have seen
    (e.g. the newest event_id read before the realtime dbt models ran): later events are left for
    the next run instead of being marked done with features that do not know them yet.

    Each batch is one transaction (DELETE + INSERT of those users' rows and intent rows) followed
    by a ``publish_log`` row (kind ``refresh``; ``max_event_ts`` → ``finished_at`` is the
    freshness). The watermark advances only after every batch has committed, so a crash means the
    next run redoes the same users — replacing rows is idempotent. Nothing new → a no-op.
    """
    s, n = settings, n or settings.topn
    run_id = run_id or new_run_id("refresh")
    conn = connect(s.serving_db, settings=s)
    done: list[RefreshBatch] = []
    try:
        with named_lock(conn, lock_name(s, "publish"), lock_timeout, "refresh"):
            low = read_watermark(conn, s)
            high = _event_upper_bound(conn, s, low, settle_seconds)
            if high is not None and upper_event_id is not None:
                high = min(high, upper_event_id) if upper_event_id > low else None
            if high is None:
                waiting = _scalar(conn, f"SELECT COUNT(*) FROM `{s.raw_db}`.user_behavior WHERE event_id > %s", (low,))
                msg = f"no events after watermark event_id={low}: nothing to do"
                if waiting:
                    msg += f" ({waiting} newer event(s) ingested under {settle_seconds:g}s ago wait for the next run)"
                return RefreshResult(run_id, low, low, 0, 0, (), msg)
            users = _users_after(conn, s, low, high)
            with _progress(progress) as bar:
                task = bar.add_task("refreshing users", total=len(users))
                for batch in batches(users, batch_size):
                    started = _scalar(conn, "SELECT NOW(3)")
                    b = _refresh_batch(conn, s, recommender, model_version, n, batch, low, high)
                    _log_refresh(conn, s, run_id, b, model_version, started)
                    done.append(b)
                    bar.advance(task, len(batch))
            newest = max((b.max_event_ts for b in done if b.max_event_ts is not None), default=None)
            with conn.cursor() as cur:  # only now: every batch up to `high` has committed
                cur.execute(
                    f"INSERT INTO `{s.serving_db}`.publish_watermark (name, event_id, max_event_ts, updated_at) "
                    "VALUES (%s, %s, %s, NOW(3)) ON DUPLICATE KEY UPDATE event_id = VALUES(event_id), "
                    "max_event_ts = VALUES(max_event_ts), updated_at = NOW(3)",
                    (WATERMARK_NAME, high, newest),
                )
    finally:
        conn.close()
    kept = sum(len(b.kept_users) for b in done)
    msg = f"refreshed {sum(b.users for b in done)} user(s) for events ({low}, {high}] in {len(done)} batch(es)"
    if kept:
        msg += f"; {kept} user(s) got no rows from the recommender and kept their previous list"
    return RefreshResult(run_id, low, high, sum(b.users for b in done), sum(b.rows for b in done), tuple(done), msg)


def _log_refresh(conn, s: Settings, run_id: str, b: RefreshBatch, model_version: str, started: datetime) -> None:
    with conn.cursor() as cur:
        cur.execute(
            f"INSERT INTO `{s.serving_db}`.publish_log (run_id, kind, users, `rows`, model_version, started_at, "
            "finished_at, max_event_ts) VALUES (%s, 'refresh', %s, %s, %s, %s, %s, %s)",
            (run_id, b.users, b.rows, model_version, started, b.committed_at, b.max_event_ts),
        )
