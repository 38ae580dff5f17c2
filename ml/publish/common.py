"""Shared vocabulary of the publisher: the recommender protocol, errors, results, and small SQL helpers.

``recsys_serving`` has one writer, this package: :mod:`ml.publish.full` (atomic swap of every
serving table) and :mod:`ml.publish.refresh` (per-user transactions). See docs/contracts.md.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Protocol

import pandas as pd
import pymysql

#: Tables a full publish rebuilds and swaps (item_similar only when the dbt mart exists; the search
#: tables query_topn, user_query_topn and search_items only when the dbt search marts exist).
SWAPPED_TABLES = (
    "user_topn",
    "item_similar",
    "popular_topn",
    "user_intent_category",
    "query_topn",
    "user_query_topn",
    "search_items",
)

#: Tables a full publish adds to the same swap while an A/B experiment runs or ends (ml/publish/ab.py).
AB_TABLES = ("user_topn_challenger", "ab_experiment")

WATERMARK_NAME = "user_topn"

SETTLE_SECONDS = 5.0

LOCK_WAIT_TIMEOUT_S = 5  # DDL (RENAME) gives up quickly instead of queueing readers behind it


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


class NoChampion(PublishError):
    """No registered champion model to publish from."""


class ChampionNotPublished(PublishError):
    """The champion's full publish has not passed yet: a refresh would mix its rows into another
    version's lists before its own lists passed the GX top-N check."""


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
    # search tables; None: no dbt search marts yet, the live search tables kept
    search_model_version: str | None = None
    queries: int | None = None  # queries with a query_topn list
    query_rows: int | None = None
    user_query_rows: int | None = None
    # A/B (issue 17): the experiment run swapped in (None: no experiment) and the challenger's lists
    experiment: str | None = None
    challenger_model_version: str | None = None
    challenger_rows: int | None = None

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
    search_users: int = 0  # users whose user_query_topn rows were replaced in this transaction
    search_rows: int = 0


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
    queries: int = 0  # query_topn lists replaced (frequent queries searched in the range)
    query_rows: int = 0

    @property
    def noop(self) -> bool:
        return not self.batches


def jsonable(obj: object) -> dict:

    def conv(v: object) -> object:
        if isinstance(v, datetime):
            return v.isoformat()
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v

    return conv(asdict(obj))  # type: ignore[arg-type, return-value]


def new_run_id(kind: str) -> str:
    """A sortable, unique run id such as ``full-20261128T001500-1a2b3c``."""
    return f"{kind}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:6]}"


def batches(seq: Sequence[int], size: int) -> Iterator[list[int]]:
    """Consecutive slices of ``seq`` of at most ``size`` items."""
    if size < 1:
        raise ValueError(f"batch size must be >= 1, got {size}")
    for i in range(0, len(seq), size):
        yield list(seq[i : i + size])


def scalar(conn: pymysql.connections.Connection, sql: str, args: object = None) -> object:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        row = cur.fetchone()
    return row[0] if row else None


def read_rows(
    conn: pymysql.connections.Connection, sql: str, columns: list[str], args: object = None
) -> pd.DataFrame:
    """The rows of ``sql`` as a frame with ``columns``."""
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return pd.DataFrame(list(cur.fetchall()), columns=columns)


def table_exists(conn: pymysql.connections.Connection, db: str, table: str) -> bool:
    return bool(
        scalar(
            conn,
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema=%s AND table_name=%s",
            (db, table),
        )
    )


def progress_bar(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
    )
