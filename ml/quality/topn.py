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
from ml.contracts import (
    MAX_REASON_ARG_CHARS,
    QUERY_TOPN_COLUMNS,
    REASON_CODES,
    TOPN_COLUMNS,
    TOPN_REASON_COLUMNS,
    USER_QUERY_TOPN_COLUMNS,
)
from ml.db import connect

#: A pre-swap check: called with ``"<serving_db>.user_topn_new"``, returns (ok, summary).
Validator = Callable[[str], tuple[bool, str]]
_SOURCE_RE = re.compile(r"^[A-Za-z0-9_:.,+\-]{1,32}$")


def _scalar(conn, sql: str, args: object = None) -> object:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        row = cur.fetchone()
    return row[0] if row else None


def _check_ranked_lists(
    df: pd.DataFrame, keys: list[str], n: int, name: Callable[[pd.DataFrame, int], str]
) -> pd.DataFrame:
    """The rules every ranked list obeys, on a frame already typed and restricted to its columns:
    sorted by ``keys`` + rank, ranks 1..k contiguous (k ≤ n) per list, no item twice in a list,
    finite scores that never rise with rank, short ``source`` tokens. ``name(sorted_frame, i)`` names
    the list of row ``i`` in the error."""
    df = df.sort_values([*keys, "rank"], kind="stable").reset_index(drop=True)
    expected_rank = df.groupby(keys, sort=False).cumcount().to_numpy() + 1
    bad = np.flatnonzero(df["rank"].to_numpy() != expected_rank)
    if bad.size:
        raise ValueError(f"ranks for {name(df, int(bad[0]))} are not 1..k contiguous")
    if int(df["rank"].max()) > n:
        raise ValueError(f"recommender returned rank {int(df['rank'].max())} > n={n}")
    dup = np.flatnonzero(df.duplicated([*keys, "item_id"]).to_numpy())
    if dup.size:
        raise ValueError(f"item {int(df['item_id'].iat[dup[0]])} appears twice for {name(df, int(dup[0]))}")
    score = df["score"].to_numpy()
    if not np.isfinite(score).all():
        raise ValueError(f"non-finite score for {name(df, int(np.flatnonzero(~np.isfinite(score))[0]))}")
    same_list = np.ones(len(df) - 1, dtype=bool)
    for key in keys:
        values = df[key].to_numpy()
        same_list &= values[1:] == values[:-1]
    rising = np.flatnonzero(same_list & (score[1:] > score[:-1]))
    if rising.size:
        raise ValueError(f"scores rise with rank for {name(df, int(rising[0]) + 1)}")
    bad_sources = [s for s in df["source"].unique().tolist() if not _SOURCE_RE.match(s)]
    if bad_sources:
        raise ValueError(f"source labels must be short tokens [A-Za-z0-9_:.,+-]{{1,32}}: {bad_sources[:3]}")
    return df


def _typed(frame: pd.DataFrame, columns: Sequence[str], ints: Sequence[str]) -> pd.DataFrame:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"recommender frame lacks columns {missing}; needs {tuple(columns)}")
    df = frame[list(columns)].copy()
    for col in ints:
        if df[col].isna().any():
            raise ValueError(f"recommender frame has NULL {col}")
        df[col] = df[col].astype("int64")
    df["score"] = df["score"].astype("float64")
    df["source"] = df["source"].astype(str)
    return df


def check_topn_frame(frame: pd.DataFrame, user_ids: Sequence[int], n: int) -> pd.DataFrame:
    """Validate one recommender answer and return it as a clean ``TOPN_COLUMNS`` frame.

    Raises ``ValueError`` naming the first broken rule: missing columns, users that were not asked
    for, ranks not 1..k contiguous (k ≤ n), an item twice for a user, non-finite scores, scores
    rising with rank, or a ``source`` label that is not a short token. Users with no rows at all are
    allowed here; callers decide (a full publish fails validation, a refresh keeps the old rows).
    """
    df = _typed(frame, TOPN_COLUMNS, ("user_id", "rank", "item_id"))
    if df.empty:
        return df.astype({"source": "object"})
    unknown = set(df["user_id"].unique().tolist()) - set(int(u) for u in user_ids)
    if unknown:
        raise ValueError(f"recommender returned users it was not asked for: {sorted(unknown)[:5]}")
    return _check_ranked_lists(df, ["user_id"], n, lambda d, i: f"user {int(d['user_id'].iat[i])}")


