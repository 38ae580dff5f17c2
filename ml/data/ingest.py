"""Atomic batch writes into ``recsys_raw``: new users/items, events (deduplicated against what is
already loaded) and quarantine rows, all in one transaction per batch, so a failing batch leaves
nothing behind and earlier batches stay committed.

Duplicate check against loaded events (natural key, see :mod:`ml.data.validate`): when no loaded
event falls inside the batch's time range (the usual case for appends and the live feed) the batch
goes straight in with LOAD DATA; otherwise it is staged in a temporary table, matched on
``(user_id, ts)`` (indexed) plus type and item, and only the new rows are inserted.

Concurrent writers (two imports of one file, an import and the live feed) take turns: each batch
holds a named lock on its raw database (``GET_LOCK``) from before its first read until after its
commit, so the duplicate check of a batch always sees every batch committed before it and the same
event can never be inserted twice (a snapshot read alone would miss an uncommitted twin).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
import pymysql

from ml.config import Settings
from ml.data.forgotten import drop_forgotten
from ml.data.load import EVENT_COLUMNS, EVENT_DETAIL_COLUMNS, QUARANTINE_COLUMNS, load_frame
from ml.data.validate import Checked, quarantine_rows
from ml.db import transaction


@dataclass
class LoadReport:
    """What a load did: events written, quarantine counts per reason, batches committed, and lines
    skipped because an earlier import of the same file already committed them."""

    loaded: int = 0
    quarantined: Counter = field(default_factory=Counter)
    batches: int = 0
    users: int = 0
    items: int = 0
    skipped: int = 0

    def add(self, other: LoadReport) -> None:
        self.loaded += other.loaded
        self.quarantined.update(other.quarantined)
        self.batches += other.batches
        self.users += other.users
        self.items += other.items
        self.skipped += other.skipped


_STAGE_DDL = (
    "CREATE TEMPORARY TABLE {name} (row_no BIGINT NOT NULL PRIMARY KEY, user_id BIGINT NOT NULL, item_id BIGINT NULL, "
    "session_id VARCHAR(64) NOT NULL, behavior_type VARCHAR(16) NOT NULL, query_text VARCHAR(255) NULL, "
    "ts DATETIME(3) NOT NULL, quantity INT NULL, unit_price DECIMAL(12,4) NULL, "
    "KEY ix_stage_user_ts (user_id, ts)) ENGINE=InnoDB"
)


def _overlaps_loaded(cur, raw: str, events: pd.DataFrame) -> bool:
    """Could any event of the batch already be loaded? Checked by the batch's time range (cheap on
    the ts index; false for appends of newer events), then by its user-id range within that time
    (false for a new block of users, e.g. the simulator's later blocks)."""
    lo, hi = events["ts"].min().to_pydatetime(), events["ts"].max().to_pydatetime()
    cur.execute(f"SELECT 1 FROM {raw}.user_behavior WHERE ts BETWEEN %s AND %s LIMIT 1", (lo, hi))
    if cur.fetchone() is None:
        return False
    cur.execute(
        f"SELECT 1 FROM {raw}.user_behavior WHERE user_id BETWEEN %s AND %s AND ts BETWEEN %s AND %s LIMIT 1",
        (int(events["user_id"].min()), int(events["user_id"].max()), lo, hi),
    )
    return cur.fetchone() is not None


def _insert_new_events(conn: pymysql.connections.Connection, raw: str, events: pd.DataFrame) -> pd.DataFrame:
    """Insert events whose natural key is not loaded yet; return the rows that were duplicates."""
    columns = tuple(events.columns)
    with conn.cursor() as cur:
        if not _overlaps_loaded(cur, raw, events):
            load_frame(conn, f"{raw}.user_behavior", events, columns)
            return events.iloc[:0]
        stage = f"{raw}.stage_events"
        cur.execute(f"DROP TEMPORARY TABLE IF EXISTS {stage}")
        cur.execute(_STAGE_DDL.format(name=stage))
        staged = events.assign(row_no=range(len(events)))
        load_frame(conn, stage, staged, ("row_no", *columns))
        cur.execute(
            f"SELECT s.row_no FROM {stage} s JOIN {raw}.user_behavior e ON e.user_id = s.user_id AND e.ts = s.ts "
            "AND e.behavior_type = s.behavior_type AND e.item_id <=> s.item_id"
        )
        dup_rows = sorted({int(r[0]) for r in cur.fetchall()})
        cols = ", ".join(columns)
        cur.execute(
            f"INSERT INTO {raw}.user_behavior ({cols}) SELECT {cols} FROM {stage} s WHERE NOT EXISTS ("
            f"SELECT 1 FROM {raw}.user_behavior e WHERE e.user_id = s.user_id AND e.ts = s.ts "
            "AND e.behavior_type = s.behavior_type AND e.item_id <=> s.item_id) ORDER BY s.row_no"
        )
        cur.execute(f"DROP TEMPORARY TABLE {stage}")
    return events.iloc[dup_rows]


WRITE_LOCK_TIMEOUT_S = 600  # a batch of 500k rows commits in well under a minute


class RawWriteBusy(RuntimeError):
    """Another writer held the raw database's write lock for longer than the timeout."""


def _lock_raw_writes(conn: pymysql.connections.Connection, raw_db: str) -> None:
    """Take the raw database's write lock on ``conn`` before the transaction reads anything (the
    lock ends with the connection, after the commit or rollback)."""
    name = f"recsys_raw_write:{raw_db}"[:64]
    with conn.cursor() as cur:
        cur.execute("SELECT GET_LOCK(%s, %s)", (name, WRITE_LOCK_TIMEOUT_S))
        if cur.fetchone()[0] != 1:
            raise RawWriteBusy(
                f"another import or feed kept {raw_db} locked for {WRITE_LOCK_TIMEOUT_S} s; try again when it is done"
            )


def _write_quarantine(conn: pymysql.connections.Connection, raw: str, quarantine: pd.DataFrame) -> None:
    load_frame(conn, f"{raw}.user_behavior_quarantine", quarantine, QUARANTINE_COLUMNS)


def write_batch(
    checked: Checked,
    source: str,
    settings: Settings,
    *,
    users: pd.DataFrame | None = None,
    items: pd.DataFrame | None = None,
    also: Sequence[tuple[str, pd.DataFrame, tuple[str, ...], str]] = (),
) -> LoadReport:
    """One atomic batch: insert-if-absent ``users``/``items`` (contract columns they carry),
    the clean events minus duplicates of loaded ones, all quarantine rows, and ``also``:
    further ``(raw table, frame, columns, mode)`` loads that must commit with the batch. Rows of
    users forgotten by ``recsys user forget`` are quarantined instead (:mod:`ml.data.forgotten`)."""
    raw = f"`{settings.raw_db}`"
    report = LoadReport(batches=1)
    with transaction(settings=settings, local_infile=True) as conn:
        _lock_raw_writes(conn, settings.raw_db)
        with conn.cursor() as cur:
            clean, quarantine, gone = drop_forgotten(
                cur, settings.raw_db, checked.clean, checked.quarantine, source
            )
        checked = Checked(clean, quarantine)
        if gone and users is not None:
            users = users[~users["user_id"].isin(list(gone))]
        if users is not None and not users.empty:
            report.users = load_frame(conn, f"{raw}.users", users, tuple(users.columns), "ignore")
        if items is not None and not items.empty:
            report.items = load_frame(conn, f"{raw}.items", items, tuple(items.columns), "ignore")
        detail = [c for c in EVENT_DETAIL_COLUMNS if c in checked.clean.columns]
        events = checked.clean.loc[:, [*EVENT_COLUMNS, *detail]]
        if not events.empty:
            dups = _insert_new_events(conn, raw, events)
            report.loaded = len(events) - len(dups)
            if not dups.empty:
                line_no = (
                    checked.clean.loc[dups.index, "line_no"] if "line_no" in checked.clean.columns else None
                )
                raw_rows = [",".join(map(str, row)) for row in dups.itertuples(index=False)]
                extra = quarantine_rows(
                    raw_rows,
                    "duplicate_of_loaded",
                    "natural key already in user_behavior",
                    source,
                    line_no.to_numpy(dtype=object) if line_no is not None else None,
                )
                quarantine = pd.concat([quarantine, extra], ignore_index=True)
        if not quarantine.empty:
            _write_quarantine(conn, raw, quarantine)
        for table, frame, columns, mode in also:
            load_frame(conn, f"{raw}.`{table}`", frame, columns, mode)  # type: ignore[arg-type]
    report.quarantined = Counter(quarantine["reason"].tolist())
    return report
