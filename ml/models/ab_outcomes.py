"""Per-user outcomes of an A/B run from the dbt mart ``fct_served_outcomes`` (issue 17), for
`recsys ab report`: which run (``{serving_db}.ab_experiment``), whose impressions count, and the
comparison (:mod:`ml.models.ab`).

Counted: matured impressions (``is_matured = 1``: their outcome window has closed) with an arm and
a user, served inside the run's ``[started_at, ended_at)``. Each user's logged arm is checked
against :func:`ml.experiment.bucket` under the run's name and share: users logged in an arm the
split does not give them (or in both) are counted and left out, never silently mixed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pymysql

from ml.config import Settings
from ml.db import connect
from ml.experiment import ARMS, EXPERIMENT_COLUMNS, Experiment, experiment_from_row
from ml.models.ab import ALPHA, METRICS, ABResult, compare

OUTCOMES_MART = "fct_served_outcomes"


class ABReportError(RuntimeError):
    """The report cannot be made (no such experiment, no mart yet, too few users); says what to do."""


@dataclass(frozen=True)
class ABReport:
    run: Experiment
    result: ABResult
    misassigned_users: int  # logged in an arm the split does not give them, or in both: left out


def _rows(conn: pymysql.connections.Connection, sql: str, args: tuple = ()) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


def find_run(conn: pymysql.connections.Connection, settings: Settings, name: str | None = None) -> Experiment:
    """The running experiment (or the newest ended one) when ``name`` is None, else the newest run
    of ``name``. Raises :class:`ABReportError` when there is none."""
    where, args = ("WHERE name = %s", (name,)) if name else ("", ())
    rows = _rows(
        conn,
        f"SELECT {EXPERIMENT_COLUMNS} FROM `{settings.serving_db}`.ab_experiment {where} "
        "ORDER BY ended_at IS NULL DESC, id DESC LIMIT 1",
        args,
    )
    if not rows:
        what = f"experiment {name!r}" if name else "experiment"
        raise ABReportError(
            f"no {what} in {settings.serving_db}.ab_experiment: set RECSYS_AB_SHARE/RECSYS_AB_SALT and run a "
            "full publish with a registered challenger"
        )
    return experiment_from_row(rows[0])


def per_user_outcomes(
    conn: pymysql.connections.Connection, settings: Settings, run: Experiment, metric: str
) -> tuple[pd.DataFrame, int]:
    """(one row per user: arm, impressions, events of ``metric``; users left out as misassigned)."""
    if metric not in METRICS:
        raise ABReportError(f"unknown metric {metric!r}; choose one of {sorted(METRICS)}")
    exists = _rows(
        conn,
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
        (settings.marts_db, OUTCOMES_MART),
    )
    if not exists[0][0]:
        raise ABReportError(
            f"{settings.marts_db}.{OUTCOMES_MART} does not exist: build the outcome marts (`scripts/dbt.sh build`)"
        )
    ended = "AND served_at < %s" if run.ended_at is not None else ""
    args = (run.started_at,) + ((run.ended_at,) if run.ended_at is not None else ())
    rows = _rows(
        conn,
        f"SELECT user_id, arm, COUNT(*), SUM({METRICS[metric]}) FROM `{settings.marts_db}`.{OUTCOMES_MART} "
        f"WHERE is_matured = 1 AND user_id IS NOT NULL AND arm IN ({', '.join(['%s'] * len(ARMS))}) "
        f"AND served_at >= %s {ended} GROUP BY user_id, arm",
        (*ARMS, *args),
    )
    frame = pd.DataFrame(rows, columns=["user_id", "arm", "impressions", "events"])
    frame = frame.astype({"user_id": "int64", "impressions": "int64", "events": "int64"})
    in_both = frame["user_id"].duplicated(keep=False)
    wrong = frame["arm"] != frame["user_id"].map(run.arm)
    bad_users = set(frame.loc[in_both | wrong, "user_id"])
    return frame[~frame["user_id"].isin(bad_users)].reset_index(drop=True), len(bad_users)


def ab_report(
    settings: Settings, name: str | None = None, metric: str = "ctr", alpha: float = ALPHA
) -> ABReport:
    """The comparison of one run on ``metric``; :class:`ABReportError` when it cannot be made."""
    conn = connect(settings=settings)
    try:
        run = find_run(conn, settings, name)
        frame, misassigned = per_user_outcomes(conn, settings, run, metric)
    finally:
        conn.close()
    try:
        result = compare(frame, metric, alpha, share=run.share)
    except ValueError as exc:
        raise ABReportError(f"experiment {run.name}: {exc}") from None
    return ABReport(run, result, misassigned)