def check_reasons(frame: pd.DataFrame) -> pd.DataFrame:
    """Every row of a frame about to be published carries a reason (issue 17): a code of
    ``REASON_CODES`` and an argument of at most ``MAX_REASON_ARG_CHARS`` characters without tabs,
    line breaks or backslashes (the LOAD DATA layout). Returns the frame; raises ``ValueError``."""
    missing = [c for c in TOPN_REASON_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"published frame lacks columns {missing}: every row needs a reason")
    if frame.empty:
        return frame
    reason = frame["reason"].fillna("").astype(str)
    bad = reason[~reason.isin(REASON_CODES)]
    if len(bad):
        i = bad.index[0]
        raise ValueError(
            f"row of user {int(frame.at[i, 'user_id'])}, item {int(frame.at[i, 'item_id'])} has reason "
            f"{bad.iat[0]!r}: every published row needs one of {REASON_CODES}"
        )
    arg = frame["reason_arg"]
    if arg.isna().any():
        raise ValueError("reason_arg is NULL: use '' for a reason without an argument")
    arg = arg.astype(str)
    if (arg.str.len() > MAX_REASON_ARG_CHARS).any() or arg.str.contains(r"[\t\r\n\\]").any():
        raise ValueError(
            f"reason_arg must be at most {MAX_REASON_ARG_CHARS} characters without tabs, line breaks "
            "or backslashes (ml.models.reasons.clean_arg)"
        )
    return frame


def _per_value(values: pd.Series, fn) -> pd.Series:
    """``values.map(fn)`` calling ``fn`` once per distinct value (a list repeats its query k times)."""
    distinct = pd.unique(values)
    return values.map(dict(zip(distinct, map(fn, distinct))))


def check_search_frame(
    frame: pd.DataFrame,
    k: int,
    *,
    queries: Sequence[str] | None = None,
    user_ids: Sequence[int] | None = None,
    in_stock: set[int] | None = None,
) -> pd.DataFrame:
    """Validate a search-list provider's answer (:mod:`ml.search.lists`) and return it clean.

    With ``user_ids`` the frame holds personalised lists (``USER_QUERY_TOPN_COLUMNS``, one list per
    user and query), else query lists (``QUERY_TOPN_COLUMNS``, only the ``queries`` asked for). On
    top of the ranked-list rules of :func:`check_topn_frame`: ``query_norm`` is put in
    :func:`ml.search.text.normalize_query` form (the serving key; it also keeps tabs and newlines
    out of the LOAD DATA file) and must not be empty, no two queries of one list set may share a
    key under the serving collation, and with ``in_stock`` every item is one of those ids.
    """
    from ml.search.lists import fold_key
    from ml.search.text import normalize_query

    personal = user_ids is not None
    columns = USER_QUERY_TOPN_COLUMNS if personal else QUERY_TOPN_COLUMNS
    keys = ["user_id", "query_norm"] if personal else ["query_norm"]
    df = _typed(frame, columns, ("user_id", "rank", "item_id") if personal else ("rank", "item_id"))
    if df.empty:
        return df
    df["query_norm"] = _per_value(df["query_norm"].astype(str), normalize_query)
    if (df["query_norm"] == "").any():
        raise ValueError("a query_norm normalises to nothing (no letters or digits)")
    folded = df.assign(fold=_per_value(df["query_norm"], fold_key)).drop_duplicates(
        [*keys[:-1], "fold", "query_norm"]
    )
    clash = folded.duplicated([*keys[:-1], "fold"], keep=False)
    if clash.any():
        raise ValueError(
            f"queries {sorted(folded.loc[clash, 'query_norm'].unique().tolist())[:3]} share one serving key "
            "(the utf8mb4_unicode_ci collation compares case, width and accents equal): keep one of them"
        )
    if personal:
        unknown = set(df["user_id"].unique().tolist()) - {int(u) for u in user_ids}
        if unknown:
            raise ValueError(f"search lists for users that were not asked for: {sorted(unknown)[:5]}")
    elif queries is not None:
        unknown_q = set(df["query_norm"].unique().tolist()) - set(queries)
        if unknown_q:
            raise ValueError(f"search lists for queries that were not asked for: {sorted(unknown_q)[:5]}")
    if in_stock is not None:
        gone = sorted(set(df["item_id"].unique().tolist()) - in_stock)
        if gone:
            raise ValueError(f"search lists hold items that are unknown or out of stock: {gone[:5]}")

    def name(d: pd.DataFrame, i: int) -> str:
        query = f"query {d['query_norm'].iat[i]!r}"
        return f"user {int(d['user_id'].iat[i])}, {query}" if personal else query

    return _check_ranked_lists(df, keys, k, name)


