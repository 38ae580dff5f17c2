"""Bulk loading of scored top-N batches into ``user_topn_new``: TSV spool files and LOAD DATA on a
second connection, so the server inserts batch i while Python scores and formats batch i+1.
"""

from __future__ import annotations

import contextlib
import os
import queue
import tempfile
import threading
import time
from datetime import datetime

import pandas as pd
import pymysql

from ml.config import Settings
from ml.db import connect
from ml.publish.common import PublishError, Recommender, ValidationFailed, batches, progress_bar
from ml.publish.reasons import Explainer
from ml.quality.topn import check_topn_frame


def write_topn_tsv(df: pd.DataFrame, fh) -> None:
    """Append a checked frame to an open text file in the LOAD DATA layout (tab separated)."""
    df.to_csv(fh, sep="\t", header=False, index=False, lineterminator="\n", float_format="%.17g")


class BatchLoader:
    """LOAD DATA spooled batch files into ``user_topn_new`` on a second connection, so the server
    inserts batch i while Python scores and formats batch i+1 (formatting is the slow half).

    All loads are one transaction with unique_checks off, which lets InnoDB use its bulk path for
    an empty table; (user_id, rank) is unique by construction and a duplicate still warns (1062),
    which aborts the publish.
    """

    def __init__(self, s: Settings, model_version: str, generated_at: datetime, table: str = "user_topn_new"):
        self._args = (s, model_version, generated_at, table)
        self.generated_at = generated_at
        self._conn = connect(s.serving_db, settings=s, autocommit=False, local_infile=True)
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


def score_and_load(
    recommender: Recommender,
    users: list[int],
    n: int,
    batch_size: int,
    loader: BatchLoader,
    progress: bool,
    explain: Explainer,
) -> tuple[int, float]:
    """Score users batch by batch, add each checked batch's reasons (``explain``), spool it and hand
    it to the loader.

    Returns (rows, write seconds): time spent formatting, waiting for the loader queue and for the
    last loads — the publisher's own cost, without the recommender's.
    """
    rows, write_s = 0, 0.0
    try:
        with progress_bar(progress) as bar:
            task = bar.add_task("scoring users", total=len(users))
            for batch in batches(users, batch_size):
                try:
                    frame = explain(check_topn_frame(recommender.recommend(batch, n), batch, n))
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


def _load_topn(
    conn: pymysql.connections.Connection,
    s: Settings,
    path: str,
    model_version: str,
    generated_at: datetime,
    table: str = "user_topn_new",
) -> None:
    """LOAD DATA the spooled TSV into ``table`` (``user_topn_new``, or ``user_topn_challenger_new`` in an
    A/B experiment); any server warning aborts the publish."""
    with conn.cursor() as cur:
        cur.execute(
            f"LOAD DATA LOCAL INFILE %s INTO TABLE `{s.serving_db}`.`{table}` CHARACTER SET utf8mb4 "
            "FIELDS TERMINATED BY '\\t' LINES TERMINATED BY '\\n' "
            "(user_id, `rank`, item_id, score, source, reason, reason_arg) SET model_version = %s, generated_at = %s",
            (path, model_version, generated_at),
        )
        cur.execute("SHOW WARNINGS LIMIT 3")
        warnings = cur.fetchall()
    if warnings:
        raise PublishError(f"LOAD DATA into {table} warned (data would be altered): {warnings}")
