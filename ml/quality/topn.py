"""The top-N row contract, checked where lists are produced (a recommender's frame), before a swap
(SQL invariants on ``user_topn_new``) and by the GX ``topn`` suite (:mod:`ml.quality.gates`).
The columns themselves are declared once, in :mod:`ml.contracts`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from ml.config import Settings
from ml.contracts import TOPN_COLUMNS
from ml.db import connect

#: A pre-swap check: called with ``"<serving_db>.user_topn_new"``, returns (ok, summary).
Validator = Callable[[str], tuple[bool, str]]
_SOURCE_RE = re.compile(r"^[A-Za-z0-9_:.,+\-]{1,32}$")


def _scalar(conn, sql: str, args: object = None) -> object:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        row = cur.fetchone()
    return row[0] if row else None


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
    df = frame[list(TOPN_COLUMNS)].copy()
    if df.empty:
        return df.astype(
            {"user_id": "int64", "rank": "int64", "item_id": "int64", "score": "float64", "source": "object"}
        )
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


def gx_topn_validator(
    settings: Settings,
    n: int | None = None,
    *,
    repeat_buy_category_ids: Sequence[int] = (),
    exclude_purchased: bool = True,
) -> Validator:
    """The Great Expectations top-N suite (``ml.quality.gates`` stage ``topn``) as a pre-swap validator,
    checking the already-bought rule as the published model applies it."""

    def validate(table: str) -> tuple[bool, str]:
        from ml.quality.gates import run_stage

        db, name = table.split(".", 1)
        if db != settings.serving_db:
            raise ValueError(f"GX top-N suite reads the serving database {settings.serving_db}, not {db}")
        result = run_stage(
            "topn",
            settings,
            build_docs=False,
            table=name,
            n=n or settings.topn,
            repeat_buy_category_ids=list(repeat_buy_category_ids),
            exclude_purchased=exclude_purchased,
        )
        return result.success, result.summary

    return validate