def topn_invariants_validator(settings: Settings, upper_event_id: int) -> Validator:
    """The hard invariants of a top-N table, checked in SQL before any swap.

    Every user with an event up to ``upper_event_id`` has rows; ranks are 1..k contiguous; no
    item twice for a user; scores never rise with rank; every row has a reason of ``REASON_CODES``. (Finiteness is checked on the frames:
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
            codes = ", ".join(f"'{c}'" for c in REASON_CODES)
            no_reason = int(
                _scalar(conn, f"SELECT COUNT(*) FROM `{db}`.`{name}` WHERE reason NOT IN ({codes})") or 0
            )
        finally:
            conn.close()
        ok = missing == 0 and bad_lists == 0 and rising == 0 and no_reason == 0 and rows > 0
        summary = (
            f"rows={rows} users_without_rows={missing} lists_with_rank_gaps_or_duplicates={bad_lists} "
            f"score_rises={rising} rows_without_reason={no_reason}"
        )
        return ok, summary

    return validate


#: list keys of the search serving tables (their ``*_new`` staging copies share them)
SEARCH_LIST_KEYS: dict[str, tuple[str, ...]] = {
    "query_topn": ("query_norm",),
    "user_query_topn": ("user_id", "query_norm"),
}


def search_invariants_validator(settings: Settings) -> Validator:
    """The hard invariants of a search list table (``query_topn`` or ``user_query_topn``, or their
    ``*_new``), in SQL before a swap: ranks 1..k contiguous per list, no item twice in a list,
    scores never rising with rank, every item in ``recsys_raw.items`` and in stock. An empty table
    passes (a young shop may have no query searched often enough yet)."""

    def validate(table: str) -> tuple[bool, str]:
        db, name = table.split(".", 1)
        keys = SEARCH_LIST_KEYS[name.removesuffix("_new")]
        by = ", ".join(keys)
        conn = connect(settings=settings)
        try:
            rows = int(_scalar(conn, f"SELECT COUNT(*) FROM `{db}`.`{name}`") or 0)
            bad_lists = int(
                _scalar(
                    conn,
                    f"SELECT COUNT(*) FROM (SELECT MIN(`rank`) mn, MAX(`rank`) mx, COUNT(*) c, COUNT(DISTINCT item_id) d "
                    f"FROM `{db}`.`{name}` GROUP BY {by}) g WHERE mn <> 1 OR mx <> c OR d <> c",
                )
                or 0
            )
            rising = int(
                _scalar(
                    conn,
                    f"SELECT COUNT(*) FROM (SELECT score, LAG(score) OVER (PARTITION BY {by} ORDER BY `rank`) AS prev "
                    f"FROM `{db}`.`{name}`) x WHERE prev < score",
                )
                or 0
            )
            unservable = int(
                _scalar(
                    conn,
                    f"SELECT COUNT(*) FROM `{db}`.`{name}` t LEFT JOIN `{settings.raw_db}`.items i "
                    "ON i.item_id = t.item_id WHERE i.item_id IS NULL OR i.in_stock <> 1",
                )
                or 0
            )
        finally:
            conn.close()
        ok = bad_lists == 0 and rising == 0 and unservable == 0
        summary = (
            f"{name}: rows={rows} lists_with_rank_gaps_or_duplicates={bad_lists} score_rises={rising} "
            f"unknown_or_out_of_stock_items={unservable}"
        )
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
